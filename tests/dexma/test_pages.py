"""The embedded pages: dep_token, page tokens, the lifecycle rows, CSP and CORS."""

import json

import pytest
import responses
from django.core import signing
from django.db.models import Max

from apps.core.models import Datasource, DeliveryLink, Parameter, Reading
from apps.dexma.models import DexmaDatasource, Installation, SelectedDevice
from apps.dexma.views import PAGE_TOKEN_SALT

from .conftest import API, PLATFORM_ORIGIN, TOKEN

pytestmark = pytest.mark.django_db


def page_token(response) -> str:
    return response.context["page"].page_token


def form(meters, energy, name="Madrid HQ", **extra):
    main = meters[0]
    return {"name": name, "device": [str(main.pk)], f"param-{main.pk}": [str(energy.pk)],
            **extra}


def mock_create(status=201):
    responses.post(f"{API}/datasources", status=status, json={
        "id": 260, "key": "hub-madrid-hq-abc123", "name": "Madrid HQ", "status": "ENABLED"})
    responses.get(f"{API}/datasources/260/token", json={"token": "src-token-260"})


# --- dep_token -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/dexma/datasources/new", "/dexma/datasources",
                                  "/dexma/datasources/260"])
def test_pages_without_dep_token_are_401(client, installation, path):
    assert client.get(path).status_code == 401


@pytest.mark.parametrize("path", ["/dexma/datasources/new", "/dexma/datasources",
                                  "/dexma/datasources/260"])
def test_pages_with_a_wrong_dep_token_are_403(client, installation, path):
    assert client.get(path, {"dep_token": TOKEN[:-1] + "x"}).status_code == 403


def test_a_forged_page_token_is_refused(client, installation, meters, energy):
    response = client.post("/dexma/datasources/new", {**form(meters, energy), "pt": "forged"})
    assert response.status_code == 403
    assert not DexmaDatasource.objects.exists()


def test_a_page_token_dies_with_the_token_it_was_issued_under(client, installation, meters,
                                                              energy):
    token = page_token(client.get("/dexma/datasources/new", {"dep_token": TOKEN}))
    installation.set_token("reinstalled-token-00")
    installation.save()
    response = client.post("/dexma/datasources/new", {**form(meters, energy), "pt": token})
    assert response.status_code == 403


def test_an_expired_page_token_is_refused(client, installation, meters, energy, monkeypatch):
    from apps.dexma import views

    token = page_token(client.get("/dexma/datasources/new", {"dep_token": TOKEN}))
    monkeypatch.setattr(views, "PAGE_TOKEN_MAX_AGE", -1)
    response = client.post("/dexma/datasources/new", {**form(meters, energy), "pt": token})
    assert response.status_code == 403
    assert b"expired" in response.content


# --- creation page -------------------------------------------------------------------------


def test_new_page_groups_meters_by_site_and_datasource_and_ticks_no_meter(
    client, installation, meters
):
    response = client.get("/dexma/datasources/new", {"dep_token": TOKEN})
    assert response.status_code == 200
    [group] = response.context["groups"]
    assert (group.site, group.datasource) == ("Headquarters", "Gateway")
    assert [c.device.external_id for c in group.devices] == ["MAD-HVAC-02", "MAD-MAIN-01"]
    assert not any(c.checked for c in group.devices)


def test_new_page_offers_measured_parameters_and_ticks_one_per_quantity(
    client, installation, meters
):
    response = client.get("/dexma/datasources/new", {"dep_token": TOKEN})
    choice = response.context["groups"][0].devices[0]
    offered = {p.parameter.key: p.checked for p in choice.parameters}
    # The index is worth a datapoint; its deltas would bill the same energy twice.
    assert offered == {"active_energy": True, "active_energy_delta": False,
                       "active_power": True}


def test_new_page_shows_who_is_acting_from_the_session(client, installation, meters):
    with responses.RequestsMock() as mocked:
        mocked.get(f"{API}/sessions/s-1", json={"user": {"name": "Dana Demo"}})
        response = client.get("/dexma/datasources/new",
                              {"dep_token": TOKEN, "session_id": "s-1"})
        assert mocked.calls[0].request.headers["x-dexcell-token"] == TOKEN
    assert "Dana Demo" in response.content.decode()


def test_new_page_still_opens_when_the_session_cannot_be_read(client, installation, meters):
    with responses.RequestsMock() as mocked:
        mocked.get(f"{API}/sessions/s-1", status=403, json={"status": 403})
        response = client.get("/dexma/datasources/new", {"dep_token": TOKEN, "session_id": "s-1"})
    assert response.status_code == 200


