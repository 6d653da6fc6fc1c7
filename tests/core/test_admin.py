"""The ops console: every page renders for staff and only for staff, huge tables are never
counted, and the actions call the services that fix things."""

import datetime as dt
import json
import re

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from apps.core import selectors
from apps.core.admin import EstimatedCountPaginator
from apps.core.models import (
    DailyIngestStat,
    DeliveryLink,
    OutboundBatch,
    Parameter,
    Quarantine,
    Reading,
    Run,
)
from apps.core.services import ReadingIn, link_get_or_create, readings_ingest
from apps.dexma.models import DexmaDatasource, Installation, SelectedDevice
from apps.dexma.services import backfill_plan, backfill_start
from apps.partner_api.models import IdempotencyRecord
from apps.partner_api.services import Answer, apikey_create, idempotent, request_fingerprint
from apps.pull.models import Connection, Endpoint, SeenUnit
from apps.pull.services import connection_setup
from apps.sandbox.dexma.models import (
    AppToken,
    Is3Series,
    Is3Stats,
    Is3Value,
    PlatformDatasource,
    PlatformDeployment,
    PlatformDevice,
    PlatformFault,
    PlatformRequest,
    PlatformSession,
)
from apps.sandbox.upstream.models import Profile
from apps.sandbox.wattics.models import (
    CollectorAccount,
    CollectorFault,
    CollectorMeter,
    CollectorPacket,
    CollectorRequest,
)
from apps.volue.models import VolueCustomer, VolueMeter, VolueResource, WebhookSubscription
from apps.volue.schemas import notification_parse
from apps.volue.services import notification_process, notification_store, report_plan
from apps.wattics.models import (
    WatticsAccount,
    WatticsLatePacket,
    WatticsPartner,
    WatticsPartnerMember,
)
from apps.wattics.services import stream_create, stream_plan
from tests.pull.conftest import FIELDS

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
REGISTERED = sorted(model._meta.label_lower for model in admin.site._registry)


def _url(label: str, view: str, *args) -> str:
    app_label, model_name = label.split(".")
    return reverse(f"admin:{app_label}_{model_name}_{view}", args=args)


def _ingest(deployment, *records: ReadingIn):
    return readings_ingest(deployment=deployment, records=list(records), source="test")


def _action(client, label: str, action: str, objects) -> object:
    return client.post(
        _url(label, "changelist"),
        {"action": action, "_selected_action": [o.pk for o in objects], "index": 0},
        follow=True,
    )


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def _link(deployment, **extra) -> DeliveryLink:
    defaults = {"platform": "wattics", "name": "acme-main", "deployment": deployment}
    return DeliveryLink.objects.create(**{**defaults, **extra})


def _batch(link, position, state, **extra) -> OutboundBatch:
    return OutboundBatch.objects.create(
        link=link, position=position, idempotency_key=f"test:{link.pk}:{position}",
        seq_from=position - 1, seq_to=position, item_count=1, state=state,
        next_attempt_at=extra.pop("next_attempt_at", timezone.now()), **extra,
    )


