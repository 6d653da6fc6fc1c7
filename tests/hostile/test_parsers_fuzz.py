"""The parsers facing outside, on arbitrary input: a partner's JSON body, an `updated_since`
/ `from` / `to` parameter, a Volue notification, and the log redaction. Each either yields
what the hub can store or refuses with its own error; nothing else escapes."""

from __future__ import annotations

import datetime as dt
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import APIException

from apps.core.jsonbody import unstorable_find
from apps.core.redact import redact
from apps.partner_api.errors import ApiError
from apps.partner_api.params import parse_instant
from apps.partner_api.parsers import PartnerJSONParser
from apps.volue.schemas import ID_MAX, MalformedPayload, notification_parse

FAST = settings(max_examples=300, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# Any code point, lone surrogates and NUL included: what a JSON escape can carry.
any_text = st.text(alphabet=st.characters(codec=None, min_codepoint=0, max_codepoint=0x10FFFF,
                                          exclude_categories=()), max_size=12)
json_values = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), any_text),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(any_text, inner, max_size=4)),
    max_leaves=20)


def _storable(value) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return False
        return "\x00" not in value
    if isinstance(value, dict):
        return all(_storable(k) and _storable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_storable(v) for v in value)
    return True


def _as_body(value) -> bytes:
    # ensure_ascii writes every code point as an escape, surrogates included, as a partner
    # with a buggy encoder would.
    return json.dumps(value, ensure_ascii=True).encode()


@FAST
@given(json_values)
def test_the_partner_body_parser_returns_storable_json_or_a_400(value):
    try:
        parsed = PartnerJSONParser().parse(io.BytesIO(_as_body(value)))
    except (APIException, ApiError) as exc:
        assert exc.status_code == 400
        assert isinstance(exc, ApiError) and exc.fields
        return
    assert _storable(parsed)


@FAST
@given(json_values)
def test_unstorable_find_agrees_with_an_encoding_check(value):
    found = unstorable_find(value)
    assert (found is None) == _storable(value)


@FAST
@given(st.datetimes(min_value=dt.datetime(1, 1, 1), max_value=dt.datetime(9999, 12, 31),
                    timezones=st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1)
                    .map(lambda m: dt.timezone(dt.timedelta(minutes=m)))))
def test_an_instant_with_any_iso_offset_is_utc_or_refused(value):
    try:
        parsed = parse_instant(value.isoformat(), name="updated_since", tz="Europe/Madrid")
    except ApiError as exc:
        assert exc.status_code == 400 and "updated_since" in exc.fields
        return
    assert parsed.utcoffset() == dt.timedelta(0)
    assert parsed == value


@FAST
@given(any_text)
def test_an_instant_parameter_of_any_text_is_parsed_or_refused(raw):
    try:
        parsed = parse_instant(raw, name="from", tz="UTC")
    except ApiError as exc:
        assert exc.status_code == 400
        return
    assert parsed.utcoffset() is not None


notification_fields = st.fixed_dictionaries({
    "notificationId": st.one_of(any_text, st.text(min_size=120, max_size=140)),
    "eventId": st.one_of(any_text, st.text(min_size=120, max_size=140)),
    "eventCreatedAtUtc": st.sampled_from(["2026-03-03T10:00:00+00:00", "x", ""]),
    "notificationSentUtc": st.sampled_from(["2026-03-03T10:00:01+00:00",
                                            "0001-01-01T00:00:00+01:00"]),
    "notificationType": st.sampled_from(["LocationLPCRequested", "Nope"]),
    "payload": st.fixed_dictionaries({
        "payloadType": st.sampled_from(["LocationLPC", "PriceCurve"]),
        "targets": st.lists(st.dictionaries(
            st.sampled_from(["locationId", "meterPointId", "resourceId", "resolution"]),
            any_text, max_size=4), max_size=2),
    }),
})


@FAST
@given(st.one_of(notification_fields, json_values))
def test_a_notification_of_any_shape_is_parsed_storable_or_malformed(value):
    try:
        parsed = notification_parse(_as_body(value))
    except MalformedPayload:
        return
    assert 0 < len(parsed.notification_id) <= ID_MAX
    assert 0 < len(parsed.event.event_id) <= ID_MAX
    assert _storable(parsed.body)


secret_names = st.sampled_from(["dep_token", "temp_token", "api_key", "password",
                                "client_secret", "X-API-Key", "access_token", "signature"])
secret_values = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-",
                        min_size=8, max_size=40)


@FAST
@given(secret_names, secret_values, st.sampled_from(["{n}={v}", "?a=1&{n}={v}&b=2",
                                                     '"{n}": "{v}"', "'{n}': '{v}'",
                                                     "{n}: {v}"]))
def test_redaction_hides_the_value_of_every_secret_name_in_every_form(name, value, form):
    assert value not in redact(form.format(n=name, v=value))
