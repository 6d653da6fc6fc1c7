"""Send one task through the configured broker and wait for a worker's answer."""

import subprocess
import sys
import time

from celery import current_app as app
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.core.tasks import ping

# How long to wait for a worker to answer a control ping before giving up (no worker runs).
WORKER_PING_SECONDS = 3.0


class Command(BaseCommand):
    help = "Check broker, worker and result backend end to end with the core.ping task."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=30.0,
                            help="Seconds to wait for the task's answer (default 30).")
        parser.add_argument(
            "--start-worker", action="store_true",
            help="Start a worker for the check and stop it afterwards.",
        )

    def handle(self, *args, timeout: float, start_worker: bool, **options):
        worker = None
        if start_worker:
            worker = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo",
                 "-l", "warning", "-n", f"roundtrip-{time.time_ns()}@%h"],
            )
        else:
            self._worker_require(timeout=min(WORKER_PING_SECONDS, timeout))
        try:
            started = time.monotonic()
            result = ping.delay()
            answer = result.get(timeout=timeout)
        except Exception as exc:
            raise CommandError(
                f"no answer from a worker within {timeout:.0f} s through "
                f"{settings.CELERY_BROKER_URL}: {type(exc).__name__}: {exc}"
            ) from exc
        finally:
            if worker is not None:
                worker.terminate()
                try:
                    worker.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    worker.kill()
        if answer != "pong":
            raise CommandError(f"unexpected answer {answer!r}")
        elapsed = time.monotonic() - started
        self.stdout.write(self.style.SUCCESS(
            f"round trip ok in {elapsed:.2f} s via {settings.CELERY_BROKER_URL}"))

    def _worker_require(self, *, timeout: float) -> None:
        """Fail at once when no worker listens, instead of waiting out the whole timeout."""
        try:
            replies = app.control.ping(timeout=timeout)
        except Exception as exc:
            raise CommandError(
                f"cannot reach the broker {settings.CELERY_BROKER_URL}: "
                f"{type(exc).__name__}: {exc}") from exc
        if not replies:
            raise CommandError(
                f"no Celery worker answered within {timeout:.0f} s through "
                f"{settings.CELERY_BROKER_URL}. Start one (`make demo` runs one, or "
                f"`.venv/bin/python -m celery -A config worker`), or pass --start-worker to "
                f"start one for this check.")