@pytest.fixture
def world(deployment, make_device, admin_user):
    """One object of every registered model that has an admin page worth opening."""
    from django_celery_beat.models import (
        ClockedSchedule,
        CrontabSchedule,
        IntervalSchedule,
        PeriodicTask,
        SolarSchedule,
    )

    device = make_device(deployment, "meter-1")
    _ingest(deployment, ReadingIn("meter-1", "active_energy", T0, 5),
            ReadingIn("ghost", "active_energy", T0, 1))
    run = Run.objects.create(kind="sync", target="upstream acme", deployment=deployment,
                             status=Run.Status.FAILED, finished_at=timezone.now(),
                             counts={"inserted": 3}, error="TransientError: HTTP 503")
    link = _link(deployment)
    interval = IntervalSchedule.objects.create(every=10, period=IntervalSchedule.SECONDS)
    objects = {
        "core.deployment": deployment,
        "core.site": device.site,
        "core.datasource": device.datasource,
        "core.device": device,
        "core.parameter": Parameter.objects.get(key="active_energy"),
        "core.reading": Reading.objects.get(),
        "core.run": run,
        "core.quarantine": Quarantine.objects.get(),
        "core.dailyingeststat": DailyIngestStat.objects.get(),
        "core.deliverylink": link,
        "core.outboundbatch": _batch(link, 1, OutboundBatch.State.DEAD, attempts=3,
                                     last_status=500, last_error="HTTP 500"),
        "auth.user": admin_user,
        "auth.group": Group.objects.create(name="ops"),
        "django_celery_beat.intervalschedule": interval,
        "django_celery_beat.crontabschedule": CrontabSchedule.objects.create(),
        "django_celery_beat.solarschedule": SolarSchedule.objects.create(
            event="sunrise", latitude=40.4, longitude=-3.7),
        "django_celery_beat.clockedschedule": ClockedSchedule.objects.create(
            clocked_time=timezone.now()),
        "django_celery_beat.periodictask": PeriodicTask.objects.create(
            name="sync acme", task="apps.pull.tasks.sync", interval=interval),
    }
    objects.update(_dexma_world(deployment, device))
    objects.update(_partner_api_world(deployment))
    objects.update(_pull_world(deployment))
    objects.update(_sandbox_world())
    objects.update(_volue_world(deployment, device))
    objects.update(_wattics_world(deployment, device))
    return objects


def _dexma_world(deployment, device) -> dict:
    """The DEXMA app's rows as the install handshake and the embedded page leave them (their
    services call the platform over HTTP, so the rows are written here); the backfill is
    started and planned by its services."""
    installation = Installation(dep_id="demoDEXMA-e2db4391", deployment=deployment)
    installation.set_token("5b36281ac7034f9a65cd")
    installation.save()
    datasource = DexmaDatasource.objects.create(
        installation=installation, deployment=deployment, name="Madrid HQ", platform_id=260,
        key="hub-madrid-hq", source_token="src-token-260",
        link=link_get_or_create(platform="dexma", name=f"{installation.dep_id}/260",
                                deployment=deployment),
    )
    selected = SelectedDevice.objects.create(datasource=datasource, device=device)
    selected.parameters.set([Parameter.objects.get(key="active_energy")])
    backfill = backfill_start(datasource=datasource, date_from=T0,
                              date_to=T0 + dt.timedelta(days=1))
    backfill_plan(backfill=backfill)  # sending: its progress is read from the outbox
    return {"dexma.installation": installation, "dexma.dexmadatasource": datasource,
            "dexma.backfill": backfill}


def _partner_api_world(deployment) -> dict:
    """A key issued by its service, and the answer it kept for a retried request."""
    key, _ = apikey_create(name="Scaler production", deployments=[deployment])
    fingerprint = request_fingerprint(method="POST", path="/readings", body=b"[]")
    idempotent(key=key, idempotency_key="retry-1", fingerprint=fingerprint,
               produce=lambda: Answer(201, {"inserted": 0}))
    return {"partner_api.apikey": key,
            "partner_api.idempotencyrecord": IdempotencyRecord.objects.get(api_key=key)}


def _pull_world(deployment) -> dict:
    """A connection as `make_connection` builds one: validated, then set up by its service."""
    provider = Connection(
        deployment=deployment, name="Provider", key="provider",
        staging_url="https://provider.test/api/", auth_kind=Connection.AuthKind.API_KEY_HEADER,
        api_key="sandbox-key",
    )
    provider.full_clean(exclude=["deployment"])
    provider.save()
    endpoint = Endpoint(connection=provider, role=Endpoint.Role.METERS, path="meters",
                        fields=FIELDS["meters"])
    endpoint.full_clean()
    endpoint.save()
    SeenUnit.objects.create(connection=provider, unit="kWh")
    return {"pull.connection": connection_setup(connection=provider)}