@responses.activate
def test_submit_registers_the_datasource_then_stores_key_token_and_selection(
    client, installation, meters, energy
):
    mock_create()
    token = page_token(client.get("/dexma/datasources/new", {"dep_token": TOKEN}))
    response = client.post("/dexma/datasources/new", {**form(meters, energy), "pt": token})
    assert response.status_code == 201
    sent = json.loads(responses.calls[0].request.body)
    assert sent["name"] == "Madrid HQ" and sent["status"] == "ENABLED"
    assert sent["key"].startswith("hub-") and sent["timezone"] == "Europe/Madrid"
    datasource = DexmaDatasource.objects.get()
    assert (datasource.platform_id, datasource.key) == (260, "hub-madrid-hq-abc123")
    assert datasource.source_token == "src-token-260"
    # Live delivery starts from what exists now; history goes by backfill.
    top = Reading.objects.aggregate(top=Max("seq"))["top"]
    assert datasource.link.platform == "dexma" and datasource.link.cursor == top
    selected = SelectedDevice.objects.get()
    assert selected.device == meters[0]
    assert list(selected.parameters.all()) == [energy]


@responses.activate
def test_platform_refusing_the_creation_rolls_back_and_shows_its_error(
    client, installation, meters, energy
):
    responses.post(f"{API}/datasources", status=422, json={
        "status": 422, "code": "E422", "message": "Entity validation error",
        "errors": [{"message": "already exists", "field": "key"}]})
    token = page_token(client.get("/dexma/datasources/new", {"dep_token": TOKEN}))
    response = client.post("/dexma/datasources/new", {**form(meters, energy), "pt": token})
    assert response.status_code == 400
    assert "key: already exists" in response.content.decode()
    assert not DexmaDatasource.objects.exists() and not SelectedDevice.objects.exists()
    assert not DeliveryLink.objects.exists()


@responses.activate
def test_token_call_failing_rolls_back_and_deletes_the_platform_datasource(
    client, installation, meters, energy
):
    responses.post(f"{API}/datasources", status=201, json={"id": 260, "key": "hub-x",
                                                           "name": "Madrid HQ"})
    responses.get(f"{API}/datasources/260/token", status=403, json={
        "status": 403, "code": "E403", "message": "Scope datasources:write missing"})
    responses.delete(f"{API}/datasources/260", status=204)
    token = page_token(client.get("/dexma/datasources/new", {"dep_token": TOKEN}))
    response = client.post("/dexma/datasources/new", {**form(meters, energy), "pt": token})
    assert response.status_code == 400
    assert "Scope datasources:write missing" in response.content.decode()
    assert responses.calls[-1].request.method == "DELETE"
    assert not DexmaDatasource.objects.exists()


def test_submit_without_a_meter_is_refused_before_any_platform_call(client, installation,
                                                                    meters):
    token = page_token(client.get("/dexma/datasources/new", {"dep_token": TOKEN}))
    response = client.post("/dexma/datasources/new", {"name": "Empty", "pt": token})
    assert response.status_code == 400
    assert not DexmaDatasource.objects.exists()


def test_submit_cannot_pick_another_deployments_meter(client, installation, meters, energy,
                                                      other_deployment, make_device):
    foreign = make_device(other_deployment, "GLX-1")
    token = page_token(client.get("/dexma/datasources/new", {"dep_token": TOKEN}))
    data = {"name": "Sneaky", "device": [str(foreign.pk)],
            f"param-{foreign.pk}": [str(energy.pk)], "pt": token}
    response = client.post("/dexma/datasources/new", data)
    assert response.status_code == 400
    assert not DexmaDatasource.objects.exists()


# --- edit page -----------------------------------------------------------------------------


@responses.activate
def test_rename_is_pushed_as_a_merge_of_name_and_status(client, registered, meters, energy):
    responses.post(f"{API}/datasources", json={"id": 260, "key": "hub-madrid-hq",
                                               "name": "Madrid", "status": "ENABLED"})
    token = page_token(client.get("/dexma/datasources/260", {"dep_token": TOKEN}))
    response = client.post("/dexma/datasources/260",
                           {**form(meters, energy, name="Madrid"), "enabled": "on", "pt": token})
    assert response.status_code == 200
    assert json.loads(responses.calls[0].request.body) == {
        "id": 260, "name": "Madrid", "status": "ENABLED"}
    registered.refresh_from_db()
    assert registered.name == "Madrid"


@responses.activate
def test_disabling_pushes_status_disabled(client, registered, meters, energy):
    responses.post(f"{API}/datasources", json={"id": 260, "key": "k", "name": "Madrid HQ",
                                               "status": "DISABLED"})
    token = page_token(client.get("/dexma/datasources/260", {"dep_token": TOKEN}))
    client.post("/dexma/datasources/260", {**form(meters, energy), "pt": token})
    assert json.loads(responses.calls[0].request.body)["status"] == "DISABLED"
    registered.refresh_from_db()
    assert not registered.enabled and registered.platform_status == "DISABLED"


