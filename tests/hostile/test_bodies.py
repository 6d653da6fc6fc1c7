"""Hostile bodies and URLs: oversized, deeply nested, wrong content type, malformed JSON,
timestamps without offsets, NaN and Infinity, NUL characters, numbers past the database's
range. Each is a clear 4xx (or, for one bad record in a batch, a quarantine entry), never a
5xx, and a refused request stores nothing.
"""

from __future__ import annotations

import json

import pytest
from django.conf import settings

from apps.core.models import Quarantine
from apps.volue.schemas import signature_of

from .conftest import changed_tables, database_fingerprint
from .test_endpoints import NOTIFICATION

pytestmark = pytest.mark.django_db

DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECT = b'{"name":"a","metadata":' + b'{"a":' * 50_000 + b"1" + b"}" * 50_000 + b"}"


def _reading(**fields) -> bytes:
    record = {"meter": "acme-meter", "parameter": "active_energy",
              "ts": "2026-03-02T00:00:00Z", "value": 1.0, **fields}
    return json.dumps({"readings": [record]}).encode()


def _nested_metadata(depth: int) -> bytes:
    inner: dict = {}
    outer = {"name": "Nested", "metadata": inner}
    for _ in range(depth):
        inner["a"] = {}
        inner = inner["a"]
    return json.dumps(outer).encode()