def _sandbox_world() -> dict:
    """The simulators' own state: only their HTTP views write it, so the ORM does here."""
    platform = PlatformDeployment.objects.create(dep_id="demoDEXMA-e2db4391", name="Demo")
    datasource = PlatformDatasource.objects.create(deployment=platform, app_id="63",
                                                   key="hub-madrid-hq", name="Madrid HQ")
    account = CollectorAccount(username="acme")
    account.set_password("s3cret")
    account.save()
    meter = CollectorMeter.objects.create(meter_id="wm-1", account=account,
                                          kind=CollectorMeter.Kind.SINGLE)
    packet = {"id": "wm-1", "tsISO8601": "2026-06-01T02:00:00.000+02:00", "value": 5}
    return {
        "sandbox_dexma.platformdeployment": platform,
        "sandbox_dexma.apptoken": AppToken.objects.create(deployment=platform, app_id="63"),
        "sandbox_dexma.platformdatasource": datasource,
        "sandbox_dexma.platformdevice": PlatformDevice.objects.create(
            datasource=datasource, local_id="meter-1", name="meter-1"),
        "sandbox_dexma.platformsession": PlatformSession.objects.create(
            deployment=platform, user_name="Ana", user_email="ana@example.com"),
        "sandbox_dexma.is3stats": Is3Stats.objects.create(datasource=datasource, requests=1,
                                                          stored=1),
        "sandbox_dexma.is3value": Is3Value.objects.create(series=Is3Series.objects.create(
            datasource=datasource, did="meter-1", p=402, last_ts=T0), ts=T0, v=1.5),
        "sandbox_upstream.profile": Profile.objects.create(slug="provider", data_start=T0),
        "sandbox_wattics.collectoraccount": account,
        "sandbox_wattics.collectormeter": meter,
        "sandbox_wattics.collectorpacket": CollectorPacket.objects.create(
            meter=meter, ts=T0, packet=packet),
        "sandbox_wattics.collectorfault": CollectorFault.objects.create(
            status=CollectorFault.Status.E503, remaining=1),
        "sandbox_wattics.collectorrequest": CollectorRequest.objects.create(
            meter_id="meter-1", arrived_at=T0, status=429, retry_after=10),
        "sandbox_dexma.platformfault": PlatformFault.objects.create(
            target=PlatformFault.Target.IS3, status=503),
        "sandbox_dexma.platformrequest": PlatformRequest.objects.create(
            target=PlatformFault.Target.IS3, arrived_at=T0, status=503),
    }


def _volue_world(deployment, device) -> dict:
    """A customer metering one point (registering it calls Volue, so the rows are written
    here), and a power-limit request for it that arrived by webhook: stored, processed into
    an event with its target, and planned into a report by the app's services."""
    customer = VolueCustomer.objects.create(deployment=deployment, key="acme", name="Acme")
    meter = VolueMeter.objects.create(customer=customer, device=device,
                                      meter_point_id="707057500000000011", remote_id="loc-1")
    resource = VolueResource.objects.create(customer=customer, resource_id="tank-1",
                                            meter=meter, metadata={"capacity": 500})
    subscription = WebhookSubscription.objects.create(
        url="https://hub.test/volue/webhook", secret="whsec",
        notification_types=["LocationLPCRequested"], remote_id="sub-1")
    points = [{"timestamp": (T0 + dt.timedelta(hours=h)).isoformat(), "maxPowerInKiloWatts": 5}
              for h in range(2)]
    body = json.dumps({
        "notificationId": "n-1", "eventId": "e-1", "eventCreatedAtUtc": "2026-05-31T10:00:00Z",
        "notificationSentUtc": "2026-05-31T10:00:01Z", "notificationType": "LocationLPCRequested",
        "payload": {"payloadType": "LocationLPC", "targets": [{
            "locationId": "loc-1", "meterPointId": meter.meter_point_id,
            "resolution": "01:00:00", "points": points}]},
    }).encode()
    notification = notification_store(notification=notification_parse(body))
    event = notification_process(notification=notification)
    targets = list(event.targets.all())
    report = report_plan(event=event, customer=customer, targets=targets,
                         now=T0 + dt.timedelta(hours=3))
    return {"volue.voluecustomer": customer, "volue.volueresource": resource,
            "volue.webhooksubscription": subscription, "volue.notification": notification,
            "volue.event": event, "volue.eventtarget": targets[0], "volue.energyreport": report}


