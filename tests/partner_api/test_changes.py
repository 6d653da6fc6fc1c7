"""Change feeds: `updated_at` on every record, `updated_since` returning every change."""

import datetime as dt

import pytest
from django.utils import timezone

from apps.core.models import Device, ReadingCommit, Site
from apps.core.services import ReadingIn, readings_ingest
from apps.partner_api.models import Tombstone
from apps.partner_api.services import tombstones_purge

from .conftest import QH, T0, ingest_usage
from .test_paging import STYLES, correct, walk

pytestmark = pytest.mark.django_db


def newest(records) -> str:
    return max(r["updated_at"] for r in records)


def pull(api, path, since=None, style="cursor", **kwargs):
    params = {"updated_since": since} if since else {}
    return walk(api, path, style, params=params, **kwargs)[0]


def by_key(records):
    return {(r["meter"], r["period_start"]): r for r in records}


@pytest.fixture
def loaded(deployment, make_device):
    make_device(deployment, "m1")
    make_device(deployment, "m2")
    ingest_usage(deployment, "m1", 6)
    ingest_usage(deployment, "m2", 6)
    return deployment


def test_updated_at_is_the_commit_time_of_the_last_change(api, loaded):
    first = by_key(pull(api, "/api/v1/usage/"))
    correct(loaded, "m1", 2, 42.0)
    commit = ReadingCommit.objects.filter(deployment=loaded).latest("seq")
    again = by_key(pull(api, "/api/v1/usage/"))
    key = ("m1", (T0 + 2 * QH).isoformat())
    assert again[key]["updated_at"] == commit.at.isoformat(timespec="microseconds")
    assert again[key]["updated_at"] > first[key]["updated_at"]
    assert all(again[k]["updated_at"] == first[k]["updated_at"] for k in first if k != key)


@pytest.mark.parametrize("style", STYLES)
def test_the_next_pull_returns_exactly_the_corrections_and_late_history(api, loaded,
                                                                        make_device, style):
    """The reported loss: corrections and back-filled history after a pull went unseen."""
    first = pull(api, "/api/v1/usage/", style=style)
    since = newest(first)
    correct(loaded, "m1", 0, 10.5)
    correct(loaded, "m2", 5, 20.5)
    ingest_usage(loaded, "m1", 2, start=T0 - 2 * QH)  # late history, before everything
    make_device(loaded, "m3")
    ingest_usage(loaded, "m3", 1, start=T0 - 10 * QH)
    # An identical re-send is no change and must not come back.
    ingest_usage(loaded, "m2", 5)

    second = pull(api, "/api/v1/usage/", since, style=style)

    changed = {("m1", T0.isoformat()), ("m2", (T0 + 5 * QH).isoformat()),
               ("m1", (T0 - 2 * QH).isoformat()), ("m1", (T0 - QH).isoformat()),
               ("m3", (T0 - 10 * QH).isoformat())}
    # `updated_since` is inclusive: the last commit of the first pull comes again.
    boundary = {k for k, r in by_key(first).items() if r["updated_at"] == since}
    got = by_key(second)
    assert set(got) == changed | boundary
    assert len(second) == len(got)
    assert got[("m1", T0.isoformat())]["value"] == 10.5
    assert all(got[k]["value"] == by_key(first)[k]["value"] for k in boundary - changed)
    third = pull(api, "/api/v1/usage/", newest(second), style=style)
    assert {k for k, r in by_key(third).items() if r["updated_at"] > newest(second)} == set()


@pytest.mark.parametrize("style", ("cursor", "next", "link"))
def test_changes_made_during_an_incremental_pull_come_in_the_next_one(api, loaded, style):
    since = newest(pull(api, "/api/v1/usage/"))
    correct(loaded, "m1", 1, 1.5)
    correct(loaded, "m2", 4, 2.5)

    def between(page):
        if page == 1:  # one record already returned, one not yet reached: both corrected
            correct(loaded, "m1", 1, 100.0)
            correct(loaded, "m2", 4, 200.0)

    second = pull(api, "/api/v1/usage/", since, style=style, limit=1, between=between)
    third = by_key(pull(api, "/api/v1/usage/", newest(second), style=style))
    assert third[("m1", (T0 + QH).isoformat())]["value"] == 100.0
    assert third[("m2", (T0 + 4 * QH).isoformat())]["value"] == 200.0
    assert len(by_key(second)) == len(second)


