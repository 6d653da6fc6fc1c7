"""Verification: a sample read back through APIv3 and compared with the hub."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.db.models import Max
from django.utils import timezone

from apps.core.http import HubHTTPError
from apps.core.models import Reading
from apps.dexma.client import DexmaClient, describe_error
from apps.dexma.models import Backfill, DexmaDatasource
from apps.dexma.services.batches import Converter, channels_of, zone_of

# Not public: APIv3 parameter keys by base code (the seed's example is EACTIVE).
READBACK_KEYS = {402: "EACTIVE"}
READBACK_OPERATIONS = {"delta": "DELTA", "avg": "AVG", "max": "MAX", "min": "MIN"}


@dataclass(slots=True)
class Verification:
    sampled: int = 0
    matched: int = 0
    differences: list[dict] = field(default_factory=list)
    error: str = ""

    @property
    def summary(self) -> str:
        if self.error:
            return f"verification failed after {self.sampled} sampled intervals: {self.error}"
        text = f"{self.matched} of {self.sampled} sampled intervals match"
        if self.differences:
            text += f"; {len(self.differences)} differ"
        return text


def _samples(qs, *, sample: int, chunks: int = 4) -> list[list]:
    """Up to `sample` readings as `chunks` runs of consecutive ones spread over the range."""
    total = qs.count()
    if not total:
        return []
    per = max(1, sample // chunks)
    runs, seen = [], set()
    for k in range(chunks):
        offset = (max(total - per, 0) * k) // max(chunks - 1, 1)
        rows = [r for r in qs[offset:offset + per] if r[0] not in seen]
        seen.update(r[0] for r in rows)
        if rows:
            runs.append(rows)
    return runs


def datasource_verify(*, datasource: DexmaDatasource, date_from: dt.datetime | None = None,
                      date_to: dt.datetime | None = None, sample: int = 48,
                      client: DexmaClient | None = None) -> Verification:
    """Read a sample of intervals per device parameter back through APIv3 and compare.

    IS3's 200 OK means accepted, not stored (the seed), so this is the proof of arrival.
    """
    date_to = date_to or timezone.now()
    date_from = date_from or date_to - dt.timedelta(days=2)
    link = datasource.link
    done = datasource.backfills.filter(state=Backfill.State.DONE).aggregate(
        top=Max("seq_snapshot"))["top"] or 0
    delivered_to = max(link.cursor if link else 0, done)
    channels = channels_of(datasource)
    convert = Converter(zone_of(datasource))
    result = Verification()
    own = client is None
    client = client or DexmaClient(datasource.installation.token)
    try:
        devices = {d.local_id: d.id for d in
                   client.devices_list(datasource_id=datasource.platform_id)}
        for (device_id, parameter_id), channel in sorted(channels.items()):
            qs = (Reading.objects.filter(device_id=device_id, parameter_id=parameter_id,
                                         ts__gte=date_from, ts__lt=date_to,
                                         seq__lte=delivered_to)
                  .order_by("ts").values_list("pk", "ts", "period_end", "value"))
            for run in _samples(qs, sample=sample):
                expected = {}
                for _, ts, end, v in run:
                    value = convert.value(channel, ts, end, v)
                    if not isinstance(value, str):  # quarantined ones were never sent
                        expected[ts] = value
                if not expected:
                    continue
                one = next(iter(expected.values()))
                if channel.interval:
                    resolution = next(k for k, f in (
                        ("QH", 0), ("H", 1), ("D", 2), ("W", 3), ("M", 4), ("HH", 6),
                        ("TM", 7), ("FM", 8)) if (one.p // 10) % 10 == f)
                    operation = READBACK_OPERATIONS[channel.parameter.operation]
                else:
                    resolution, operation = "B", "RAW"
                found: dict[dt.datetime, float] = {}
                if channel.did in devices:
                    back = client.readings_get(
                        device_id=devices[channel.did],
                        parameter_key=READBACK_KEYS.get(channel.parameter.dexma_code,
                                                        str(channel.parameter.dexma_code)),
                        resolution=resolution, operation=operation,
                        date_from=min(expected).astimezone(convert.zone).isoformat(),
                        date_to=(max(expected) + dt.timedelta(seconds=1)).astimezone(
                            convert.zone).isoformat())
                    found = {dt.datetime.fromisoformat(r.ts): r.v for r in back}
                for ts, value in sorted(expected.items()):
                    result.sampled += 1
                    got = found.get(ts)
                    if got is not None and abs(got - value.v) <= 1e-9 * max(1.0, abs(value.v)):
                        result.matched += 1
                    else:
                        result.differences.append({
                            "did": value.did, "p": value.p, "ts": value.ts,
                            "hub": value.v, "dexma": got,
                        })
    except HubHTTPError as exc:
        result.error = describe_error(exc)
    finally:
        if own:
            client.close()
    DexmaDatasource.objects.filter(pk=datasource.pk).update(
        verified_at=timezone.now(), verification=result.summary,
        verification_details=result.differences[:200])
    return result