def _wattics_world(deployment, device) -> dict:
    """A partner group and an end-user account (no services: ops enter them in the admin),
    and a stream on the meter whose planning records a corrected reading, older than what it
    already planned, as a late packet."""
    partner = WatticsPartner.objects.create(name="Reseller A")
    WatticsPartnerMember.objects.create(partner=partner, deployment=deployment)
    account = WatticsAccount.objects.create(name="Acme", username="acme", password="s3cret",
                                            deployment=deployment)
    stream = stream_create(device=device, meter_id="wm-1", kind="single",
                           channels={"value": "active_energy"}, timezone="Europe/Madrid")
    stream_plan(stream=stream)
    _ingest(deployment, ReadingIn("meter-1", "active_energy", T0, 6))  # a correction
    stream_plan(stream=stream)
    return {"wattics.watticspartner": partner, "wattics.watticsaccount": account,
            "wattics.watticsstream": stream,
            "wattics.watticslatepacket": WatticsLatePacket.objects.get(stream=stream)}


@pytest.fixture
def visitor_client(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("visitor", password="pw"))
    return client


# --- Every page, for staff and for nobody else -----------------------------------------


@pytest.mark.parametrize("label", REGISTERED)
def test_changelist_renders_for_a_superuser(admin_client, world, label):
    assert admin_client.get(_url(label, "changelist")).status_code == 200


@pytest.mark.parametrize("label", REGISTERED)
def test_add_view_renders_or_is_refused_where_the_data_is_machine_written(
    admin_client, rf, admin_user, label
):
    model_admin = admin.site._registry[apps.get_model(label)]
    request = rf.get("/")
    request.user = admin_user
    response = admin_client.get(_url(label, "add"))
    assert response.status_code == (200 if model_admin.has_add_permission(request) else 403)


@pytest.mark.parametrize("label", REGISTERED)
def test_change_view_renders_for_a_superuser(admin_client, world, label):
    obj = world.get(label) or apps.get_model(label)._default_manager.first()
    if obj is None:
        pytest.skip(f"no {label} to open: add one to the `world` fixture")
    response = admin_client.get(_url(label, "change", obj.pk))
    assert response.status_code == 200
    assert response.context["original"] == obj


