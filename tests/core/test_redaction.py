"""No secret in a kept line: logs, run-log errors and exception reports mask them."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from django.core import mail
from django.test import override_settings
from django.views import debug

from apps.core.logs import JsonFormatter, PlainFormatter
from apps.core.models import Run
from apps.core.redact import redact
from apps.core.services import run_logged

DEP_TOKEN = "dEp-t0ken-Planted-1234"
TEMP_TOKEN = "tmp-T0ken-Planted-5678"
API_KEY = "hk_PlantedApiKey0123456789abcdef"


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        (f"GET /dexma/install/?dep_token={DEP_TOKEN}&lang=en HTTP/1.1", DEP_TOKEN),
        (f"GET /dexma/config/?lang=es&temp_token={TEMP_TOKEN} HTTP/1.1", TEMP_TOKEN),
        (f"{{'X-API-Key': '{API_KEY}', 'Accept': 'application/json'}}", API_KEY),
        ('{"Authorization": "Basic aGtfYWJjOnNlY3JldA=="}', "aGtfYWJjOnNlY3JldA=="),
        ("Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.e30.sig", "eyJhbGciOiJIUzI1NiJ9"),
        ('{"username": "ops", "password": "correct horse"}', "correct horse"),
        ("grant_type=password&username=u&password=hunter22&client_secret=cs99", "hunter22"),
        ("grant_type=password&username=u&password=hunter22&client_secret=cs99", "cs99"),
        ("X-Volue-Signature: sha256=0a1b2c3d4e5f", "0a1b2c3d4e5f"),
        (f"https://api.example.com/v1/data?api_key={API_KEY}&page=2", API_KEY),
    ],
)
def test_redact_masks_the_value_after_a_secret_name(text, secret):
    masked = redact(text)
    assert secret not in masked
    assert "***" in masked


def test_redact_keeps_ordinary_names_and_values():
    text = "GET /api/v1/readings/?meter=m1&design=3&passed=4&lang=en 200"
    assert redact(text) == text


@pytest.fixture
def stream() -> Iterator[tuple[logging.Logger, io.StringIO, io.StringIO]]:
    log = logging.getLogger("tests.core.redaction")
    json_out, plain_out = io.StringIO(), io.StringIO()
    handlers = []
    for out, formatter in ((json_out, JsonFormatter()), (plain_out, PlainFormatter())):
        handler = logging.StreamHandler(out)
        handler.setFormatter(formatter)
        log.addHandler(handler)
        handlers.append(handler)
    log.propagate = False
    try:
        yield log, json_out, plain_out
    finally:
        for handler in handlers:
            log.removeHandler(handler)
        log.propagate = True


def test_a_dexma_token_in_a_logged_url_is_masked_in_json_and_plain_lines(stream):
    log, json_out, plain_out = stream
    log.warning("request %s failed", f"/dexma/install/?dep_token={DEP_TOKEN}")
    for out in (json_out, plain_out):
        assert DEP_TOKEN not in out.getvalue()
        assert "dep_token=***" in out.getvalue()


def test_a_secret_in_an_exception_traceback_is_masked(stream):
    log, json_out, plain_out = stream
    try:
        raise ValueError(f"upstream refused api_key={API_KEY}")
    except ValueError:
        log.exception("pull failed")
    for out in (json_out, plain_out):
        assert "ValueError" in out.getvalue()
        assert API_KEY not in out.getvalue()


def test_a_secret_in_a_log_extra_is_masked(stream):
    log, json_out, _ = stream
    log.info("answer", extra={"url": f"https://x.test/?temp_token={TEMP_TOKEN}"})
    assert TEMP_TOKEN not in json_out.getvalue()
    assert "temp_token=***" in json_out.getvalue()


@pytest.mark.django_db
def test_a_failed_runs_error_keeps_no_token(deployment):
    with pytest.raises(RuntimeError), run_logged(kind="pull", deployment=deployment):
        raise RuntimeError(f"GET https://up.test/meters?access_token={DEP_TOKEN} answered 500")
    error = Run.objects.get(deployment=deployment).error
    assert "access_token=***" in error
    assert DEP_TOKEN not in error


def test_the_500_report_masks_query_tokens_and_key_headers(rf):
    request = rf.get(f"/dexma/install/?dep_token={DEP_TOKEN}&lang=en",
                     HTTP_X_API_KEY=API_KEY, HTTP_AUTHORIZATION=f"Bearer {TEMP_TOKEN}")
    try:
        raise RuntimeError("boom")
    except RuntimeError as exc:
        reporter = debug.get_exception_reporter_class(request)(
            request, type(exc), exc, exc.__traceback__)
        text = reporter.get_traceback_text() + reporter.get_traceback_html()
    assert "boom" in text
    for secret in (DEP_TOKEN, API_KEY, TEMP_TOKEN):
        assert secret not in text


@override_settings(ADMINS=[("ops", "ops@example.com")],
                   EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend")
def test_the_mailed_500_report_keeps_no_token(rf):
    from django.utils.log import AdminEmailHandler

    request = rf.get(f"/dexma/install/?dep_token={DEP_TOKEN}")
    handler = AdminEmailHandler(include_html=True)
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = logging.LogRecord("django.request", logging.ERROR, __file__, 1,
                                   "Internal Server Error: %s", (request.path,),
                                   sys.exc_info())
    record.request = request
    record.status_code = 500
    handler.emit(record)
    (message,) = mail.outbox
    body = message.body + "".join(str(part[0]) for part in message.alternatives)
    assert "boom" in body
    assert DEP_TOKEN not in body
