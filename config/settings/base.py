"""What every process needs first: the environment (and `.env`), DEBUG, the secrets, the
apps and middleware, templates, languages, static files.

Without DEBUG, SECRET_KEY and SECRETS_ENCRYPTION_KEY must be set; with DEBUG=true each is
generated once under var/.
"""

from pathlib import Path

import environ
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(environ.Env().str("HUB_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()
# `make demo` writes .env (DEBUG=true, embedded stores) when there is none, so that every
# `manage.py` command runs in the demo's environment. Variables already set win over the file:
# config.settings_test sets its own before importing this module, so `make test` is unaffected.
ENV_FILE = Path(environ.Env().str("HUB_ENV_FILE", default=str(BASE_DIR / ".env")))
if ENV_FILE.is_file():
    env.read_env(ENV_FILE)

DEBUG = env.bool("DEBUG", default=False)


def _required_secret(name: str, dev_default) -> str:
    value = env.str(name, default="")
    if value:
        return value
    if DEBUG:
        return dev_default()
    raise ImproperlyConfigured(
        f"{name} is not set. The hub refuses to start without it when DEBUG is off: "
        f"export {name}=... (see README, 'Configuration'), or set DEBUG=true for local use."
    )


def _dev_file(filename: str, make) -> str:
    """A development-only secret generated once under var/ and reused across restarts."""
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    path = VAR_DIR / filename
    if not path.exists():
        path.write_text(make())
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _required_secret(
    "SECRET_KEY", lambda: _dev_file("dev-secret-key", lambda: Fernet.generate_key().decode())
)
# Comma-separated Fernet keys; the first encrypts, all decrypt (key rotation).
SECRETS_ENCRYPTION_KEY = _required_secret(
    "SECRETS_ENCRYPTION_KEY",
    lambda: _dev_file("dev-encryption-key", lambda: Fernet.generate_key().decode()),
)

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "apps.core.apps.HubAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "corsheaders",
    "csp",
    "axes",
    "auditlog",
    "apps.core",
    "apps.pull",
    "apps.partner_api",
    "apps.dexma",
    "apps.wattics",
    "apps.volue",
    "apps.sandbox",
    "apps.sandbox.dexma",
    "apps.sandbox.wattics",
    "apps.sandbox.volue",
    "apps.sandbox.upstream",
]

# Each request starts with an empty log context (see apps.core.logs).
MIDDLEWARE = [
    "apps.core.logs.LogContextMiddleware",
    "apps.core.middleware.RequestBodyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "auditlog.middleware.AuditlogMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into its 429 page.
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One body-size rule for every endpoint (apps.core.middleware.RequestBodyMiddleware answers
# 413 with it before anything is read); Django's own form limit is the same number, so a
# body under it never fails deeper down. A 10,000-reading batch pretty-printed is ~2.7 MB.
MAX_REQUEST_BODY_BYTES = env.int("MAX_REQUEST_BODY_BYTES", default=8 * 1024 * 1024)
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BODY_BYTES
# A body must be in within this many seconds of its headers (408 after it, under the gevent
# workers gunicorn runs): a client trickling it a byte at a time holds a connection no longer.
REQUEST_BODY_TIMEOUT = env.float("REQUEST_BODY_TIMEOUT", default=60.0)

LANGUAGE_CODE = "en-us"
LANGUAGES = [("en", "English"), ("es", "Español")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = "UTC"
# Dates and times in the admin name their zone ("Dec. 2, 2026, 4:05 p.m. UTC").
FORMAT_MODULE_PATH = ["config.formats"]
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = env.str("STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
if DEBUG:
    Path(STATIC_ROOT).mkdir(parents=True, exist_ok=True)  # whitenoise warns when it is missing
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": (
            "django.contrib.staticfiles.storage.StaticFilesStorage"
            if DEBUG
            else "whitenoise.storage.CompressedManifestStaticFilesStorage"
        )
    },
}

LOGIN_URL = "admin:login"
