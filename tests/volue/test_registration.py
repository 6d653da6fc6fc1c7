"""Registration from the hub's model: idempotent, conflicts adopted, removals propagated."""

import pytest

from apps.core.models import Device, Site
from apps.volue.models import VolueMeter, VolueResource
from apps.volue.services import customer_sync, subscription_ensure
from tests.volue.conftest import API, calls, sent_json

pytestmark = pytest.mark.django_db
USER = "hub-acme-acme"


@pytest.fixture
def registrar(platform):
    counter = iter(range(1, 100))
    platform.post(f"{API}/users", json={"userId": USER}, status=201)
    platform.add_callback(
        "POST", f"{API}/users/{USER}/meters",
        callback=lambda request: (201, {}, f'{{"meterId": "m-{next(counter)}"}}'),
        content_type="application/json",
    )
    platform.post(f"{API}/users/{USER}/resources", json={}, status=201)
    platform.post(f"{API}/users/{USER}/vehicles", json={}, status=201)
    return platform


def test_first_sync_registers_the_user_and_one_meter_per_device(registrar, volue, customer):
    result = customer_sync(customer=customer, client=volue)

    assert sent_json(calls(registrar, "POST", "/users")[0]) == {"userId": USER}
    bodies = [sent_json(c) for c in calls(registrar, "POST", f"/users/{USER}/meters")]
    assert bodies[1] == {
        "address": {"street": "Calle de Alcalá 45", "city": "Madrid", "zipCode": "28014"},
        "location": {"latitude": 40.4189, "longitude": -3.6967},
        "meterPointId": "707057500000000011", "meterNumber": "main-01",
        "locationType": "Commercial",
    }
    assert bodies[0]["meterPointId"] == "707057500000000028"
    assert bodies[0]["meterNumber"] == "HV-2"
    assert result.created == 3
    customer.refresh_from_db()
    assert customer.remote_user_id == USER
    assert sorted(VolueMeter.objects.values_list("remote_id", flat=True)) == ["m-1", "m-2"]


def test_second_sync_creates_nothing(registrar, volue, customer):
    customer_sync(customer=customer, client=volue)
    before = len(registrar.calls)

    result = customer_sync(customer=customer, client=volue)

    assert result.created == result.updated == result.removed == 0
    assert len(registrar.calls) == before


def test_vehicles_and_resources_are_registered_with_their_metadata(registrar, volue, customer):
    VolueResource.objects.create(customer=customer, kind="vehicle", resource_id="van-1",
                                 resource_type="Vehicle",
                                 metadata={"brand": "Tesla", "model": "Model 3", "year": 2022})
    VolueResource.objects.create(customer=customer, resource_id="tank-1",
                                 resource_type="HotWaterTank",
                                 metadata={"capacity": 500, "heatingElements": [1750, 1250]})

    customer_sync(customer=customer, client=volue)
    customer_sync(customer=customer, client=volue)

    [vehicle] = calls(registrar, "POST", f"/users/{USER}/vehicles")
    assert sent_json(vehicle) == {"vehicleId": "van-1", "metadata": {
        "resourceType": "Vehicle", "brand": "Tesla", "model": "Model 3", "year": 2022}}
    [tank] = calls(registrar, "POST", f"/users/{USER}/resources")
    assert sent_json(tank) == {"resourceId": "tank-1", "metadata": {
        "resourceType": "HotWaterTank", "capacity": 500, "heatingElements": [1750, 1250]}}


def test_user_already_on_the_platform_is_adopted(platform, volue, customer):
    platform.post(f"{API}/users", body='"User already exists."', status=409)
    platform.post(f"{API}/users/{USER}/meters", json={"meterId": "m-1"}, status=201)

    result = customer_sync(customer=customer, client=volue)

    customer.refresh_from_db()
    assert customer.remote_user_id == USER
    assert result.adopted == 1


def test_meter_conflict_adopts_the_platforms_meter(platform, volue, customer):
    customer.remote_user_id = USER
    customer.save()
    platform.post(f"{API}/users/{USER}/meters", body='"already registered"', status=409)
    platform.get(f"{API}/users/{USER}/meters", json={"meters": [
        {"meterId": "old-1", "meterPointId": "707057500000000011"},
        {"meterId": "old-2", "meterPointId": "707057500000000028"},
    ]})
    platform.put(f"{API}/users/{USER}/meters/old-1", json={})
    platform.put(f"{API}/users/{USER}/meters/old-2", json={})

    result = customer_sync(customer=customer, client=volue)

    assert result.adopted == 2 and result.created == 0
    assert sorted(VolueMeter.objects.values_list("remote_id", flat=True)) == ["old-1", "old-2"]


