"""Monthly partitions of the readings table and per-deployment retention (PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest
from django.core.management import call_command
from django.db import connection
from django.urls import reverse

from apps.core.models import DeliveryLink, OutboundBatch, Reading
from apps.core.services import retention
from apps.core.services.ingest import ReadingIn, readings_ingest
from apps.core.services.outbox import batch_enqueue
from apps.core.services.partitions import (
    add_months,
    month_start,
    partition_name,
    partitions_list,
    partitions_maintain,
)
from apps.core.services.retention import readings_retention_apply, retention_preview

pytestmark = pytest.mark.django_db

NOW = dt.datetime(2026, 6, 15, 12, 0, tzinfo=dt.UTC)
JANUARY = dt.datetime(2025, 1, 10, tzinfo=dt.UTC)  # far past a 30-day window at NOW
MAY = dt.datetime(2026, 5, 30, tzinfo=dt.UTC)  # inside it


def store(deployment, device, start: dt.datetime, count: int, value: float = 230.0) -> None:
    readings_ingest(deployment=deployment, source="test", records=[
        ReadingIn(device=device.external_id, parameter="voltage",
                  ts=start + i * dt.timedelta(minutes=15), value=value + i)
        for i in range(count)])


def readings_of(deployment) -> list[Reading]:
    return list(Reading.objects.filter(device__deployment=deployment).order_by("ts"))


def link_of(deployment, name="target") -> DeliveryLink:
    return DeliveryLink.objects.create(platform="test", name=name, deployment=deployment)


def delivered_all(link: DeliveryLink) -> None:
    top = max(r.seq for r in Reading.objects.all())
    DeliveryLink.objects.filter(pk=link.pk).update(cursor=top)


def partition_names() -> set[str]:
    return {p.name for p in partitions_list()}


@pytest.fixture
def january(deployment, make_device):
    """Readings of January 2025 in their own partition (moved there out of DEFAULT)."""
    device = make_device(deployment)
    store(deployment, device, JANUARY, 8)
    partitions_maintain(ahead=0, now=NOW)
    assert partition_name(dt.date(2025, 1, 1)) in partition_names()
    deployment.retention_days = 30
    deployment.save()
    return device


def test_the_readings_table_is_partitioned_by_month_with_ts_in_its_primary_key():
    with connection.cursor() as cursor:
        cursor.execute("SELECT partstrat FROM pg_partitioned_table "
                       "WHERE partrelid = 'core_reading'::regclass")
        assert cursor.fetchone() == ("r",)
        cursor.execute("SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                       "WHERE conrelid = 'core_reading'::regclass AND contype IN ('p', 'u') "
                       "ORDER BY contype")
        assert [d for (d,) in cursor.fetchall()] == [
            "PRIMARY KEY (id, ts)", "UNIQUE (device_id, parameter_id, ts)"]
    names = partition_names()
    assert "core_reading_default" in names
    assert partition_name(month_start(dt.datetime.now(dt.UTC))) in names


def test_a_month_created_later_takes_its_readings_out_of_default(deployment, make_device):
    device = make_device(deployment)
    store(deployment, device, JANUARY, 3)
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM core_reading_default")
        assert cursor.fetchone() == (3,)
        made = partitions_maintain(ahead=0, now=NOW)
        assert made.moved == 3 and "core_reading_p202501" in made.created
        cursor.execute("SELECT count(*) FROM core_reading_default")
        assert cursor.fetchone() == (0,)
        cursor.execute("SELECT count(*) FROM core_reading_p202501")
        assert cursor.fetchone() == (3,)


def test_ingest_counts_new_and_changed_readings_apart_on_the_partitioned_table(
        deployment, make_device):
    device = make_device(deployment)
    store(deployment, device, MAY, 4)
    result = readings_ingest(deployment=deployment, source="test", records=[
        ReadingIn(device=device.external_id, parameter="voltage",
                  ts=MAY + i * dt.timedelta(minutes=15), value=v)
        for i, v in enumerate([230.0, 999.0, 232.0, 233.0, 234.0, 235.0])])
    assert (result.inserted, result.updated, result.unchanged) == (2, 1, 3)


def test_never_deletes_a_reading_its_link_has_not_delivered(deployment, january):
    link = link_of(deployment)
    report = readings_retention_apply(max_rows=1000, now=NOW)
    assert report.applied and report.deleted_total == 0 and not report.dropped
    assert len(readings_of(deployment)) == 8
    delivered_all(link)
    readings_retention_apply(max_rows=1000, now=NOW)
    assert readings_of(deployment) == []


def test_a_batch_not_yet_acknowledged_holds_the_readings_it_will_send(
        deployment, other_deployment, january, make_device):
    # The other deployment keeps everything and has January readings: no whole-month drop.
    store(other_deployment, make_device(other_deployment, "other-1"), JANUARY, 2)
    link = link_of(deployment)
    seqs = [r.seq for r in readings_of(deployment)]
    batch_enqueue(link=link, seq_from=seqs[4], seq_to=seqs[-1])
    report = readings_retention_apply(max_rows=1000, now=NOW)
    assert report.deleted == {deployment.pk: 5}
    assert [r.seq for r in readings_of(deployment)] == seqs[5:]
    OutboundBatch.objects.filter(link=link).update(state=OutboundBatch.State.SENT)
    readings_retention_apply(max_rows=1000, now=NOW)
    assert readings_of(deployment) == []
    assert len(readings_of(other_deployment)) == 2


def test_drops_the_whole_month_when_every_deployment_in_it_lets_go(
        deployment, other_deployment, january, make_device):
    store(other_deployment, make_device(other_deployment, "other-1"), JANUARY, 2)
    store(other_deployment, make_device(other_deployment, "other-2"), MAY, 2)
    other_deployment.retention_days = 90
    other_deployment.save()
    delivered_all(link_of(deployment))
    report = readings_retention_apply(max_rows=1000, now=NOW)
    assert report.dropped == ["core_reading_p202501"]
    assert report.deleted_total == 0
    assert "core_reading_p202501" not in partition_names()
    assert readings_of(deployment) == []
    assert [r.ts.date() for r in readings_of(other_deployment)] == [MAY.date()] * 2


def test_deletes_in_chunks_when_another_deployment_keeps_the_month(
        deployment, other_deployment, january, make_device, monkeypatch):
    store(other_deployment, make_device(other_deployment, "other-1"), JANUARY, 2)
    delivered_all(link_of(deployment))
    monkeypatch.setattr(retention, "DELETE_CHUNK", 2)
    first = readings_retention_apply(max_rows=5, now=NOW)
    assert first.deleted == {deployment.pk: 5} and first.limited and not first.dropped
    assert len(readings_of(deployment)) == 3
    second = readings_retention_apply(max_rows=5, now=NOW)
    assert second.deleted == {deployment.pk: 3} and not second.limited
    assert readings_of(deployment) == []
    assert len(readings_of(other_deployment)) == 2
    assert "core_reading_p202501" in partition_names()


def test_readings_inside_the_window_stay(deployment, january, make_device):
    store(deployment, make_device(deployment, "meter-2"), MAY, 3)
    delivered_all(link_of(deployment))
    readings_retention_apply(max_rows=1000, now=NOW)
    assert [r.ts.date() for r in readings_of(deployment)] == [MAY.date()] * 3


def test_keeps_everything_without_a_window(deployment, january):
    deployment.retention_days = None
    deployment.save()
    delivered_all(link_of(deployment))
    report = readings_retention_apply(max_rows=1000, now=NOW)
    assert report.deleted_total == 0 and not report.dropped
    assert len(readings_of(deployment)) == 8


def test_sqlite_keeps_everything_and_the_migration_leaves_it_alone(
        deployment, january, monkeypatch):
    delivered_all(link_of(deployment))
    monkeypatch.setattr(connection, "vendor", "sqlite")
    report = readings_retention_apply(max_rows=1000, now=NOW)
    assert not report.applied and report.deleted_total == 0
    assert partitions_list() == []
    migration = importlib.import_module("apps.core.migrations.0008_reading_partitioned_by_month")

    class Editor:
        connection = connection

        def execute(self, sql, params=None):
            raise AssertionError(f"no SQL on SQLite, got {sql}")

    migration.partition(None, Editor())
    migration.unpartition(None, Editor())
    monkeypatch.undo()
    assert len(readings_of(deployment)) == 8


def test_command_lists_partitions_and_creates_months_ahead():
    call_command("readings_partitions", "--list", stdout=(listing := _Out()))
    current = month_start(dt.datetime.now(dt.UTC))
    assert partition_name(current) in listing.text
    assert "core_reading_default" in listing.text and "rows (est.)" in listing.text
    call_command("readings_partitions", "--ahead", "6", stdout=(made := _Out()))
    for n in (5, 6):
        assert f"created {partition_name(add_months(current, n))}" in made.text
    assert partition_name(add_months(current, 6)) in partition_names()


def test_command_applies_retention_within_max_rows(deployment, other_deployment, january,
                                                   make_device):
    store(other_deployment, make_device(other_deployment, "other-1"), JANUARY, 2)
    delivered_all(link_of(deployment))
    call_command("readings_partitions", "--retention", "--max-rows", "3",
                 stdout=(out := _Out()))
    assert "0 partitions dropped, 3 readings deleted (stopped at --max-rows 3" in out.text
    assert len(readings_of(deployment)) == 5


def test_command_says_there_is_nothing_to_do_on_sqlite(monkeypatch):
    monkeypatch.setattr(connection, "vendor", "sqlite")
    call_command("readings_partitions", "--retention", stdout=(out := _Out()))
    assert "not partitioned on this database" in out.text


def test_preview_names_the_link_that_holds_readings_back(deployment, january):
    link_of(deployment, name="slow customer")
    preview = retention_preview(deployment=deployment, now=NOW)
    assert preview.past_window == 8 and preview.removable == 0
    assert preview.oldest == JANUARY
    assert preview.holding == ("delivery link test: slow customer (Active): has not "
                               "delivered past seq 0",)


def test_admin_shows_what_retention_removes_on_the_deployment(admin_client, deployment,
                                                              january):
    link_of(deployment, name="slow customer")
    page = admin_client.get(reverse("admin:core_deployment_change", args=[deployment.pk]))
    text = page.content.decode()
    assert "What retention removes" in text
    assert "Window 30 days: 8 readings from 2025-01-10" in text
    assert "0 leave at the next run" in text
    assert "Held back by:" in text and "slow customer" in text


def test_admin_says_a_deployment_without_window_keeps_everything(admin_client, deployment):
    page = admin_client.get(reverse("admin:core_deployment_change", args=[deployment.pk]))
    assert "no retention window, every reading is kept" in page.content.decode()


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def write(self, chunk: str) -> None:
        self.text += chunk

    def flush(self) -> None:
        pass


def test_ingest_counts_readings_merged_into_gaps_as_new(deployment, make_device):
    device = make_device(deployment)
    store(deployment, device, MAY, 1)
    store(deployment, device, MAY + 10 * dt.timedelta(minutes=15), 1, value=500.0)
    result = readings_ingest(deployment=deployment, source="test", records=[
        ReadingIn(device=device.external_id, parameter="voltage",
                  ts=MAY + i * dt.timedelta(minutes=15), value=230.0 + i) for i in range(11)])
    assert (result.inserted, result.updated, result.unchanged) == (9, 1, 1)


def test_preview_says_when_the_hourly_run_comes(deployment, january):
    from django.utils import timezone
    from django_celery_beat.models import PeriodicTask

    from apps.core.schedules import schedules_setup

    assert retention_preview(deployment=deployment).next_run.startswith("not scheduled")
    schedules_setup()
    assert retention_preview(deployment=deployment).next_run == "at the next beat run"
    ran = timezone.now() - dt.timedelta(minutes=10)
    PeriodicTask.objects.filter(task="core.readings_maintain").update(last_run_at=ran)
    due = timezone.localtime(ran + dt.timedelta(hours=1)).strftime("%Y-%m-%d %H:%M")
    assert retention_preview(deployment=deployment).next_run.startswith(due)
