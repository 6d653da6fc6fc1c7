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


def test_the_one_writer_keeps_a_record_once_while_its_entry_is_open(deployment):
    from apps.core.services import Refused, quarantine_add, quarantine_payload

    source = Quarantine.source_for("demo", "stream", "wm-1")
    assert source == "demo:stream:wm-1"
    payload = quarantine_payload({"device": "m1", "ts": "2026-06-01T00:00:00+00:00"},
                                 raw={"meter": "m1"}, context={"answer": "no"})
    assert payload == {"device": "m1", "ts": "2026-06-01T00:00:00+00:00",
                       "raw": {"meter": "m1"}, "context": {"answer": "no"}}
    twice = [Refused("refused", payload), Refused("refused again", dict(payload))]
    assert quarantine_add(source=source, entries=twice, deployment_id=deployment.pk) == 1
    assert quarantine_add(source=source, entries=twice, deployment_id=deployment.pk) == 0
    # Another source, or the first entry resolved: written again.
    assert quarantine_add(source="demo:stream:wm-2", entries=twice,
                          deployment_id=deployment.pk) == 1
    quarantine_discard(entries=Quarantine.objects.filter(source=source))
    assert quarantine_add(source=source, entries=twice, deployment_id=deployment.pk) == 1
    assert Quarantine.objects.filter(source=source).count() == 2


def test_old_sources_and_payloads_are_rewritten_to_the_one_format():
    import importlib

    from django.apps import apps

    migration = importlib.import_module(
        "apps.core.migrations.0007_quarantine_one_source_format")
    rewrite = migration._rewritten
    assert rewrite(apps, "dexma:hub-1", {"device": "m", "reading_id": 5, "datasource": 2}) == (
        "dexma:datasource:hub-1", {"device": "m", "context": {"reading_id": 5, "datasource": 2}})
    assert rewrite(apps, "wattics stream wm-1", {"packet": {"v": 1}, "status": 400,
                                                 "answer": "bad"}) == (
        "wattics:stream:wm-1", {"raw": {"v": 1}, "context": {"status": 400, "answer": "bad"}})
    assert rewrite(apps, "pull:acme:assets", {"raw": {"id": 1}}) == (
        "pull:connection:acme", {"raw": {"id": 1}, "context": {"role": "assets"}})
    assert rewrite(apps, "pull:acme", {"device": "m"}) == ("pull:connection:acme",
                                                           {"device": "m"})
    assert rewrite(apps, "partner_api:ab12", {"record": 7}) == ("partner_api:key:ab12",
                                                                {"raw": 7})
    for new in ("dexma:datasource:hub-1", "wattics:stream:wm-1", "pull:connection:acme",
                "partner_api:key:ab12"):
        assert rewrite(apps, new, {}) is None


def test_ingest_keeps_a_record_refused_again_once_while_its_entry_is_open(deployment):
    """Ingest writes through the one quarantine writer: a retried push of the same bad
    record is rejected each time but kept once; after a discard it is kept anew."""
    def push():
        return readings_ingest(deployment=deployment, source="partner_api:key:ab12",
                               records=[ReadingIn("ghost", "active_energy", T0, 5),
                                        ReadingIn("ghost", "active_energy", T0, 5)])

    first, again = push(), push()
    assert (len(first.rejections), first.quarantined) == (2, 1)
    assert (len(again.rejections), again.quarantined) == (2, 0)
    assert Quarantine.objects.get().source == "partner_api:key:ab12"
    quarantine_discard(entries=Quarantine.objects.all())
    assert push().quarantined == 1
    assert Quarantine.objects.filter(status=Quarantine.Status.OPEN).count() == 1
