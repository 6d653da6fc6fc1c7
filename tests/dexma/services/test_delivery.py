"""Live delivery to IS3 through the outbox, with IS3 mocked at the client boundary."""

import datetime as dt
import json

import pytest
import responses
from django.db import connection
from django.db.models import Max
from django.test.utils import CaptureQueriesContext

from apps.core.models import OutboundBatch, Quarantine, Reading, ReadingCommit
from apps.core.services import batches_claim
from apps.dexma import services
from apps.dexma.client import Is3Client

from .helpers import INSERT, START, datasource_with, ingest, quarter_hours

QH = dt.timedelta(minutes=15)
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def is3_url(settings):
    settings.DEXMA_INSERT_URL = INSERT


@pytest.fixture
def main(deployment, make_device):
    return make_device(deployment, "MAD-MAIN-01")


@pytest.fixture
def datasource(installation, main):
    return datasource_with(installation, [main], ["active_energy_delta", "active_power"])


def bodies(calls):
    return [json.loads(c.request.body) for c in calls]


def values_of(body):
    return [(m["ts"], v["p"], v["v"]) for m in body for v in m["values"]]


def deliver(datasource, **kwargs):
    datasource.refresh_from_db()
    with Is3Client(max_retries=0) as client:
        return services.datasource_deliver(datasource=datasource, client=client, **kwargs)


@responses.activate
def test_sends_messages_grouped_by_device_and_timestamp_with_offset_and_sqn_1(
        deployment, main, datasource):
    responses.post(INSERT, body="OK")
    ingest(deployment, main, "active_energy_delta", quarter_hours(START, 2), value=2.5,
           period=QH)
    ingest(deployment, main, "active_power", quarter_hours(START, 2), value=10.0)

    result = deliver(datasource)

    assert result.sent == 1 and result.values_sent == 4
    call = responses.calls[0]
    assert call.request.params == {"source_key": "hub-madrid-hq"}
    assert call.request.headers["x-dexcell-source-token"] == "src-token-260"
    body = json.loads(call.request.body)
    for message in body:
        message["values"].sort(key=lambda v: v["p"])
    assert body == [
        {"did": "MAD-MAIN-01", "sqn": 1, "ts": "2026-06-01T02:00:00+02:00",
         "values": [{"p": 401, "v": 10.0}, {"p": 40201, "v": 2.5}]},
        {"did": "MAD-MAIN-01", "sqn": 1, "ts": "2026-06-01T02:15:00+02:00",
         "values": [{"p": 401, "v": 10.0}, {"p": 40201, "v": 2.5}]},
    ]


@responses.activate
def test_cursor_advances_to_the_batch_end_only_on_ok(deployment, main, datasource):
    responses.post(INSERT, body="OK")
    ingest(deployment, main, "active_power", quarter_hours(START, 3))
    deliver(datasource)
    datasource.link.refresh_from_db()
    assert datasource.link.cursor == Reading.objects.aggregate(top=Max("seq"))["top"]


@responses.activate
def test_5001_values_split_into_5000_and_1_at_the_boundary(deployment, main, datasource):
    responses.post(INSERT, body="OK")
    minutes = [START + dt.timedelta(minutes=i) for i in range(5001)]
    ingest(deployment, main, "active_power", minutes)

    deliver(datasource)

    counts = [len(values_of(b)) for b in bodies(responses.calls)]
    assert counts == [5000, 1]
    sent = values_of(bodies(responses.calls)[0])
    assert sent == sorted(sent)  # chronological


@responses.activate
def test_exactly_5000_values_go_in_one_request(deployment, main, datasource):
    responses.post(INSERT, body="OK")
    ingest(deployment, main, "active_power",
           [START + dt.timedelta(minutes=i) for i in range(5000)])
    deliver(datasource)
    assert [len(values_of(b)) for b in bodies(responses.calls)] == [5000]


@responses.activate
def test_late_older_readings_are_sent_in_the_next_batch_in_time_order(
        deployment, main, datasource):
    responses.post(INSERT, body="OK")
    ingest(deployment, main, "active_power", quarter_hours(START + dt.timedelta(hours=2), 2))
    deliver(datasource)
    ingest(deployment, main, "active_power",
           [START + dt.timedelta(hours=3), START, START + QH])  # one new, two late

    deliver(datasource)

    second = bodies(responses.calls)[1]
    assert [m["ts"] for m in second] == ["2026-06-01T02:00:00+02:00",
                                         "2026-06-01T02:15:00+02:00",
                                         "2026-06-01T05:00:00+02:00"]


