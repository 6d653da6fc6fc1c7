"""What the platforms answer, on arbitrary input: a provider page for the pull sync, a
Wattics collector answer, an IS3 answer. Each becomes a classified outcome (stored,
quarantined with its reason, a transient or permanent error, a wait from Retry-After) and
never an exception the caller did not ask for; a Retry-After of any spelling is a wait the
outbox can schedule.
"""

from __future__ import annotations

import datetime as dt
import json
import math

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.core.http import HubHTTPError, PermanentError, TransientError, parse_retry_after
from apps.core.models import Quarantine, Run
from apps.core.services.outbox import _retry_delay
from apps.dexma.client import Is3Client
from apps.pull.models import Connection, Endpoint
from apps.pull.services import connection_setup, connection_sync
from apps.wattics.client import PostResult, WatticsClient

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
DB_FUZZ = settings(max_examples=40, deadline=None, derandomize=True, database=None,
                   suppress_health_check=list(HealthCheck))
BASE = "https://provider.example/api/"
WATTICS = "https://collector.example/packets"
IS3 = "https://is3.example/readings"

# Header values as a server may write them: numbers of any size and sign, dates of any
# year, garbage (latin-1, no line breaks: what HTTP can carry).
header_text = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF),
                      max_size=40)
retry_after = st.one_of(
    st.none(), header_text,
    st.integers(min_value=-10**30, max_value=10**30).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["1e309", "-1e309", "nan", "inf", "1e300", "0x10", " 5 ", "5s"]),
    st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31))
    .map(lambda d: d.strftime("%a, %d %b ") + f"{d.year:04d}" + d.strftime(" %H:%M:%S GMT")),
)
statuses = st.integers(min_value=200, max_value=599)
# Any code point, lone surrogates and NUL included, as a JSON escape can carry them.
any_text = st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF,
                                          exclude_categories=()), max_size=10)
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-10**40, max_value=10**40),
                    st.floats(allow_nan=True, allow_infinity=True), any_text)
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(any_text, inner, max_size=3)), max_leaves=12)
bodies = st.one_of(
    json_values.map(lambda v: json.dumps(v, allow_nan=True)),
    st.binary(max_size=60).map(lambda b: b.decode("latin-1")),
    st.just(""), st.just("OK"), st.just(" OK \n"), st.just("[" * 5000 + "]" * 5000),
    st.just("9" * 5000),
)


def _bodyless(status: int, body: str) -> str:
    # 204 and 304 carry no body by HTTP; one sent anyway reads as a broken connection.
    return "" if status in (204, 304) else body


def _headers(value: str | None) -> dict[str, str]:
    return {} if value is None else {"Retry-After": value}


def _a_wait(seconds: float | None) -> None:
    """A Retry-After the outbox can schedule: none, or a finite, non-negative number."""
    assert seconds is None or (math.isfinite(seconds) and seconds >= 0), seconds
    if seconds is not None:
        now = dt.datetime.now(dt.UTC)
        assert now + dt.timedelta(seconds=_retry_delay(1, seconds)) > now


@FUZZ
@given(retry_after)
def test_any_retry_after_is_a_wait_the_outbox_can_schedule(value):
    _a_wait(parse_retry_after(value))


@FUZZ
@given(status=statuses, body=bodies, wait=retry_after)
def test_a_wattics_answer_to_a_packet_is_a_result_never_an_exception(status, body, wait):
    packet = {"tsISO8601": "2026-03-15T08:00:00.000+01:00", "id": "m-1", "P": 1.0}
    with responses.RequestsMock() as mocked:
        mocked.post(WATTICS, status=status, body=_bodyless(status, body),
                    headers=_headers(wait))
        result = WatticsClient(url=WATTICS, username="u", password="p").post_packet(packet)
    assert isinstance(result, PostResult) and result.status == status
    _a_wait(result.retry_after)


@FUZZ
@given(status=statuses, body=bodies, wait=retry_after)
def test_a_wattics_last_packet_answer_is_a_packet_nothing_or_a_classified_error(
        status, body, wait):
    with responses.RequestsMock() as mocked:
        mocked.get(WATTICS, status=status, body=_bodyless(status, body),
                    headers=_headers(wait))
        try:
            packet, ts = WatticsClient(url=WATTICS, username="u",
                                       password="p").last_packet("m-1")
        except (TransientError, PermanentError) as exc:
            assert str(exc)
            _a_wait(exc.retry_after)
            return
    assert status < 400
    assert (packet is None) == (ts is None)
    if ts is not None:
        assert isinstance(packet, dict) and ts.tzinfo is not None


