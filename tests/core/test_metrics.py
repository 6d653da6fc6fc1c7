"""/metrics: values that move with real work, across processes, behind access control."""

from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
import responses
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from apps.core import metrics
from apps.core.http import ApiClient, ClientCredentialsAuth, RetryPolicy, TransientError
from apps.core.models import OutboundBatch
from apps.core.services import ReadingIn, readings_ingest, run_logged
from apps.core.services.outbox import Outcome, batch_enqueue, link_get_or_create, outbox_dispatch

ROOT = Path(__file__).resolve().parents[2]
T0 = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
BASE = "https://platform.example.test/v1"
TOKEN_URL = "https://auth.example.test/token"


def scrape(client, **extra) -> dict[tuple[str, frozenset], float]:
    response = client.get("/metrics", **extra)
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def unique(prefix: str) -> str:
    # Event counters of every process on this host meet in one directory: names no other
    # test run uses keep each assertion about this test's own events.
    return f"{prefix}{uuid.uuid4().hex[:10]}"


def no_sleep(seconds: float) -> None:
    pass


# --- Readings accepted, quarantined, delivered ------------------------------------------


@pytest.mark.django_db
def test_ingest_raises_accepted_and_quarantined_of_its_deployment(client, deployment,
                                                                   make_device):
    make_device(deployment, "meter-1")
    before = scrape(client)
    readings_ingest(deployment=deployment, source="test", records=[
        ReadingIn("meter-1", "active_energy", T0, 1.0),
        ReadingIn("meter-1", "active_energy", T0 + dt.timedelta(minutes=15), 2.0),
        ReadingIn("meter-404", "active_energy", T0, 3.0),
    ])
    after = scrape(client)
    for name, grown in (("hub_readings_accepted_total", 2), ("hub_readings_quarantined_total", 1)):
        assert value(after, name, deployment="acme") - value(before, name, deployment="acme") \
            == grown


@pytest.mark.django_db
def test_a_delivered_batch_raises_delivered_items_of_its_platform(client, deployment):
    platform = unique("plat")
    link = link_get_or_create(platform=platform, name="site-1", deployment=deployment)
    batch_enqueue(link=link, seq_from=0, seq_to=10, item_count=7)
    before = scrape(client)
    result = outbox_dispatch(send=lambda batch: Outcome(ok=True, status=201), platform=platform)
    after = scrape(client)
    assert result.sent == 1
    assert value(after, "hub_delivered_items_total", platform=platform) - value(
        before, "hub_delivered_items_total", platform=platform) == 7
    assert value(after, "hub_delivery_batches_total", platform=platform, outcome="sent") == 1


@pytest.mark.django_db
def test_a_failed_send_counts_a_retry_and_delivers_nothing(client, deployment):
    platform = unique("plat")
    link = link_get_or_create(platform=platform, name="site-1", deployment=deployment)
    batch_enqueue(link=link, seq_from=0, seq_to=10, item_count=7)
    outbox_dispatch(send=lambda batch: Outcome(ok=False, status=503, error="down"),
                    platform=platform)
    after = scrape(client)
    assert value(after, "hub_delivery_batches_total", platform=platform, outcome="retry") == 1
    assert value(after, "hub_delivered_items_total", platform=platform) == 0


@pytest.mark.django_db
def test_backlog_and_lag_show_a_pending_batch_until_it_is_sent(client, deployment):
    platform = unique("plat")
    link = link_get_or_create(platform=platform, name="site-1", deployment=deployment)
    batch = batch_enqueue(link=link, seq_from=0, seq_to=10, item_count=40)
    OutboundBatch.objects.filter(pk=batch.pk).update(
        created_at=timezone.now() - dt.timedelta(minutes=5))
    labels = {"platform": platform, "link": "site-1", "deployment": "acme"}

    waiting = scrape(client)
    assert value(waiting, "hub_delivery_backlog_batches", **labels) == 1
    assert value(waiting, "hub_delivery_backlog_items", **labels) == 40
    assert 300 <= value(waiting, "hub_delivery_lag_seconds", **labels) < 330
    assert value(waiting, "hub_delivery_link_state", state="active", **labels) == 1

    outbox_dispatch(send=lambda batch: Outcome(ok=True), platform=platform)
    done = scrape(client)
    assert value(done, "hub_delivery_backlog_batches", **labels) == 0
    assert value(done, "hub_delivery_lag_seconds", **labels) == 0


