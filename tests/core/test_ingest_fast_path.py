"""The ingest's inlined fast path agrees with the full validation on every record."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.core.models import Parameter
from apps.core.services.ingest import InvalidReading, ReadingIn
from apps.core.services.ingest.validation import _validate, _validator

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
JUNK = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=8),
                 st.decimals(allow_nan=True), st.just(dt.datetime(2026, 6, 1)),
                 st.just("2026-06-01T00:00:00"), st.just(float("nan")), st.just(10**400))
# Changes that may or may not make a valid record invalid, one field at a time.
TWEAKS = {
    "device": st.sampled_from(["meter-2", "nope", ""]),
    "parameter": st.sampled_from(["active_energy", "temperature", "x"]),
    "ts": st.one_of(JUNK, st.just("2026-06-01T02:00:00+02:00"), st.just("2026-06-01T00:00Z")),
    "value": st.one_of(JUNK, st.integers(), st.just(Decimal("2.5")), st.just("3.5")),
    "period_end": st.one_of(JUNK, st.just(T0), st.just(T0 + dt.timedelta(hours=1))),
    "estimated": st.one_of(st.integers(0, 1), st.none(), st.just("true")),
    "quality": st.one_of(st.integers(-1, 3), st.booleans(), st.just("0")),
    "cost": st.one_of(JUNK, st.floats(), st.integers(), st.just(Decimal("1.5"))),
    "currency": st.sampled_from(["", "EUR", "usd", "EU", "€UR", "CHF", "EURO"]),
}


@st.composite
def records(draw):
    """A valid interval reading with cost, then zero to three fields changed."""
    record = ReadingIn(device="meter-1", parameter="active_energy_delta", ts=T0,
                       period_end=T0 + dt.timedelta(minutes=15), value=draw(st.floats(-1e9, 1e9)),
                       cost=draw(st.one_of(st.none(), st.floats(0, 1e6))), currency="EUR")
    if record.cost is None:
        record.currency = draw(st.sampled_from(["", "EUR"]))
    for name in draw(st.lists(st.sampled_from(sorted(TWEAKS)), max_size=3, unique=True)):
        record = dataclasses.replace(record, **{name: draw(TWEAKS[name])})
    return record


def _outcome(check, record):
    try:
        return ("ok", check(record))
    except InvalidReading as exc:
        return ("refused", str(exc))


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(record=records())
def test_fast_path_matches_full_validation(deployment, record):
    devices = {"meter-1": 1, "meter-2": 2}
    parameters = {p.key: p for p in Parameter.objects.all()}
    fast = _validator(devices, parameters, deployment)

    assert _outcome(fast, record) == _outcome(
        lambda r: _validate(r, devices, parameters, deployment), record)


@pytest.mark.parametrize(("cost", "currency"), [
    (2.0, "usd"), (2.0, "EU"), (2.0, "€UR"), (2.0, ""), (2, "EUR"), (10**400, "EUR"),
    (float("nan"), "EUR"), (float("inf"), "EUR"), (None, "EUR"), (None, "usd"), (True, "EUR"),
    (Decimal("2.5"), "EUR"), ("2.5", "EUR"), (2.5, "CHF"),
])
def test_fast_path_matches_full_validation_on_cost_edges(deployment, cost, currency):
    devices = {"meter-1": 1}
    parameters = {p.key: p for p in Parameter.objects.all()}
    record = ReadingIn(device="meter-1", parameter="active_energy_delta", ts=T0,
                       period_end=T0 + dt.timedelta(minutes=15), value=1.0, cost=cost,
                       currency=currency)

    assert _outcome(_validator(devices, parameters, deployment), record) == _outcome(
        lambda r: _validate(r, devices, parameters, deployment), record)
