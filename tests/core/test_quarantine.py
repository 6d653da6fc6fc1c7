import datetime as dt

import pytest

from apps.core.models import Quarantine, Reading
from apps.core.services import ReadingIn, quarantine_discard, quarantine_replay, readings_ingest

pytestmark = pytest.mark.django_db
T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def test_replay_stores_a_record_once_its_device_exists(deployment, make_device):
    readings_ingest(deployment=deployment,
                    records=[ReadingIn("late-meter", "active_energy", T0, 5)], source="test")
    make_device(deployment, "late-meter")
    result = quarantine_replay(entries=Quarantine.objects.all())
    assert (result.replayed, result.still_invalid) == (1, 0)
    assert Reading.objects.get().value == 5
    assert Quarantine.objects.get().status == Quarantine.Status.REPLAYED


def test_replay_of_a_fixed_payload_stores_it(deployment, make_device):
    make_device(deployment, "m1")
    readings_ingest(deployment=deployment,
                    records=[ReadingIn("m1", "active_energy", "2026-06-01T00:00:00", 5)],
                    source="test")
    entry = Quarantine.objects.get()
    entry.payload["ts"] = "2026-06-01T00:00:00+00:00"
    entry.save()
    assert quarantine_replay(entries=[entry]).replayed == 1
    assert Reading.objects.get().ts == T0


def test_replay_that_still_fails_updates_the_reason_without_a_second_entry(deployment):
    readings_ingest(deployment=deployment, records=[ReadingIn("ghost", "active_energy", T0, 5)],
                    source="test")
    entry = Quarantine.objects.get()
    entry.payload["value"] = "abc"
    entry.save()
    result = quarantine_replay(entries=Quarantine.objects.all())
    assert result.still_invalid == 1
    entry.refresh_from_db()
    assert Quarantine.objects.count() == 1
    assert entry.status == Quarantine.Status.OPEN
    assert "ghost" in entry.reason


def test_discard_closes_open_entries(deployment):
    readings_ingest(deployment=deployment, records=[ReadingIn("ghost", "active_energy", T0, 5)],
                    source="test")
    assert quarantine_discard(entries=Quarantine.objects.all()) == 1
    assert Quarantine.objects.get().status == Quarantine.Status.DISCARDED
