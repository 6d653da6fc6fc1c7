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

from apps.partner_api.exceptions import ApiError

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_INTEGER = re.compile(r"-?[0-9]+")
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
        return _in_range(dt.datetime.combine(day, dt.time(), zoneinfo.ZoneInfo(tz)), raw, name)
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
    return _in_range(value, raw, name)


def _in_range(value: dt.datetime, raw: str, name: str) -> dt.datetime:
    """The instant in UTC: PostgreSQL refuses offsets past ±15:59, which ISO 8601 allows up to
    ±23:59; and year 1 at +14:00 is still year 0 in UTC, refused here, not by the driver."""
    try:
        return value.astimezone(dt.UTC)
    except OverflowError:
        raise ApiError(f"{name} '{raw}' is outside the years 1 to 9999 in UTC",
                       code="invalid_date", fields={name: ["out of range"]}) from None


def params_check(params, *, accepted: tuple[str, ...], repeatable: tuple[str, ...] = ()) -> None:
    """Refuse what this endpoint does not understand instead of answering unfiltered data."""
    unknown = sorted(set(params) - set(accepted))
    if unknown:
        names = ", ".join(f"'{n}'" for n in unknown)
        raise ApiError(
            f"unknown query parameter {names}; this endpoint accepts: "
            f"{', '.join(sorted(accepted))}",
            code="unknown_parameter", fields={n: ["unknown parameter"] for n in unknown})
    for name, values in params.lists():
        # A client adding its own copy of a parameter its `next` URL already holds means the
        # same; two different values would leave one of them silently unused.
        if len(set(values)) > 1 and name not in repeatable:
            raise ApiError(f"'{name}' is given {len(values)} times with different values "
                           f"({', '.join(sorted(set(values)))}); give it once",
                           code="invalid", fields={name: ["given more than once"]})


def _either(params, name: str, alias: str) -> tuple[str, str | None]:
    for given in (name, alias):
        if params.get(given) == "":
            raise ApiError(f"'{given}' is empty; give a date or leave it out",
                           code="invalid_date", fields={given: ["empty"]})
    if params.get(name) and params.get(alias):
        raise ApiError(f"give '{name}' or '{alias}', not both (they mean the same)",
                       code="invalid", fields={alias: [f"same as '{name}'"]})
    if params.get(alias):
        return alias, params[alias]
    return name, params.get(name) or None


@dataclass(frozen=True, slots=True)
class DateRange:
    start: dt.datetime | None
    end: dt.datetime | None


def date_range(params, *, tz: str, now: dt.datetime | None = None) -> DateRange:
    """`from`/`start_date` (inclusive) and `to`/`end_date` (exclusive), at most 366 days apart.

    `from` alone runs to now, so it obeys the same cap; `to` alone has no start to measure
    from and is refused rather than silently reaching back to the first reading.
    """
    start_name, start_raw = _either(params, "from", "start_date")
    end_name, end_raw = _either(params, "to", "end_date")
    start = parse_instant(start_raw, name=start_name, tz=tz) if start_raw else None
    end = parse_instant(end_raw, name=end_name, tz=tz) if end_raw else None
    maximum = settings.PARTNER_API_MAX_RANGE_DAYS
    if end and not start:
        raise ApiError(
            f"'{end_name}' needs '{'start_date' if end_name == 'end_date' else 'from'}' too"
            f" (at most {maximum} days before it); without either, the whole history is "
            "paged", code="invalid_range", fields={end_name: ["needs a start"]})
    if start and end and end <= start:
        raise ApiError(
            f"'{end_name}' ({end.isoformat()}) must be after '{start_name}' "
            f"({start.isoformat()}); the start is inclusive, the end exclusive",
            code="invalid_range", fields={end_name: [f"must be after '{start_name}'"]},
        )
    if start:
        until = end or now or dt.datetime.now(dt.UTC)
        if until - start > dt.timedelta(days=maximum):
            what = f"to {end.date()}" if end else "to now (no end given)"
            raise ApiError(
                f"the range from {start.date()} {what} is longer than {maximum} days; split "
                "it into smaller ranges", code="range_too_long",
                fields={end_name: [f"at most {maximum} days after '{start_name}'"]},
            )
    return DateRange(start, end)


# v2 cursors: the last record's id, and the pull's bound taken on its first page: records
# with an id (full pull) or a change (incremental pull) beyond it wait for the next pull.
_CURSOR_TAG = "v2"
BOUND_KINDS = ("i", "s", "t")  # id, reading seq, updated_at in microseconds


@dataclass(frozen=True, slots=True)
class Bound:
    kind: str
    value: int


def cursor_encode(position: int, bound: Bound) -> str:
    text = f"{_CURSOR_TAG}.{position}.{bound.kind}{bound.value}"
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def cursor_decode(raw: str) -> tuple[int, Bound]:
    try:
        text = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)).decode()
        tag, position, bound = text.split(".")
        if tag != _CURSOR_TAG or bound[:1] not in BOUND_KINDS:
            raise ValueError
        position, value = int(position), int(bound[1:])
        if position < 0 or value < 0 or position > MAX_OFFSET or value > MAX_OFFSET:
            raise ValueError
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(
            "cursor is not one this API issued (or one from before v2 paging); pass back "
            "'next_cursor' unchanged, or start again without a cursor",
            code="invalid_cursor", fields={"cursor": ["not a cursor from this API"]},
        ) from None
    return position, Bound(bound[0], value)


