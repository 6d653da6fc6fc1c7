"""`manage.py dexma_backfill` and the admin's view of backfills, against the sandbox."""

import datetime as dt
import io
from zoneinfo import ZoneInfo

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.dexma.models import Backfill
from apps.sandbox.dexma.models import AppToken, Is3Stats, PlatformDatasource, PlatformDeployment
from tests.dexma.conftest import TOKEN

from .helpers import datasource_with, ingest

pytestmark = pytest.mark.django_db(transaction=True)
DAY = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


@pytest.fixture
def sending(live_server, settings, installation, deployment, make_device):
    settings.DEXMA_API_URL = live_server.url + "/sandbox/dexma/v3"
    settings.DEXMA_INSERT_URL = live_server.url + "/sandbox/dexma/is3/readings"
    account = PlatformDeployment.objects.create(dep_id=installation.dep_id, name="Demo")
    AppToken.objects.create(deployment=account, app_id="63", token=TOKEN)
    remote = PlatformDatasource.objects.create(
        deployment=account, app_id="63", key="hub-madrid-hq", name="Madrid HQ",
        timezone="Europe/Madrid", source_token="src-token-260")
    meter = make_device(deployment, "MAD-MAIN-01")
    ingest(deployment, meter, "active_energy_delta",
           [DAY - dt.timedelta(hours=2) + dt.timedelta(minutes=15 * i) for i in range(96)],
           value=lambda i: i / 4, period=dt.timedelta(minutes=15))
    datasource = datasource_with(installation, [meter], ["active_energy_delta"],
                                 platform_id=remote.pk)
    return datasource, remote


def test_command_backfills_with_a_progress_bar_and_verifies(sending):
    datasource, remote = sending
    out = io.StringIO()

    call_command("dexma_backfill", datasource.key, "--from", "2026-06-01", "--to", "2026-06-02",
                 stdout=out)

    text = out.getvalue()
    assert "100%|" in text and "96/96 values" in text and "values/s" in text
    assert "Verification: 48 of 48 sampled intervals match" in text
    assert Is3Stats.objects.get(datasource=remote).stored == 96


def test_admin_shows_backfill_progress(sending, admin_client):
    datasource, _ = sending
    call_command("dexma_backfill", datasource.key, "--from", "2026-06-01", "--to", "2026-06-02",
                 "--no-verify", stdout=io.StringIO())
    assert Backfill.objects.get().state == Backfill.State.DONE

    page = admin_client.get("/admin/dexma/backfill/").content.decode()

    assert "96 of 96 values (100%)" in page


def test_days_counts_back_from_to(sending):
    datasource, remote = sending

    call_command("dexma_backfill", datasource.key, "--days", "1", "--to", "2026-06-02",
                 "--no-verify", stdout=io.StringIO())

    backfill = Backfill.objects.get()
    madrid = ZoneInfo("Europe/Madrid")
    assert (backfill.date_from, backfill.date_to) == (
        dt.datetime(2026, 6, 1, tzinfo=madrid), dt.datetime(2026, 6, 2, tzinfo=madrid))
    # Named in the datasource's zone: in UTC it would start on 2026-05-31.
    assert str(backfill).startswith(
        "backfill 2026-06-01 00:00 to 2026-06-02 00:00 (Europe/Madrid) of ")
    assert Is3Stats.objects.get(datasource=remote).stored == 96


def test_days_alone_is_the_last_local_days_today_included(sending):
    datasource, _ = sending
    madrid = ZoneInfo("Europe/Madrid")
    tomorrow = timezone.localdate(timezone=madrid) + dt.timedelta(days=1)

    call_command("dexma_backfill", datasource.key, "--days", "7", "--no-verify",
                 stdout=io.StringIO())

    backfill = Backfill.objects.get()
    assert backfill.date_to == dt.datetime.combine(tomorrow, dt.time(), tzinfo=madrid)
    assert backfill.date_to - backfill.date_from == dt.timedelta(days=7)
    assert backfill.state == Backfill.State.DONE


@pytest.mark.parametrize("args, message", [
    (["--days", "0"], "--days must be 1 or more"),
    (["--from", "2026-06-01"], "give a datasource and --from and --to, or --days N"),
])
def test_a_range_the_command_cannot_use_is_refused_saying_why(sending, args, message):
    datasource, _ = sending

    with pytest.raises(CommandError, match=message):
        call_command("dexma_backfill", datasource.key, *args, stdout=io.StringIO())
    assert not Backfill.objects.exists()
