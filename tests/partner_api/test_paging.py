"""Every paging style ends on its own and returns each record once, while data changes."""

import re
import threading
from unittest import mock
from urllib.parse import parse_qs, urlparse

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.models import Device, Reading
from apps.core.services import ReadingIn, readings_ingest
from apps.partner_api import anchors
from apps.partner_api.selectors import SeriesFilter

from .conftest import QH, T0, ingest_usage

STYLES = ("offset", "page", "cursor", "next", "link")
LINK_NEXT = re.compile(r'<([^>]+)>; rel="next"')


def walk(api, path, style, *, limit=4, params=None, between=None, max_pages=200):
    """Page through `path` as a generic client of `style` would; `between(n)` runs after page n.

    Offset and page-number clients stop on a short or empty page (they do not read `next`);
    the others stop when the API says there is no next page.
    """
    params = dict(params or {})
    seen, pages, url = [], 0, path
    query = {**params, "limit": limit}
    if style == "offset":
        query["offset"] = 0
    elif style == "page":
        query = {**params, "page": 1, "page_size": limit}
    while pages < max_pages:
        response = api.get(url, query)
        assert response.status_code == 200, response.json()
        body = response.json()
        seen += body["results"]
        pages += 1
        if between:
            between(pages)
        if style in ("offset", "page"):
            if len(body["results"]) < limit:
                return seen, pages
            if style == "offset":
                query["offset"] += limit
            else:
                query["page"] += 1
        elif style == "cursor":
            if body["next_cursor"] is None:
                assert body["next"] is None
                return seen, pages
            query = {**params, "limit": limit, "cursor": body["next_cursor"]}
        else:
            if style == "next":
                nxt = body["next"]
            else:
                found = LINK_NEXT.search(response.headers.get("Link", ""))
                nxt = found.group(1) if found else None
            if nxt is None:
                assert body["next_cursor"] is None
                return seen, pages
            url, query = nxt, None
    raise AssertionError(f"{style} paging did not stop after {max_pages} pages")


def keys(records):
    return [(r["meter"], r["period_start"]) for r in records]


@pytest.fixture
def two_meters(deployment, make_device):
    make_device(deployment, "m1")
    make_device(deployment, "m2")
    ingest_usage(deployment, "m1", 10)
    ingest_usage(deployment, "m2", 10)
    return deployment


def correct(deployment, meter, index, value):
    readings_ingest(deployment=deployment, source="t", records=[
        ReadingIn(device=meter, parameter="active_energy_delta", ts=T0 + index * QH,
                  period_end=T0 + (index + 1) * QH, value=value)])


@pytest.mark.django_db
@pytest.mark.parametrize("style", STYLES)
def test_every_style_returns_each_record_once_and_stops(api, two_meters, style):
    seen, pages = walk(api, "/api/v1/usage/", style, limit=4)
    assert len(seen) == 20
    assert len(set(keys(seen))) == 20
    assert pages == 5 + (style in ("offset", "page"))  # a full last page needs one more look


@pytest.mark.django_db
@pytest.mark.parametrize("style", STYLES)
def test_the_last_page_says_so_in_every_style(api, two_meters, style):
    response = api.get("/api/v1/usage/", {"limit": 20})
    body = response.json()
    assert len(body["results"]) == 20
    assert body["next"] is None
    assert body["next_cursor"] is None
    assert 'rel="next"' not in response.headers["Link"]


@pytest.mark.django_db
@pytest.mark.parametrize("style", STYLES)
def test_corrections_during_the_pull_neither_skip_nor_repeat(api, two_meters, style):
    """The reported failure: a record already delivered is corrected, offsets used to slip."""
    def between(page):
        # One already delivered, one not yet reached, both corrected after every page.
        correct(two_meters, "m1", 0, 100.0 + page)
        correct(two_meters, "m2", 9, 200.0 + page)

    seen, _ = walk(api, "/api/v1/usage/", style, limit=3, between=between)
    assert sorted(keys(seen)) == sorted(
        (m, (T0 + i * QH).isoformat()) for m in ("m1", "m2") for i in range(10))
    last = {(r["meter"], r["period_start"]): r["value"] for r in seen}
    assert last[("m2", (T0 + 9 * QH).isoformat())] >= 200  # read after it was corrected


