import json

import pytest
from django.core.management import call_command
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from apps.core.schedules import Schedule, declared_schedules, schedules_setup

pytestmark = pytest.mark.django_db


def snapshot():
    return sorted(PeriodicTask.objects.values_list("name", "task", "interval__every", "enabled",
                                                   "kwargs"))


def test_setup_schedules_creates_every_declared_task():
    call_command("setup_schedules", verbosity=0)
    names = set(PeriodicTask.objects.values_list("name", flat=True))
    assert {s.name for s in declared_schedules()} <= names
    assert "core: expire consents" in names


def test_setup_schedules_twice_gives_the_same_result():
    call_command("setup_schedules", verbosity=0)
    first = snapshot()
    report = schedules_setup()
    assert report.created == [] and report.updated == []
    assert snapshot() == first


def test_setup_schedules_keeps_what_ops_changed_in_the_admin():
    call_command("setup_schedules", verbosity=0)
    task = PeriodicTask.objects.get(name="core: expire consents")
    slower, _ = IntervalSchedule.objects.get_or_create(every=3600, period="seconds")
    task.interval, task.enabled, task.kwargs = slower, False, json.dumps({"note": "ops"})
    task.save()
    call_command("setup_schedules", verbosity=0)
    task.refresh_from_db()
    assert (task.interval.every, task.enabled, json.loads(task.kwargs)) == (
        3600, False, {"note": "ops"})


def test_setup_schedules_follows_a_renamed_task_path():
    schedules_setup(schedules=[Schedule(name="x", task="old.path", every_seconds=60)])
    report = schedules_setup(schedules=[Schedule(name="x", task="new.path", every_seconds=60)])
    assert report.updated == ["x"]
    assert PeriodicTask.objects.get(name="x").task == "new.path"


def test_a_periodic_run_expires_when_the_next_is_due_unless_ops_set_an_expiry():
    """Stale ticks would otherwise pile up in front of the work they fan out whenever the
    workers are busy."""
    from django_celery_beat.models import CrontabSchedule

    from apps.core.beat import CRONTAB_EXPIRES_SECONDS, TickEntry
    from config.celery import app

    call_command("setup_schedules", verbosity=0)
    tick = PeriodicTask.objects.get(name="dexma: deliver readings")
    assert TickEntry(tick, app=app).options["expires"] == tick.interval.every

    tick.expire_seconds = 7
    tick.save()
    assert TickEntry(tick, app=app).options["expires"] == 7

    nightly = PeriodicTask.objects.create(
        name="nightly", task="core.ping",
        crontab=CrontabSchedule.objects.create(minute="0", hour="3", timezone="UTC"))
    assert TickEntry(nightly, app=app).options["expires"] == CRONTAB_EXPIRES_SECONDS

