"""End to end: the real sync against the sandbox provider over a socket."""

from __future__ import annotations

import datetime as dt
import threading
import time

import pytest
from django.core import mail

from apps.core.models import Device, Quarantine, Reading, Run, Site
from apps.pull.models import Connection, SeenUnit
from apps.pull.services import connection_sync
from tests.pull.conftest import AUTH, DATA_START, NOW

# Only these apps' tables are flushed after each test: the full flush costs seconds.
# auth, contenttypes, auditlog: the audit history of the connections these tests create
# (and the users its middleware asks about) is flushed with them.
APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_celery_beat", "auditlog",
        "apps.core", "apps.pull", "apps.sandbox.upstream"]
live = pytest.mark.django_db(transaction=True, available_apps=APPS)


@pytest.fixture(autouse=True)
def _forget_flushed_content_types():
    """The flush of these tests empties django_content_type; ids cached before it would
    break the next test's audit entries (a foreign key to a row that is gone)."""
    from django.contrib.contenttypes.models import ContentType

    yield
    ContentType.objects.clear_cache()


SLOTS = 36  # hourly slots from DATA_START to NOW


def _sync(connection, sleeps, **kwargs) -> Run:
    connection.refresh_from_db()
    return connection_sync(connection=connection, sleep=sleeps, now=NOW, **kwargs).run


@live
@pytest.mark.parametrize("paging", ["offset", "page", "cursor", "link"])
@pytest.mark.parametrize("auth", list(AUTH))
def test_syncs_every_auth_kind_with_every_pagination_style(
    live_server, make_profile, make_connection, sleeps, auth, paging
):
    # Twelve hourly slots of three meters: 36 records over four usage pages of ten.
    profile = make_profile(auth_kind=auth, pagination=paging,
                           data_start=NOW - dt.timedelta(hours=12))
    connection = make_connection(live_server.url, profile)

    run = _sync(connection, sleeps)

    assert run.status == Run.Status.SUCCEEDED, run.error
    assert Site.objects.filter(external_id__in=["A-01", "A-02"]).count() == 2
    assert set(Device.objects.values_list("external_id", flat=True)) == {
        "M-0001", "M-0002", "M-0003"}
    assert Reading.objects.count() == run.counts["usage"]["fetched"] == 12 * 3
    assert run.counts["pages"] >= 1 + 1 + 4  # assets, meters, and every usage page


@live
def test_oauth_refresh_token_rotated_by_the_provider_is_persisted(
    live_server, make_profile, make_connection, sleeps
):
    from django.core.cache import cache

    from apps.pull.client import build_auth

    profile = make_profile(auth_kind="oauth2_client_credentials")
    connection = make_connection(live_server.url, profile, roles=("meters",))
    _sync(connection, sleeps)
    connection.refresh_from_db()
    first = connection.refresh_token
    assert first.startswith("r.")
    # The cached access token is gone: the next run must use the stored refresh token.
    cache.delete(build_auth(connection).cache_key)

    _sync(connection, sleeps)

    connection.refresh_from_db()
    assert connection.refresh_token.startswith("r.") and connection.refresh_token != first


@live
def test_honours_retry_after_in_seconds_and_as_http_date(
    live_server, make_profile, make_connection, sleeps
):
    # Requests 3, 4 (burst 1: HTTP date) and 6, 7 (burst 2: seconds) answer 429.
    profile = make_profile(burst_every=3, burst_length=1, retry_after_seconds=2)
    connection = make_connection(live_server.url, profile)

    run = _sync(connection, sleeps)

    assert run.status == Run.Status.SUCCEEDED, run.error
    assert 2.0 in sleeps.waits  # "Retry-After: 2"
    assert any(0 < w < 2.0 for w in sleeps.waits)  # an HTTP date about 2 s ahead
    assert run.counts["rate_limited"] >= 2
    assert Reading.objects.count() == SLOTS * 3


@live
def test_retry_after_longer_than_the_cap_stops_the_run_without_waiting(
    live_server, make_profile, make_connection, sleeps
):
    profile = make_profile(burst_every=1, burst_length=1, retry_after_seconds=3600)
    connection = make_connection(live_server.url, profile, roles=("meters",))

    run = _sync(connection, sleeps)

    assert run.status == Run.Status.FAILED
    assert "429" in run.error
    assert sleeps.waits == []


@live
def test_loop_guard_stops_a_cursor_that_points_back(
    live_server, make_profile, make_connection, sleeps
):
    profile = make_profile(pagination="cursor", meter_count=40, loop_cursor=True)
    connection = make_connection(live_server.url, profile, roles=("meters",))

    Connection.objects.filter(pk=connection.pk).update(notify_email="ops@example.com")

    run = _sync(connection, sleeps)

    # What the first pages held is stored, but the provider's paging is broken: the run
    # failed, so that the first such run alerts.
    assert run.status == Run.Status.FAILED and "twice" in run.error
    assert run.counts["pages"] == 3  # page 3 points back at page 2, which is not fetched again
    assert Device.objects.filter(external_id__isnull=False).exists()
    assert [m.to for m in mail.outbox] == [["ops@example.com"]]
    assert "failed" in mail.outbox[0].subject


