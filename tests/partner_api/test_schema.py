"""The OpenAPI schema is valid, and the API answers what it says (schemathesis)."""

import re

import pytest
import schemathesis
from django.core import signals
from django.core.management import call_command
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from .conftest import ingest_usage

MAX_EXAMPLES = 15


def test_the_schema_generates_without_warnings(tmp_path):
    call_command("spectacular", "--urlconf", "apps.partner_api.schema_urls", "--validate",
                 "--fail-on-warn", "--file", str(tmp_path / "schema.yaml"))
    assert "/api/v1/usage/" in (tmp_path / "schema.yaml").read_text()


@pytest.fixture
def document(client, db):
    return client.get("/api/v1/schema/?format=json").json()


def test_the_served_schema_is_valid_openapi(document):
    from openapi_spec_validator import validate

    validate(document)  # raises on the first violation of the OpenAPI 3 specification


def test_the_schema_names_its_server(document, settings):
    assert document["servers"] == [{"url": settings.HUB_BASE_URL, "description": "This hub"}]


@pytest.mark.parametrize("operation", ["assets_list", "meters_list", "usage_list",
                                       "readings_list"])
def test_list_operations_declare_paging_headers_and_describe_paging_and_429(document,
                                                                           operation):
    op = _operation(document, operation)
    assert set(op["responses"]["200"]["headers"]) == {
        "Link", "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"}
    assert {"Retry-After", "X-RateLimit-Reset"} <= set(op["responses"]["429"]["headers"])
    assert "What you see when data changes while you page" in op["description"]
    assert "429" in op["description"]
    names = {p["name"] for p in op["parameters"]}
    assert {"limit", "offset", "page", "page_size", "cursor", "updated_since"} <= names


def test_the_push_declares_the_idempotent_replay_header(document):
    op = _operation(document, "readings_push")
    for status in ("200", "201"):
        assert "Idempotent-Replayed" in op["responses"][status]["headers"]
    header = document["components"]["headers"]["Idempotent-Replayed"]
    assert "Idempotency-Key" in header["description"]


def test_usage_documents_scaler_dates_and_the_filters_semantics(document):
    op = _operation(document, "usage_list")
    names = {p["name"] for p in op["parameters"]}
    assert {"from", "to", "start_date", "end_date"} <= names
    assert "inclusive" in op["description"] and "exclusive" in op["description"]
    assert "period start" in op["description"]
    usage = document["components"]["schemas"]["Usage"]["properties"]
    assert usage["start_date"]["format"] == "date"
    assert usage["period_start"]["format"] == "date-time"


def _operation(document, operation_id):
    for methods in document["paths"].values():
        for op in methods.values():
            if op["operationId"] == operation_id:
                return op
    raise AssertionError(f"no operation {operation_id}")


@pytest.mark.django_db
def test_the_schema_and_docs_are_served_without_a_key(client):
    assert client.get("/api/v1/schema/?format=json").json()["openapi"].startswith("3.")
    docs = client.get("/api/v1/docs/")
    assert docs.status_code == 200
    assert b"cdn" not in docs.content.lower()
    assert b"/static/drf_spectacular_sidecar/" in docs.content


@pytest.fixture
def api_schema(db):
    # As Django's test client does: a request must not close the test's transaction.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        yield schemathesis.openapi.from_wsgi("/api/v1/schema/?format=json",
                                             get_wsgi_application())
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)


@pytest.fixture
def partner(deployment, make_device, make_key):
    make_device(deployment, "m1")
    ingest_usage(deployment, "m1", 5)
    _, raw = make_key(deployment, rate=10**6)
    return raw


def test_every_operation_answers_without_5xx_and_as_documented(api_schema, partner):
    # Driven by hand: schemathesis' pytest plugin does not run under pytest 9 yet.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) == 9
    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
                  database=None, suppress_health_check=list(HealthCheck))
        def check(case):
            case.call_and_validate(headers={"X-API-Key": partner}, excluded_checks=[
                # Constraints across fields (to after from, a meter of this deployment)
                # are not expressible in the schema; 400s for them are correct answers.
                checks.positive_data_acceptance, checks.negative_data_rejection,
            ])

        check()


def test_the_docs_inline_style_carries_the_nonce_the_policy_allows(client):
    docs = client.get("/api/v1/docs/")

    policy = dict(part.strip().split(" ", 1) for part in docs["Content-Security-Policy"]
                  .split(";") if part.strip())
    nonce = re.search(r"'nonce-([^']+)'", policy["style-src"]).group(1)
    page = docs.content.decode()
    assert page.count("<style") == 1 and f'<style nonce="{nonce}">' in page
    assert "'unsafe-inline'" not in policy["style-src"]
    assert "<script>" not in page and "script-src" not in policy  # no inline script
