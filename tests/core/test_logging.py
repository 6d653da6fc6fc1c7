"""Structured logs: every line one JSON object naming the deployment, link, run and task."""

from __future__ import annotations

import io
import json
import logging
import logging.config
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.conf import settings

from apps.core.logs import log_context, log_context_replace
from apps.core.services import run_logged
from apps.core.services.outbox import Outcome, batch_enqueue, link_get_or_create, outbox_dispatch
from apps.core.tasks import ping
from config.celery import app as celery_app

ROOT = Path(__file__).resolve().parents[2]
log = logging.getLogger("tests.core.logging")


@celery_app.task(name="tests.core.log_a_line")
def log_a_line(deployment: str) -> None:
    with log_context(deployment=deployment):
        log.warning("inside the task")


class Lines:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    def all(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def saying(self, message: str) -> dict:
        (line,) = [line for line in self.all() if line["message"] == message]
        return line


@pytest.fixture
def lines() -> Iterator[Lines]:
    """What the configured console handler (JSON, as in production) writes, line by line."""
    # A test client request leaves its context bound in this thread, as a server's would
    # until its next request: start each test from nothing.
    log_context_replace()
    (console,) = [h for h in logging.getLogger().handlers if h.get_name() == "console"]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(console.formatter)
    for item in console.filters:
        handler.addFilter(item)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield Lines(stream)
    finally:
        root.removeHandler(handler)


def test_production_logs_are_json_by_default():
    assert settings.LOG_FORMAT == "json"


def test_a_line_outside_any_work_has_the_context_keys_as_null(lines):
    log.warning("nothing bound")
    line = lines.saying("nothing bound")
    assert line["level"] == "WARNING"
    assert line["logger"] == "tests.core.logging"
    assert line["time"].endswith("+00:00")
    assert {k: line[k] for k in ("deployment", "link", "run", "task_id")} == dict.fromkeys(
        ("deployment", "link", "run", "task_id"))


@pytest.mark.django_db
def test_lines_inside_a_run_carry_its_id_and_deployment(lines, deployment):
    with run_logged(kind="sync", deployment=deployment) as run:
        log.info("syncing")
    log.info("after the run")
    inside = lines.saying("syncing")
    assert (inside["run"], inside["deployment"]) == (run.pk, "acme")
    after = lines.saying("after the run")
    assert (after["run"], after["deployment"]) == (None, None)


@pytest.mark.django_db
def test_a_failing_run_logs_its_traceback_with_its_context(lines, deployment):
    with pytest.raises(ValueError), run_logged(kind="sync", deployment=deployment) as run:
        try:
            raise ValueError("bad page")
        except ValueError:
            log.exception("page failed")
            raise
    line = lines.saying("page failed")
    assert line["run"] == run.pk
    assert "ValueError: bad page" in line["exc_info"]


@pytest.mark.django_db
def test_lines_of_a_dispatch_carry_link_batch_deployment_and_the_delivery_run(lines, deployment):
    link = link_get_or_create(platform="plat", name="site-1", deployment=deployment)
    batch = batch_enqueue(link=link, seq_from=0, seq_to=10, item_count=3)

    def send(sending):
        log.info("sending batch")
        return Outcome(ok=True)

    with run_logged(kind="delivery") as run:
        outbox_dispatch(send=send, link=link)
        log.info("dispatch done")
    line = lines.saying("sending batch")
    assert (line["deployment"], line["link"], line["platform"], line["batch"], line["run"]) == (
        "acme", link.pk, "plat", batch.pk, run.pk)
    done = lines.saying("dispatch done")
    assert (done["link"], done["run"]) == (None, run.pk)


def test_a_celery_task_binds_its_id_and_name_then_forgets_them(lines):
    result = log_a_line.apply(args=["acme"])
    log.warning("after the task")
    line = lines.saying("inside the task")
    assert (line["task_id"], line["task"], line["deployment"]) == (
        result.id, "tests.core.log_a_line", "acme")
    assert lines.saying("after the task")["task_id"] is None


@pytest.mark.django_db
def test_partner_api_request_lines_name_the_deployment_of_the_key(lines, deployment, client):
    from apps.partner_api.services import apikey_create

    _, raw = apikey_create(name="partner", deployments=[deployment])
    response = client.get("/api/v1/meters/nowhere/", HTTP_X_API_KEY=raw)
    assert response.status_code == 404
    (line,) = [line for line in lines.all() if line["logger"] == "django.request"]
    assert line["deployment"] == "acme"
    assert line["request"] == "GET /api/v1/meters/nowhere/"


def test_a_request_does_not_inherit_the_previous_requests_deployment(lines, client):
    with log_context(deployment="left-over"):
        client.get("/no-such-page")
    (line,) = [line for line in lines.all() if line["logger"] == "django.request"]
    assert line["deployment"] is None


@pytest.mark.slow
def test_a_celery_worker_logs_json_lines_naming_each_task(tmp_path):
    """A real worker process: Celery logs through Django's LOGGING, not its own handlers."""
    queue = f"test-logs-{os.getpid()}"
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings_test", "LOG_FORMAT": "json",
           "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
           # Celery warns about running as root before any logging is set up.
           "PYTHONWARNINGS": "ignore:You're running the worker with superuser privileges"}
    env.pop("HUB_PROCESS_ROLE", None)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    stale = tmp_path / f"counter_worker-{int(gone.stdout)}.db"
    stale.write_bytes(b"")
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo",
         "-n", f"{queue}@%h", "-Q", queue, "--without-gossip", "--without-mingle",
         "--without-heartbeat"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        result = ping.apply_async(queue=queue)
        assert result.get(timeout=60) == "pong"
    finally:
        worker.terminate()
        _, stderr = worker.communicate(timeout=60)
    records = [json.loads(line) for line in stderr.splitlines() if line.strip()]
    assert any(r["message"].endswith(" ready.") for r in records), stderr
    (done,) = [r for r in records if "succeeded" in r["message"]]
    assert (done["task_id"], done["task"]) == (result.id, "core.ping")
    assert all(set(r) >= {"deployment", "link", "run", "task_id"} for r in records)
    # Starting, the worker wiped the metrics its previous run left behind.
    assert not stale.exists()
