"""A newcomer's first hour: what the README promises runs as written.

Commands run as a newcomer runs them: `.venv/bin/python manage.py ...` (here: this
interpreter) in a fresh process, in the environment `make demo` writes to `.env`, with nothing
else set (no DEBUG, no database or broker variables).
"""

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
DEMO_ENV_FILE = "DEBUG=true\nDATABASE_URL=\nREDIS_URL=\n"
# Variables the test run sets that a newcomer's shell does not have.
TEST_ONLY = {"DJANGO_SETTINGS_MODULE", "DEBUG", "DATABASE_URL", "REDIS_URL", "SECRET_KEY",
             "SECRETS_ENCRYPTION_KEY", "SANDBOX_ENABLED", "SECURE_SSL_REDIRECT",
             "HUB_ENV_FILE", "HUB_VAR_DIR"}


@pytest.fixture
def newcomer(tmp_path):
    """The environment of a shell in a fresh clone after `make demo` wrote `.env`."""
    env_file = tmp_path / ".env"
    env_file.write_text(DEMO_ENV_FILE)
    env = {k: v for k, v in os.environ.items() if k not in TEST_ONLY}
    env.update(HUB_ENV_FILE=str(env_file), HUB_VAR_DIR=str(tmp_path / "var"))
    return env


def manage(*args: str) -> list[str]:
    return [sys.executable, "manage.py", *args]


def readme_commands() -> list[str]:
    return sorted(set(re.findall(r"manage\.py ([a-z_]+)", README)))


def test_the_readme_names_the_long_commands():
    assert {"roundtrip", "setup_schedules", "wattics_backfill", "dexma_backfill",
            "demo_setup", "rundemo"} <= set(readme_commands())


def test_every_command_the_readme_names_answers_help(newcomer):
    commands = readme_commands()
    # In parallel: each is a fresh interpreter loading Django (a few seconds).
    procs = {name: subprocess.Popen(manage(name, "--help"), cwd=ROOT, env=newcomer,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name in commands}
    failed = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=120)
        if proc.returncode != 0 or f"manage.py {name}" not in out:
            failed[name] = (proc.returncode, err[-2000:])
    assert not failed


def test_without_the_demo_env_a_missing_setting_is_one_clear_line(newcomer):
    env = {k: v for k, v in newcomer.items() if k != "HUB_ENV_FILE"}
    env["HUB_ENV_FILE"] = str(Path(newcomer["HUB_VAR_DIR"]) / "absent.env")

    proc = subprocess.run(manage("roundtrip", "--help"), cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)

    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("manage.py: SECRET_KEY is not set.")
    assert "make demo" in proc.stderr


def test_every_make_target_the_readme_names_exists():
    makefile = (ROOT / "Makefile").read_text()
    targets = set(re.findall(r"^([a-z][a-z-]*):", makefile, flags=re.MULTILINE))
    named = set(re.findall(r"\bmake ([a-z][a-z-]*)", README))
    assert named and named <= targets, named - targets


def test_every_repository_path_the_readme_names_exists():
    paths = {p for p in re.findall(r"`([a-zA-Z_.][\w./-]*/[\w./-]*)`", README)
             if not p.startswith(("/", "http", "var/", ".venv")) and "<" not in p
             and not p.endswith("/")}
    missing = sorted(p for p in paths if not (ROOT / p).exists())
    assert paths and not missing, missing


def test_the_demo_env_file_is_read_and_the_test_settings_win_over_it(newcomer):
    show = ("from django.conf import settings; "
            "print(settings.DEBUG, settings.DATABASES['default']['ENGINE'], "
            "settings.CELERY_BROKER_URL)")

    def settings_under(module: str) -> str:
        env = {**newcomer, "DJANGO_SETTINGS_MODULE": module}
        proc = subprocess.run([sys.executable, "-c", f"import django; django.setup(); {show}"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        return proc.stdout.strip()

    assert settings_under("config.settings") == (
        "True django.db.backends.sqlite3 filesystem://localhost/")
    debug, engine, broker = settings_under("config.settings_test").split()
    assert (debug, engine) == ("False", "django.db.backends.postgresql")
    assert broker.startswith("redis://")


def test_roundtrip_without_a_worker_fails_fast_and_says_what_to_do(newcomer):
    subprocess.run(manage("migrate", "-v0"), cwd=ROOT, env=newcomer, check=True, timeout=300)
    started = time.monotonic()

    proc = subprocess.run(manage("roundtrip", "--timeout", "60"), cwd=ROOT, env=newcomer,
                          capture_output=True, text=True, timeout=120)

    elapsed = time.monotonic() - started
    assert proc.returncode == 1
    assert "no Celery worker answered" in proc.stderr and "--start-worker" in proc.stderr
    assert elapsed < 30  # not the 60 s asked for