@live
def test_shrinks_the_window_when_the_provider_refuses_the_range(
    live_server, make_profile, make_connection, sleeps
):
    profile = make_profile(max_range_days=1)
    connection = make_connection(live_server.url, profile, max_range_days=4,
                                 min_window_hours=6)

    run = _sync(connection, sleeps)

    assert run.status == Run.Status.SUCCEEDED, run.error
    assert run.counts["window_shrinks"] >= 1
    assert Reading.objects.count() == SLOTS * 3


@live
def test_a_partial_entity_sync_deactivates_nothing(
    live_server, make_profile, make_connection, sleeps
):
    profile = make_profile(meter_count=4)
    connection = make_connection(live_server.url, profile, roles=("meters",), max_retries=1)
    _sync(connection, sleeps)
    profile.hidden_meters = ["M-0004"]
    profile.error_every = 1  # every request now fails
    profile.save()

    run = _sync(connection, sleeps)

    assert run.status == Run.Status.FAILED
    assert run.counts["entities_complete"] is False
    assert Device.objects.get(external_id="M-0004").is_active


@live
def test_a_complete_entity_sync_deactivates_vanished_meters_and_revives_returning_ones(
    live_server, make_profile, make_connection, sleeps
):
    profile = make_profile(meter_count=4, flapping_meters=1)  # M-0004 every other listing
    connection = make_connection(live_server.url, profile, roles=("meters",))
    _sync(connection, sleeps)
    listed = Device.objects.get(external_id="M-0004")
    assert listed.is_active

    run = _sync(connection, sleeps)
    assert run.counts["meters"]["deactivated"] == 1
    gone = Device.objects.get(external_id="M-0004")
    assert not gone.is_active
    # The change time moves too, or partner API pullers asking updated_since never hear of it.
    assert gone.updated_at > listed.updated_at

    _sync(connection, sleeps)
    back = Device.objects.get(external_id="M-0004")
    assert back.is_active
    assert back.updated_at > gone.updated_at


@live
def test_flushes_stored_behind_never_share_the_connection_with_a_quarantine_write(
    live_server, make_profile, make_connection, sleeps, monkeypatch
):
    # Flushes of seven readings over one-day windows: the store has one in flight nearly
    # all the time, while the fetching side meets the spoiled records.
    from apps.pull.services import usage

    monkeypatch.setattr(usage, "FLUSH_SIZE", 7)
    storing = threading.Event()
    overlapped: list[str] = []
    ingest, quarantine = usage.readings_ingest, usage.quarantine_record

    def slow_ingest(**kwargs):
        storing.set()
        try:
            time.sleep(0.02)
            return ingest(**kwargs)
        finally:
            storing.clear()

    def checked_quarantine(**kwargs):
        if storing.is_set():
            overlapped.append(kwargs["reason"])
        return quarantine(**kwargs)

    monkeypatch.setattr(usage, "readings_ingest", slow_ingest)
    monkeypatch.setattr(usage, "quarantine_record", checked_quarantine)
    profile = make_profile(invalid_every=9)
    connection = make_connection(live_server.url, profile, max_range_days=1)

    run = _sync(connection, sleeps)

    assert run.status == Run.Status.SUCCEEDED, run.error
    assert overlapped == []
    assert run.counts["usage"]["quarantined"] == 12 == Quarantine.objects.filter(
        source="pull:connection:provider", payload__context__role="consumption").count()
    assert Reading.objects.count() == run.counts["usage"]["stored"] == SLOTS * 3 - 12
    assert run.counts["windows"] == 2
    connection.refresh_from_db()
    assert connection.usage_watermark == NOW


@live
def test_invalid_records_are_quarantined_with_raw_record_and_reason(
    live_server, make_profile, make_connection, sleeps
):
    profile = make_profile(invalid_every=9)  # 108 records: 12 spoiled, four kinds of damage
    connection = make_connection(live_server.url, profile)

    run = _sync(connection, sleeps)

    assert run.status == Run.Status.SUCCEEDED
    entries = list(Quarantine.objects.filter(source="pull:connection:provider",
                                            payload__context__role="consumption"))
    assert len(entries) == 12 == run.counts["usage"]["quarantined"]
    assert any(e.payload["raw"]["meter"] == "M-GHOST" and "unknown" in e.reason
               for e in entries)
    by_kind = " | ".join(e.reason for e in entries)
    assert "is not a number: 'n/a'" in by_kind
    assert "is not after start" in by_kind
    assert "without an ISO 4217 currency" in by_kind
    assert all(e.payload["raw"] and e.kind == Quarantine.Kind.READING for e in entries)
    assert Reading.objects.count() == SLOTS * 3 - 12


