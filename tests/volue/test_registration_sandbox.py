"""Registration against the sandbox platform over a real socket, asserted on what the platform
received (its call journal) and holds: idempotent, convergent, documented calls only."""

import pytest

from apps.core.http import PermanentError
from apps.core.models import Site
from apps.sandbox.volue.models import SbCall, SbLocation, SbMeterPoint, SbResource, SbUser
from apps.volue.client import volue_client
from apps.volue.models import VolueCustomer, VolueResource
from apps.volue.services import (
    customer_enroll,
    customer_status_refresh,
    customer_sync,
    users_batch_register,
)

pytestmark = pytest.mark.django_db(transaction=True)
MAIN, HVAC = "707057500000000011", "707057500000000028"


@pytest.fixture
def hub(live_server, settings):
    settings.VOLUE_API_URL = f"{live_server.url}/sandbox/volue/api"
    settings.VOLUE_AUTH_URL = f"{live_server.url}/sandbox/volue/connect/token"
    settings.SANDBOX_VOLUE_AUTO_EVENT = False
    return volue_client()


@pytest.fixture
def registered(hub, customer):
    customer_sync(customer=customer, client=hub)
    main = customer.meters.get(meter_point_id=MAIN)
    VolueResource.objects.create(customer=customer, resource_id="tank-1",
                                 resource_type="HotWaterTank", meter=main)
    VolueResource.objects.create(customer=customer, resource_id="van-1",
                                 kind=VolueResource.Kind.VEHICLE, resource_type="Vehicle")
    result = customer_sync(customer=customer, client=hub)
    assert not result.errors, result.errors
    return customer


def calls_after(mark: int) -> list[tuple[str, str]]:
    return [(c.operation_id, c.path) for c in SbCall.objects.filter(pk__gt=mark)]


def last_call() -> int:
    return SbCall.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def test_first_run_registers_the_user_a_location_per_meter_point_and_resources(registered):
    user = SbUser.objects.get()
    assert user.user_id == registered.user_id
    assert sorted(SbMeterPoint.objects.values_list("meter_point_id", flat=True)) == [MAIN, HVAC]
    assert SbLocation.objects.filter(user=user).count() == 2
    tank, van = SbResource.objects.get(resource_id="tank-1"), SbResource.objects.get(
        resource_id="van-1")
    main = registered.meters.get(meter_point_id=MAIN)
    assert (tank.location.location_id, tank.resource_type, tank.meter_point_id) == (
        main.remote_id, "HotWaterTank", MAIN)
    assert van.location is None and van.resource_type == "Vehicle"
    coordinates = SbLocation.objects.get(location_id=main.remote_id).coordinates
    assert coordinates == {"latitude": 40.4189, "longitude": -3.6967}


def test_second_run_sends_nothing(registered, hub):
    mark = last_call()

    result = customer_sync(customer=registered, client=hub)

    assert calls_after(mark) == []
    assert result.counts() == {"created": 0, "updated": 0, "adopted": 0, "removed": 0,
                               "errors": 0}


def test_moved_site_sends_one_location_update_per_location_there(registered, hub):
    Site.objects.filter(external_id="hq").update(latitude=40.5, longitude=-3.7)
    mark = last_call()

    customer_sync(customer=registered, client=hub)

    sent = calls_after(mark)
    assert [op for op, _ in sent] == ["UpdateLocation", "UpdateLocation"]
    assert {c["latitude"] for c in SbLocation.objects.values_list(
        "coordinates", flat=True)} == {40.5}
    mark = last_call()
    customer_sync(customer=registered, client=hub)
    assert calls_after(mark) == []


def test_resource_removed_in_the_hub_is_deleted_on_the_platform(registered, hub):
    VolueResource.objects.filter(resource_id="tank-1").update(is_active=False)
    mark = last_call()

    customer_sync(customer=registered, client=hub)

    assert calls_after(mark) == [("DeleteResourceById", "/resources/tank-1")]
    assert not SbResource.objects.filter(resource_id="tank-1").exists()


def test_meter_gone_from_the_hub_deletes_its_resources_then_its_location(registered, hub):
    main = registered.meters.get(meter_point_id=MAIN)
    main.device.delete()
    mark = last_call()

    result = customer_sync(customer=registered, client=hub)

    assert not result.errors, result.errors
    assert [op for op, _ in calls_after(mark)] == ["DeleteResourceById", "DeleteLocation"]
    assert list(SbMeterPoint.objects.values_list("meter_point_id", flat=True)) == [HVAC]


def test_location_already_on_the_platform_is_adopted_and_then_left_alone(hub, customer):
    user = SbUser.objects.create(user_id=customer.user_id)
    elsewhere = SbLocation.objects.create(location_id="made-elsewhere", user=user)
    SbMeterPoint.objects.create(meter_point_id=MAIN, location=elsewhere)

    result = customer_sync(customer=customer, client=hub)

    assert not result.errors, result.errors
    assert (result.adopted, result.created) == (2, 1)  # the user and the location; one new
    assert customer.meters.get(meter_point_id=MAIN).remote_id == "made-elsewhere"
    assert SbLocation.objects.count() == 2
    mark = last_call()
    customer_sync(customer=customer, client=hub)
    assert calls_after(mark) == []


