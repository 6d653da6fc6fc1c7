"""A newcomer's first hour: what the README promises runs as written.

Commands run as a newcomer runs them: `.venv/bin/python manage.py ...` (here: this
interpreter) in a fresh process, in the environment `make demo` writes to `.env`, with nothing
else set (no DEBUG, no database or broker variables).
"""

import json
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


# One interpreter goes through manage.py's main() for each command in turn, as
# `.venv/bin/python manage.py <command> --help` does (one Django start instead of one each).
HELP_ALL = """
import contextlib, io, json, sys
import manage
answers = {}
for name in sys.argv[1:]:
    out, err = io.StringIO(), io.StringIO()
    sys.argv = ["manage.py", name, "--help"]
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            manage.main()
            code = 0
        except SystemExit as exc:
            code = exc.code or 0
        except BaseException as exc:
            code, err = 99, io.StringIO(repr(exc))
    answers[name] = [code, out.getvalue(), err.getvalue()]
print(json.dumps(answers))
"""


def test_every_command_the_readme_names_answers_help(newcomer):
    commands = readme_commands()

    proc = subprocess.run([sys.executable, "-c", HELP_ALL, *commands], cwd=ROOT, env=newcomer,
                          capture_output=True, text=True, timeout=120)

    assert proc.returncode == 0, proc.stderr
    answers = json.loads(proc.stdout.splitlines()[-1])
    failed = {name: (code, err[-2000:]) for name, (code, out, err) in answers.items()
              if code != 0 or f"manage.py {name}" not in out}
    assert sorted(answers) == commands and not failed


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
    # `HUB_BASE_URL/...` is a URL; var/ and .venv/ are made by the commands.
    paths = {p for p in re.findall(r"`([a-z_.][\w./-]*/[\w./-]*)`", README)
             if not p.startswith(("var/", ".venv")) and not p.endswith("/")}
    # The table of apps/core's pieces names them relative to apps/core.
    missing = sorted(p for p in paths
                     if not (ROOT / p).exists() and not (ROOT / "apps/core" / p).exists())
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
    started = time.monotonic()

    proc = subprocess.run(manage("roundtrip", "--timeout", "60"), cwd=ROOT, env=newcomer,
                          capture_output=True, text=True, timeout=120)

    elapsed = time.monotonic() - started
    assert proc.returncode == 1
    assert "no Celery worker answered" in proc.stderr and "--start-worker" in proc.stderr
    assert elapsed < 30  # not the 60 s asked for