@pytest.mark.django_db
@pytest.mark.parametrize("style", STYLES)
def test_late_history_added_during_the_pull_is_never_half_seen(api, two_meters, style,
                                                               make_device):
    make_device(two_meters, "m3")

    def between(page):
        if page <= 3:  # back-filled history of a new meter, from before every record
            ingest_usage(two_meters, "m3", 1, start=T0 - (page + 1) * QH)

    seen, _ = walk(api, "/api/v1/usage/", style, limit=5, between=between)
    assert len(keys(seen)) == len(set(keys(seen)))
    old = {(m, (T0 + i * QH).isoformat()) for m in ("m1", "m2") for i in range(10)}
    assert old <= set(keys(seen))
    late = {k for k in keys(seen) if k[0] == "m3"}
    if style in ("cursor", "next", "link"):
        assert late == set()  # beyond the pull's bound: the next pull has them
    else:
        assert len(late) == 3  # offsets keep counting past them: they come at the end


@pytest.mark.django_db
@pytest.mark.parametrize("style", ("cursor", "next", "link"))
def test_a_cursor_survives_a_meter_deleted_during_the_pull(api, two_meters, style,
                                                           make_device):
    make_device(two_meters, "gone")
    ingest_usage(two_meters, "gone", 4)

    def between(page):
        if page == 1:
            Device.objects.filter(external_id="gone").delete()

    seen, _ = walk(api, "/api/v1/usage/", style, limit=4, between=between)
    kept = [k for k in keys(seen) if k[0] != "gone"]
    assert sorted(kept) == sorted(
        (m, (T0 + i * QH).isoformat()) for m in ("m1", "m2") for i in range(10))


@pytest.mark.django_db
def test_next_keeps_repeated_meter_filters_and_the_other_parameters(api, two_meters,
                                                                    make_device):
    make_device(two_meters, "m3")
    ingest_usage(two_meters, "m3", 3)
    body = api.get("/api/v1/usage/?meter=m1&meter=m3&limit=4&offset=0").json()
    query = parse_qs(urlparse(body["next"]).query)
    assert query["meter"] == ["m1", "m3"]
    assert "offset" not in query
    assert query["limit"] == ["4"]
    seen, _ = walk(api, "/api/v1/usage/", "next", params={"meter": ["m1", "m3"]})
    assert {m for m, _ in keys(seen)} == {"m1", "m3"}
    assert len(seen) == 13


@pytest.mark.django_db
def test_offset_and_page_number_pages_announce_first_and_prev(api, two_meters):
    links = api.get("/api/v1/usage/", {"limit": 2, "offset": 4}).headers["Link"]
    assert "offset=0" in links and 'rel="first"' in links
    assert "offset=2&limit=2>; rel=\"prev\"" in links
    body = api.get("/api/v1/usage/", {"page": 3, "page_size": 2}).json()
    assert body["previous"].endswith("page=2&page_size=2")
    assert api.get("/api/v1/usage/", {"page": 1, "page_size": 2}).json()["previous"] is None


@pytest.mark.django_db
def test_page_three_is_what_offset_eight_returns(api, two_meters):
    by_page = api.get("/api/v1/usage/", {"page": 3, "page_size": 4}).json()["results"]
    by_offset = api.get("/api/v1/usage/", {"offset": 8, "limit": 4}).json()["results"]
    assert by_page == by_offset
    assert len(by_page) == 4


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/api/v1/meters/", "/api/v1/assets/"])
@pytest.mark.parametrize("style", STYLES)
def test_meters_and_assets_page_in_every_style(api, deployment, make_device, path, style):
    from apps.core.models import Site

    for i in range(7):
        site = Site.objects.create(deployment=deployment, external_id=f"s{i}", name=f"S{i}")
        make_device(deployment, f"m{i}", site=site)
    seen, _ = walk(api, path, style, limit=3)
    assert sorted(r["external_id"] for r in seen) == sorted(
        [f"m{i}" for i in range(7)] if "meters" in path else ["hq", *(f"s{i}" for i in range(7))])


