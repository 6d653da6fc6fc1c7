"""Bodies and parameters that once answered 500: one body-size rule, strings PostgreSQL
cannot store, ids longer than the columns, timestamps at the edges of the calendar."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.conf import settings

from apps.volue.schemas import signature_of

from .conftest import changed_tables, database_fingerprint
from .test_endpoints import NOTIFICATION

pytestmark = pytest.mark.django_db

LIMIT = settings.MAX_REQUEST_BODY_BYTES


def _batch(count: int) -> dict:
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    return {"readings": [
        {"meter": "acme-meter", "parameter": "active_energy",
         "ts": (start + dt.timedelta(minutes=15 * i)).isoformat(), "value": float(i)}
        for i in range(count)]}


def test_a_pretty_printed_batch_of_10000_readings_is_accepted(client, world):
    body = json.dumps(_batch(10_000), indent=12).encode()
    assert 2_500_000 < len(body) < LIMIT  # past Django's default 2.5 MB form limit
    response = client.post("/api/v1/readings/", body, content_type="application/json",
                           HTTP_X_API_KEY=world.acme.api_key)
    assert response.status_code == 201, response.content[:300]
    assert response.json()["inserted"] == 10_000


def test_a_large_asset_metadata_under_the_limit_is_stored(client, world):
    metadata = {f"k{i}": "v" * 90 for i in range(30_000)}  # ~2.9 MB
    body = json.dumps({"name": "Big", "metadata": metadata}).encode()
    assert len(body) > 2_700_000
    response = client.put("/api/v1/assets/big/", body, content_type="application/json",
                          HTTP_X_API_KEY=world.acme.api_key)
    assert response.status_code == 201, response.content[:300]


@pytest.mark.parametrize("path", ["/api/v1/readings/", "/volue/webhook",
                                  "/dexma/datasources/new"])
def test_a_body_over_the_one_limit_is_413_naming_it_before_anything_reads_it(client, world,
                                                                          path):
    before = database_fingerprint()
    response = client.post(path, b"x" * (LIMIT + 1), content_type="application/json",
                           HTTP_X_API_KEY=world.acme.api_key)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "too_large"
    assert f"{LIMIT:,} bytes" in response.json()["error"]["message"]
    assert changed_tables(before, database_fingerprint()) == []


def test_a_chunked_body_without_a_length_is_411(client, world):
    response = client.generic("POST", "/api/v1/readings/", b"", content_type="application/json",
                              HTTP_X_API_KEY=world.acme.api_key,
                              HTTP_TRANSFER_ENCODING="chunked")
    assert response.status_code == 411
    assert "Content-Length" in response.json()["error"]["message"]


SURROGATE = "\\ud800"  # as the JSON escape: legal JSON, not Unicode text


def _raw_reading(field: str) -> bytes:
    record = {"meter": "acme-meter", "parameter": "active_energy",
              "ts": "2026-03-02T00:00:00Z", "value": 1.0}
    record[field] = f"@@{field}@@"
    return json.dumps({"readings": [record]}).encode().replace(
        f"@@{field}@@".encode(), f"a{SURROGATE}b".encode())


PARTNER_SURROGATES = {
    "meter": ("post", "/api/v1/readings/", _raw_reading("meter"), "readings[0].meter"),
    "parameter": ("post", "/api/v1/readings/", _raw_reading("parameter"),
                  "readings[0].parameter"),
    "ts": ("post", "/api/v1/readings/", _raw_reading("ts"), "readings[0].ts"),
    "asset-metadata": ("put", "/api/v1/assets/a1/",
                       b'{"name": "A", "metadata": {"k": "x\\ud800"}}', "metadata.k"),
    "asset-metadata-key": ("put", "/api/v1/assets/a1/",
                           b'{"name": "A", "metadata": {"\\udfff": 1}}', "metadata."),
    "meter-metadata": ("put", "/api/v1/meters/m-1/",
                       b'{"type": "Energy", "unit": "kWh", "metadata": {"a": ["\\ud800"]}}',
                       "metadata.a[0]"),
}


@pytest.mark.parametrize("case", list(PARTNER_SURROGATES))
def test_a_lone_surrogate_is_400_naming_the_field_and_stores_nothing(client, world, case):
    method, path, body, field = PARTNER_SURROGATES[case]
    before = database_fingerprint()
    response = getattr(client, method)(path, body, content_type="application/json",
                                       HTTP_X_API_KEY=world.acme.api_key)
    assert response.status_code == 400, response.content[:300]
    error = response.json()["error"]
    assert error["code"] == "invalid_text"
    assert field in error["message"]
    assert changed_tables(before, database_fingerprint()) == []


def test_a_surrogate_pair_is_ordinary_text(client, world):
    body = b'{"name": "Sun \\ud83d\\ude00", "metadata": {"k": "\\ud83d\\ude00"}}'
    response = client.put("/api/v1/assets/smile/", body, content_type="application/json",
                          HTTP_X_API_KEY=world.acme.api_key)
    assert response.status_code == 201, response.content[:300]
    assert response.json()["name"] == "Sun \U0001f600"


def _signed(client, world, body: bytes):
    return client.post("/volue/webhook", body, content_type="application/json",
                       HTTP_X_PAYLOAD_SIGNATURE=signature_of(body, world.volue_secret))


@pytest.mark.parametrize(("old", "new", "words"), [
    (b'"n-1"', b'"n' + b"x" * 10_000 + b'"', "notificationId has 10,001 characters"),
    (b'"e-1"', b'"e' + b"x" * 10_000 + b'"', "eventId has 10,001 characters"),
    (b'"m-1"', b'"m' + b"x" * 10_000 + b'"', "locationId has 10,001 characters"),
    (b'"n-1"', b'"n\\ud800"', "notificationId holds a lone UTF-16 surrogate"),
    (b'"m-1"', b'"\\udc00"', "payload.targets[0].locationId holds a lone UTF-16"),
], ids=["long-notification-id", "long-event-id", "long-location-id", "surrogate-id",
        "surrogate-in-payload"])
def test_a_signed_notification_with_unstorable_fields_is_400_and_stores_nothing(
        client, world, old, new, words):
    body = NOTIFICATION.replace(old, new)
    assert body != NOTIFICATION
    before = database_fingerprint()
    response = _signed(client, world, body)
    assert response.status_code == 400, response.content[:300]
    assert words in response.json()["error"]
    assert changed_tables(before, database_fingerprint()) == []


@pytest.mark.parametrize("value", ["0879-04-26T19:45:45.80-20:18",
                                   "3588-09-06T19:15:42.70+21:10",
                                   "0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59",
                                   "0001-01-01", "9999-12-31"])
@pytest.mark.parametrize("path", ["assets/", "meters/", "readings/", "usage/"])
def test_updated_since_at_the_edges_of_the_calendar_is_never_a_500(client, world, value, path):
    response = client.get(f"/api/v1/{path}", {"updated_since": value},
                          HTTP_X_API_KEY=world.acme.api_key)
    assert response.status_code in (200, 400), response.content[:300]
    if response.status_code == 400:
        assert "updated_since" in json.dumps(response.json()["error"])
