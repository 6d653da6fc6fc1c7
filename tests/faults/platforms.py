"""What the hub accepted against what the sandbox platforms hold, read straight from the
private database after a scenario (the sandbox tables are the platforms' own storage)."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from dataclasses import dataclass, field

from tests.faults.harness import Hub

# The hub's side, computed in the hub's Django: every reading of the DEXMA datasource's
# selected device parameters as (did, IS3 parameter id, UTC instant, value).
_DEXMA_EXPECTED = """
import json
from apps.core.models import Reading
from apps.core.selectors import pairs_q
from apps.dexma.services.batches import channels_of
from apps.dexma.schemas import frequency_of
from apps.dexma.models import DexmaDatasource
ds = DexmaDatasource.objects.get(key=%r)
since = %r
channels = channels_of(ds)
qs = Reading.objects.filter(pairs_q(sorted(channels)))
if since:
    qs = qs.filter(ts__gte=since)
rows = []
for device_id, parameter_id, ts, end, v in (
        qs.values_list("device_id", "parameter_id", "ts", "period_end", "value").iterator()):
    ch = channels[(device_id, parameter_id)]
    frequency = frequency_of(ts, end) if ch.interval else None
    rows.append([ch.did, ch.code(frequency), ts.isoformat(), v])
print(json.dumps(rows))
"""


def _utc(ts: dt.datetime | str) -> str:
    if isinstance(ts, str):
        ts = dt.datetime.fromisoformat(ts)
    return ts.astimezone(dt.UTC).isoformat()


@dataclass
class Comparison:
    expected: int
    held: int
    missing: list = field(default_factory=list)
    unexpected: list = field(default_factory=list)
    wrong_value: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.wrong_value)

    def __str__(self) -> str:
        return (f"expected {self.expected}, held {self.held}, missing {len(self.missing)} "
                f"(e.g. {self.missing[:3]}), unexpected {len(self.unexpected)} "
                f"(e.g. {self.unexpected[:3]}), wrong value {len(self.wrong_value)} "
                f"(e.g. {self.wrong_value[:3]})")


def _compare(expected: dict, held: dict) -> Comparison:
    result = Comparison(expected=len(expected), held=len(held))
    for key, value in expected.items():
        if key not in held:
            result.missing.append(key)
        elif abs(held[key] - value) > 1e-6 * max(1.0, abs(value)):
            result.wrong_value.append((key, value, held[key]))
    result.unexpected = [key for key in held if key not in expected]
    return result


# --- DEXMA IS3 -------------------------------------------------------------------------


def dexma_expected(hub: Hub, key: str, since: dt.datetime | None = None
                   ) -> dict[tuple[str, int, str], float]:
    rows = hub.shell(_DEXMA_EXPECTED % (key, since.isoformat() if since else None),
                     timeout=300)
    return {(did, p, _utc(ts)): v for did, p, ts, v in rows}


def dexma_held(hub: Hub, key: str, since: dt.datetime | None = None
               ) -> dict[tuple[str, int, str], float]:
    rows = hub.sql(
        "SELECT s.did, s.p, v.ts, v.v FROM sandbox_dexma_is3value v "
        "JOIN sandbox_dexma_is3series s ON s.id = v.series_id "
        "JOIN sandbox_dexma_platformdatasource d ON d.id = s.datasource_id "
        "WHERE d.key = %s AND v.ts >= %s",
        (key, since or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)))
    return {(did, p, _utc(ts)): v for did, p, ts, v in rows}


def dexma_compare(hub: Hub, key: str, since: dt.datetime | None = None) -> Comparison:
    """The hub's readings of the datasource's channels (at or after `since`) against the
    values the sandbox IS3 stored."""
    return _compare(dexma_expected(hub, key, since), dexma_held(hub, key, since))


def is3_stats(hub: Hub, key: str) -> dict[str, int]:
    rows = hub.sql(
        "SELECT st.requests, st.stored, st.overwrites, st.out_of_order, st.discarded, "
        "st.refused FROM sandbox_dexma_is3stats st "
        "JOIN sandbox_dexma_platformdatasource d ON d.id = st.datasource_id WHERE d.key = %s",
        (key,))
    names = ("requests", "stored", "overwrites", "out_of_order", "discarded", "refused")
    return dict(zip(names, rows[0], strict=True)) if rows else dict.fromkeys(names, 0)


def dexma_link_id(hub: Hub, key: str) -> int:
    return hub.sql("SELECT link_id FROM dexma_dexmadatasource WHERE key = %s", (key,))[0][0]


# --- the outbox ----------------------------------------------------------------------------


def outbox_states(hub: Hub, link_ids: list[int] | None = None) -> Counter:
    query = "SELECT state, count(*) FROM core_outboundbatch"
    params: tuple = ()
    if link_ids is not None:
        query += " WHERE link_id = ANY(%s)"
        params = (link_ids,)
    return Counter(dict(hub.sql(query + " GROUP BY state", params)))


def outbox_open(hub: Hub, link_ids: list[int] | None = None) -> int:
    states = outbox_states(hub, link_ids)
    return sum(states[s] for s in ("pending", "sending", "retry"))


# --- Wattics ---------------------------------------------------------------------------


_WATTICS_EXPECTED = """
import json
from django.db.models import Q
from apps.core.models import Reading
from apps.wattics.models import WatticsStream
from apps.wattics.services.streams import stream_channels
found = {}
for stream in WatticsStream.objects.all():
    cond = Q(pk__in=[])
    for c in stream_channels(stream=stream):
        cond |= Q(device_id=c.device_id, parameter_id=c.parameter_id)
    qs = Reading.objects.filter(cond)
    if stream.start_at:
        qs = qs.filter(ts__gte=stream.start_at)
    found[stream.meter_id] = sorted(
        t.isoformat() for t in qs.values_list("ts", flat=True).distinct())