def _writer(deployment_pk: int, stop: threading.Event, done: list[int]) -> None:
    """Corrections and new periods committed as fast as the database takes them."""
    from apps.core.models import Deployment

    deployment = Deployment.objects.get(pk=deployment_pk)
    try:
        n = 0
        while not stop.is_set():
            n += 1
            readings_ingest(deployment=deployment, source="writer", records=[
                ReadingIn(device=f"m{n % 2 + 1}", parameter="active_energy_delta",
                          ts=T0 + (n % 40) * QH, period_end=T0 + (n % 40 + 1) * QH,
                          value=1000.0 + n),
                ReadingIn(device="m3", parameter="active_energy_delta",
                          ts=T0 + n * QH, period_end=T0 + (n + 1) * QH, value=float(n)),
            ])
            done.append(n)
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("style", STYLES)
def test_paging_against_a_concurrent_writer_repeats_and_skips_nothing(
        api, deployment, make_device, style):
    for meter in ("m1", "m2", "m3"):
        make_device(deployment, meter)
    ingest_usage(deployment, "m1", 40)
    ingest_usage(deployment, "m2", 40)
    before = set(Reading.objects.filter(device__external_id__in=("m1", "m2"))
                 .values_list("device__external_id", "ts"))
    stop, done = threading.Event(), []
    writer = threading.Thread(target=_writer, args=(deployment.pk, stop, done))
    writer.start()
    try:
        seen, _ = walk(api, "/api/v1/usage/", style, limit=7)
    finally:
        stop.set()
        writer.join()
    assert done, "the writer committed nothing while the pull ran"
    assert len(keys(seen)) == len(set(keys(seen)))
    assert {(m, t.isoformat()) for m, t in before} <= set(keys(seen))


# --- offset anchors: a sequential offset pull reads each page after the last id served ---

def _usage_page(api, params) -> tuple[list[dict], int, str]:
    """One usage page, the OFFSET its query counted and that query's text."""
    with CaptureQueriesContext(connection) as queries:
        response = api.get("/api/v1/usage/", params)
    assert response.status_code == 200, response.json()
    sql = next(q["sql"] for q in queries.captured_queries if "FROM core_reading r" in q["sql"])
    return response.json()["results"], int(re.search(r"OFFSET (\d+)", sql).group(1)), sql


def _forget_anchors(deployment, **filters) -> None:
    """What an expired or cleared cache leaves: no anchor of this list (only its keys go:
    clearing the whole cache would empty other runs' keys on the shared Redis)."""
    scope = anchors.anchor_scope(deployment=deployment, endpoint="usage",
                                 flt=SeriesFilter(**filters))
    cache.delete_many([f"{scope}:{n}" for n in range(0, 200)])


@pytest.mark.django_db
@pytest.mark.parametrize("style", ("offset", "page"))
def test_a_sequential_offset_pull_continues_after_the_last_id_served(api, two_meters, style):
    _forget_anchors(two_meters)
    seen, counted = [], []
    for n in range(5):
        params = ({"offset": 4 * n, "limit": 4} if style == "offset"
                  else {"page": n + 1, "page_size": 4})
        rows, skipped, sql = _usage_page(api, params)
        if n:
            last = Reading.objects.get(device__external_id=seen[-1]["meter"],
                                       ts=seen[-1]["period_start"]).pk
            assert f"r.id > {last}" in sql
        seen += rows
        counted.append(skipped)
    assert counted == [0, 0, 0, 0, 0]  # no page walked past the records before it
    assert len(seen) == 20 and len(set(keys(seen))) == 20
    _forget_anchors(two_meters)
    by_offset = [_usage_page(api, {"offset": 4 * n, "limit": 4})[0] for n in range(5)]
    _forget_anchors(two_meters)
    assert [r for page in by_offset for r in page] == seen  # what OFFSET alone returns


