"""Test settings: real PostgreSQL and Redis, fixed keys, eager-free Celery.

Defaults match the README; override DATABASE_URL / REDIS_URL in the environment.
"""

import os

os.environ.setdefault("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/hub")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production")
os.environ.setdefault("SECRETS_ENCRYPTION_KEY", "o3Yp6l6mM2sQ0iV8hK3Xn1oJt9bVt0cG5Zr2wq7aQeE=")
os.environ.setdefault("DEBUG", "false")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SANDBOX_ENABLED", "true")

from config.settings import *  # noqa: F403
from config.settings import CACHES

# Runs side by side (see TEST_DATABASE_NAME below) must not clear each other's cache keys.
CACHES["default"]["KEY_PREFIX"] = "hub-test-" + os.environ.get("TEST_DATABASE_NAME", "default")
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]  # noqa: F405

# Parallel runs on one machine (several checkouts, several engineers) each take their own.
if os.environ.get("TEST_DATABASE_NAME"):
    DATABASES["default"]["TEST"] = {"NAME": os.environ["TEST_DATABASE_NAME"]}  # noqa: F405
