"""Backfill, live delivery and verification against the sandbox platform over a socket."""

import datetime as dt

import pytest

from apps.core.models import OutboundBatch
from apps.core.services import outbox_dispatch
from apps.dexma import services
from apps.dexma.client import Is3Client
from apps.dexma.models import Backfill
from apps.dexma.services import backfill as backfill_module
from apps.sandbox.dexma.models import (
    AppToken,
    Is3Stats,
    PlatformDatasource,
    PlatformDeployment,
)
from tests.dexma.conftest import TOKEN

from .helpers import datasource_with, ingest

pytestmark = pytest.mark.django_db(transaction=True)
MADRID_MIDNIGHT = dt.datetime(2026, 3, 28, 23, tzinfo=dt.UTC)  # 29 March: clocks go forward


@pytest.fixture
def platform(live_server, settings):
    settings.DEXMA_API_URL = live_server.url + "/sandbox/dexma/v3"
    settings.DEXMA_INSERT_URL = live_server.url + "/sandbox/dexma/is3/readings"
    account = PlatformDeployment.objects.create(dep_id="demoDEXMA-e2db4391", name="Demo")
    AppToken.objects.create(deployment=account, app_id="63", token=TOKEN)
    return account


def platform_datasource(account, zone="Europe/Madrid", key="hub-madrid-hq"):
    return PlatformDatasource.objects.create(deployment=account, app_id="63", key=key,
                                             name="Madrid HQ", timezone=zone,
                                             source_token="src-token-260")


@pytest.fixture
def meters(deployment, make_device):
    devices = [make_device(deployment, "MAD-MAIN-01"), make_device(deployment, "MAD-HVAC-02")]
    stamps = [MADRID_MIDNIGHT + dt.timedelta(minutes=15 * i) for i in range(2 * 92)]
    for n, device in enumerate(devices):
        ingest(deployment, device, "active_energy_delta", stamps,
               value=lambda i, n=n: round(0.25 * i + n, 2), period=dt.timedelta(minutes=15))
    return devices


def backfill_of(datasource):
    return services.backfill_start(datasource=datasource, date_from=MADRID_MIDNIGHT,
                                   date_to=MADRID_MIDNIGHT + dt.timedelta(days=3))


def test_backfill_across_the_dst_change_arrives_complete_and_verifies(
        platform, installation, meters):
    remote = platform_datasource(platform)
    datasource = datasource_with(installation, meters, ["active_energy_delta"],
                                 platform_id=remote.pk)

    backfill = services.backfill_run(backfill=backfill_of(datasource))
    result = services.datasource_verify(datasource=datasource, date_from=backfill.date_from,
                                        date_to=backfill.date_to)

    assert backfill.state == Backfill.State.DONE and backfill.values_sent == 368
    stats = Is3Stats.objects.get(datasource=remote)
    assert (stats.stored, stats.discarded, stats.overwrites, stats.out_of_order) == \
        (368, 0, 0, 0)
    assert result.summary == "96 of 96 sampled intervals match"
    datasource.refresh_from_db()
    assert datasource.verification == "96 of 96 sampled intervals match"


def test_verification_catches_intervals_the_platform_discarded(
        platform, installation, deployment, make_device):
    # The hub believes the datasource is in UTC, the platform has it in Madrid: the UTC
    # midnights are misaligned there, so IS3 answers OK and drops every day.
    remote = platform_datasource(platform)
    meter = make_device(deployment, "MAD-MAIN-01")
    days = [dt.datetime(2026, 5, d, tzinfo=dt.UTC) for d in range(1, 4)]
    ingest(deployment, meter, "active_energy_delta", days, value=24.0, period=dt.timedelta(days=1))
    datasource = datasource_with(installation, [meter], ["active_energy_delta"],
                                 platform_id=remote.pk, zone="UTC")

    backfill = services.backfill_run(backfill=services.backfill_start(
        datasource=datasource, date_from=days[0], date_to=days[-1] + dt.timedelta(days=1)))
    result = services.datasource_verify(datasource=datasource, date_from=backfill.date_from,
                                        date_to=backfill.date_to)

    assert backfill.state == Backfill.State.DONE  # IS3 said OK to every batch...
    assert Is3Stats.objects.get(datasource=remote).discarded == 3
    assert result.summary == "0 of 3 sampled intervals match; 3 differ"  # ...but kept nothing
    assert result.differences[0]["dexma"] is None


