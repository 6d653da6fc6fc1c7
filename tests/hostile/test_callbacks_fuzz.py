"""What the platforms call, on arbitrary input from a caller that holds a valid credential:
the DEXMA embedded pages and handshake with any query and form fields beside a valid
`dep_token`, and the Volue webhook with any JSON body under a valid signature. Each answer is
a page, a redirect or a refusal that says what is wrong; never a 500. An upstream the hub
cannot reach (here: every outbound call fails) is a 502/503 that says so, never a crash.
"""

from __future__ import annotations

import json

import pytest
import responses
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.volue.models import Notification
from apps.volue.schemas import SIGNATURE_HEADER, signature_of

pytestmark = pytest.mark.django_db

FUZZ = settings(max_examples=120, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.too_slow,
                                       HealthCheck.function_scoped_fixture])

# Any code point (NUL and lone surrogates included), as a caller's query or form can carry.
any_text = st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF,
                                          exclude_categories=()), max_size=16)
long_text = st.one_of(any_text, st.integers(0, 20_000).map(lambda n: "9" * n))
field_names = st.one_of(
    st.sampled_from(["dep_token", "temp_token", "dep_id", "pt", "name", "device", "parameter",
                     "action", "lang", "page", "timezone", "next"]), any_text)
fields = st.dictionaries(field_names, st.one_of(long_text, st.lists(any_text, max_size=3)),
                         max_size=5)
UPSTREAM_DOWN = {502, 503, 504}


def _ok(response) -> None:
    assert response.status_code < 500 or response.status_code in UPSTREAM_DOWN, (
        response.status_code, response.content[:300])
    if response.status_code == 405:
        assert response.headers.get("Allow"), "a 405 names the methods allowed"
    elif response.status_code >= 400:
        assert response.content.strip(), "a refusal without a word of why"


def _unreachable_platform():
    """Every outbound call fails as a network error (responses refuses unknown URLs)."""
    return responses.RequestsMock(assert_all_requests_are_fired=False)


def _encodable(value: dict) -> dict:
    # The test client encodes a query or a form as UTF-8: a lone surrogate cannot be sent
    # that way, so it goes percent-encoded as the bytes a client would put on the wire.
    def fix(text):
        if isinstance(text, list):
            return [fix(t) for t in text]
        return text.encode("utf-8", "surrogatepass").decode("utf-8", "replace")
    return {fix(k): fix(v) for k, v in value.items()}


@FUZZ
@given(query=fields, form=fields, which=st.sampled_from(["list", "new", "detail"]),
       method=st.sampled_from(["get", "post", "delete"]))
def test_the_embedded_pages_answer_any_fields_beside_a_valid_token(client, world, query, form,
                                                                   which, method):
    acme = world.acme
    path = {"list": "/dexma/datasources", "new": "/dexma/datasources/new",
            "detail": f"/dexma/datasources/{acme.datasource.platform_id}"}[which]
    query = {**_encodable(query), "dep_token": acme.dep_token}
    with _unreachable_platform():
        if method == "get":
            response = client.get(path, query)
        else:
            call = client.post if method == "post" else client.delete
            response = call(f"{path}?dep_token={acme.dep_token}", _encodable(form))
    _ok(response)


@FUZZ
@given(query=fields)
def test_the_install_handshake_answers_any_query(client, world, query):
    with _unreachable_platform():
        response = client.get("/dexma/install", _encodable(query))
    _ok(response)
    assert response.status_code != 200 or "temp_token" in query


json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), long_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(any_text, inner, max_size=4)),
    max_leaves=20)
notification_like = st.fixed_dictionaries(
    {}, optional={"notificationId": long_text, "eventId": long_text,
                  "eventCreatedAtUtc": st.one_of(any_text, st.just("2026-03-03T10:00:00Z")),
                  "notificationSentUtc": any_text,
                  "notificationType": st.sampled_from(["LocationLPCRequested",
                                                       "UserEligibilityChanged", ""]),
                  "payload": json_values})


@FUZZ
@given(body=st.one_of(notification_like, json_values))
def test_a_signed_webhook_body_of_any_shape_is_accepted_or_refused_with_a_reason(
        client, world, body):
    raw = json.dumps(body).encode()  # \ud800 travels as the escape JSON allows
    before = Notification.objects.count()
    response = client.post("/volue/webhook", raw, content_type="application/json",
                           **{f"HTTP_{SIGNATURE_HEADER.upper().replace('-', '_')}":
                              signature_of(raw, world.volue_secret)})
    _ok(response)
    assert response.status_code in (200, 202, 400, 413, 422), response.status_code
    if response.status_code >= 400:
        assert Notification.objects.count() == before  # refused: nothing half-stored