print(json.dumps(found))
"""


def wattics_expected(hub: Hub) -> dict[str, list[str]]:
    """Per Wattics meter id, the UTC instants the hub holds readings for (one packet each)."""
    return {meter: [_utc(t) for t in stamps]
            for meter, stamps in hub.shell(_WATTICS_EXPECTED, timeout=300).items()}


def wattics_packets(hub: Hub) -> dict[str, list[tuple[str, bool]]]:
    """Per meter id, the packets the sandbox collector received, in arrival order:
    (packet instant in UTC, discarded as out of order)."""
    rows = hub.sql(
        "SELECT m.meter_id, p.ts, p.discarded FROM sandbox_wattics_collectorpacket p "
        "JOIN sandbox_wattics_collectormeter m ON m.id = p.meter_id ORDER BY p.id")
    found: dict[str, list[tuple[str, bool]]] = {}
    for meter_id, ts, discarded in rows:
        found.setdefault(meter_id, []).append((_utc(ts), discarded))
    return found


def wattics_meters(hub: Hub) -> dict[str, tuple[int, int, str | None]]:
    """Per meter id: (accepted, discarded, last instant)."""
    rows = hub.sql("SELECT meter_id, accepted, discarded, last_ts "
                   "FROM sandbox_wattics_collectormeter")
    return {m: (a, d, _utc(ts) if ts else None) for m, a, d, ts in rows}


# --- whole-scenario checks ---------------------------------------------------------------

DEXMA_KEY = "hub-demo-acme"  # the demo's DEXMA datasource (apps/sandbox/demo/dexma.py)


def future_quarter(days: int = 1) -> dt.datetime:
    """A quarter-hour `days` ahead: partner pushes from there on are new to every link."""
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    return now.replace(minute=now.minute - now.minute % 15) + dt.timedelta(days=days)


def delivered_everything(hub, since: dt.datetime):
    """Wait condition: every pushed reading at IS3 and every Wattics packet accepted."""
    if outbox_open(hub):
        return False
    if not dexma_compare(hub, DEXMA_KEY, since).ok:
        return False
    meters = wattics_meters(hub)
    return all(meters.get(m, (0, 0, None))[0] >= len(v)
               for m, v in wattics_expected(hub).items())


def assert_platforms_hold_everything(hub, since: dt.datetime) -> dict:
    comparison = dexma_compare(hub, DEXMA_KEY, since)
    assert comparison.ok, str(comparison)
    packets = wattics_packets(hub)
    meters = wattics_meters(hub)
    for meter_id, stamps in wattics_expected(hub).items():
        taken = [ts for ts, discarded in packets.get(meter_id, []) if not discarded]
        assert taken == stamps, f"{meter_id}: accepted packets differ from the readings"
        assert meters[meter_id][1] == 0, f"{meter_id}: packets arrived out of order"
    return {"is3_values": comparison.held,
            "wattics_packets": sum(a for a, _, _ in meters.values())}