@responses.activate
def test_a_refused_rename_keeps_the_old_name_and_shows_why(client, registered, meters, energy):
    responses.post(f"{API}/datasources", status=422, json={
        "status": 422, "code": "E422", "message": "Entity validation error",
        "errors": [{"message": "too long", "field": "name"}]})
    token = page_token(client.get("/dexma/datasources/260", {"dep_token": TOKEN}))
    response = client.post("/dexma/datasources/260",
                           {**form(meters, energy, name="X" * 150), "enabled": "on",
                            "pt": token})
    assert response.status_code == 400 and "name: too long" in response.content.decode()
    registered.refresh_from_db()
    assert registered.name == "Madrid HQ"


def test_changing_the_meter_selection_stays_local(client, registered, meters, energy):
    power = Parameter.objects.get(key="active_power")
    hvac = meters[1]
    token = page_token(client.get("/dexma/datasources/260", {"dep_token": TOKEN}))
    with responses.RequestsMock() as mocked:  # any platform call would fail the test
        response = client.post("/dexma/datasources/260", {
            "name": "Madrid HQ", "enabled": "on", "pt": token,
            "device": [str(hvac.pk)], f"param-{hvac.pk}": [str(power.pk)]})
        assert not mocked.calls
    assert response.status_code == 200
    selected = SelectedDevice.objects.get(datasource=registered)
    assert selected.device == hvac and list(selected.parameters.all()) == [power]


def test_edit_page_of_another_deployments_datasource_is_404(client, registered,
                                                            other_deployment):
    other = Installation(dep_id="globex", deployment=other_deployment)
    other.set_token("globex-token-0000000")
    other.save()
    assert client.get("/dexma/datasources/260",
                      {"dep_token": "globex-token-0000000"}).status_code == 404


@responses.activate
def test_delete_button_deletes_on_the_platform_then_locally(client, registered):
    responses.delete(f"{API}/datasources/260", status=204)
    token = page_token(client.get("/dexma/datasources/260", {"dep_token": TOKEN}))
    response = client.post("/dexma/datasources/260", {"action": "delete", "pt": token})
    assert response.status_code == 200
    assert responses.calls[0].request.headers["x-dexcell-token"] == TOKEN
    assert not DexmaDatasource.objects.exists()


@responses.activate
def test_delete_button_keeps_the_datasource_when_the_platform_refuses(client, registered):
    responses.delete(f"{API}/datasources/260", status=403, json={
        "status": 403, "code": "E403", "message": "ACL denies this datasource"})
    token = page_token(client.get("/dexma/datasources/260", {"dep_token": TOKEN}))
    response = client.post("/dexma/datasources/260", {"action": "delete", "pt": token})
    assert "ACL denies this datasource" in response.content.decode()
    assert DexmaDatasource.objects.exists()


def test_list_page_shows_status_and_last_delivery(client, registered):
    response = client.get("/dexma/datasources", {"dep_token": TOKEN})
    assert response.status_code == 200
    assert list(response.context["datasources"]) == [registered]
    assert "hub-madrid-hq" in response.content.decode()


# --- platform-initiated delete -------------------------------------------------------------


def test_platform_delete_removes_the_datasource_locally_with_2xx(client, registered):
    registered.link = DeliveryLink.objects.create(platform="dexma", name="l",
                                                  deployment=registered.deployment)
    registered.save()
    response = client.delete("/dexma/datasources/260?dep_token=" + TOKEN)
    assert 200 <= response.status_code < 300
    assert not DexmaDatasource.objects.exists()


def test_platform_delete_without_dep_token_is_401(client, registered):
    assert client.delete("/dexma/datasources/260").status_code == 401
    assert DexmaDatasource.objects.exists()


def test_platform_delete_with_a_wrong_dep_token_is_403(client, registered):
    assert client.delete("/dexma/datasources/260?dep_token=nope").status_code == 403
    assert DexmaDatasource.objects.exists()


def test_platform_delete_of_an_unknown_id_is_404(client, registered):
    assert client.delete("/dexma/datasources/999?dep_token=" + TOKEN).status_code == 404


def test_platform_delete_of_another_deployments_datasource_is_404(client, registered,
                                                                  other_deployment):
    other = Installation(dep_id="globex", deployment=other_deployment)
    other.set_token("globex-token-0000000")
    other.save()
    response = client.delete("/dexma/datasources/260?dep_token=globex-token-0000000")
    assert response.status_code == 404
    assert DexmaDatasource.objects.exists()


def test_platform_delete_cannot_use_a_page_token(client, registered):
    token = signing.dumps({"i": registered.installation.pk,
                           "d": registered.installation.token_digest[:16]},
                          salt=PAGE_TOKEN_SALT, compress=True)
    assert client.delete(f"/dexma/datasources/260?pt={token}").status_code == 401