# (method, path, body, content type, expected status, words the message must contain)
REFUSED = {
    "oversized-readings": ("post", "readings/", b"x" * (settings.PARTNER_API_MAX_BODY_BYTES + 1),
                           "application/json", 413, "bytes"),
    "oversized-asset": ("put", "assets/big/", b"x" * (settings.PARTNER_API_MAX_BODY_BYTES + 1),
                        "application/json", 413, "bytes"),
    "deep-array": ("post", "readings/", DEEP_ARRAY, "application/json", 400, "nested"),
    "deep-object": ("put", "assets/deep/", DEEP_OBJECT, "application/json", 400, "nested"),
    "deep-metadata": ("put", "assets/deep/", _nested_metadata(200), "application/json", 400,
                      "nested"),
    "form-encoded": ("post", "readings/", b"readings=1", "application/x-www-form-urlencoded",
                     415, "media type"),
    "text-plain": ("post", "readings/", _reading(), "text/plain", 415, "media type"),
    "xml": ("put", "assets/x/", b"<asset/>", "application/xml", 415, "media type"),
    "malformed-json": ("post", "readings/", b'{"readings": [', "application/json", 400, "JSON"),
    "not-utf8": ("post", "readings/", b'{"readings":["\xff"]}', "application/json", 400,
                 "JSON"),
    "huge-integer-literal": ("post", "readings/", b'{"readings":[1' + b"0" * 5000 + b"]}",
                             "application/json", 400, "JSON"),
    "empty-batch": ("post", "readings/", b'{"readings": []}', "application/json", 400,
                    "readings"),
    "metadata-nan": ("put", "assets/x/", b'{"name":"a","metadata":{"k":NaN}}',
                     "application/json", 400, "NaN"),
    "metadata-infinity": ("put", "meters/m-x/",
                          b'{"type":"Energy","unit":"kWh","metadata":{"k":[-Infinity]}}',
                          "application/json", 400, "Infinity"),
    "latitude-nan": ("put", "assets/x/", b'{"name":"a","latitude":NaN}', "application/json",
                     400, "number"),
    "latitude-infinity": ("put", "assets/x/", b'{"name":"a","latitude":Infinity}',
                          "application/json", 400, "number"),
}
REFUSED_URLS = {
    "naive-from": ("usage/?from=2026-03-01T00:00:00&to=2026-03-02", 400, "offset"),
    "naive-updated-since": ("assets/?updated_since=2026-03-01T00:00:00", 400, "offset"),
    "nul-in-path": ("meters/a%00b/", 400, "NUL"),
    "nul-in-query": ("meters/?asset=a%00", 400, "NUL"),
    "nul-in-deployment": ("assets/?deployment=%00", 400, "NUL"),
    "offset-past-bigint": ("readings/?offset=99999999999999999999999", 400, "offset"),
    "limit-huge": ("readings/?limit=99999999999999999999999", 400, "limit"),
    "cursor-garbage": ("readings/?cursor=%ff%fe", 400, "cursor"),
    "range-past-the-limit": ("usage/?from=0001-01-01&to=9999-12-31", 400, "366"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_hostile_body_is_a_clear_4xx_and_stores_nothing(client, world, case):
    method, path, body, content_type, status, words = REFUSED[case]
    before = database_fingerprint()
    response = getattr(client, method)(f"/api/v1/{path}", body, content_type=content_type,
                                       HTTP_X_API_KEY=world.acme.api_key)
    assert response.status_code == status, response.content[:300]
    error = response.json()["error"]
    assert words in json.dumps(error), error
    assert changed_tables(before, database_fingerprint()) == []


@pytest.mark.parametrize("case", list(REFUSED_URLS))
def test_a_hostile_url_is_a_clear_4xx(client, world, case):
    path, status, words = REFUSED_URLS[case]
    response = client.get(f"/api/v1/{path}", HTTP_X_API_KEY=world.acme.api_key)
    assert response.status_code == status, response.content[:300]
    assert words in json.dumps(response.json()["error"])


@pytest.mark.parametrize("header", ["hub_a\x00b_secret", "hub_" + "a" * 10_000 + "_x",
                                    "hub_é_secret", "\x00"])
def test_a_hostile_api_key_is_401(client, world, header):
    assert client.get("/api/v1/assets/", HTTP_X_API_KEY=header).status_code == 401


@pytest.mark.parametrize(("key", "words"), [("k" * 256, "255"), ("a\x00b", "NUL")],
                         ids=["too-long", "nul"])
def test_a_hostile_idempotency_key_is_400_and_stores_nothing(client, world, key, words):
    before = database_fingerprint()
    response = client.post("/api/v1/readings/", _reading(), content_type="application/json",
                           HTTP_X_API_KEY=world.acme.api_key, HTTP_IDEMPOTENCY_KEY=key)
    assert response.status_code == 400
    assert words in response.json()["error"]["message"]
    assert changed_tables(before, database_fingerprint()) == []


def test_a_nul_in_basic_credentials_is_401(client, world):
    import base64

    raw = base64.b64encode(b"a\x00b:hub_a\x00b_secret").decode()
    assert client.get("/api/v1/assets/", HTTP_AUTHORIZATION=f"Basic {raw}").status_code == 401


# --- one bad record in a batch: quarantined with its reason, the batch answered 200 -----------

QUARANTINED = {
    "naive-ts": ({"ts": "2026-03-02T00:00:00"}, "no UTC offset"),
    "nan-value": ({"value": "NaN"}, "finite"),
    "infinite-value": ({"value": "Infinity"}, "finite"),
    "nan-literal": (None, "finite"),
    "string-value": ({"value": "twelve"}, "not a number"),
    "object-value": ({"value": {"v": 1}}, "must be a number"),
    "unknown-meter": ({"meter": "nobody"}, "unknown device"),
    "unknown-parameter": ({"parameter": "flux_capacitance"}, "unknown parameter"),
    "nul-in-meter": ({"meter": "acme\u0000meter"}, "unknown device"),
    "cost-without-currency": ({"cost": 1.5}, "currency"),
    "bad-currency": ({"cost": 1.5, "currency": "euro"}, "ISO 4217"),
    "huge-cost": ({"cost": "1e400", "currency": "EUR"}, "finite"),
    "not-iso-ts": ({"ts": "yesterday"}, "ISO 8601"),
    "number-ts": ({"ts": 1767225600}, "ISO 8601"),
}


@pytest.mark.parametrize("case", list(QUARANTINED))
def test_a_bad_record_is_quarantined_with_its_reason(client, world, case):
    fields, reason = QUARANTINED[case]
    body = (_reading(**fields) if fields is not None
            else _reading(value=0.0).replace(b'"value": 0.0', b'"value": NaN'))
    response = client.post("/api/v1/readings/", body, content_type="application/json",
                           HTTP_X_API_KEY=world.acme.api_key)
    assert response.status_code == 200, response.content[:300]
    answer = response.json()
    assert answer["accepted"] == 0 and answer["rejected"] == 1
    assert reason in answer["rejections"][0]["reason"]
    entry = Quarantine.objects.get(deployment=world.acme.deployment)
    assert reason in entry.reason


@pytest.mark.parametrize("fields", [
    {"meter": ["acme-meter"]},
    {"parameter": {"key": "active_energy"}},
    {"ts": "9999-12-31T23:59:59-14:00"},
    {"ts": "0001-01-01T00:00:00+14:00"},
], ids=["list-meter", "object-parameter", "ts-past-year-9999-in-utc", "ts-before-year-1-in-utc"])
def test_a_record_that_breaks_ingest_is_quarantined_not_a_500(client, world, fields):
    client.raise_request_exception = False
    response = client.post("/api/v1/readings/", _reading(**fields),
                           content_type="application/json", HTTP_X_API_KEY=world.acme.api_key)
    assert response.status_code == 200, response.content[:300]
    assert response.json()["rejected"] == 1


# --- the Volue webhook: even a correctly signed body can be refused --------------------------


@pytest.mark.parametrize(("case", "body", "words"), [
    ("deep", DEEP_ARRAY, "nested"),
    ("nan", NOTIFICATION.replace(b"20.0", b"NaN"), "NaN"),
    ("infinity", NOTIFICATION.replace(b"20.0", b"-Infinity"), "Infinity"),
    ("nul", NOTIFICATION.replace(b'"n-1"', b'"n-\\u0000"'), "NUL"),
    ("naive-timestamp", NOTIFICATION.replace(b"2026-03-03T12:00:00+00:00",
                                             b"2026-03-03T12:00:00"), "offset"),
    ("past-the-calendar", NOTIFICATION.replace(b"2026-03-03T12:00:00+00:00",
                                               b"9999-12-31T23:59:59+00:00"), "calendar"),
    ("utc-past-the-calendar", NOTIFICATION.replace(b"2026-03-03T12:00:00+00:00",
                                                   b"9999-12-31T23:59:59-14:00"), "calendar"),
    ("endless-resolution", NOTIFICATION.replace(b'"01:00:00"', b'"9999999999.00:00:00"'),
     "resolution"),
    ("malformed", b'{"notificationId": ', "JSON"),
    ("not-utf8", b'{"notificationId": "\xff"}', "JSON"),
])
def test_a_signed_but_hostile_notification_is_400_and_stores_nothing(client, world, case, body,
                                                                    words):
    before = database_fingerprint()
    response = client.post("/volue/webhook", body, content_type="application/json",
                           HTTP_X_PAYLOAD_SIGNATURE=signature_of(body, world.volue_secret))
    assert response.status_code == 400, response.content[:300]
    assert words in response.json()["error"]
    assert changed_tables(before, database_fingerprint()) == []


def test_a_webhook_body_over_the_upload_limit_is_413_with_the_limit(client, world, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = NOTIFICATION.replace(b'"n-1"', b'"' + b"n" * 2000 + b'"')
    response = client.post("/volue/webhook", body, content_type="application/json",
                           HTTP_X_PAYLOAD_SIGNATURE=signature_of(body, world.volue_secret))
    assert response.status_code == 413
    assert b"1,000 bytes" in response.content


# --- the DEXMA pages ----------------------------------------------------------------------------


def test_a_dexma_form_over_the_upload_limit_is_413_with_the_limit(client, world):
    before = database_fingerprint()
    response = client.post(f"/dexma/datasources/new?dep_token={world.acme.dep_token}",
                           {"name": "x" * (settings.DATA_UPLOAD_MAX_MEMORY_SIZE + 1)})
    assert response.status_code == 413
    assert b"bytes" in response.content
    assert changed_tables(before, database_fingerprint()) == []


@pytest.mark.parametrize("form", [
    {"name": "Madrid", "device": ["1" * 40]},
    {"name": "Madrid", "device": ["-1"]},
    {"name": "Madrid", "device": ["٣"]},  # a digit to str.isdigit() and int(), not ASCII
    {"name": "Mad\x00rid"},
], ids=["huge-device-id", "negative-device-id", "arabic-digit", "nul-in-name"])
def test_a_hostile_dexma_form_is_a_clear_4xx_and_calls_no_platform(client, world, form):
    import responses

    before = database_fingerprint()
    with responses.RequestsMock(assert_all_requests_are_fired=False) as platform:
        response = client.post(f"/dexma/datasources/new?dep_token={world.acme.dep_token}", form)
        assert not platform.calls
    assert 400 <= response.status_code < 500
    assert changed_tables(before, database_fingerprint()) == []


@pytest.mark.parametrize("query", [
    {"lang": "es\x00"}, {"lang": "x" * 5000}, {"pt": "\x00"}, {"dep_token": "\x00"},
    {"dep_token": "t" * 100_000},
])
def test_hostile_dexma_query_parameters_are_never_a_5xx(client, world, query):
    import responses

    with responses.RequestsMock(assert_all_requests_are_fired=False):
        response = client.get("/dexma/datasources", {"dep_token": world.acme.dep_token,
                                                     **query})
    assert response.status_code < 500