@pytest.mark.django_db
def test_a_refused_batch_shows_as_dead_on_a_broken_link(client, deployment):
    platform = unique("plat")
    link = link_get_or_create(platform=platform, name="site-1", deployment=deployment)
    batch_enqueue(link=link, seq_from=0, seq_to=10, item_count=3)
    outbox_dispatch(send=lambda batch: Outcome(ok=False, status=401, permanent=True),
                    platform=platform)
    samples = scrape(client)
    labels = {"platform": platform, "link": "site-1", "deployment": "acme"}
    assert value(samples, "hub_delivery_dead_batches", **labels) == 1
    assert value(samples, "hub_delivery_link_state", state="broken", **labels) == 1
    assert value(samples, "hub_delivery_link_state", state="active", **labels) == 0
    assert value(samples, "hub_delivery_backlog_batches", **labels) == 0


# --- Runs -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_runs_count_by_outcome_and_record_their_duration(client, deployment):
    kind = unique("sync")
    with run_logged(kind=kind, deployment=deployment):
        pass
    with pytest.raises(RuntimeError), run_logged(kind=kind, deployment=deployment):
        raise RuntimeError("upstream said no")
    samples = scrape(client)
    assert value(samples, "hub_runs_total", kind=kind, status="succeeded") == 1
    assert value(samples, "hub_runs_total", kind=kind, status="failed") == 1
    assert value(samples, "hub_run_duration_seconds_count", kind=kind) == 2
    assert value(samples, "hub_run_duration_seconds_bucket", kind=kind, le="+Inf") == 2


# --- HTTP client: retries, 429s, budget, tokens -----------------------------------------


@pytest.mark.django_db
@responses.activate
def test_a_429_then_success_counts_one_429_and_one_retry(client):
    name = unique("plat")
    responses.get(f"{BASE}/meters", status=429, headers={"Retry-After": "0"})
    responses.get(f"{BASE}/meters", json=[])
    before = scrape(client)
    ApiClient(BASE, name=name, sleep=no_sleep).get("meters")
    after = scrape(client)
    assert value(after, "hub_http_429_total", platform=name) - value(
        before, "hub_http_429_total", platform=name) == 1
    assert value(after, "hub_http_retries_total", platform=name, reason="429") == 1


@pytest.mark.django_db
@responses.activate
def test_server_errors_count_retries_by_reason_until_the_client_gives_up(client):
    name = unique("plat")
    responses.get(f"{BASE}/meters", status=503)
    with pytest.raises(TransientError):
        ApiClient(BASE, name=name, retry=RetryPolicy(max_retries=2), sleep=no_sleep,
                  rng=lambda: 0.0).get("meters")
    samples = scrape(client)
    assert value(samples, "hub_http_retries_total", platform=name, reason="5xx") == 2
    assert value(samples, "hub_http_429_total", platform=name) == 0


@pytest.mark.django_db
@responses.activate
def test_a_used_up_budget_counts_a_wait_before_the_request(client):
    name = unique("plat")
    responses.get(f"{BASE}/meters", json=[], headers={
        "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "2"})
    api = ApiClient(BASE, name=name, sleep=no_sleep)
    api.get("meters")
    api.get("meters")
    assert value(scrape(client), "hub_http_budget_waits_total", platform=name) == 1


@pytest.mark.django_db
@responses.activate
def test_token_fetches_and_refreshes_are_counted_by_grant(client):
    name = unique("plat")
    token_url = f"{TOKEN_URL}/{name}"
    responses.post(token_url, json={"access_token": "first", "expires_in": 3600,
                                    "refresh_token": "r1"})
    responses.post(token_url, json={"access_token": "second", "expires_in": 3600})
    responses.get(f"{BASE}/meters", status=401)
    responses.get(f"{BASE}/meters", json=[])
    auth = ClientCredentialsAuth(token_url, "hub", "secret")
    ApiClient(BASE, name=name, auth=auth, sleep=no_sleep).get("meters")
    samples = scrape(client)
    # The first token from the grant; the 401 made the client refresh it once.
    assert value(samples, "hub_token_refreshes_total", platform=name,
                 grant="client_credentials") == 1
    assert value(samples, "hub_token_refreshes_total", platform=name, grant="refresh_token") == 1


@pytest.mark.django_db
@responses.activate
def test_a_request_succeeds_even_when_its_retry_cannot_be_counted(monkeypatch, caplog):
    def unwritable(*labels):
        raise PermissionError(13, "Permission denied", "counter_web-1.db")

    monkeypatch.setattr(metrics.HTTP_RETRIES, "labels", unwritable)
    responses.get(f"{BASE}/meters", status=503)
    responses.get(f"{BASE}/meters", json=[])
    with caplog.at_level(logging.ERROR, logger="apps.core.metrics"):
        response = ApiClient(BASE, name=unique("plat"), sleep=no_sleep).get("meters")
    assert response.status_code == 200
    assert "make it writable" in caplog.text


# --- Several processes ------------------------------------------------------------------


@pytest.mark.django_db
def test_counters_raised_in_another_process_show_at_this_processes_metrics(client):
    name = unique("plat")
    code = textwrap.dedent(f"""
        import django, responses
        django.setup()
        from apps.core.http import ApiClient
        with responses.RequestsMock() as mock:
            mock.get("{BASE}/x", status=429, headers={{"Retry-After": "0"}})
            mock.get("{BASE}/x", status=429, headers={{"Retry-After": "0"}})
            mock.get("{BASE}/x", json={{}})
            ApiClient("{BASE}", name="{name}", sleep=lambda s: None).get("x")
        import os
        print(os.getpid())
    """)
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test",
           "PROMETHEUS_MULTIPROC_DIR": os.environ["PROMETHEUS_MULTIPROC_DIR"]}
    env.pop(metrics.ROLE_ENV, None)
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) != os.getpid()
    samples = scrape(client)
    assert value(samples, "hub_http_429_total", platform=name) == 2
    assert value(samples, "hub_http_retries_total", platform=name, reason="429") == 2


