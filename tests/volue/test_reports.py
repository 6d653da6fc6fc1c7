"""EnergyUsage reports: queued once the event's hours are over and the data is complete,
sent through the outbox exactly once after success, retried after a 5xx."""

import datetime as dt

import pytest

from apps.core.models import OutboundBatch
from apps.core.services import ReadingIn, readings_ingest
from apps.volue.models import EnergyReport, VolueMeter, VolueResource
from apps.volue.schemas import event_parse
from apps.volue.services import event_record, reports_dispatch, reports_plan
from tests.volue.conftest import API, calls, sent_json

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 3, 3, 12, tzinfo=dt.UTC)
Q = dt.timedelta(minutes=15)
H = dt.timedelta(hours=1)


@pytest.fixture
def metered(customer):
    meter = VolueMeter.objects.create(customer=customer, device=customer.deployment.devices.get(
        external_id="main-01"), meter_point_id="707057500000000011", remote_id="loc-1")
    return meter


def lpc_event(event_id="e-1", hours=2, location="loc-1"):
    payload = {"payloadType": "LocationLPC", "targets": [{
        "locationId": location, "meterPointId": "707057500000000011",
        "resolution": "01:00:00",
        "points": [{"timestamp": (START + i * H).isoformat(), "maxPowerInKiloWatts": 5}
                   for i in range(hours)]}]}
    return event_record(event=event_parse(event_id, "2026-03-03T09:00:00Z", payload),
                        source="webhook")[0]


def quarters(deployment, device, start, count, kwh=0.5, skip=()):
    records = [ReadingIn(device, "active_energy_delta", start + i * Q, kwh + i * 0.01,
                         period_end=start + (i + 1) * Q) for i in range(count) if i not in skip]
    readings_ingest(deployment=deployment, records=records, source="test")


def test_report_waits_until_the_events_hours_are_over(deployment, metered):
    quarters(deployment, "main-01", START, 8)
    lpc_event()

    result = reports_plan(now=START + 90 * dt.timedelta(minutes=1))

    assert result.queued == 0 and not EnergyReport.objects.exists()


def test_complete_data_queues_one_energy_usage_report(deployment, metered):
    quarters(deployment, "main-01", START, 8)
    lpc_event()

    result = reports_plan(now=START + 3 * H)

    assert result.queued == 1
    report = EnergyReport.objects.get()
    assert report.state == "queued" and report.batch.state == "pending"
    assert report.payload == {"eventId": "e-1", "payloads": [{
        "payloadType": "EnergyUsage", "resourceId": "loc-1", "locationId": "loc-1",
        "meterPointId": "707057500000000011", "resolution": "01:00:00",
        "points": [{"timestamp": "2026-03-03T12:00:00Z", "kiloWattHours": 2.06},
                   {"timestamp": "2026-03-03T13:00:00Z", "kiloWattHours": 2.22}]}]}


def test_planning_again_queues_nothing_twice(deployment, metered):
    quarters(deployment, "main-01", START, 8)
    lpc_event()

    reports_plan(now=START + 3 * H)
    again = reports_plan(now=START + 4 * H)

    assert again.queued == 0 and OutboundBatch.objects.count() == 1


def test_resource_target_reports_its_own_sub_meter(deployment, make_device, metered):
    make_device(deployment, "hvac-sub")
    VolueResource.objects.create(customer=metered.customer, resource_id="hvac-1",
                                 resource_type="HVAC", meter=metered,
                                 device=deployment.devices.get(external_id="hvac-sub"))
    quarters(deployment, "hvac-sub", START, 4, kwh=0.25)
    payload = {"payloadType": "PriceCurve", "priceArea": "NO1",
               "targets": [{"resourceId": "hvac-1", "locationId": "loc-1"}],
               "priceCurveDelta": {"resolution": "01:00:00", "currency": "NOK",
                                   "energyUnit": "kWh",
                                   "points": [{"timestamp": START.isoformat(), "price": 1}]}}
    event_record(event=event_parse("pc-1", None, payload), source="webhook")

    reports_plan(now=START + 2 * H)

    [usage] = EnergyReport.objects.get().payload["payloads"]
    assert usage["resourceId"] == "hvac-1" and usage["locationId"] == "loc-1"
    assert usage["points"] == [{"timestamp": "2026-03-03T12:00:00Z", "kiloWattHours": 1.06}]


def test_event_for_meters_the_hub_does_not_have_gets_no_report(deployment, metered):
    quarters(deployment, "main-01", START, 8)
    payload = {"payloadType": "LocationLPC", "targets": [{
        "locationId": "elsewhere", "meterPointId": "999", "resolution": "01:00:00",
        "points": [{"timestamp": START.isoformat(), "maxPowerInKiloWatts": 5}]}]}
    event_record(event=event_parse("e-x", None, payload), source="catch_up")

    assert reports_plan(now=START + 3 * H).queued == 0
    assert not EnergyReport.objects.exists()


def test_incomplete_data_waits_then_is_flagged_after_the_deadline(deployment, metered,
                                                                   settings):
    settings.VOLUE_REPORT_DEADLINE_HOURS = 6
    quarters(deployment, "main-01", START, 8, skip=(6,))
    lpc_event()

    reports_plan(now=START + 3 * H)
    waiting = EnergyReport.objects.get()
    reports_plan(now=START + 9 * H)
    flagged = EnergyReport.objects.get()

    assert waiting.state == "waiting"
    assert flagged.state == "flagged" and flagged.batch is None
    assert "707057500000000011 (main-01): 2026-03-03 13:00Z" in flagged.missing
    assert "15 min" in flagged.missing