@responses.activate
def test_a_200_whose_body_is_not_ok_is_a_failure_and_keeps_the_cursor(
        deployment, main, datasource):
    responses.post(INSERT, body="ERROR: datasource offline")
    ingest(deployment, main, "active_power", quarter_hours(START, 2))

    result = deliver(datasource)

    batch = OutboundBatch.objects.get(link=datasource.link)
    datasource.link.refresh_from_db()
    assert result.sent == 0 and result.failed == 1
    assert batch.state == OutboundBatch.State.RETRY and "instead of 200 OK" in batch.last_error
    assert datasource.link.cursor == 0


@responses.activate
def test_datasource_disabled_between_batching_and_sending_receives_nothing(
        deployment, main, datasource):
    responses.post(INSERT, body="OK")
    ingest(deployment, main, "active_power", quarter_hours(START, 2))
    assert services.datasource_plan(datasource=datasource) == 1
    stale = type(datasource).objects.select_related("link").get(pk=datasource.pk)
    type(datasource).objects.filter(pk=datasource.pk).update(enabled=False)

    with Is3Client(max_retries=0) as client:  # the copy loaded before still says enabled
        result = services.datasource_deliver(datasource=stale, client=client)

    assert len(responses.calls) == 0 and result.sent == 0
    batch = OutboundBatch.objects.get(link=datasource.link)
    assert batch.state == OutboundBatch.State.RETRY and "not enabled" in batch.last_error


@responses.activate
def test_disabled_datasource_is_not_delivered_to(deployment, main, datasource):
    responses.post(INSERT, body="OK")
    type(datasource).objects.filter(pk=datasource.pk).update(consent_suspended=True)
    ingest(deployment, main, "active_power", quarter_hours(START, 2))
    result = deliver(datasource)
    assert result.skipped and len(responses.calls) == 0


@responses.activate
def test_misaligned_interval_reading_is_quarantined_with_its_reason_and_never_sent(
        deployment, main, datasource):
    responses.post(INSERT, body="OK")
    ingest(deployment, main, "active_energy_delta", [START, START + dt.timedelta(minutes=22)],
           period=QH)

    deliver(datasource)

    assert [ts for ts, *_ in values_of(bodies(responses.calls)[0])] == \
        ["2026-06-01T02:00:00+02:00"]
    entry = Quarantine.objects.get(source="dexma:datasource:hub-madrid-hq")
    assert "misaligned" in entry.reason and entry.payload["device"] == "MAD-MAIN-01"
    # Delivering again (a resend) does not quarantine it twice.
    datasource.link.batches.update(state=OutboundBatch.State.PENDING)
    deliver(datasource)
    assert Quarantine.objects.filter(source="dexma:datasource:hub-madrid-hq").count() == 1


@responses.activate
def test_worker_killed_after_sending_and_before_recording_resends_only_that_batch(
        deployment, main, datasource):
    responses.post(INSERT, body="OK")
    ingest(deployment, main, "active_power", quarter_hours(START, 2))
    services.datasource_plan(datasource=datasource)
    ingest(deployment, main, "active_power", quarter_hours(START + dt.timedelta(hours=1), 2))
    services.datasource_plan(datasource=datasource)
    first = batches_claim(link=datasource.link)[0]
    with Is3Client(max_retries=0) as client:
        services.Is3Sender(datasource=datasource, client=client)(first)
    # ... and the worker dies here: no outcome recorded.

    later = first.next_attempt_at + dt.timedelta(seconds=1)  # the claim has lapsed
    result = deliver(datasource, now=later)

    sent = [values_of(b) for b in bodies(responses.calls)]
    assert result.sent == 2
    assert sent[0] == sent[1] and len(sent) == 3  # that one batch twice, then the next
    assert {ts for body in sent for ts, *_ in body} == {
        "2026-06-01T02:00:00+02:00", "2026-06-01T02:15:00+02:00",
        "2026-06-01T03:00:00+02:00", "2026-06-01T03:15:00+02:00"}
    datasource.link.refresh_from_db()
    assert datasource.link.cursor == Reading.objects.aggregate(top=Max("seq"))["top"]


@responses.activate
def test_reading_changed_after_planning_goes_in_a_later_batch(deployment, main, datasource):
    responses.post(INSERT, body="OK")
    ingest(deployment, main, "active_power", [START], value=1.0)
    services.datasource_plan(datasource=datasource)
    ingest(deployment, main, "active_power", [START], value=2.0)  # overwritten: new seq

    deliver(datasource)

    sent = [values_of(b) for b in bodies(responses.calls)]
    assert sent == [[("2026-06-01T02:00:00+02:00", 401, 2.0)]]