def test_a_starting_role_wipes_only_its_exited_processes_files(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setenv(metrics.ROLE_ENV, os.environ.get(metrics.ROLE_ENV, "cmd"))
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid, live_pid = int(dead.stdout), os.getppid()
    for stem in (f"counter_worker-{dead_pid}", f"histogram_worker-{dead_pid}",
                 f"counter_worker-{live_pid}", f"counter_web-{dead_pid}",
                 f"counter_cmd-{dead_pid}", f"counter_cmd-{live_pid}"):
        (tmp_path / f"{stem}.db").write_bytes(b"")
    assert metrics.metrics_dir_prepare("worker") == 3
    assert sorted(p.stem for p in tmp_path.iterdir()) == [
        f"counter_cmd-{live_pid}", f"counter_web-{dead_pid}", f"counter_worker-{live_pid}"]
    assert os.environ[metrics.ROLE_ENV] == "worker"


# --- Cost and failure of a scrape -------------------------------------------------------


@pytest.mark.django_db
def test_a_scrape_never_reads_the_readings_table_and_its_query_count_is_fixed(
        client, deployment, other_deployment):
    def queries() -> list[str]:
        with CaptureQueriesContext(connection) as captured:
            scrape(client)
        return [q["sql"] for q in captured.captured_queries]

    link_get_or_create(platform="plat", name="one", deployment=deployment)
    few = queries()
    for number in range(5):
        link = link_get_or_create(platform="plat", name=f"more-{number}",
                                  deployment=other_deployment)
        batch_enqueue(link=link, seq_from=0, seq_to=5, item_count=5)
    many = queries()
    assert len(few) == len(many) <= 4
    assert not [sql for sql in many if '"core_reading"' in sql]


@pytest.mark.django_db
def test_a_database_failure_still_answers_with_the_event_counters(client, monkeypatch):
    def broken(self):
        raise DatabaseError("connection refused")

    monkeypatch.setattr(metrics.DatabaseCollector, "_ingest", broken)
    name = unique("plat")
    metrics.http_rate_limited(name)
    samples = scrape(client)
    assert value(samples, "hub_metrics_database_up") == 0
    assert value(samples, "hub_http_429_total", platform=name) == 1


# --- Access -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_without_a_token_only_loopback_is_served(client, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 200
    refused = client.get("/metrics", REMOTE_ADDR="203.0.113.9")
    assert refused.status_code == 403
    assert b"METRICS_TOKEN" in refused.content


@pytest.mark.django_db
def test_allowed_networks_are_served_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""
    settings.METRICS_ALLOWED_IPS = ["10.0.0.0/8"]
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="11.1.2.3").status_code == 403


@pytest.mark.django_db
def test_a_proxied_request_from_loopback_is_refused_without_a_token(client, settings):
    settings.METRICS_TOKEN = ""
    refused = client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9")
    assert refused.status_code == 403
    assert b"proxy" in refused.content


@pytest.mark.django_db
def test_with_a_token_only_its_bearer_is_served_from_anywhere(client, settings):
    settings.METRICS_TOKEN = "s3cret-scrape-token"
    assert client.get("/metrics").status_code == 403
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 403
    ok = client.get("/metrics", REMOTE_ADDR="203.0.113.9",
                    HTTP_AUTHORIZATION="Bearer s3cret-scrape-token")
    assert ok.status_code == 200
    assert b"hub_metrics_database_up 1.0" in ok.content