@pytest.mark.django_db
def test_a_jump_without_an_anchor_counts_the_offset(api, two_meters):
    _forget_anchors(two_meters)
    rows, skipped, _ = _usage_page(api, {"offset": 8, "limit": 4})
    assert skipped == 8
    _usage_page(api, {"offset": 0, "limit": 4})  # remembers where offset 4 starts, not 8
    assert _usage_page(api, {"offset": 8, "limit": 4})[1] == 8
    assert _usage_page(api, {"offset": 4, "limit": 4})[1] == 0
    assert _usage_page(api, {"offset": 8, "limit": 4})[:2] == (rows, 0)


@pytest.mark.django_db
def test_an_anchor_is_kept_per_filter(api, two_meters):
    _forget_anchors(two_meters, meters=("m1",))
    _forget_anchors(two_meters, meters=("m2",))
    first, _, _ = _usage_page(api, {"meter": "m1", "offset": 0, "limit": 4})
    assert {r["meter"] for r in first} == {"m1"}
    rows, skipped, _ = _usage_page(api, {"meter": "m2", "offset": 4, "limit": 4})
    assert skipped == 4 and {r["meter"] for r in rows} == {"m2"}
    rows, skipped, _ = _usage_page(api, {"meter": "m1", "offset": 4, "limit": 4})
    assert skipped == 0 and {r["meter"] for r in rows} == {"m1"}


@pytest.mark.django_db
def test_the_cache_forgotten_mid_pull_falls_back_to_the_offset(api, two_meters):
    _forget_anchors(two_meters)
    counted = []

    def between(page):
        counted.append(page)
        if page == 2:
            _forget_anchors(two_meters)

    with CaptureQueriesContext(connection) as queries:
        seen, _ = walk(api, "/api/v1/usage/", "offset", limit=4, between=between)
    offsets = [int(re.search(r"OFFSET (\d+)", q["sql"]).group(1))
               for q in queries.captured_queries if "FROM core_reading r" in q["sql"]]
    assert offsets == [0, 0, 8, 0, 0, 0]  # the third page counts, the next ones continue
    assert sorted(keys(seen)) == sorted(
        (m, (T0 + i * QH).isoformat()) for m in ("m1", "m2") for i in range(10))


@pytest.mark.django_db
def test_offset_pages_are_served_while_the_cache_is_down(api, two_meters):
    from .test_degraded_stores import _CacheDown

    _forget_anchors(two_meters)
    with mock.patch("apps.partner_api.anchors.cache", _CacheDown()):
        seen, _ = walk(api, "/api/v1/usage/", "page", limit=6)
    assert len(seen) == 20 and len(set(keys(seen))) == 20


@pytest.mark.django_db
def test_writes_between_anchored_pages_neither_skip_nor_repeat(api, two_meters, make_device):
    """Corrections before and after the anchor and new records: the anchor still holds."""
    make_device(two_meters, "m3")
    _forget_anchors(two_meters)

    def between(page):
        correct(two_meters, "m1", 0, 100.0 + page)  # already delivered
        correct(two_meters, "m2", 9, 200.0 + page)  # not reached yet
        ingest_usage(two_meters, "m3", 1, start=T0 - page * QH)  # new, from before all

    with CaptureQueriesContext(connection) as queries:
        seen, _ = walk(api, "/api/v1/usage/", "offset", limit=4, between=between)
    offsets = [int(re.search(r"OFFSET (\d+)", q["sql"]).group(1))
               for q in queries.captured_queries if "WITH page AS" in q["sql"]]  # pages only
    assert set(offsets) == {0}
    assert len(keys(seen)) == len(set(keys(seen)))
    old = {(m, (T0 + i * QH).isoformat()) for m in ("m1", "m2") for i in range(10)}
    assert old <= set(keys(seen))
    assert {k for k in keys(seen) if k[0] == "m3"} == {
        ("m3", (T0 - p * QH).isoformat()) for p in range(1, len(offsets))}


