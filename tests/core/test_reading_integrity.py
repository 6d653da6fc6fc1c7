"""Readings keep their devices and parameters without database foreign keys.

The readings table dropped its two foreign keys for ingest speed (migration 0005); these
tests hold the replacement to the same promise: no reading outlives its device, a parameter
in use cannot be deleted, and a device deleted while an ingest is in flight takes the
ingest's readings with it.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection, connections, transaction
from django.db.models import ProtectedError

from apps.core.models import Parameter, Reading
from apps.core.services import ReadingIn, readings_ingest

T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _reading(device: str, minutes: int = 0) -> ReadingIn:
    return ReadingIn(device=device, parameter="active_energy",
                     ts=T0 + dt.timedelta(minutes=minutes), value=1.0 + minutes)


@pytest.mark.django_db
def test_core_reading_has_no_database_foreign_keys():
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_constraint"
                       " WHERE conrelid = 'core_reading'::regclass AND contype = 'f'")
        assert cursor.fetchone()[0] == 0


@pytest.mark.django_db
def test_deleting_a_device_deletes_its_readings(deployment, make_device):
    gone, kept = make_device(deployment, "meter-1"), make_device(deployment, "meter-2")
    readings_ingest(deployment=deployment, source="test",
                    records=[_reading("meter-1", m) for m in range(3)] + [_reading("meter-2")])

    assert Reading.objects.count() == 4
    gone.delete()

    assert not Reading.objects.filter(device_id=gone.pk).exists()
    assert list(Reading.objects.values_list("device_id", flat=True)) == [kept.pk]


@pytest.mark.django_db
def test_a_parameter_with_readings_cannot_be_deleted(deployment, make_device):
    make_device(deployment, "meter-1")
    readings_ingest(deployment=deployment, source="test", records=[_reading("meter-1")])

    with pytest.raises(ProtectedError):
        Parameter.objects.get(key="active_energy").delete()


@pytest.mark.django_db(transaction=True)
def test_a_device_deleted_during_an_ingest_takes_the_ingests_readings_with_it(
    deployment, make_device
):
    device = make_device(deployment, "meter-1")
    ingested, release = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def ingest_and_hold() -> None:
        try:
            with transaction.atomic():
                readings_ingest(deployment=deployment, source="test",
                                records=[_reading("meter-1", m) for m in range(4)])
                ingested.set()
                release.wait(10)  # commit only once the deletion has started
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
            ingested.set()
        finally:
            connections.close_all()

    def delete_device() -> None:
        try:
            device.delete()
        except BaseException as exc:
            errors.append(exc)
        finally:
            connections.close_all()

    ingester = threading.Thread(target=ingest_and_hold)
    ingester.start()
    assert ingested.wait(10)
    deleter = threading.Thread(target=delete_device)
    deleter.start()
    deleter.join(0.5)
    assert deleter.is_alive(), "the deletion must wait for the ingest's commit"
    release.set()
    ingester.join(10)
    deleter.join(10)

    assert errors == []
    assert not Reading.objects.filter(device_id=device.pk).exists()