def test_a_404_on_update_is_checked_before_the_location_is_registered_again(registered, hub):
    main = registered.meters.get(meter_point_id=MAIN)
    SbLocation.objects.filter(location_id=main.remote_id).delete()  # gone on the platform
    Site.objects.filter(external_id="hq").update(latitude=41.0)
    mark = last_call()

    result = customer_sync(customer=registered, client=hub)

    sent = [op for op, path in calls_after(mark) if main.remote_id in path or op ==
            "PostLocation"]
    assert sent[:3] == ["UpdateLocation", "GetLocationByLocationId", "PostLocation"]
    assert SbMeterPoint.objects.filter(meter_point_id=MAIN).exists()
    assert not [e for e in result.errors if MAIN in e]


def test_many_new_locations_are_registered_in_one_batch(hub, deployment, make_device):
    for i in range(7):
        make_device(deployment, f"m-{i}", metadata={"meterPointId": f"70705750000000010{i}"})
    customer = VolueCustomer.objects.create(deployment=deployment, key="big", name="Big")
    mark = last_call()

    result = customer_sync(customer=customer, client=hub)

    assert not result.errors and result.created == 8
    assert [op for op, _ in calls_after(mark)] == ["PostUser", "PostLocations"]
    assert SbMeterPoint.objects.count() == 7


def test_many_new_users_are_registered_in_one_batch(hub, deployment):
    customers = [VolueCustomer.objects.create(deployment=deployment, key=f"c{i}", name=f"C{i}")
                 for i in range(6)]
    mark = last_call()

    assert users_batch_register(customers=customers, client=hub) == 6

    assert [op for op, _ in calls_after(mark)] == ["PostUsers"]
    assert SbUser.objects.count() == 6
    assert not VolueCustomer.objects.filter(remote_user_id="").exists()


def test_meter_point_of_another_user_names_the_call_and_what_to_change(hub, customer):
    other = SbUser.objects.create(user_id="someone-else")
    SbMeterPoint.objects.create(meter_point_id=MAIN, location=SbLocation.objects.create(
        location_id="theirs", user=other))

    result = customer_sync(customer=customer, client=hub)

    [error] = result.errors
    assert error.startswith(f"meter {MAIN}: Volue refused PostLocation")
    assert "registered to another user" in error and "correct the meterPointId" in error
    customer.refresh_from_db()
    assert customer.last_error == error


def test_refused_enrollment_names_the_call_the_field_and_what_to_change(hub, deployment,
                                                                       make_device):
    make_device(deployment, "x-1", metadata={"meterPointId": "12345"})  # not a GSRN: ineligible
    customer = VolueCustomer.objects.create(deployment=deployment, key="x", name="X")
    customer_sync(customer=customer, client=hub)

    with pytest.raises(PermanentError) as refused:
        customer_enroll(customer=customer, client=hub)

    message = str(refused.value)
    assert "PostUserEnrollment (POST /users/hub-acme-x/enrollment) with 400" in message
    assert "userId:" in message and "register a location with an eligible meter point" in message


def test_enrolling_shows_enrolled_eligible_and_compensation_per_location(registered, hub):
    customer = customer_enroll(customer=registered, client=hub)

    assert (customer.enrolled, customer.eligible) == (True, True)
    assert SbUser.objects.get().enrolled_at is not None
    main = customer.meters.get(meter_point_id=MAIN)
    assert (main.eligible, main.compensation_active, main.compensation_currency) == (
        True, 0.0, "NOK")


def test_status_of_a_customer_never_enrolled(registered, hub):
    customer = customer_status_refresh(customer=registered, client=hub)

    assert customer.enrolled is False and customer.status_error == ""


def test_resource_without_a_meter_is_refused_in_the_hub_saying_what_to_choose(registered, hub):
    VolueResource.objects.create(customer=registered, resource_id="hvac-9", resource_type="HVAC")
    mark = last_call()

    result = customer_sync(customer=registered, client=hub)

    assert calls_after(mark) == []
    [error] = result.errors
    assert "binds every resource but a vehicle to a location" in error
    assert "choose the meter it sits behind" in VolueResource.objects.get(
        resource_id="hvac-9").last_error


def test_changed_resource_type_is_deleted_and_created_again(registered, hub):
    VolueResource.objects.filter(resource_id="tank-1").update(resource_type="Generic")
    mark = last_call()

    customer_sync(customer=registered, client=hub)

    assert [op for op, _ in calls_after(mark)] == ["DeleteResourceById",
                                                  "PostLocationBoundResource"]
    assert SbResource.objects.get(resource_id="tank-1").resource_type == "Generic"


def test_sandbox_page_lists_locations_and_the_calls_received(registered, client):
    page = client.get("/sandbox/volue/").content.decode()
    assert MAIN in page and "PostLocation" in page
