"""Query parameters shared by the list endpoints: dates, page position, opaque cursors."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import zoneinfo
from dataclasses import dataclass
from urllib.parse import urlencode

from django.conf import settings

from apps.partner_api.errors import ApiError

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# An unencoded "+" in a query string arrives as a space: "08:00:00 02:00" meant "+02:00".
_LOST_PLUS = re.compile(r"(T[\d:.]+) (\d{2}:?\d{2})$")


def parse_instant(raw: str, *, name: str, tz: str) -> dt.datetime:
    """YYYY-MM-DD (midnight in `tz`) or ISO 8601 with an offset; naive times are refused."""
    raw = _LOST_PLUS.sub(r"\1+\2", raw.strip())
    if _DATE.match(raw):
        try:
            day = dt.date.fromisoformat(raw)
        except ValueError:
            raise ApiError(f"{name} '{raw}' is not a calendar date", code="invalid_date",
                           fields={name: ["not a calendar date"]}) from None
        return dt.datetime.combine(day, dt.time(), zoneinfo.ZoneInfo(tz))
    try:
        value = dt.datetime.fromisoformat(raw.replace("z", "Z"))
    except ValueError:
        raise ApiError(
            f"{name} '{raw}' is neither YYYY-MM-DD nor ISO 8601 like 2026-03-15T08:00:00+00:00",
            code="invalid_date", fields={name: ["use YYYY-MM-DD or ISO 8601 with an offset"]},
        ) from None
    if value.utcoffset() is None:
        raise ApiError(
            f"{name} '{raw}' has no UTC offset; add one (e.g. +01:00 or Z) or send a date",
            code="invalid_date", fields={name: ["timestamp without UTC offset"]},
        )
    # In UTC: PostgreSQL refuses offsets past ±15:59, which ISO 8601 allows up to ±23:59.
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ApiError(f"{name} '{raw}' is outside the calendar once in UTC",
                       code="invalid_date", fields={name: ["outside the calendar in UTC"]},
                       ) from None


@dataclass(frozen=True, slots=True)
class DateRange:
    start: dt.datetime | None
    end: dt.datetime | None


def date_range(params, *, tz: str) -> DateRange:
    start = parse_instant(params["from"], name="from", tz=tz) if params.get("from") else None
    end = parse_instant(params["to"], name="to", tz=tz) if params.get("to") else None
    if start and end:
        if end <= start:
            raise ApiError(
                f"'to' ({end.isoformat()}) must be after 'from' ({start.isoformat()}); "
                "'from' is inclusive, 'to' exclusive",
                code="invalid_range", fields={"to": ["must be after 'from'"]},
            )
        maximum = settings.PARTNER_API_MAX_RANGE_DAYS
        if end - start > dt.timedelta(days=maximum):
            raise ApiError(
                f"the range from {start.date()} to {end.date()} is longer than {maximum} "
                "days; split it into smaller ranges",
                code="range_too_long", fields={"to": [f"at most {maximum} days after 'from'"]},
            )
    return DateRange(start, end)


_CURSOR_TAG = "p1:"


def cursor_encode(position: int) -> str:
    return base64.urlsafe_b64encode(f"{_CURSOR_TAG}{position}".encode()).decode().rstrip("=")


def cursor_decode(raw: str) -> int:
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        if not text.startswith(_CURSOR_TAG):
            raise ValueError
        position = int(text[len(_CURSOR_TAG):])
        if position < 0:
            raise ValueError
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(
            "cursor is not one this API issued; pass back 'next_cursor' unchanged",
            code="invalid_cursor", fields={"cursor": ["not a cursor from this API"]},
        ) from None
    return position


def _int(params, name: str, default: int, *, low: int, high: int | None = None) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(f"{name} must be an integer", code="invalid",
                       fields={name: ["not an integer"]}) from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ApiError(f"{name} must be {bound}, got {value}", code="invalid",
                       fields={name: [f"must be {bound}"]})
    return value


# PostgreSQL's OFFSET is a bigint; beyond it the query fails instead of returning no rows.
MAX_OFFSET = 2**62


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    offset: int
    after: int | None  # keyset position from a cursor; None in offset mode


def page_request(params) -> PageRequest:
    limit = _int(params, "limit", settings.PARTNER_API_PAGE_SIZE, low=1,
                 high=settings.PARTNER_API_MAX_PAGE_SIZE)
    if params.get("cursor"):
        if params.get("offset") not in (None, "", "0"):
            raise ApiError("use either cursor or offset, not both", code="invalid",
                           fields={"offset": ["not allowed with cursor"]})
        return PageRequest(limit, 0, cursor_decode(params["cursor"]))
    return PageRequest(limit, _int(params, "offset", 0, low=0, high=MAX_OFFSET), None)


@dataclass(slots=True)
class Page:
    results: list[dict]
    next: str | None
    previous: str | None
    next_cursor: str | None
    link: str


def page_build(request, page: PageRequest, rows: list[dict], positions: list[int]) -> Page:
    """Cut the limit+1 fetched rows to a page and announce where the next one is."""
    has_more = len(rows) > page.limit
    rows, positions = rows[: page.limit], positions[: page.limit]
    base = request.build_absolute_uri(request.path)
    query = {k: v for k, v in request.query_params.items() if k not in ("offset", "cursor")}

    def url(**extra) -> str:
        return f"{base}?{urlencode({**query, **extra})}"

    if positions:
        next_cursor = cursor_encode(positions[-1])
    elif page.after is not None:
        next_cursor = cursor_encode(page.after)
    else:
        next_cursor = None
    links = []
    previous = None
    if page.after is None:
        nxt = url(offset=page.offset + page.limit, limit=page.limit) if has_more else None
        links.append(f'<{url(offset=0, limit=page.limit)}>; rel="first"')
        if page.offset > 0:
            previous = url(offset=max(0, page.offset - page.limit), limit=page.limit)
            links.append(f'<{previous}>; rel="prev"')
    else:
        nxt = url(cursor=next_cursor, limit=page.limit) if has_more else None
    if nxt:
        links.append(f'<{nxt}>; rel="next"')
    return Page(rows, nxt, previous, next_cursor, ", ".join(links))
