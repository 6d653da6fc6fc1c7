"""The hub under gunicorn in a subprocess, for benchmarks that need a real threaded server."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def gunicorn_server(*, threads: int = 1, workers: int = 2,
                    settings: str = "config.settings_test", preload: bool = False,
                    production: bool = False) -> Iterator[str]:
    """Serve the hub (sandbox mounted) on the test database; yields the base URL.

    `settings` may add to the hub (bench_partner_api_site.py adds the bare view).
    `production` serves it as the Procfile's web process does (config/gunicorn.conf.py:
    gevent workers, pooled database connections, their number), `threads` and `workers`
    then left to it.
    """
    port = free_port()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings,
        "DATABASE_URL": f"postgresql://{db['USER']}@{db['HOST'] or '127.0.0.1'}:"
                        f"{db['PORT'] or 5432}/{db['NAME']}",
        "SANDBOX_ENABLED": "true",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": "WARNING",
    }
    if production:
        # Its access log, one line a request, left out of the benchmark's output.
        command = ["-c", "config/gunicorn.conf.py", "-b", f"127.0.0.1:{port}",
                   "--access-logfile", os.devnull]
    else:
        command = ["config.wsgi", "-b", f"127.0.0.1:{port}", "-k", "gthread", "-w",
                   str(workers), "--threads", str(threads), "--keep-alive", "30",
                   "--log-level", "warning"]
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", *command, *(["--preload"] if preload else [])],
        cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        # Generous: on a shared machine gevent workers importing the hub take a while.
        deadline = time.monotonic() + (120 if production else 30)
        while True:
            try:
                requests.get(f"{base}/healthz", timeout=5)
                break
            except requests.RequestException:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("gunicorn did not start") from None
                time.sleep(0.2)
        yield base
    finally:
        server.terminate()
        server.wait(timeout=20)