def test_readings_carry_updated_at_and_honour_updated_since(api, deployment, make_device):
    make_device(deployment, "m1")
    readings_ingest(deployment=deployment, source="t", records=[
        ReadingIn(device="m1", parameter="active_energy", ts=T0 + i * QH, value=100.0 + i)
        for i in range(3)])
    first = pull(api, "/api/v1/readings/")
    readings_ingest(deployment=deployment, source="t", records=[
        ReadingIn(device="m1", parameter="active_energy", ts=T0 + QH, value=150.0)])
    changed = [r for r in pull(api, "/api/v1/readings/", newest(first))
               if r["updated_at"] > newest(first)]
    assert [(r["timestamp"], r["value"]) for r in changed] == [((T0 + QH).isoformat(), 150.0)]


def test_updated_since_after_every_change_returns_nothing(api, loaded):
    later = (timezone.now() + dt.timedelta(seconds=1)).isoformat()
    assert api.get("/api/v1/usage/", {"updated_since": later}).json()["results"] == []


def test_a_deactivated_meter_is_in_the_next_meters_pull(api, deployment, make_device):
    device = make_device(deployment, "m1")
    make_device(deployment, "m2")
    Device.objects.update(updated_at=timezone.now() - dt.timedelta(minutes=5))
    since = (timezone.now() - dt.timedelta(minutes=1)).isoformat()
    assert api.get("/api/v1/meters/", {"updated_since": since}).json()["results"] == []
    device.is_active = False
    device.save()
    Device.objects.filter(pk=device.pk).update(  # past the pull's five-second margin
        updated_at=timezone.now() - dt.timedelta(seconds=10))
    [meter] = api.get("/api/v1/meters/", {"updated_since": since}).json()["results"]
    assert (meter["external_id"], meter["active"]) == ("m1", False)


def test_a_deleted_meter_leaves_a_tombstone_listed_on_request(api, deployment, make_device):
    make_device(deployment, "m1")
    gone = make_device(deployment, "m2")
    ingest_usage(deployment, "m2", 2)
    gone.delete()

    assert [m["external_id"] for m in api.get("/api/v1/meters/").json()["results"]] == ["m1"]
    listed = api.get("/api/v1/meters/", {"include_deleted": "true"}).json()["results"]
    assert [(m["external_id"], m["deleted"], m["active"]) for m in listed] == [
        ("m1", False, True), ("m2", True, False)]
    stone = listed[1]
    assert stone["deleted_at"] == stone["updated_at"]
    assert stone["unit"] is None
    assert api.get("/api/v1/meters/", {"include_deleted": "true", "active": "true"}).json()[
        "results"][0]["external_id"] == "m1"


def test_tombstones_follow_updated_since(api, deployment, make_device):
    make_device(deployment, "m1").delete()
    Tombstone.objects.update(deleted_at=timezone.now() - dt.timedelta(minutes=5))
    since = (timezone.now() - dt.timedelta(minutes=1)).isoformat()
    params = {"include_deleted": "true", "updated_since": since}
    assert api.get("/api/v1/meters/", params).json()["results"] == []
    make_device(deployment, "m2").delete()
    Tombstone.objects.filter(external_id="m2").update(
        deleted_at=timezone.now() - dt.timedelta(seconds=10))
    assert [m["external_id"] for m in api.get("/api/v1/meters/", params).json()["results"]] == [
        "m2"]


def test_a_deleted_asset_leaves_a_tombstone_too(api, deployment):
    Site.objects.create(deployment=deployment, external_id="b1", name="B1").delete()
    [asset] = api.get("/api/v1/assets/", {"include_deleted": "true"}).json()["results"]
    assert (asset["external_id"], asset["deleted"]) == ("b1", True)


@pytest.mark.parametrize("style", STYLES)
def test_tombstones_page_in_place_with_the_live_records(api, deployment, make_device, style):
    for i in range(6):
        device = make_device(deployment, f"m{i}")
        if i % 2:
            device.delete()
    seen, _ = walk(api, "/api/v1/meters/", style, limit=2, params={"include_deleted": "true"})
    assert [(m["external_id"], m["deleted"]) for m in seen] == [
        (f"m{i}", bool(i % 2)) for i in range(6)]


def test_tombstones_are_purged_after_the_retention(deployment, make_device, settings):
    make_device(deployment, "old").delete()
    make_device(deployment, "recent").delete()
    Tombstone.objects.filter(external_id="old").update(
        deleted_at=timezone.now() - dt.timedelta(days=settings.PARTNER_API_TOMBSTONE_DAYS + 1))
    assert tombstones_purge() == 1
    assert list(Tombstone.objects.values_list("external_id", flat=True)) == ["recent"]


def test_deleting_a_whole_deployment_leaves_no_tombstone(deployment):
    Site.objects.create(deployment=deployment, external_id="b1", name="B1")
    deployment.delete()
    assert not Tombstone.objects.exists()
