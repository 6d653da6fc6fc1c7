"""The ops console: streams with state, late count, cadence warning, holes, backfills."""

import datetime as dt

import pytest
from django.urls import reverse

from apps.core.models import Run
from apps.wattics.models import WatticsAccount, WatticsStream
from apps.wattics.selectors import stream_cadence
from tests.wattics.conftest import Q, ingest

pytestmark = pytest.mark.django_db
NOW = dt.datetime(2026, 3, 3, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def ops(client, django_user_model):
    user = django_user_model.objects.create_superuser("ops", "ops@example.com", "pw")
    client.force_login(user)
    return client


def test_cadence_less_frequent_than_registered_is_a_mismatch(deployment, make_stream):
    stream = make_stream(deployment, interval_seconds=300)
    ingest(deployment, stream.device, "temperature", [20] * 8, start=NOW - 8 * Q)
    cadence = stream_cadence(stream=stream, now=NOW)
    assert cadence.observed_seconds == 900 and cadence.mismatch
    assert cadence.missing_intervals == 7 * 2


def test_holes_list_the_missing_registered_intervals(deployment, make_stream):
    stream = make_stream(deployment, interval_seconds=900)
    ingest(deployment, stream.device, "temperature", [20, 21, None, None, 22, 23],
           start=NOW - 6 * Q)
    cadence = stream_cadence(stream=stream, now=NOW)
    assert not cadence.mismatch
    assert [(h.after, h.before, h.missing) for h in cadence.holes] == [
        (NOW - 5 * Q, NOW - 2 * Q, 2)]


def test_stream_list_shows_state_late_count_and_cadence_warning(ops, deployment, make_stream):
    stream = make_stream(deployment, interval_seconds=300)
    WatticsStream.objects.filter(pk=stream.pk).update(late_count=4, observed_interval_seconds=900)
    Run.objects.create(kind="wattics.backfill", target="1 stream(s): wm-1",
                       counts={"packets_total": 200, "packets_done": 50, "percent": 25.0})
    page = ops.get(reverse("admin:wattics_watticsstream_changelist")).content.decode()
    assert "wm-1" in page and "Active" in page
    assert "cadence mismatch: data every 15 min, registered 5 min" in page
    assert 'href="/admin/wattics/watticslatepacket/?stream__id__exact=' in page
    assert '<progress max="200" value="50">' in page and "25.0%" in page


def test_stream_page_shows_holes_and_the_credentials_in_use(ops, deployment, make_stream,
                                                            account):
    stream = make_stream(deployment, interval_seconds=900)
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    ingest(deployment, stream.device, "temperature", [20, None, None, 21], start=now - 4 * Q)
    page = ops.get(reverse("admin:wattics_watticsstream_change", args=[stream.pk]))
    text = page.content.decode()
    assert "2 missing interval(s) in 1 hole(s)" in text
    assert "Acme</a> — end-user level, user acme" in text


def test_account_page_never_shows_the_password(ops, account):
    page = ops.get(reverse("admin:wattics_watticsaccount_change", args=[account.pk]))
    assert "s3cret" not in page.content.decode()


def test_account_form_keeps_the_password_when_left_blank(ops, account, deployment):
    url = reverse("admin:wattics_watticsaccount_change", args=[account.pk])
    response = ops.post(url, {"name": "Acme 2", "username": "acme", "password": "",
                              "api_url": "", "deployment": deployment.pk})
    assert response.status_code == 302
    account = WatticsAccount.objects.get(pk=account.pk)
    assert account.name == "Acme 2" and account.password == "s3cret"


def test_adding_an_electricity_stream_maps_totals_on_phase_one(ops, deployment, make_device):
    device = make_device(deployment, "meter-9")
    response = ops.post(reverse("admin:wattics_watticsstream_add"), {
        "deployment": deployment.pk, "device": device.pk, "meter_id": "wm-9",
        "kind": "electricity", "interval_seconds": 900, "timezone": "", "start_at_0": "",
        "start_at_1": "", "channels-TOTAL_FORMS": 0, "channels-INITIAL_FORMS": 0,
    })
    assert response.status_code == 302, response.content.decode()[:3000]
    stream = WatticsStream.objects.get(meter_id="wm-9")
    assert stream.link.platform == "wattics" and stream.link.ordered
    assert sorted(stream.channels.values_list("field", flat=True)) == [
        "aP_1", "apP_1", "c_1", "pC_1", "rP_1", "v_1"]


def test_stream_page_accounts_for_every_reading(ops, deployment, make_stream, account):
    import responses

    from apps.wattics.services import stream_plan, stream_push
    from tests.wattics.fake import FakeWattics

    stream = make_stream(deployment)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        FakeWattics(rsps)
        ingest(deployment, stream.device, "temperature", [20, 21, 22])
        stream_push(stream=stream)
        ingest(deployment, stream.device, "temperature", [30, None, None, 23])
    stream_plan(stream=stream)  # the correction of a sent instant is late; 23 waits
    text = ops.get(reverse("admin:wattics_watticsstream_change", args=[stream.pk])
                   ).content.decode()

    assert "<th>Accepted</th><td>4</td>" in text
    assert "<th>Delivered</th><td>2</td>" in text
    assert "<th>Pending</th><td>1</td>" in text
    assert "<th>Undeliverable: late: Wattics already had a later packet" in text
    assert "unaccounted" not in text