@FUZZ
@given(status=statuses, body=bodies, wait=retry_after)
def test_an_is3_answer_is_accepted_only_as_200_ok_else_a_classified_error(status, body, wait):
    with responses.RequestsMock() as mocked:
        mocked.post(IS3, status=status, body=_bodyless(status, body),
                    headers=_headers(wait))
        client = Is3Client(base_url=IS3, max_retries=0)
        try:
            client.insert(source_key="k", source_token="t", body=b"[]")
        except (TransientError, PermanentError) as exc:
            assert str(exc)
            _a_wait(exc.retry_after)
            assert isinstance(exc, TransientError) == (status < 400 or status == 429
                                                       or status >= 500)
            return
    assert status == 200 and body.strip() == "OK"


# --- the pull sync on an arbitrary provider page --------------------------------------------

@pytest.fixture
def meters_connection(deployment):
    connection = Connection.objects.create(
        deployment=deployment, name="Hostile", key="hostile", staging_url=BASE,
        auth_kind="api_key_header", api_key="k", max_retries=0,
    )
    Endpoint.objects.create(connection=connection, role="meters", path="meters",
                            pagination="none", records_path="data",
                            fields={"external_id": "id", "type": "t", "unit": "u",
                                    "name": "label"})
    return connection_setup(connection=connection)


records = st.lists(st.one_of(
    st.fixed_dictionaries({"id": scalars, "t": st.one_of(st.sampled_from(["water", "energy"]),
                                                         scalars),
                           "u": st.one_of(st.sampled_from(["m3", "kWh"]), scalars)},
                          optional={"label": json_values, "extra": json_values}),
    json_values), max_size=4)
pages = st.one_of(records.map(lambda r: {"data": r}),
                  json_values.map(lambda v: {"data": v}), json_values)


def _sent(value) -> str:
    return json.dumps(value, allow_nan=True)


@DB_FUZZ
@given(page=pages)
@pytest.mark.django_db(transaction=True)  # autocommit, as a worker runs the sync
def test_every_record_of_an_arbitrary_provider_page_is_stored_or_quarantined(
        meters_connection, page):
    try:
        _sync_and_account(meters_connection, page)
    finally:
        Quarantine.objects.filter(deployment=meters_connection.deployment).delete()
        meters_connection.datasource.devices.all().delete()


def _sync_and_account(connection, page) -> None:
    with responses.RequestsMock() as mocked:
        mocked.get(BASE + "meters", body=_sent(page), content_type="application/json")
        run = connection_sync(connection=connection).run
    run.refresh_from_db()
    assert run.status in {s.value for s in Run.Status}
    rows = page.get("data") if isinstance(page, dict) else None
    if rows is not None and not isinstance(rows, list):
        # Not a list of records: the page fails, saying so; nothing is half-stored.
        assert run.status == Run.Status.FAILED and "records path" in run.error, run.error
        return
    if run.status == Run.Status.FAILED and run.error:
        # The page as a whole could not be taken: a clear error, not a traceback.
        assert "Traceback" not in run.error and run.error.startswith("entities:"), run.error
        return
    stored = set(connection.datasource.devices.values_list("external_id", flat=True))
    held = [q.payload.get("raw") for q in Quarantine.objects.filter(
        deployment=connection.deployment,
        source=Quarantine.source_for("pull", "connection", connection.key))]
    for raw in rows or []:
        key = raw.get("id") if isinstance(raw, dict) else None
        text = str(key).strip() if key is not None and not isinstance(key, dict | list) else ""
        assert text in stored or _same(raw, held), (raw, run.counts["meters"], held)


def _same(raw, held: list) -> bool:
    shown = _normal(raw)
    return any(_normal(h) == shown for h in held) or (bool(held) and not _storable(raw))


def _normal(value) -> str:
    """As jsonb gives it back: keys in its own order, 1e16 as 10000000000000000 (so every
    number is compared as a float), -0.0 as 0.0 (PostgreSQL's numeric has no negative zero)."""
    def whole(item):
        if isinstance(item, int | float) and not isinstance(item, bool):
            return float(item) + 0.0  # -0.0 + 0.0 is 0.0
        if isinstance(item, dict):
            return {k: whole(v) for k, v in item.items()}
        if isinstance(item, list):
            return [whole(v) for v in item]
        return item
    return json.dumps(whole(value), allow_nan=True, sort_keys=True)


def _storable(value) -> bool:
    """What PostgreSQL's jsonb keeps as sent (a record that is not is kept in another form)."""
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return "\x00" not in value
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


def test_hub_http_errors_are_the_only_errors_the_clients_raise():
    # The classification the tests above rely on: both kinds are HubHTTPError.
    assert issubclass(TransientError, HubHTTPError) and issubclass(PermanentError, HubHTTPError)
