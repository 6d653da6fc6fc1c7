"""The partner API's rules between query parameters, for schemathesis (SCHEMATHESIS_HOOKS).

OpenAPI describes each parameter alone; the rules that tie two together are in the
operations' descriptions, and the views refuse a request that breaks one with a 400 naming
the parameter. A request the generator calls valid must keep those rules too, or the
positive-data check would count a correct 400 as a failure. So each *positive* case is
brought within them here; negative cases are left as generated, and the views' 400s for
each rule are tested in tests/partner_api (test_params.py, test_paging.py).

The rules, as the document states them:
- one of `offset`, `page` and `cursor`; `limit` or `page_size`, not both;
- `page` times `page_size` within 2**62 (PostgreSQL's OFFSET);
- `cursor` is a `next_cursor` this API issued (the stateful phase follows those links);
- `from` or `start_date`, `to` or `end_date`; `to` only with a start, after it, and at most
  366 days after it; `from` alone at most 366 days ago;
- instants within the years 1 to 9999 in UTC;
- `Idempotency-Key` unique per request body (the same key with another body is a 422).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import uuid

import schemathesis
from schemathesis.generation import GenerationMode

MAX_OFFSET = 2**62
MAX_DAYS = 366
_CURSOR = re.compile(r"v2\.(\d+)\.[ist](\d+)")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _given(query: dict, name: str) -> bool:
    return query.get(name) not in (None, "")


def _issued_cursor(raw) -> bool:
    if not isinstance(raw, str):
        return False
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
    except (ValueError, binascii.Error, UnicodeDecodeError):
        return False
    found = _CURSOR.fullmatch(text)
    return bool(found) and all(int(n) <= MAX_OFFSET for n in found.groups())


def _instant(raw) -> dt.datetime | None:
    """The instant in UTC, or None when the hub would refuse it (out of range, unreadable)."""
    if not isinstance(raw, str):
        return None
    try:
        if _DATE.fullmatch(raw):
            day = dt.date.fromisoformat(raw)
            # Midnight in a zone east or west of UTC can fall outside the calendar.
            if not dt.date(1, 1, 2) <= day <= dt.date(9999, 12, 30):
                return None
            return dt.datetime.combine(day, dt.time(), dt.UTC)
        value = dt.datetime.fromisoformat(raw.replace("z", "Z"))
        if value.utcoffset() is None:
            return None
        return value.astimezone(dt.UTC)
    except (ValueError, OverflowError):
        return None


def _paging(query: dict) -> None:
    styles = [name for name in ("cursor", "page", "offset") if _given(query, name)]
    for extra in styles[1:]:
        del query[extra]
    if _given(query, "limit") and _given(query, "page_size"):
        del query["page_size"]
    if _given(query, "cursor") and not _issued_cursor(query["cursor"]):
        del query["cursor"]
    if _given(query, "page"):
        size = int(query.get("page_size") or query.get("limit") or 500)
        if int(query["page"]) > MAX_OFFSET // max(size, 1):
            query["page"] = 1


def _dates(query: dict) -> None:
    # A day is midnight in the deployment's zone, a few hours from UTC: a day's margin.
    margin = dt.timedelta(days=1)
    for name, alias in (("from", "start_date"), ("to", "end_date")):
        if _given(query, name) and _given(query, alias):
            del query[alias]
    for name in ("from", "start_date", "to", "end_date", "updated_since"):
        if _given(query, name) and _instant(query[name]) is None:
            del query[name]
    start_name = "from" if _given(query, "from") else "start_date"
    end_name = "to" if _given(query, "to") else "end_date"
    start = _instant(query.get(start_name)) if _given(query, start_name) else None
    end = _instant(query.get(end_name)) if _given(query, end_name) else None
    if end is not None and (
        start is None or end <= start + margin or end - start > dt.timedelta(MAX_DAYS) - margin
    ):
        del query[end_name]
        end = None
    if start is not None and end is None:
        now = dt.datetime.now(dt.UTC)
        if now - start > dt.timedelta(MAX_DAYS) - margin:
            del query[start_name]


@schemathesis.hook
def map_case(context, case):
    meta = case.meta
    if meta is None or meta.generation.mode != GenerationMode.POSITIVE:
        return case
    if isinstance(case.query, dict):
        query = dict(case.query)
        _paging(query)
        _dates(query)
        case.query = query
    if case.headers and "Idempotency-Key" in case.headers:
        unique = f"{uuid.uuid4().hex}-{case.headers['Idempotency-Key']}"[:255]
        case.headers = {**case.headers, "Idempotency-Key": unique}
    return case