@live
def test_an_incremental_rerun_changes_nothing(
    live_server, make_profile, make_connection, sleeps
):
    profile = make_profile(invalid_every=9)
    connection = make_connection(live_server.url, profile, lookback_days=3)
    _sync(connection, sleeps)
    last_seq = Reading.objects.order_by("-seq").values_list("seq", flat=True)[0]
    quarantined = Quarantine.objects.count()

    run = _sync(connection, sleeps)

    assert run.status == Run.Status.SUCCEEDED
    assert run.counts["usage"]["stored"] == 0
    assert run.counts["usage"]["unchanged"] == SLOTS * 3 - 12
    assert Reading.objects.order_by("-seq").values_list("seq", flat=True)[0] == last_seq
    assert Quarantine.objects.count() == quarantined


@live
def test_a_crash_mid_usage_resumes_from_the_watermark_without_loss_or_duplicates(
    live_server, make_profile, make_connection, sleeps
):
    profile = make_profile()
    connection = make_connection(live_server.url, profile, max_range_days=1, lookback_days=0)
    pages = []

    def killed_after_a_few_pages() -> None:
        pages.append(1)
        if len(pages) == 8:  # inside the second one-day window
            raise SystemExit("worker killed")

    with pytest.raises(SystemExit):
        _sync(connection, sleeps, on_page=killed_after_a_few_pages)
    connection.refresh_from_db()
    committed = Reading.objects.count()
    assert connection.usage_watermark == NOW - dt.timedelta(days=1)
    assert committed == 12 * 3  # the first one-day window: from DATA_START to NOW - 1 day
    assert max(Reading.objects.values_list("ts", flat=True)) < connection.usage_watermark

    run = _sync(connection, sleeps)

    assert run.status == Run.Status.SUCCEEDED, run.error
    assert Reading.objects.count() == SLOTS * 3
    assert run.counts["usage"]["fetched"] == SLOTS * 3 - committed


@live
def test_reads_timestamps_without_offset_in_the_assumed_zone(
    live_server, make_profile, make_connection, sleeps
):
    profile = make_profile(naive_timestamps=True, naive_timezone="Europe/Madrid")
    connection = make_connection(live_server.url, profile, source_timezone="Europe/Madrid")

    _sync(connection, sleeps)

    assert min(Reading.objects.values_list("ts", flat=True)) == DATA_START
    assert Reading.objects.count() == SLOTS * 3


@live
def test_registers_units_on_first_sight_and_converts_into_the_parameter_unit(
    live_server, make_profile, make_connection, sleeps
):
    profile = make_profile(meter_count=4)  # M-0004 is district heating in MWh
    connection = make_connection(live_server.url, profile)

    _sync(connection, sleeps)

    assert set(SeenUnit.objects.values_list("unit", flat=True)) == {"kWh", "m3", "m³", "MWh"}
    heat = Reading.objects.filter(device__external_id="M-0004").first()
    assert heat.parameter.key == "thermal_energy_delta"
    assert 0.5 <= heat.value <= 5  # 0.001 to 0.003 MWh, stored as kWh


@live
def test_records_the_run_with_per_stage_counts(
    live_server, make_profile, make_connection, sleeps
):
    profile = make_profile()
    connection = make_connection(live_server.url, profile)

    run = _sync(connection, sleeps)

    assert run.kind == "pull.sync"
    assert run.counts["assets"] == {"fetched": 2, "stored": 2, "unchanged": 0,
                                    "quarantined": 0, "deactivated": 0}
    assert run.counts["meters"]["stored"] == 3
    assert run.counts["usage"]["stored"] == SLOTS * 3
    assert {"pages", "retries", "duration_s", "windows"} <= set(run.counts)
    connection.refresh_from_db()
    assert connection.last_status == Run.Status.SUCCEEDED
    assert connection.usage_watermark == NOW
    assert Connection.objects.get().datasource.kind == "pull"


@live
def test_reading_format_usage_is_stored_as_cumulative_meter_indexes(
    live_server, make_profile, make_connection, sleeps
):
    profile = make_profile(data_start=NOW - dt.timedelta(hours=6))
    connection = make_connection(live_server.url, profile, roles=("meters", "readings"))

    run = _sync(connection, sleeps)

    assert run.status == Run.Status.SUCCEEDED, run.error
    keys = set(Reading.objects.values_list("parameter__key", flat=True))
    assert keys == {"active_energy", "water_volume", "gas_volume"}
    assert not Reading.objects.filter(period_end__isnull=False).exists()
    assert Reading.objects.count() == 6 * 3