@pytest.mark.parametrize("label", REGISTERED)
def test_changelist_sends_an_anonymous_user_to_the_login(client, label):
    response = client.get(_url(label, "changelist"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.parametrize("label", REGISTERED)
def test_changelist_sends_a_non_staff_user_to_the_login(visitor_client, label):
    response = visitor_client.get(_url(label, "changelist"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_change_view_is_refused_to_a_non_staff_user(visitor_client, world):
    response = visitor_client.get(_url("core.quarantine", "change", world["core.quarantine"].pk))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


@pytest.mark.parametrize("user_client", ["client", "visitor_client"])
def test_index_is_refused_to_anonymous_and_non_staff_users(request, user_client):
    response = request.getfixturevalue(user_client).get(reverse("admin:index"))
    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_staff_without_permissions_are_forbidden_the_pages(client, django_user_model):
    client.force_login(django_user_model.objects.create_user("intern", is_staff=True))
    assert client.get(_url("core.reading", "changelist")).status_code == 403
    assert "overview" not in client.get(reverse("admin:index")).context


# --- The overview at the top of the index -------------------------------------------


def test_index_opens_with_the_overview(admin_client, world):
    response = admin_client.get(reverse("admin:index"))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="hub-readings-chart"' in html
    assert 'id="readings-per-day"' in html
    assert "core/overview.js" in html
    assert "acme-main" in html  # the delivery link's backlog row
    assert "upstream acme" in html  # the latest run
    counts = response.context["counts"]
    assert (counts.deployments, counts.devices, counts.open_quarantine) == (1, 1, 1)


def test_overview_counts_a_young_table_exactly_whatever_its_statistics_say(
        admin_client, deployment, make_device, monkeypatch):
    # A fresh database has no ANALYZE yet: the statistics say 0 while readings are there.
    monkeypatch.setattr(selectors, "table_rows_estimate", lambda *, model: 0)
    make_device(deployment, "meter-1")
    _ingest(deployment, *(ReadingIn("meter-1", "active_energy", T0 + dt.timedelta(hours=h), h)
                          for h in range(3)))
    response = admin_client.get(reverse("admin:index"))
    counts = response.context["counts"]
    assert (counts.readings, counts.readings_estimated) == (3, False)
    assert "≈" not in response.content.decode()


def test_overview_estimates_a_big_table_from_its_statistics(admin_client, deployment,
                                                           make_device, monkeypatch):
    monkeypatch.setattr(selectors, "EXACT_COUNT_UP_TO", 2)
    monkeypatch.setattr(selectors, "table_rows_estimate", lambda *, model: 123_456_789)
    make_device(deployment, "meter-1")
    _ingest(deployment, *(ReadingIn("meter-1", "active_energy", T0 + dt.timedelta(hours=h), h)
                          for h in range(3)))
    response = admin_client.get(reverse("admin:index"))
    assert (response.context["counts"].readings, response.context["counts"].readings_estimated
            ) == (123_456_789, True)
    assert "≈&#8239;123,456,789" in response.content.decode()


def test_index_has_no_inline_script(admin_client, world):
    html = admin_client.get(reverse("admin:index")).content.decode()
    for tag in re.findall(r"<script\b[^>]*>", html):
        assert "src=" in tag or 'type="application/json"' in tag, tag


def test_index_flags_runs_failed_in_the_last_day(admin_client, world):
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert '<span class="hub-badge hub-badge-failed">1 failed</span>' in html


def test_index_has_no_failure_banner_when_runs_succeed(admin_client, deployment):
    Run.objects.create(kind="sync", status=Run.Status.SUCCEEDED, finished_at=timezone.now())
    html = admin_client.get(reverse("admin:index")).content.decode()
    assert "hub-badge-failed" not in html
    assert "0 failed" in html


def test_chart_data_is_the_daily_ingest_stats(admin_client, deployment, other_deployment):
    today = timezone.now().date()
    DailyIngestStat.objects.create(deployment=deployment, day=today, accepted=7, quarantined=1)
    DailyIngestStat.objects.create(deployment=other_deployment, day=today, accepted=5)
    response = admin_client.get(reverse("admin:index"))
    days = response.context["chart_days"]
    assert len(days) == 30
    assert days[-1] == {"day": today.isoformat(), "accepted": 12, "quarantined": 1}


def test_readings_per_day_fills_days_without_stats(deployment):
    today = dt.date(2026, 6, 30)
    DailyIngestStat.objects.create(deployment=deployment, day=dt.date(2026, 6, 28), accepted=3)
    DailyIngestStat.objects.create(deployment=deployment, day=dt.date(2026, 5, 1), accepted=9)
    days = selectors.readings_per_day(days=5, today=today)
    assert [d.day.day for d in days] == [26, 27, 28, 29, 30]
    assert [d.accepted for d in days] == [0, 0, 3, 0, 0]


def test_link_backlog_counts_open_and_dead_batches(deployment):
    now = timezone.now()
    link = _link(deployment)
    _batch(link, 1, OutboundBatch.State.SENT)
    _batch(link, 2, OutboundBatch.State.DEAD)
    _batch(link, 3, OutboundBatch.State.RETRY, next_attempt_at=now - dt.timedelta(minutes=5))
    _batch(link, 4, OutboundBatch.State.PENDING, next_attempt_at=now - dt.timedelta(minutes=1))
    _batch(link, 5, OutboundBatch.State.PENDING, next_attempt_at=now + dt.timedelta(minutes=1))
    [row] = selectors.link_backlog(now=now)
    assert (row.pending, row.retry, row.dead) == (2, 1, 1)
    assert row.oldest_due_age == dt.timedelta(minutes=5)


def test_link_backlog_lists_broken_links_first(deployment):
    _link(deployment, name="fine")
    _link(deployment, name="refused", state=DeliveryLink.State.BROKEN,
          broken_reason="HTTP 401: credentials rejected")
    assert [row.name for row in selectors.link_backlog()] == ["refused", "fine"]


# --- Readings: a hundred million rows ---------------------------------------------------


def _reading_queries(admin_client, **params) -> tuple[object, list[str]]:
    with CaptureQueriesContext(connection) as captured:
        response = admin_client.get(_url("core.reading", "changelist"), params)
    return response, [q["sql"] for q in captured.captured_queries]


def _counts_readings(sql: str) -> bool:
    return bool(re.search(r"count\s*\(", sql, re.IGNORECASE)) and "core_reading" in sql


@pytest.mark.parametrize("params", [{}, {"q": "meter-1"}, {"parameter__kind__exact": "cumulative"}],
                         ids=["unfiltered", "searched", "filtered"])
def test_readings_changelist_never_counts_the_table(admin_client, deployment, make_device,
                                                    params):
    make_device(deployment, "meter-1")
    _ingest(deployment, *(ReadingIn("meter-1", "active_energy", T0 + dt.timedelta(hours=h), h)
                          for h in range(3)))
    response, queries = _reading_queries(admin_client, **params)
    assert response.status_code == 200
    assert len(response.context["cl"].result_list) == 3
    assert not [sql for sql in queries if _counts_readings(sql)]


def test_readings_search_is_by_exact_device_external_id(admin_client, deployment, make_device):
    make_device(deployment, "meter-1")
    make_device(deployment, "meter-10")
    _ingest(deployment, ReadingIn("meter-1", "active_energy", T0, 1),
            ReadingIn("meter-10", "active_energy", T0, 2))
    response = admin_client.get(_url("core.reading", "changelist"), {"q": "meter-1"})
    assert [r.value for r in response.context["cl"].result_list] == [1]


def test_reading_list_walks_past_the_count_cap(admin_client, deployment, make_device,
                                               monkeypatch):
    from apps.core.admin import ReadingAdmin

    monkeypatch.setattr(EstimatedCountPaginator, "cap", 3)
    monkeypatch.setattr(ReadingAdmin, "list_per_page", 2)
    make_device(deployment, "meter-1")
    _ingest(deployment, *(ReadingIn("meter-1", "active_energy", T0 + dt.timedelta(hours=h), h)
                          for h in range(7)))
    page3 = admin_client.get(_url("core.reading", "changelist"), {"p": 3})
    cl = page3.context["cl"]
    assert [r.value for r in cl.result_list] == [2, 1]
    assert cl.next_page_url == "?p=4"
    assert "more than 3 readings" in page3.content.decode()
    last = admin_client.get(_url("core.reading", "changelist"), {"p": 4}).context["cl"]
    assert [r.value for r in last.result_list] == [0]
    assert last.next_page_url == ""


def test_unfiltered_reading_list_counts_from_table_statistics(admin_client, deployment,
                                                            make_device, monkeypatch):
    monkeypatch.setattr(selectors, "table_rows_estimate", lambda *, model: 123_456_789)
    make_device(deployment, "meter-1")
    _ingest(deployment, ReadingIn("meter-1", "active_energy", T0, 1))
    response = admin_client.get(_url("core.reading", "changelist"))
    assert "about 123,456,789 readings (estimated)" in response.content.decode()


def test_readings_are_read_only_and_only_superusers_delete(rf, admin_user, django_user_model):
    model_admin = admin.site._registry[Reading]
    staff = django_user_model.objects.create_user("staff", is_staff=True)
    request = rf.get("/")
    request.user = admin_user
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert model_admin.has_delete_permission(request)
    request.user = staff
    assert not model_admin.has_delete_permission(request)


def test_actions_on_every_row_of_a_huge_table_are_refused(admin_client, deployment,
                                                          make_device):
    make_device(deployment, "meter-1")
    _ingest(deployment, ReadingIn("meter-1", "active_energy", T0, 1))
    response = admin_client.post(
        _url("core.reading", "changelist"),
        {"action": "delete_selected", "select_across": "1", "index": 0,
         "_selected_action": [Reading.objects.get().pk]},
        follow=True,
    )
    assert Reading.objects.count() == 1
    assert any("select them on the page" in m for m in _messages(response))


# --- Quarantine: fix and replay --------------------------------------------------------


def test_replay_action_stores_the_reading_once_its_device_exists(admin_client, deployment,
                                                                 make_device):
    _ingest(deployment, ReadingIn("late-meter", "active_energy", T0, 5))
    entry = Quarantine.objects.get()
    make_device(deployment, "late-meter")
    response = _action(admin_client, "core.quarantine", "replay_selected", [entry])
    assert Reading.objects.get(device__external_id="late-meter").value == 5
    entry.refresh_from_db()
    assert entry.status == Quarantine.Status.REPLAYED
    assert "Replayed 1: the readings are stored." in _messages(response)


def test_replay_action_reports_records_that_still_fail(admin_client, deployment):
    _ingest(deployment, ReadingIn("ghost", "active_energy", T0, 5))
    response = _action(admin_client, "core.quarantine", "replay_selected",
                       Quarantine.objects.all())
    assert Quarantine.objects.get().status == Quarantine.Status.OPEN
    assert any("1 still fail validation" in m for m in _messages(response))


def test_fixed_payload_is_saved_and_replayed_from_the_change_page(admin_client, deployment,
                                                                  make_device):
    make_device(deployment, "m1")
    _ingest(deployment, ReadingIn("m1", "active_energy", "2026-06-01T00:00:00", 5))
    entry = Quarantine.objects.get()
    url = _url("core.quarantine", "change", entry.pk)
    assert 'name="_replay"' in admin_client.get(url).content.decode()
    fixed = {**entry.payload, "ts": "2026-06-01T00:00:00+00:00"}
    admin_client.post(url, {"payload": json.dumps(fixed), "_replay": "1"})
    assert Reading.objects.get().ts == T0
    entry.refresh_from_db()
    assert entry.status == Quarantine.Status.REPLAYED
    assert 'name="_replay"' not in admin_client.get(url).content.decode()


def test_discard_action_closes_open_entries(admin_client, deployment):
    _ingest(deployment, ReadingIn("ghost", "active_energy", T0, 5))
    _action(admin_client, "core.quarantine", "discard_selected", Quarantine.objects.all())
    assert Quarantine.objects.get().status == Quarantine.Status.DISCARDED


# --- Run log: read-only ----------------------------------------------------------------


def test_run_log_has_no_add_change_or_delete_permission(rf, admin_user):
    model_admin = admin.site._registry[Run]
    request = rf.get("/")
    request.user = admin_user
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)


def test_run_log_refuses_writes_over_http(admin_client, deployment):
    run = Run.objects.create(kind="sync", target="upstream")
    assert admin_client.get(_url("core.run", "add")).status_code == 403
    assert admin_client.post(_url("core.run", "change", run.pk),
                             {"target": "edited"}).status_code == 403
    assert admin_client.post(_url("core.run", "delete", run.pk), {"post": "yes"}).status_code \
        == 403
    run.refresh_from_db()
    assert run.target == "upstream"


def test_run_log_shows_status_and_duration(admin_client, deployment):
    started = timezone.now() - dt.timedelta(minutes=3, seconds=5)
    run = Run.objects.create(kind="delivery", status=Run.Status.FAILED)
    Run.objects.filter(pk=run.pk).update(started_at=started, finished_at=timezone.now())
    html = admin_client.get(_url("core.run", "changelist")).content.decode()
    assert 'class="hub-badge hub-badge-failed"' in html
    assert "3 min 05 s" in html


def test_run_log_shows_the_error_of_a_failed_run_and_the_counts_of_others(admin_client):
    Run.objects.create(kind="sync", status=Run.Status.SUCCEEDED, counts={"inserted": 7})
    Run.objects.create(kind="sync", status=Run.Status.FAILED, counts={"inserted": 0},
                       error="PermanentError: HTTP 401 from upstream")
    html = admin_client.get(_url("core.run", "changelist")).content.decode()
    assert "inserted 7" in html
    assert "PermanentError: HTTP 401 from upstream" in html


# --- Delivery --------------------------------------------------------------------------


def test_delivery_link_list_shows_its_backlog(admin_client, deployment):
    link = _link(deployment)
    _batch(link, 1, OutboundBatch.State.PENDING)
    _batch(link, 2, OutboundBatch.State.DEAD)
    _batch(link, 3, OutboundBatch.State.DEAD)
    response = admin_client.get(_url("core.deliverylink", "changelist"))
    [row] = response.context["cl"].result_list
    assert (row.pending, row.retry, row.dead) == (1, 0, 2)


def test_reactivate_action_lets_a_broken_link_send_again(admin_client, deployment):
    link = _link(deployment, state=DeliveryLink.State.BROKEN, broken_reason="HTTP 401")
    _action(admin_client, "core.deliverylink", "reactivate", [link])
    link.refresh_from_db()
    assert (link.state, link.broken_reason) == (DeliveryLink.State.ACTIVE, "")


def test_retry_dead_letters_requeues_only_dead_batches(admin_client, deployment):
    link = _link(deployment)
    dead = _batch(link, 1, OutboundBatch.State.DEAD, attempts=25)
    sent = _batch(link, 2, OutboundBatch.State.SENT, attempts=1)
    response = _action(admin_client, "core.outboundbatch", "retry_dead_letters", [dead, sent])
    dead.refresh_from_db()
    sent.refresh_from_db()
    assert (dead.state, dead.attempts) == (OutboundBatch.State.PENDING, 0)
    assert sent.state == OutboundBatch.State.SENT
    assert any("Requeued 1 dead batch" in m for m in _messages(response))


def test_retry_dead_letters_warns_that_a_broken_link_holds_them(admin_client, deployment):
    link = _link(deployment, state=DeliveryLink.State.BROKEN)
    dead = _batch(link, 1, OutboundBatch.State.DEAD)
    response = _action(admin_client, "core.outboundbatch", "retry_dead_letters", [dead])
    assert any("Not sent until re-activated: wattics: acme-main" in m
               for m in _messages(response))


def test_outbound_batches_filter_by_link_platform(admin_client, deployment):
    _batch(_link(deployment), 1, OutboundBatch.State.PENDING)
    _batch(_link(deployment, platform="dexma", name="acme-is3"), 1, OutboundBatch.State.PENDING)
    response = admin_client.get(_url("core.outboundbatch", "changelist"), {"platform": "dexma"})
    assert [b.link.platform for b in response.context["cl"].result_list] == ["dexma"]


def test_run_outcome_reads_nested_stage_counts_as_words():
    from apps.core.admin import counts_text

    counts = {"meters": {"fetched": 6, "stored": 6, "quarantined": 0},
              "usage": {"fetched": 1038, "stored": 1031}, "pages": 9, "units": ["kWh", "m3"]}
    assert counts_text(counts) == (
        "meters: fetched 6, stored 6; usage: fetched 1038, stored 1031; pages 9; units kWh, m3")


def test_run_outcome_of_flat_counts_skips_zeros():
    from apps.core.admin import counts_text

    assert counts_text({"inserted": 4, "updated": 0, "unchanged": 304}) == (
        "inserted 4, unchanged 304")