def test_changed_address_updates_the_registered_meter(registrar, volue, customer):
    customer_sync(customer=customer, client=volue)
    meter = VolueMeter.objects.get(meter_point_id="707057500000000011")
    for remote_id in ("m-1", "m-2"):
        registrar.put(f"{API}/users/{USER}/meters/{remote_id}", json={})
    Site.objects.update(city="Alcobendas")

    result = customer_sync(customer=customer, client=volue)

    [put] = calls(registrar, "PUT", f"/users/{USER}/meters/{meter.remote_id}")
    assert sent_json(put)["address"]["city"] == "Alcobendas"
    assert result.updated == 2  # both devices share the site


def test_deleted_device_is_removed_from_the_platform(registrar, volue, customer):
    customer_sync(customer=customer, client=volue)
    meter = VolueMeter.objects.get(meter_point_id="707057500000000028")
    registrar.delete(f"{API}/users/{USER}/meters/{meter.remote_id}", status=204)

    Device.objects.filter(external_id="hvac-02").delete()
    result = customer_sync(customer=customer, client=volue)

    assert len(calls(registrar, "DELETE", f"/users/{USER}/meters/{meter.remote_id}")) == 1
    assert result.removed == 1
    meter.refresh_from_db()
    assert meter.removed_at is not None and meter.remote_id == ""


def test_deactivated_resource_is_removed_from_the_platform(registrar, volue, customer):
    tank = VolueResource.objects.create(customer=customer, resource_id="tank-1")
    customer_sync(customer=customer, client=volue)
    registrar.delete(f"{API}/users/{USER}/resources/tank-1", status=204)

    VolueResource.objects.filter(pk=tank.pk).update(is_active=False)
    customer_sync(customer=customer, client=volue)

    assert len(calls(registrar, "DELETE", f"/users/{USER}/resources/tank-1")) == 1


def test_removed_customer_deletes_its_meters_then_its_user(registrar, volue, customer):
    customer_sync(customer=customer, client=volue)
    registrar.delete(f"{API}/users/{USER}/meters/m-1", status=204)
    registrar.delete(f"{API}/users/{USER}/meters/m-2", status=404)  # already gone: fine
    registrar.delete(f"{API}/users/{USER}", status=204)

    customer.is_active = False
    customer.save()
    customer_sync(customer=customer, client=volue)

    deletes = [c.request.url for c in registrar.calls if c.request.method == "DELETE"]
    assert deletes[-1] == f"{API}/users/{USER}"
    assert len(deletes) == 3
    customer.refresh_from_db()
    assert customer.removed_at is not None and customer.remote_user_id == ""


def test_webhook_is_subscribed_once_with_a_generated_encrypted_secret(platform, volue):
    from django.db import connection

    platform.post(f"{API}/webhooks", json={"webhookId": "wh-1"}, status=201)

    first = subscription_ensure(client=volue)
    again = subscription_ensure(client=volue)

    [call] = calls(platform, "POST", "/webhooks")
    body = sent_json(call)
    assert body["webhookUrl"] == "https://hub.test/volue/webhook"
    assert body["notificationTypes"] == ["PriceCurveCreated", "UserEligibilityUpdated",
                                         "LocationLPCRequested", "ResourceLPCRequested",
                                         "LPCReservationCreated"]
    assert len(body["webhookSecret"]) >= 32 and body["webhookSecret"] == first.secret
    assert again.pk == first.pk and first.remote_id == "wh-1"
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM volue_webhooksubscription")
        assert body["webhookSecret"] not in cursor.fetchone()[0]


def test_customer_grouped_by_datasource_registers_only_its_meters(
    registrar, volue, customer, deployment
):
    from apps.core.models import Datasource

    other = Datasource.objects.create(deployment=deployment, key="other", name="Other")
    Device.objects.filter(external_id="hvac-02").update(datasource=other)
    customer.datasources.add(Device.objects.get(external_id="main-01").datasource)

    customer_sync(customer=customer, client=volue)

    [meter] = calls(registrar, "POST", f"/users/{USER}/meters")
    assert sent_json(meter)["meterPointId"] == "707057500000000011"
