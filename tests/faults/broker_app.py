"""The hub's Celery app (its settings, queues and broker transport) with one more task, which
sleeps and then notes its token in a file: the broker-loss scenario holds tasks in flight with
it and counts what ran."""

from __future__ import annotations

import os
import time
from pathlib import Path

from config.celery import app


def done_file(var_dir: Path) -> Path:
    return var_dir / "faults-sleep-done"


@app.task(name="faults.sleep")
def sleep(seconds: float, token: str) -> None:
    time.sleep(seconds)
    with done_file(Path(os.environ["HUB_VAR_DIR"])).open("a") as done:
        done.write(token + "\n")
