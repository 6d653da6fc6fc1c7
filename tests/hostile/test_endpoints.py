"""Every platform-facing endpoint refuses a caller without a credential, with another
deployment's credential and with a forged one, and the database is left exactly as it was.

The routes come from the URL resolver: a new platform-facing URL fails
`test_every_platform_facing_route_is_in_the_matrix` until it is added below.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import responses
from django.urls import URLPattern, URLResolver, get_resolver

from apps.volue.schemas import SIGNATURE_HEADER, signature_of

from .conftest import METRICS_TOKEN, World, changed_tables, database_fingerprint

pytestmark = pytest.mark.django_db

# Served to anyone by design; `test_public_routes_reveal_no_tenant_data` checks what they say.
PUBLIC = {
    "healthz": "load balancer probe",
    "readyz": "load balancer probe",
    "dexma/ping": "the platform's liveness probe",
    "dexma/app-status": "the platform's health probe; details only with a dep_token",
    "api/v1/schema/": "the partner API's OpenAPI document",
    "api/v1/docs/": "the partner API's documentation page",
    "favicon.ico": "the browsers' icon: a redirect to a static file",
}
# Proven elsewhere: the admin in tests/hostile/test_deploy.py (anonymous and non-staff), the
# sandbox only simulates the platforms and is mounted only when SANDBOX_ENABLED.
OUT_OF_SCOPE_PREFIXES = ("admin/", "sandbox/")

MODES = ("none", "other", "forged")
NOTIFICATION = json.dumps({
    "notificationId": "n-1", "eventId": "e-1", "eventCreatedAtUtc": "2026-03-03T10:00:00+00:00",
    "notificationSentUtc": "2026-03-03T10:00:01+00:00", "notificationType": "LocationLPCRequested",
    "payload": {"payloadType": "LocationLPC", "targets": [{
        "locationId": "m-1", "meterPointId": "707057500000000011", "resolution": "01:00:00",
        "points": [{"timestamp": "2026-03-03T12:00:00+00:00", "maxPowerInKiloWatts": 20.0}],
    }]},
}).encode()


@dataclass
class Call:
    method: str
    path: str
    # Expected status for each credential mode.
    expect: dict[str, set[int]]
    data: dict | bytes | None = None
    content_type: str | None = None
    # Text that must never appear in the answer (the victim's data).
    secret_marks: list[str] = field(default_factory=list)


def _route_list() -> list[str]:
    def walk(patterns, prefix=""):
        for pattern in patterns:
            if isinstance(pattern, URLResolver):
                yield from walk(pattern.url_patterns, prefix + str(pattern.pattern))
            elif isinstance(pattern, URLPattern):
                yield prefix + str(pattern.pattern)

    return sorted(set(walk(get_resolver().url_patterns)))


# --- credentials per mode -------------------------------------------------------------------


def _dexma_query(world: World, mode: str) -> dict:
    return {"none": {}, "other": {"dep_token": world.globex.dep_token},
            "forged": {"dep_token": world.acme.dep_token[:-4] + "f0rg"}}[mode]


def _page_token_or_dep_token(world: World, mode: str) -> tuple[str, dict]:
    """(query string, form fields) for a POST from an embedded page."""
    if mode == "none":
        return "", {}
    if mode == "other":
        return f"?dep_token={world.globex.dep_token}", {}
    return "", {"pt": "eyJpIjoxLCJkIjoiMDAwMCJ9:1tForged:forgedsignature"}


def _api_headers(world: World, mode: str) -> dict:
    if mode == "none":
        return {}
    if mode == "other":
        return {"HTTP_X_API_KEY": world.globex.api_key}
    prefix = world.acme.api_key.split("_")[1]
    return {"HTTP_X_API_KEY": f"hub_{prefix}_{'A' * 40}"}


def _api_query(mode: str) -> str:
    # Another deployment's key asks for acme by name; without the name it sees its own.
    return "?deployment=acme" if mode == "other" else ""


def _volue_headers(world: World, mode: str) -> dict:
    if mode == "none":
        return {}
    if mode == "other":  # signed with a secret the hub no longer trusts
        return {f"HTTP_{SIGNATURE_HEADER.upper().replace('-', '_')}":
                signature_of(NOTIFICATION, world.retired_volue_secret)}
    forged = base64.b64encode(b"\x00" * 32).decode()
    return {f"HTTP_{SIGNATURE_HEADER.upper().replace('-', '_')}": forged}


# --- the matrix -------------------------------------------------------------------------------

REFUSED_API = {"none": {401}, "other": {403}, "forged": {401}}
REFUSED_PAGE = {"none": {401}, "other": {404}, "forged": {403}}
# The list and creation pages answer the other deployment with its own data (checked: no
# acme data in the answer).
OWN_VIEW_PAGE = {"none": {401}, "other": {200}, "forged": {403}}


def _matrix(world: World) -> dict[str, list[Callable[[str], tuple[Call, dict]]]]:
    acme = world.acme
    marks = [acme.datasource.name, acme.device.external_id, acme.device.name]

    def dexma_get(path: str, expect: dict, extra: dict | None = None):
        def make(mode: str):
            query = {**(extra or {}), **_dexma_query(world, mode)}
            return Call("get", path, expect, data=query, secret_marks=marks), {}
        return make

    def dexma_post(path: str, expect: dict, form: dict):
        def make(mode: str):
            query, fields = _page_token_or_dep_token(world, mode)
            return Call("post", path + query, expect, data={**form, **fields},
                        secret_marks=marks), {}
        return make

    def dexma_delete(path: str):
        def make(mode: str):
            query = "&".join(f"{k}={v}" for k, v in _dexma_query(world, mode).items())
            return Call("delete", f"{path}?{query}", REFUSED_PAGE), {}
        return make

    def install(mode: str):
        temp = {"none": "", "other": world.globex.dep_token, "forged": "forged-temp-token"}[mode]
        # The hub cannot check a temp_token itself: the platform refuses the exchange and the
        # hub relays that as 502 (tests/dexma/test_install.py), storing nothing.
        expect = {"none": {400}, "other": {502}, "forged": {502}}
        return Call("get", "/dexma/install", expect,
                    data={"dep_id": acme.installation.dep_id, "temp_token": temp}), {}

    def volue(mode: str):
        return Call("post", "/volue/webhook", {m: {401} for m in MODES}, data=NOTIFICATION,
                    content_type="application/json"), _volue_headers(world, mode)

    def api(method: str, path: str, body: dict | None = None, expect=REFUSED_API):
        def make(mode: str):
            return Call(method, f"/api/v1/{path}{_api_query(mode)}", expect, data=body,
                        content_type="application/json" if body is not None else None,
                        secret_marks=marks), _api_headers(world, mode)
        return make

    def metrics(mode: str):
        bearer = {"none": None, "other": acme.api_key, "forged": "forged-metrics-token"}[mode]
        headers = {"HTTP_AUTHORIZATION": f"Bearer {bearer}"} if bearer else {}
        return Call("get", "/metrics", {m: {403} for m in MODES}), headers

    reading = {"readings": [{"meter": acme.device.external_id, "parameter": "active_energy",
                             "ts": "2026-03-02T00:00:00Z", "value": 1.0}]}
    form = {"name": "Hijacked", "device": [str(acme.device.pk)]}
    detail = f"/dexma/datasources/{acme.datasource.platform_id}"
    return {
        "metrics": [metrics],
        "dexma/install": [install],
        "dexma/uninstall": [dexma_get(
            "/dexma/uninstall", {"none": {401}, "other": {403}, "forged": {403}},
            {"dep_id": acme.installation.dep_id})],
        "dexma/datasources": [dexma_get("/dexma/datasources", OWN_VIEW_PAGE)],
        "dexma/datasources/new": [
            dexma_get("/dexma/datasources/new", OWN_VIEW_PAGE),
            dexma_post("/dexma/datasources/new",
                       {"none": {401}, "other": {400}, "forged": {403}}, form),
        ],
        "dexma/datasources/<int:datasource_id>": [
            dexma_get(detail, REFUSED_PAGE),
            dexma_post(detail, REFUSED_PAGE, {"name": "Renamed", "action": "delete"}),
            dexma_delete(detail),
        ],
        "volue/webhook": [volue],
        "api/v1/assets/": [api("get", "assets/")],
        "api/v1/assets/<str:external_id>/": [
            api("get", "assets/acme-hq/"),
            api("put", "assets/acme-hq/", {"name": "Hijacked"}),
        ],
        "api/v1/meters/": [api("get", "meters/")],
        "api/v1/meters/<str:external_id>/": [
            api("get", "meters/acme-meter/"),
            api("put", "meters/acme-meter/", {"name": "Hijacked", "asset": "acme-hq",
                                              "type": "Energy", "unit": "kWh"}),
        ],
        "api/v1/usage/": [api("get", "usage/")],
        "api/v1/readings/": [api("get", "readings/"), api("post", "readings/", reading)],
        "api/v1/^.*$": [api("get", "nothing-here/", expect={m: {404} for m in MODES}),
                        api("post", "assets", {"name": "x"}, expect={m: {404} for m in MODES})],
    }


def _send(client, call: Call, headers: dict):
    method = getattr(client, call.method)
    kwargs = dict(headers)
    if call.content_type:
        kwargs["content_type"] = call.content_type
    if call.method == "get":
        return method(call.path, call.data or {}, **kwargs)
    if call.data is None:
        return method(call.path, **kwargs)
    return method(call.path, call.data, **kwargs)


# --- tests ----------------------------------------------------------------------------------


def test_every_platform_facing_route_is_in_the_matrix(world):
    facing = {r for r in _route_list()
              if not r.startswith(OUT_OF_SCOPE_PREFIXES) and r not in PUBLIC}
    covered = set(_matrix(world))
    assert facing - covered == set(), (
        "platform-facing routes without a refusal test: add them to _matrix()")
    assert covered - facing == set(), "the matrix names routes that no longer exist"


@pytest.mark.parametrize("mode", MODES)
def test_every_platform_facing_call_is_refused_and_changes_nothing(client, world, mode):
    failures = []
    with responses.RequestsMock(assert_all_requests_are_fired=False) as platform:
        # The handshake: the platform refuses any temp_token it did not issue.
        platform.post("https://api.dexma.test/v3/oauth/access-token", status=401,
                      json={"error": "invalid temp_token"})
        for route, makers in _matrix(world).items():
            for make in makers:
                call, headers = make(mode)
                before = database_fingerprint()
                response = _send(client, call, headers)
                after = database_fingerprint()
                where = f"{route}: {call.method.upper()} {call.path} ({mode})"
                if response.status_code not in call.expect[mode]:
                    failures.append(f"{where} answered {response.status_code}, expected "
                                    f"{sorted(call.expect[mode])}")
                if changed_tables(before, after):
                    failures.append(f"{where} changed {changed_tables(before, after)}")
                body = response.content.decode(errors="replace")
                leaked = [m for m in call.secret_marks if m in body]
                if leaked:
                    failures.append(f"{where} showed acme's {leaked}")
        # Only the refused handshakes reached the platform; no page called it.
        called = [c.request.url.split("?")[0] for c in platform.calls]
        assert set(called) <= {"https://api.dexma.test/v3/oauth/access-token"}, called
    assert not failures, "\n".join(failures)


def test_the_matrix_can_tell_an_accepted_call_from_a_refused_one(client, world):
    """The same calls with acme's own credentials get through (so the refusals are real)."""
    acme = world.acme
    response = client.get("/dexma/datasources/260", {"dep_token": acme.dep_token})
    assert response.status_code == 200
    assert acme.datasource.name in response.content.decode()
    response = client.get("/api/v1/meters/acme-meter/", HTTP_X_API_KEY=acme.api_key)
    assert response.status_code == 200
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200
    body = NOTIFICATION
    response = client.post("/volue/webhook", body, content_type="application/json",
                           HTTP_X_PAYLOAD_SIGNATURE=signature_of(body, world.volue_secret))
    assert response.status_code in (200, 202)


