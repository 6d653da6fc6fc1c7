"""dlt's `rest_api` source, configured by dicts only, loads the partner API exactly."""

from __future__ import annotations

import json

import pytest

from .conftest import HERE, PAGE, late_changes, run, usage_totals

pytestmark = pytest.mark.contract
KEY = ["meter", "parameter", "period_start"]
PAGINATORS = {
    "auto": None,  # dlt detects the style from the first answer
    "offset": {"type": "offset", "limit": PAGE, "offset_param": "offset",
               "limit_param": "limit", "total_path": None},
    "page_number": {"type": "page_number", "base_page": 1, "page_param": "page",
                    "total_path": None},
    "cursor": {"type": "cursor", "cursor_path": "next_cursor", "cursor_param": "cursor"},
    "json_link": {"type": "json_link", "next_url_path": "next"},
    "header_link": {"type": "header_link"},
}


def source(hub, paginator, *, incremental: bool) -> dict:
    params = {"page_size": PAGE} if paginator and paginator["type"] == "page_number" else {
        "limit": PAGE}
    if paginator and paginator["type"] == "offset":
        params = {}
    if incremental:
        params["updated_since"] = {"type": "incremental", "cursor_path": "updated_at",
                                   "initial_value": "2000-01-01T00:00:00.000000+00:00"}
    endpoint = {"path": "usage/", "params": params, "data_selector": "results"}
    if paginator:
        endpoint["paginator"] = paginator
    return {
        "client": {"base_url": f"{hub['url']}/api/v1/",
                   "auth": {"type": "api_key", "name": "X-API-Key", "api_key": hub["key"],
                            "location": "header"}},
        "resources": [{"name": "usage", "endpoint": endpoint, "primary_key": KEY,
                       "write_disposition": "merge"}],
    }


def load(hub, tmp_path, name, paginator, *, incremental=False) -> dict:
    spec = tmp_path / f"{name}.json"
    spec.write_text(json.dumps({"pipeline": name, "workdir": str(tmp_path), "key": KEY,
                                "source": source(hub, paginator, incremental=incremental)}))
    return json.loads(run([str(HERE / "run_dlt.py"), str(spec)], cwd=tmp_path)
                      .stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("style", list(PAGINATORS))
def test_every_paginator_loads_each_record_exactly_once(hub, tmp_path, style, requests_seen):
    count, total = usage_totals(hub["deployment"])
    loaded = load(hub, tmp_path, f"full_{style}", PAGINATORS[style])
    # It stopped on its own: ten pages of 250, and one more look for offset and page number.
    assert len(requests_seen) <= -(-count // PAGE) + 1
    assert loaded["extracted"] == count  # nothing fetched twice, nothing missing
    assert (loaded["rows"], loaded["distinct_keys"]) == (count, count)
    assert loaded["sum"] == pytest.approx(total)


@pytest.mark.parametrize("style", list(PAGINATORS))
def test_a_second_incremental_run_picks_up_exactly_the_late_changes(hub, tmp_path, style):
    count, _ = usage_totals(hub["deployment"])
    first = load(hub, tmp_path, f"inc_{style}", PAGINATORS[style], incremental=True)
    assert first["extracted"] == count
    changed = late_changes(hub["deployment"])

    second = load(hub, tmp_path, f"inc_{style}", PAGINATORS[style], incremental=True)

    count, total = usage_totals(hub["deployment"])
    assert second["extracted"] == changed
    assert (second["rows"], second["distinct_keys"]) == (count, count)
    assert second["sum"] == pytest.approx(total)
    third = load(hub, tmp_path, f"inc_{style}", PAGINATORS[style], incremental=True)
    assert third["extracted"] == 0
