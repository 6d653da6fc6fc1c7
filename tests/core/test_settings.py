"""Production settings: refuse to start without keys; `check --deploy` is clean."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
KEY = "o3Yp6l6mM2sQ0iV8hK3Xn1oJt9bVt0cG5Zr2wq7aQeE="
PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "a-long-random-production-secret-key-0123456789-abcdefghijklmnop",
    "SECRETS_ENCRYPTION_KEY": KEY,
    "ALLOWED_HOSTS": "hub.example.com",
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/hub",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def manage(*args, env):
    clean = {k: v for k, v in os.environ.items()
             if k not in PRODUCTION and k not in {"DJANGO_SETTINGS_MODULE", "SANDBOX_ENABLED",
                                                   "SECURE_SSL_REDIRECT"}}
    clean["DJANGO_SETTINGS_MODULE"] = "config.settings"
    clean["HUB_VAR_DIR"] = str(ROOT / "var" / "settings-test")
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env={**clean, **env},
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_check_deploy_is_clean_in_production_settings():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.slow
@pytest.mark.parametrize("missing", ["SECRET_KEY", "SECRETS_ENCRYPTION_KEY"])
def test_refuses_to_start_without_a_required_secret(missing):
    env = {k: v for k, v in PRODUCTION.items() if k != missing}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert f"{missing} is not set" in result.stderr


@pytest.mark.slow
def test_debug_generates_a_development_encryption_key_under_var(tmp_path):
    env = {"DEBUG": "true", "HUB_VAR_DIR": str(tmp_path), "DATABASE_URL": "", "REDIS_URL": ""}
    result = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True,
        env={**{k: v for k, v in os.environ.items()
                if k not in {"SECRET_KEY", "SECRETS_ENCRYPTION_KEY", "DJANGO_SETTINGS_MODULE"}},
             **env}, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    key_file = tmp_path / "dev-encryption-key"
    assert key_file.exists()
    assert oct(key_file.stat().st_mode & 0o777) == "0o600"


def test_production_security_settings_are_on(settings):
    # settings_test runs with DEBUG off: the same branch production takes.
    assert settings.SESSION_COOKIE_SECURE and settings.CSRF_COOKIE_SECURE
    assert settings.SECURE_HSTS_SECONDS >= 31536000
    assert settings.SECURE_PROXY_SSL_HEADER == ("HTTP_X_FORWARDED_PROTO", "https")
    assert settings.X_FRAME_OPTIONS == "DENY"


def test_celery_is_json_only_acks_late_prefetch_one_with_time_limits(settings):
    from config.celery import app

    conf = app.conf
    assert conf.task_serializer == "json" and conf.accept_content == ["json"]
    assert conf.task_acks_late is True
    assert conf.worker_prefetch_multiplier == 1
    assert 0 < conf.task_soft_time_limit < conf.task_time_limit
    assert conf.beat_scheduler == "apps.core.beat:Scheduler"


@pytest.mark.parametrize(("task", "queue"), [
    ("dexma.deliver_datasource", "dexma"), ("wattics.stream_push", "wattics"),
    ("volue.reports_dispatch", "volue"), ("pull.connection_sync", "pull"),
    ("core.ping", "celery"), ("partner_api.purge_idempotency", "celery"),
])
def test_each_platform_has_its_own_queue_and_a_worker_consumes_them_all(task, queue):
    from config.celery import app

    assert app.amqp.router.route({}, task)["queue"].name == queue
    # A worker started without -Q consumes every declared queue.
    assert {q.name for q in app.conf.task_queues} == {"celery", "dexma", "wattics", "volue",
                                                      "pull"}