def test_cross_tenant_reads_are_not_found_and_show_nothing(client, world):
    key = {"HTTP_X_API_KEY": world.globex.api_key}
    for path in ("/api/v1/assets/acme-hq/", "/api/v1/meters/acme-meter/"):
        assert client.get(path, **key).status_code == 404
    for path in ("/api/v1/usage/", "/api/v1/readings/"):
        response = client.get(path, {"meter": "acme-meter", "from": "2026-03-01",
                                     "to": "2026-03-02"}, **key)
        assert response.status_code in (400, 404), response.content
        assert "acme" not in response.content.decode().replace("acme-meter", "")
    for path in ("/api/v1/assets/", "/api/v1/meters/"):
        response = client.get(path, **key)
        assert response.status_code == 200
        assert "acme" not in response.content.decode()


def test_cross_tenant_writes_never_touch_the_other_deployment(client, world):
    from apps.core.models import Device, Reading, Site

    key = {"HTTP_X_API_KEY": world.globex.api_key}
    acme = world.acme.deployment
    readings_before = Reading.objects.filter(device__deployment=acme).count()
    site = Site.objects.get(deployment=acme)
    response = client.post("/api/v1/readings/", {"readings": [
        {"meter": "acme-meter", "parameter": "active_energy", "ts": "2026-03-02T00:00:00Z",
         "value": 5.0}]}, content_type="application/json", **key)
    assert response.status_code == 200
    assert response.json()["rejected"] == 1
    assert "unknown device" in response.json()["rejections"][0]["reason"]
    response = client.put("/api/v1/assets/acme-hq/", {"name": "Taken over"},
                          content_type="application/json", **key)
    assert response.status_code in (200, 201)
    assert Reading.objects.filter(device__deployment=acme).count() == readings_before
    site.refresh_from_db()
    assert site.name == "HQ"
    assert Device.objects.get(external_id="acme-meter").deployment == acme
    # The asset went to globex, under globex.
    assert Site.objects.get(deployment=world.globex.deployment,
                            external_id="acme-hq").name == "Taken over"