def _int(params, name: str, default: int, *, low: int, high: int | None = None) -> int:
    raw = params.get(name)
    if raw in (None, ""):
        return default
    # Digits only: int() would also take " 5", "5_000" and non-ASCII digits.
    if not _INTEGER.fullmatch(raw):
        raise ApiError(f"{name} must be an integer", code="invalid",
                       fields={name: ["not an integer"]})
    value = int(raw) if len(raw) <= 30 else (MAX_OFFSET + 1) * (-1 if raw[0] == "-" else 1)
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise ApiError(f"{name} must be {bound}, got {raw[:40]}", code="invalid",
                       fields={name: [f"must be {bound}"]})
    return value


# PostgreSQL's OFFSET is a bigint; beyond it the query fails instead of returning no rows.
MAX_OFFSET = 2**62
PAGING_PARAMS = ("limit", "offset", "page", "page_size", "cursor")


@dataclass(frozen=True, slots=True)
class PageRequest:
    limit: int
    offset: int
    after: int | None = None  # keyset position (an id) from a cursor; None otherwise
    bound: Bound | None = None  # from a cursor; a first page takes its own
    style: str = "offset"  # offset, page or cursor: how `first` and `prev` are written
    # Offset pages: the id of the record just before `offset`, when the page that ended there
    # is remembered (see anchors.py); the page is then read after it instead of by OFFSET.
    anchor: int | None = None

    @property
    def after_id(self) -> int | None:
        """Read the records with an id above this (a cursor's position or an anchor)."""
        return self.anchor if self.anchor is not None else self.after

    @property
    def skip(self) -> int:
        """Records to pass over after `after_id`: the offset, unless an anchor stands for it."""
        return 0 if self.anchor is not None else self.offset


def page_request(params) -> PageRequest:
    for name in ("limit", "page_size", "offset", "page"):
        if params.get(name) == "":
            raise ApiError(f"{name} is empty; give an integer or leave it out", code="invalid",
                           fields={name: ["not an integer"]})
    given = [n for n in ("offset", "page", "cursor") if params.get(n) not in (None, "")]
    if len(given) > 1:
        raise ApiError(f"use one of offset, page and cursor, not {' and '.join(given)}",
                       code="invalid", fields={given[1]: [f"not allowed with {given[0]}"]})
    if params.get("limit") and params.get("page_size"):
        raise ApiError("give 'limit' or 'page_size', not both (they mean the same)",
                       code="invalid", fields={"page_size": ["same as 'limit'"]})
    size_name = "page_size" if params.get("page_size") else "limit"
    limit = _int(params, size_name, settings.PARTNER_API_PAGE_SIZE, low=1,
                 high=settings.PARTNER_API_MAX_PAGE_SIZE)
    if params.get("cursor"):
        after, bound = cursor_decode(params["cursor"])
        return PageRequest(limit, 0, after, bound, "cursor")
    if params.get("page"):
        number = _int(params, "page", 1, low=1, high=MAX_OFFSET // limit)
        return PageRequest(limit, (number - 1) * limit, style="page")
    return PageRequest(limit, _int(params, "offset", 0, low=0, high=MAX_OFFSET))


@dataclass(slots=True)
class Page:
    next: str | None
    previous: str | None
    next_cursor: str | None
    link: str


def page_build(request, page: PageRequest, positions: list[int], bound: Bound) -> Page:
    """Where the next page is, from the positions of the limit+1 records fetched.

    The records beyond the limit are left out of the page by the caller. `next` always
    continues by keyset from the page's last record, whatever style the page was asked in:
    unlike an offset, that position survives records being deleted meanwhile.
    """
    has_more = len(positions) > page.limit
    positions = positions[: page.limit]
    base = request.build_absolute_uri(request.path)
    query = [(k, v) for k, values in request.query_params.lists() for v in values
             if k not in PAGING_PARAMS]

    def url(**extra) -> str:
        return f"{base}?{urlencode([*query, *extra.items()])}"

    next_cursor = cursor_encode(positions[-1], bound) if has_more else None
    nxt = url(cursor=next_cursor, limit=page.limit) if next_cursor else None
    links, previous = [], None
    if page.style == "page":
        number = page.offset // page.limit + 1
        links.append(f'<{url(page=1, page_size=page.limit)}>; rel="first"')
        if number > 1:
            previous = url(page=number - 1, page_size=page.limit)
    elif page.style == "offset":
        links.append(f'<{url(offset=0, limit=page.limit)}>; rel="first"')
        if page.offset > 0:
            previous = url(offset=max(0, page.offset - page.limit), limit=page.limit)
    if previous:
        links.append(f'<{previous}>; rel="prev"')
    if nxt:
        links.append(f'<{nxt}>; rel="next"')
    return Page(nxt, previous, next_cursor, ", ".join(links))
