"""Catch-up: GET /events fills in what the webhook missed, and nothing twice."""

import datetime as dt

import pytest
from responses.matchers import query_param_matcher

from apps.volue.models import Event
from apps.volue.schemas import event_parse
from apps.volue.services import event_record, events_catch_up
from tests.volue.conftest import API, calls

pytestmark = pytest.mark.django_db


def lpc(event_id: str, hour: int = 12) -> dict:
    ts = dt.datetime(2026, 3, 3, hour, tzinfo=dt.UTC).isoformat()
    return {"id": event_id, "createdAt": "2026-03-03T10:00:00+00:00", "payload": {
        "payloadType": "LocationLPC", "targets": [{
            "locationId": "m-1", "meterPointId": "7070", "resolution": "01:00:00",
            "points": [{"timestamp": ts, "maxPowerInKiloWatts": 10}]}]}}


def page(events, page_no=1, next_page=None):
    return {"events": events, "pagination": {"totalRecords": 99, "pageSize": len(events),
                                             "currentPage": page_no, "nextPage": next_page}}


def test_catch_up_records_the_events_the_webhook_missed(platform, volue):
    delivered = lpc("e-2")
    event_record(event=event_parse(delivered["id"], delivered["createdAt"],
                                   delivered["payload"]), source="webhook")
    platform.get(f"{API}/events", json=page([lpc("e-3"), delivered, lpc("e-1")]))

    result = events_catch_up(client=volue)

    assert result.recorded == 2
    assert set(Event.objects.filter(source="catch_up").values_list("event_id", flat=True)) == {
        "e-1", "e-3"}
    assert Event.objects.get(event_id="e-2").source == "webhook"


def test_catch_up_run_twice_records_nothing_new(platform, volue):
    platform.get(f"{API}/events", json=page([lpc("e-1")]))

    events_catch_up(client=volue)
    again = events_catch_up(client=volue)

    assert again.recorded == 0 and Event.objects.count() == 1


def test_catch_up_follows_pages_until_one_brings_nothing_new(platform, volue, settings):
    settings.VOLUE_CATCH_UP_PAGE_SIZE = 1
    event_record(event=event_parse("e-1", None, lpc("e-1")["payload"]), source="webhook")
    for number, event_id in ((1, "e-3"), (2, "e-2"), (3, "e-1")):
        platform.get(f"{API}/events", json=page([lpc(event_id)], number, number + 1),
                     match=[query_param_matcher({"page": str(number), "pageSize": "1"})])

    result = events_catch_up(client=volue)

    assert result.recorded == 2 and result.pages == 3
    assert len(calls(platform, "GET", "/events")) == 3


# The platform breaking its own document is what this test is about.
@pytest.mark.volue_answers_off_document
def test_malformed_event_is_reported_and_the_rest_recorded(platform, volue):
    broken = {"id": "bad", "payload": {"payloadType": "Nope"}}
    platform.get(f"{API}/events", json=page([lpc("e-1"), broken]))

    result = events_catch_up(client=volue)

    assert result.recorded == 1
    assert result.malformed and "bad" in result.malformed[0]
