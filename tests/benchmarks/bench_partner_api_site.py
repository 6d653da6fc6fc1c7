"""Settings for the partner API benchmark's gunicorn: the hub plus one bare view (see
bench_partner_api_urls.py)."""

from config.settings_test import *  # noqa: F403

ROOT_URLCONF = "tests.benchmarks.bench_partner_api_urls"
LOGGING = {"version": 1, "disable_existing_loggers": False}