# --- CSP, X-Frame-Options, CORS -----------------------------------------------------------


def test_pages_may_be_framed_by_the_platform_origins_only(client, installation):
    response = client.get("/dexma/datasources/new", {"dep_token": TOKEN})
    csp = response["Content-Security-Policy"]
    assert f"frame-ancestors {PLATFORM_ORIGIN}" in csp
    for directive in ("default-src 'self'", "object-src 'none'", "base-uri 'self'",
                      "form-action 'self'"):
        assert directive in csp
    assert "X-Frame-Options" not in response


def test_other_pages_keep_deny_and_frame_ancestors_none(client, db):
    response = client.get("/healthz")
    assert response["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response["Content-Security-Policy"]


def test_frame_ancestors_follow_the_settings(client, installation, settings):
    settings.DEXMA_PLATFORM_ORIGINS = ["https://a.test", "https://b.test"]
    response = client.get("/dexma/datasources", {"dep_token": TOKEN})
    assert "frame-ancestors https://a.test https://b.test" in response["Content-Security-Policy"]


def test_cors_preflight_from_the_platform_origin_is_allowed_without_credentials(client, db):
    response = client.options("/dexma/datasources/260", HTTP_ORIGIN=PLATFORM_ORIGIN,
                              HTTP_ACCESS_CONTROL_REQUEST_METHOD="DELETE")
    assert response.status_code == 200
    assert response["Access-Control-Allow-Origin"] == PLATFORM_ORIGIN
    assert "DELETE" in response["Access-Control-Allow-Methods"]
    assert "Access-Control-Allow-Credentials" not in response


def test_cors_refuses_other_origins(client, db):
    response = client.options("/dexma/datasources/260", HTTP_ORIGIN="https://evil.test",
                              HTTP_ACCESS_CONTROL_REQUEST_METHOD="DELETE")
    assert "Access-Control-Allow-Origin" not in response


def test_cors_for_the_platform_origin_does_not_open_other_apis(client, db):
    response = client.options("/api/v1/", HTTP_ORIGIN=PLATFORM_ORIGIN,
                              HTTP_ACCESS_CONTROL_REQUEST_METHOD="GET")
    assert "Access-Control-Allow-Origin" not in response


# --- consent on creation ----------------------------------------------------------------------


@responses.activate
def test_a_datasource_over_a_lapsed_consent_is_created_disabled(client, installation, meters,
                                                                energy):
    Datasource.objects.filter(deployment=installation.deployment).update(
        consent_status=Datasource.Consent.EXPIRED)
    mock_create()
    token = page_token(client.get("/dexma/datasources/new", {"dep_token": TOKEN}))
    client.post("/dexma/datasources/new", {**form(meters, energy), "pt": token})
    assert json.loads(responses.calls[0].request.body)["status"] == "DISABLED"
    assert DexmaDatasource.objects.get().consent_suspended


# --- language ----------------------------------------------------------------------------


def test_lang_es_es_renders_the_page_in_spanish(client, installation, meters):
    response = client.get("/dexma/datasources/new", {"dep_token": TOKEN, "lang": "es_ES"})
    body = response.content.decode()
    assert "Nueva fuente de datos" in body and 'lang="es"' in body
    assert response["Content-Language"] == "es"


def test_an_unshipped_language_falls_back_to_english(client, installation, meters):
    response = client.get("/dexma/datasources/new", {"dep_token": TOKEN, "lang": "fr_FR"})
    assert "New datasource" in response.content.decode()
    assert response["Content-Language"] == "en"


@responses.activate
def test_platform_errors_after_submit_keep_the_language_of_the_page(client, installation,
                                                                     meters, energy):
    token = page_token(client.get("/dexma/datasources/new", {"dep_token": TOKEN,
                                                             "lang": "es_ES"}))
    response = client.post("/dexma/datasources/new", {"name": "x", "pt": token})
    assert "Elija al menos un contador." in response.content.decode()


@responses.activate
def test_an_exhausted_rate_budget_is_reported_in_the_page_instead_of_waiting(
    client, installation, meters, energy
):
    limited = {"X-Ratelimit-Hour-Remaining": "0", "X-Ratelimit-Hour-Reset": "1200",
               "X-Ratelimit-Day-Remaining": "50", "X-Ratelimit-Day-Reset": "9000"}
    responses.post(f"{API}/datasources", status=429, headers=limited, json={
        "status": 429, "code": "E429", "message": "Too Many Requests"})
    token = page_token(client.get("/dexma/datasources/new", {"dep_token": TOKEN}))
    response = client.post("/dexma/datasources/new", {**form(meters, energy), "pt": token})
    assert response.status_code == 400
    assert "Too Many Requests" in response.content.decode()
    assert len(responses.calls) == 1
    assert not DexmaDatasource.objects.exists()
