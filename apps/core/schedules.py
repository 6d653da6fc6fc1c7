"""Periodic tasks as code declares them; `manage.py setup_schedules` writes them to the
django-celery-beat tables, where ops can then change them in the admin.

Each app lists its own in its AppConfig's `schedules` attribute.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.apps import apps
from django.db import transaction


@dataclass(frozen=True, slots=True)
class Schedule:
    name: str
    task: str
    every_seconds: int | None = None
    crontab: dict[str, str] | None = None  # minute, hour, day_of_week, day_of_month, month_of_year
    kwargs: dict = field(default_factory=dict)
    description: str = ""


@dataclass(slots=True)
class SetupReport:
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)


def declared_schedules() -> list[Schedule]:
    return [s for config in apps.get_app_configs() for s in getattr(config, "schedules", ())]


def schedules_setup(*, schedules: list[Schedule] | None = None) -> SetupReport:
    """Create missing periodic tasks; on existing ones only keep the task path current.

    What ops changed in the admin (interval, crontab, enabled, arguments) is never
    overwritten, so running this on every release is safe.
    """
    from django_celery_beat.models import PeriodicTask  # the app registry must be ready

    report = SetupReport()
    for schedule in schedules if schedules is not None else declared_schedules():
        with transaction.atomic():
            task = PeriodicTask.objects.select_for_update().filter(name=schedule.name).first()
            if task is None:
                PeriodicTask.objects.create(
                    name=schedule.name,
                    task=schedule.task,
                    kwargs=json.dumps(schedule.kwargs),
                    description=schedule.description,
                    **_timing(schedule),
                )
                report.created.append(schedule.name)
            elif task.task != schedule.task:
                task.task = schedule.task
                task.save(update_fields=["task"])
                report.updated.append(schedule.name)
            else:
                report.kept.append(schedule.name)
    return report


def _timing(schedule: Schedule) -> dict:
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule

    if schedule.every_seconds:
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=schedule.every_seconds, period=IntervalSchedule.SECONDS
        )
        return {"interval": interval}
    if schedule.crontab:
        crontab, _ = CrontabSchedule.objects.get_or_create(timezone="UTC", **schedule.crontab)
        return {"crontab": crontab}
    raise ValueError(f"schedule '{schedule.name}' needs every_seconds or crontab")