@pytest.mark.django_db
def test_a_record_changed_behind_an_incremental_offset_pull_is_not_counted_twice(
        api, two_meters):
    """By OFFSET alone, the record newly matching behind the page moved the next one back."""
    since = max(r["updated_at"] for r in api.get("/api/v1/usage/", {"limit": 100}).json()[
        "results"])  # the newest change of a first full pull
    correct(two_meters, "m2", 0, 50.0)  # the late correction an incremental pull would read
    for i in range(1, 9):
        correct(two_meters, "m2", i, 60.0 + i)
    _forget_anchors(two_meters, after_seq=_floor(two_meters, since))

    def between(page):
        if page == 1:
            correct(two_meters, "m1", 0, 70.0)  # behind the page: now matches too

    params = {"updated_since": _after(since)}
    seen, _ = walk(api, "/api/v1/usage/", "offset", limit=4, params=params, between=between)
    assert len(keys(seen)) == len(set(keys(seen)))
    assert set(keys(seen)) == {("m2", (T0 + i * QH).isoformat()) for i in range(9)}


@pytest.mark.django_db
def test_a_deletion_between_pages_sets_the_anchors_aside(api, two_meters, make_device):
    make_device(two_meters, "gone")
    ingest_usage(two_meters, "gone", 4)
    _forget_anchors(two_meters)
    _usage_page(api, {"offset": 0, "limit": 4})
    Device.objects.filter(external_id="gone").delete()
    _, skipped, _ = _usage_page(api, {"offset": 4, "limit": 4})
    assert skipped == 4  # the positions behind it may have moved: counted again
    assert _usage_page(api, {"offset": 8, "limit": 4})[1] == 0  # and remembered anew


def _floor(deployment, since: str) -> int:
    from apps.partner_api.selectors import seq_floor

    return seq_floor(deployment=deployment, updated_since=_after_dt(since))


def _after_dt(stamp: str):
    import datetime as dt

    return dt.datetime.fromisoformat(stamp) + dt.timedelta(microseconds=1)


def _after(stamp: str) -> str:
    return _after_dt(stamp).isoformat()


@pytest.mark.django_db
def test_usage_instants_read_as_python_writes_them(api, deployment, make_device):
    """PostgreSQL renders the instants of a page: the text is isoformat()'s, to the digit."""
    import datetime as dt

    from apps.core.models import ReadingCommit

    make_device(deployment, "m1")
    odd = dt.datetime(2026, 3, 1, 0, 0, 7, 120, tzinfo=dt.UTC)  # seconds and microseconds
    readings_ingest(deployment=deployment, source="t", records=[
        ReadingIn(device="m1", parameter="active_energy_delta", ts=odd,
                  period_end=odd + QH, value=1.0),
        ReadingIn(device="m1", parameter="active_energy_delta", ts=T0, period_end=T0 + QH,
                  value=2.0)])
    rows = api.get("/api/v1/usage/").json()["results"]
    at = ReadingCommit.objects.get(deployment=deployment).at
    assert [(r["period_start"], r["period_end"], r["updated_at"]) for r in rows] == [
        (odd.isoformat(), (odd + QH).isoformat(), at.isoformat(timespec="microseconds")),
        (T0.isoformat(), (T0 + QH).isoformat(), at.isoformat(timespec="microseconds"))]
    assert rows[0]["period_start"] == "2026-03-01T00:00:07.000120+00:00"