def test_late_data_completes_a_flagged_report(deployment, metered, settings):
    settings.VOLUE_REPORT_DEADLINE_HOURS = 1
    quarters(deployment, "main-01", START, 8, skip=(6,))
    lpc_event()
    reports_plan(now=START + 5 * H)

    quarters(deployment, "main-01", START, 8)
    reports_plan(now=START + 6 * H)

    assert EnergyReport.objects.get().state == "queued"


@pytest.fixture
def queued_report(deployment, metered):
    quarters(deployment, "main-01", START, 8)
    lpc_event()
    reports_plan(now=START + 3 * H)
    return EnergyReport.objects.get()


def test_report_is_retried_after_a_5xx_and_sent_once(platform, volue, queued_report):
    platform.post(f"{API}/reports", status=503)
    platform.post(f"{API}/reports", status=503)
    platform.post(f"{API}/reports", status=503)  # the client's own retries give up
    platform.post(f"{API}/reports", json={"id": "r-1", "eventId": "e-1"})

    first = reports_dispatch(client=volue)
    OutboundBatch.objects.update(next_attempt_at=START)  # the retry is due
    second = reports_dispatch(client=volue)

    assert (first.failed, second.sent) == (1, 1)
    accepted = calls(platform, "POST", "/reports")
    assert len(accepted) == 4
    assert sent_json(accepted[-1]) == queued_report.payload


def test_report_is_never_sent_twice_after_success(platform, volue, queued_report):
    platform.post(f"{API}/reports", json={"id": "r-1", "eventId": "e-1"})

    reports_dispatch(client=volue)
    OutboundBatch.objects.update(next_attempt_at=START)
    reports_dispatch(client=volue)
    reports_plan(now=START + 5 * H)
    reports_dispatch(client=volue)

    assert len(calls(platform, "POST", "/reports")) == 1
    queued_report.refresh_from_db()
    assert queued_report.batch.state == "sent"


def test_refused_report_is_a_dead_letter_with_the_platforms_reason(platform, volue,
                                                                   queued_report):
    platform.post(f"{API}/reports", body='"payloads[0]: resourceId is required"', status=400,
                  content_type="application/json")

    result = reports_dispatch(client=volue)

    queued_report.refresh_from_db()
    assert result.dead == 1
    assert "resourceId is required" in queued_report.batch.last_body


def test_lost_answer_is_not_resent_and_the_report_says_why(platform, volue, queued_report):
    import requests

    platform.post(f"{API}/reports", body=requests.ConnectionError("reset after the request"))
    platform.post(f"{API}/reports", json={"id": "r-1", "eventId": "e-1"})

    first = reports_dispatch(client=volue)  # one POST, no blind retry in the client
    OutboundBatch.objects.update(next_attempt_at=START)
    second = reports_dispatch(client=volue)

    queued_report.refresh_from_db()
    assert (first.failed, second.dead) == (1, 1)
    assert len(calls(platform, "POST", "/reports")) == 1
    assert "Volue may hold this report" in queued_report.batch.last_error
    assert queued_report.batch.link.state == "active"  # the customer's other reports go on


def test_requeueing_a_report_whose_outcome_was_unknown_sends_it_again(platform, volue,
                                                                      queued_report):
    import requests

    from apps.core.services import batch_requeue

    platform.post(f"{API}/reports", body=requests.ConnectionError("reset after the request"))
    platform.post(f"{API}/reports", json={"id": "r-1", "eventId": "e-1"})
    reports_dispatch(client=volue)
    OutboundBatch.objects.update(next_attempt_at=START)
    reports_dispatch(client=volue)

    batch_requeue(batches=[OutboundBatch.objects.get()])  # ops checked: Volue has none
    result = reports_dispatch(client=volue)

    assert result.sent == 1 and len(calls(platform, "POST", "/reports")) == 2


def test_a_5xx_answer_leaves_the_report_free_to_retry(platform, volue, queued_report):
    platform.post(f"{API}/reports", status=503)
    platform.post(f"{API}/reports", status=503)
    platform.post(f"{API}/reports", status=503)
    platform.post(f"{API}/reports", json={"id": "r-1", "eventId": "e-1"})

    reports_dispatch(client=volue)
    queued_report.refresh_from_db()
    unmarked = queued_report.posted_attempt
    OutboundBatch.objects.update(next_attempt_at=START)

    assert unmarked is None and reports_dispatch(client=volue).sent == 1


def test_correction_before_sending_replaces_the_queued_report(deployment, queued_report):
    readings_ingest(deployment=deployment, source="test", records=[
        ReadingIn("main-01", "active_energy_delta", START, 1.5, period_end=START + Q)])

    reports_plan(now=START + 4 * H)

    queued_report.refresh_from_db()
    assert queued_report.superseded == ""
    first_hour = queued_report.batch.payload["payloads"][0]["points"][0]
    assert first_hour == {"timestamp": "2026-03-03T12:00:00Z", "kiloWattHours": 3.06}
    assert queued_report.payload == queued_report.batch.payload


def test_correction_after_sending_is_marked_and_not_sent_again(platform, volue, deployment,
                                                               queued_report):
    platform.post(f"{API}/reports", json={"id": "r-1", "eventId": "e-1"})
    reports_dispatch(client=volue)

    readings_ingest(deployment=deployment, source="test", records=[
        ReadingIn("main-01", "active_energy_delta", START, 1.5, period_end=START + Q)])
    result = reports_plan(now=START + 4 * H)
    reports_dispatch(client=volue)

    queued_report.refresh_from_db()
    assert result.queued == 0 and len(calls(platform, "POST", "/reports")) == 1
    assert ("loc-1 2026-03-03T12:00:00Z: sent 2.06 kWh, readings now give 3.06 kWh"
            in queued_report.superseded)
