"""The Volue pages of the ops console render, with charts drawn by a static script."""

import datetime as dt

import pytest
from django.utils import timezone, translation

from apps.core.models import DeliveryLink, OutboundBatch, Run
from apps.volue import tasks
from apps.volue.admin import report_status
from apps.volue.models import EnergyReport, VolueResource, WebhookSubscription
from apps.volue.schemas import event_parse
from apps.volue.services import event_record
from tests.volue.conftest import eligibility_events_page

pytestmark = pytest.mark.django_db
START = dt.datetime(2026, 3, 3, 12, tzinfo=dt.UTC)


@pytest.fixture
def lpc(customer):
    payload = {"payloadType": "LocationLPC", "targets": [{
        "locationId": "loc-1", "meterPointId": "7070", "resolution": "01:00:00",
        "points": [{"timestamp": (START + dt.timedelta(hours=i)).isoformat(),
                    "maxPowerInKiloWatts": 10 + i} for i in range(3)]}]}
    return event_record(event=event_parse("e-1", None, payload), source="webhook")[0]


def test_event_page_carries_its_power_limits_for_the_static_chart(admin_client, lpc):
    response = admin_client.get(f"/admin/volue/event/{lpc.pk}/change/")

    page = response.content.decode()
    assert response.status_code == 200
    assert 'class="volue-chart"' in page and "volue/event_chart.js" in page
    assert "maxPowerInKiloWatts" in page  # the payload, shown as JSON
    assert "<script>" not in page.replace("<script src", "")


def test_power_limits_are_listed_per_location(admin_client, lpc):
    response = admin_client.get("/admin/volue/eventtarget/")
    assert response.status_code == 200
    assert "3 limits, 10 to 12 kW" in response.content.decode()


def test_flagged_report_shows_what_is_missing(admin_client, lpc, customer):
    EnergyReport.objects.create(event=lpc, customer=customer, state="flagged",
                                missing="7070 (main-01): 2026-03-03 13:00Z (no readings)")

    response = admin_client.get("/admin/volue/energyreport/?status=flagged")

    assert "7070 (main-01): 2026-03-03 13:00Z" in response.content.decode()


def _handed_report(lpc, customer, state, **batch) -> EnergyReport:
    link = DeliveryLink.objects.create(platform="volue", name="reports",
                                       deployment=customer.deployment)
    sent = OutboundBatch.objects.create(
        link=link, position=1, idempotency_key="volue:test:1", payload={}, item_count=1,
        state=state, next_attempt_at=batch.pop("next_attempt_at", timezone.now()), **batch)
    return EnergyReport.objects.create(event=lpc, customer=customer, state="queued",
                                       payload={"payloads": []}, batch=sent)


@pytest.mark.parametrize("batch, status, shown, hidden", [
    ({"state": "sent", "attempts": 1, "last_status": 201,
      "sent_at": dt.datetime(2026, 3, 3, 16, 5, tzinfo=dt.UTC)},
     "sent", "Sent to Volue March 3, 2026, 4:05 p.m.", "not-sent"),
    ({"state": "dead", "attempts": 1, "last_status": 400,
      "last_error": "CreateReport: payloads[0].points is empty"},
     "not-sent", "Not sent (dead letter): CreateReport: payloads[0].points is empty", "sent"),
    ({"state": "retry", "attempts": 2, "last_status": 503,
      "next_attempt_at": dt.datetime(2026, 3, 3, 16, 10, tzinfo=dt.UTC)},
     "sending", "Waiting to retry (attempt 2 failed), next try March 3, 2026, 4:10 p.m.",
     "sent"),
    ({"state": "pending"}, "sending", "Being sent", "not-sent"),
])
def test_a_handed_report_says_what_its_batch_did_and_filters_by_it(
    admin_client, lpc, customer, settings, batch, status, shown, hidden
):
    settings.TIME_ZONE = "UTC"
    _handed_report(lpc, customer, **batch)

    listed = admin_client.get(f"/admin/volue/energyreport/?status={status}").content.decode()
    other = admin_client.get(f"/admin/volue/energyreport/?status={hidden}").content.decode()

    assert shown in listed and "e-1" in listed
    assert "e-1" not in other and "0 energy reports" in other
    assert "queued" not in listed.lower().replace("queue the complete", "")


def test_customer_page_lists_its_resources_for_editing(admin_client, customer):
    VolueResource.objects.create(customer=customer, resource_id="tank-1",
                                 resource_type="HotWaterTank", metadata={"capacity": 500})

    response = admin_client.get(f"/admin/volue/voluecustomer/{customer.pk}/change/")

    page = response.content.decode()
    assert response.status_code == 200
    assert 'value="tank-1"' in page and "HotWaterTank" in page


def test_registered_customer_cannot_be_deleted_before_it_is_removed_from_volue(
    admin_client, customer
):
    url = f"/admin/volue/voluecustomer/{customer.pk}/delete/"
    assert admin_client.get(url).status_code == 403

    customer.is_active = False
    customer.removed_at = dt.datetime(2026, 3, 3, tzinfo=dt.UTC)
    customer.save()
    assert admin_client.get(url).status_code == 200


def test_the_report_status_reads_in_spanish(lpc, customer, settings):
    settings.TIME_ZONE = "UTC"
    report = _handed_report(lpc, customer, state="sent", attempts=1, last_status=201,
                            sent_at=dt.datetime(2026, 3, 3, 16, 5, tzinfo=dt.UTC))

    with translation.override("es"):
        assert report_status(report).startswith("Enviado a Volue el 3 de marzo de 2026")
        assert str(EnergyReport.State.QUEUED.label) == "Completo, entregado al envío"


def test_catch_up_now_runs_the_scheduled_job_and_plans_reports(admin_client, platform,
                                                                monkeypatch):
    planned = []
    monkeypatch.setattr(tasks.reports_plan, "delay", lambda: planned.append(True))
    eligibility_events_page(platform, "e-9")
    subscription = WebhookSubscription.objects.create(name="hub", url="https://hub.test/v")

    response = admin_client.post("/admin/volue/webhooksubscription/", {
        "action": "catch_up_now", "_selected_action": [subscription.pk]}, follow=True)

    assert "1 new of 1 events read; reports are being planned" in response.content.decode()
    assert planned == [True]
    assert Run.objects.get(kind="volue.catch_up").status == "succeeded"