def test_backfill_resumes_after_a_crash_without_resending_acknowledged_batches(
        platform, installation, meters, monkeypatch):
    monkeypatch.setattr(backfill_module, "MAX_VALUES", 100)
    remote = platform_datasource(platform)
    datasource = datasource_with(installation, meters, ["active_energy_delta"],
                                 platform_id=remote.pk)
    backfill = backfill_of(datasource)
    services.backfill_plan(backfill=backfill)
    with Is3Client() as client:  # two batches go out, then the process dies
        outbox_dispatch(send=services.Is3Sender(datasource=datasource, client=client),
                        link=datasource.link, limit=2)

    backfill = services.backfill_run(backfill=Backfill.objects.get(pk=backfill.pk))

    stats = Is3Stats.objects.get(datasource=remote)
    assert backfill.state == Backfill.State.DONE and backfill.batches == 4
    assert (stats.requests, stats.stored, stats.overwrites) == (4, 368, 0)
    assert not OutboundBatch.objects.exclude(state=OutboundBatch.State.SENT).exists()


def test_backfill_task_works_in_slices_and_queues_its_continuation(
        platform, installation, meters, monkeypatch, settings):
    """Each run sends for one slice (at least one round of batches), then queues the rest
    behind the tasks already waiting, straight away while it makes progress."""
    from apps.dexma import tasks

    monkeypatch.setattr(backfill_module, "MAX_VALUES", 50)  # 8 batches; a round sends 5
    settings.TASK_SLICE_SECONDS = 0
    queued = []
    monkeypatch.setattr(tasks.backfill_run, "apply_async",
                        lambda args, countdown: queued.append((args, countdown)))
    remote = platform_datasource(platform)
    datasource = datasource_with(installation, meters, ["active_energy_delta"],
                                 platform_id=remote.pk)
    backfill = backfill_of(datasource)

    first = tasks.backfill_run(backfill.pk)
    assert first["sent"] == 250 and queued == [((backfill.pk,), 0)]

    second = tasks.backfill_run(backfill.pk)
    assert second["sent"] == 368 and len(queued) == 1
    assert Backfill.objects.get(pk=backfill.pk).state == Backfill.State.DONE


def test_live_delivery_reaches_the_sandbox_platform(platform, installation, meters):
    remote = platform_datasource(platform)
    datasource = datasource_with(installation, meters, ["active_energy_delta"],
                                 platform_id=remote.pk)

    result = services.datasource_deliver(datasource=datasource)

    assert result.sent == 1 and result.values_sent == 368
    assert Is3Stats.objects.get(datasource=remote).stored == 368


def test_hourly_values_after_quarter_hours_are_quarantined_not_lost_at_the_platform(
        platform, installation, deployment, make_device):
    from apps.core.models import Quarantine
    from apps.sandbox.dexma.models import Is3Value

    remote = platform_datasource(platform)
    meter = make_device(deployment, "MAD-NEW-03")
    datasource = datasource_with(installation, [meter], ["active_energy_delta"],
                                 platform_id=remote.pk)
    start = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    ingest(deployment, meter, "active_energy_delta",
           [start + dt.timedelta(minutes=15 * i) for i in range(8)],
           period=dt.timedelta(minutes=15))
    services.datasource_deliver(datasource=datasource)
    ingest(deployment, meter, "active_energy_delta",
           [start + dt.timedelta(hours=3 + i) for i in range(5)], value=4.0,
           period=dt.timedelta(hours=1))

    services.datasource_deliver(datasource=datasource)

    held = Is3Value.objects.filter(series__datasource=remote).count()
    quarantined = Quarantine.objects.filter(source=f"dexma:datasource:{datasource.key}").count()
    stats = Is3Stats.objects.get(datasource=remote)
    assert (held, quarantined, stats.discarded) == (8, 5, 0)