@responses.activate
def test_first_reading_fixes_the_resolution_of_a_device_selected_before_it_had_readings(
        deployment, main, datasource):
    # Selected with no readings: no resolution could be fixed at configuration time.
    assert datasource.selections.get().resolutions == {}
    responses.post(INSERT, body="OK")
    ingest(deployment, main, "active_energy_delta", quarter_hours(START, 4), period=QH)
    deliver(datasource)
    hourly = [START + dt.timedelta(hours=2 + i) for i in range(3)]
    ingest(deployment, main, "active_energy_delta", hourly, value=4.0,
           period=dt.timedelta(hours=1))

    deliver(datasource)

    sent = [p for body in bodies(responses.calls) for _, p, _ in values_of(body)]
    assert sent == [40201] * 4  # no 40211: IS3 would answer OK and keep only one
    energy = datasource.selections.get().parameters.get(key="active_energy_delta")
    assert datasource.selections.get().resolutions == {str(energy.pk): "QH"}
    reasons = list(Quarantine.objects.filter(source="dexma:datasource:hub-madrid-hq")
                   .values_list("reason", flat=True))
    assert len(reasons) == 3
    assert all("H interval" in r and "configured at QH" in r for r in reasons)


@responses.activate
def test_a_fixed_resolution_survives_editing_the_selection(deployment, main, datasource):
    from apps.dexma.services import Selection, datasource_update

    responses.post(INSERT, body="OK")
    ingest(deployment, main, "active_energy_delta", quarter_hours(START, 2), period=QH)
    deliver(datasource)
    ingest(deployment, main, "active_energy_delta", [START + dt.timedelta(hours=3)],
           period=dt.timedelta(hours=1))
    deliver(datasource)
    selected = datasource.selections.get()
    parameters = {selected.device_id: set(selected.parameters.values_list("pk", flat=True))}

    # Readings now exist at two resolutions; the edit keeps the one the platform holds.
    datasource_update(datasource=datasource, name="Madrid HQ", enabled=True,
                      selection=Selection(parameters=parameters))

    assert set(datasource.selections.get().resolutions.values()) == {"QH"}


@responses.activate
def test_admin_accounts_for_every_reading_of_the_datasource(deployment, main, datasource,
                                                             admin_client):
    responses.post(INSERT, body="OK")
    ingest(deployment, main, "active_energy_delta", quarter_hours(START, 3), period=QH)
    ingest(deployment, main, "active_energy_delta", [START + dt.timedelta(minutes=52)],
           period=QH)  # misaligned
    deliver(datasource)
    ingest(deployment, main, "active_power", quarter_hours(START, 2))  # not yet delivered

    text = admin_client.get(f"/admin/dexma/dexmadatasource/{datasource.pk}/change/"
                            ).content.decode()

    assert "<th>Accepted</th><td>6</td>" in text
    assert "<th>Delivered</th><td>3</td>" in text
    assert "<th>Pending</th><td>2</td>" in text
    assert "<th>Undeliverable: misaligned interval (IS3 drops it)</th><td>1</td>" in text


@pytest.mark.parametrize("values, counts, rounds", [(3, [3], 1), (5000, [5000], 2),
                                                    (5001, [5000, 1], 2)])
def test_planning_counts_each_batch_and_stops_at_the_last_reading_it_saw(
        deployment, main, datasource, values, counts, rounds):
    ingest(deployment, main, "active_power",
           [START + dt.timedelta(minutes=i) for i in range(values)])
    top_commit = ReadingCommit.objects.filter(deployment=deployment).aggregate(
        top=Max("seq"))["top"]
    datasource.refresh_from_db()
    with CaptureQueriesContext(connection) as queries:
        planned = services.datasource_plan(datasource=datasource)
    assert planned == len(counts)
    batches = OutboundBatch.objects.filter(link=datasource.link).order_by("position")
    assert [b.item_count for b in batches] == counts
    assert sum(counts) == Reading.objects.filter(device=main).count()
    datasource.link.refresh_from_db()
    assert datasource.link.examined_commit_seq == top_commit
    # One planning round per batch, and none more once a round took all that was left (a
    # round that reaches exactly the limit cannot know, so it looks once more).
    plan_locks = [q for q in queries.captured_queries
                  if 'FROM "core_deliverylink"' in q["sql"] and "FOR UPDATE" in q["sql"]
                  and '"core_deliverylink"."platform"' in q["sql"]]
    assert len(plan_locks) == rounds
