"""The Volue pages of the ops console render, with charts drawn by a static script."""

import datetime as dt

import pytest

from apps.volue.models import EnergyReport, VolueResource
from apps.volue.schemas import event_parse
from apps.volue.services import event_record

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

    response = admin_client.get("/admin/volue/energyreport/?state=flagged")

    assert "7070 (main-01): 2026-03-03 13:00Z" in response.content.decode()


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