def test_public_routes_reveal_no_tenant_data(client, world):
    for route in PUBLIC:
        response = client.get("/" + route, {"format": "json"} if "schema" in route else {})
        assert response.status_code < 500, route
        body = response.content.decode(errors="replace")
        for tenant in (world.acme, world.globex):
            for mark in (tenant.dep_token, tenant.api_key, tenant.datasource.name,
                         tenant.device.external_id, tenant.deployment.slug):
                assert mark not in body, f"{route} shows {mark}"
    status = client.get("/dexma/app-status").json()
    assert all(set(d) == {"status"} for d in status["dependencies"].values())


def test_a_non_ascii_metrics_token_is_refused_not_a_500(client, world):
    response = client.get("/metrics", HTTP_AUTHORIZATION="Bearer t\u00f6ken")
    assert response.status_code == 403


def test_metrics_through_a_proxy_without_a_token_are_refused(client, world, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics", HTTP_X_FORWARDED_FOR="203.0.113.9").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="203.0.113.9").status_code == 403


def test_the_database_fingerprint_sees_a_changed_row_and_ignores_key_bookkeeping(world):
    from django.utils import timezone

    from apps.partner_api.models import ApiKey

    before = database_fingerprint()
    ApiKey.objects.update(last_used_at=timezone.now())
    assert changed_tables(before, database_fingerprint()) == []
    world.acme.device.name = "Renamed"
    world.acme.device.save()
    assert changed_tables(before, database_fingerprint()) == ["core_device"]
