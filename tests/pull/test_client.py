"""The provider client: paging styles, the loop guard, auth placement (HTTP mocked)."""

from __future__ import annotations

import pytest
import responses
from responses import matchers

from apps.pull.client import LoopDetected, UpstreamClient
from apps.pull.models import Connection, Endpoint

BASE = "https://provider.example/api/"


@pytest.fixture
def connection(deployment):
    return Connection.objects.create(
        deployment=deployment, name="Provider", key="provider", staging_url=BASE,
        auth_kind=Connection.AuthKind.API_KEY_QUERY, auth_name="key", api_key="s3cret",
        max_retries=2, retry_after_cap_seconds=60,
    )


def _endpoint(connection, **extra) -> Endpoint:
    values = {"role": "meters", "path": "meters", "page_size": 2, "records_path": "items",
              "fields": {"external_id": "id", "type": "t", "unit": "u"}}
    values.update(extra)
    return Endpoint.objects.create(connection=connection, **values)


def _records(client, endpoint, **kwargs) -> list:
    return [r for page in client.pages(endpoint, **kwargs) for r in page.records]


@responses.activate
def test_offset_paging_stops_on_a_short_page(connection):
    endpoint = _endpoint(connection, pagination="offset")
    for offset, items in (("0", [1, 2]), ("2", [3])):
        responses.get(BASE + "meters", json={"items": items}, match=[
            matchers.query_param_matcher({"offset": offset, "limit": "2", "key": "s3cret"})])

    assert _records(UpstreamClient(connection), endpoint) == [1, 2, 3]


@responses.activate
def test_page_number_paging_stops_on_an_empty_page(connection):
    endpoint = _endpoint(connection, pagination="page", page_param="p", first_page=0,
                         size_param="")
    for page, items in (("0", [1, 2]), ("1", [3, 4]), ("2", [])):
        responses.get(BASE + "meters", json={"items": items}, match=[
            matchers.query_param_matcher({"p": page, "key": "s3cret"})])

    assert _records(UpstreamClient(connection), endpoint) == [1, 2, 3, 4]


@responses.activate
def test_cursor_paging_follows_the_next_token_in_the_body_until_it_is_null(connection):
    endpoint = _endpoint(connection, pagination="cursor", cursor_param="after",
                         cursor_path="meta.nextToken")
    responses.get(BASE + "meters", json={"items": [1, 2], "meta": {"nextToken": "abc"}},
                  match=[matchers.query_param_matcher({"limit": "2", "key": "s3cret"})])
    responses.get(BASE + "meters", json={"items": [3, 4], "meta": {"nextToken": None}},
                  match=[matchers.query_param_matcher({"after": "abc", "limit": "2",
                                                       "key": "s3cret"})])

    assert _records(UpstreamClient(connection), endpoint) == [1, 2, 3, 4]


@responses.activate
def test_link_header_paging_follows_rel_next(connection):
    endpoint = _endpoint(connection, pagination="link", size_param="")
    responses.get(BASE + "meters", json={"items": [1, 2]},
                  headers={"Link": f'<{BASE}meters?page=2>; rel="next", <{BASE}x>; rel="last"'},
                  match=[matchers.query_param_matcher({"key": "s3cret"})])
    responses.get(BASE + "meters", json={"items": [3, 4]},
                  match=[matchers.query_param_matcher({"page": "2", "key": "s3cret"})])

    assert _records(UpstreamClient(connection), endpoint) == [1, 2, 3, 4]


@responses.activate
def test_loop_guard_remembers_every_token_not_only_the_last(connection):
    endpoint = _endpoint(connection, pagination="cursor", cursor_path="next")
    pages = {None: ("a", [1, 2]), "a": ("b", [3, 4]), "b": ("c", [5, 6]), "c": ("a", [7, 8])}
    for cursor, (following, items) in pages.items():
        query = {"limit": "2", "key": "s3cret", **({"cursor": cursor} if cursor else {})}
        responses.get(BASE + "meters", json={"items": items, "next": following},
                      match=[matchers.query_param_matcher(query)])

    with pytest.raises(LoopDetected, match="twice"):
        _records(UpstreamClient(connection), endpoint)
    assert len(responses.calls) == 4


@responses.activate
def test_records_path_that_is_not_a_list_is_a_clear_error(connection):
    endpoint = _endpoint(connection, pagination="none", records_path="items")
    responses.get(BASE + "meters", json={"items": {"id": 1}})

    with pytest.raises(Exception, match="not a list of records; fix the records path"):
        _records(UpstreamClient(connection), endpoint)


@responses.activate
def test_bearer_token_is_sent_in_the_configured_header_format(connection):
    connection.auth_kind, connection.api_key = "bearer", "t0k"
    connection.bearer_format = "Token token={token}"
    endpoint = _endpoint(connection, pagination="none")
    responses.get(BASE + "meters", json={"items": []}, match=[
        matchers.header_matcher({"Authorization": "Token token=t0k"})])

    assert _records(UpstreamClient(connection), endpoint) == []


@responses.activate
def test_retry_after_is_honoured_then_the_page_is_fetched(connection):
    endpoint = _endpoint(connection, pagination="none")
    responses.get(BASE + "meters", status=429, headers={"Retry-After": "7"})
    responses.get(BASE + "meters", json={"items": [1]})
    waits: list[float] = []

    assert _records(UpstreamClient(connection, sleep=waits.append), endpoint) == [1]
    assert waits == [7.0]
