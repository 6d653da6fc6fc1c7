import base64

import pytest

from apps.partner_api.models import ApiKey

pytestmark = pytest.mark.django_db


def test_a_request_without_a_key_is_refused_with_401_in_the_error_shape(client):
    response = client.get("/api/v1/assets/")
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "not_authenticated"
    assert response.json()["error"]["status"] == 401
    assert "WWW-Authenticate" in response.headers


def test_a_wrong_key_is_refused(client, deployment, make_key):
    _, raw = make_key(deployment)
    response = client.get("/api/v1/assets/", HTTP_X_API_KEY=raw[:-2] + "xx")
    assert response.status_code == 401
    assert "invalid or revoked" in response.json()["error"]["message"]


def test_a_revoked_key_is_refused(client, deployment, make_key):
    key, raw = make_key(deployment)
    ApiKey.objects.filter(pk=key.pk).update(is_active=False)
    assert client.get("/api/v1/assets/", HTTP_X_API_KEY=raw).status_code == 401


def test_the_key_is_stored_only_as_a_hash(deployment, make_key):
    key, raw = make_key(deployment)
    stored = ApiKey.objects.filter(pk=key.pk).values().get()
    assert raw not in str(stored)
    secret = raw.split("_", 2)[2]  # the secret itself may contain "_"
    assert len(secret) == 40 and secret not in str(stored)


def test_http_basic_with_the_key_as_password_is_accepted(client, deployment, make_key):
    key, raw = make_key(deployment)
    token = base64.b64encode(f"{key.prefix}:{raw}".encode()).decode()
    assert client.get("/api/v1/assets/", HTTP_AUTHORIZATION=f"Basic {token}").status_code == 200


@pytest.mark.parametrize("user", ["", "scaler", "hub_", "PREFIX"])
def test_http_basic_with_another_user_name_than_the_prefix_is_refused(client, deployment,
                                                                     make_key, user):
    key, raw = make_key(deployment)
    user = f"{key.prefix} " if user == "PREFIX" else user  # a stray space is another name
    token = base64.b64encode(f"{user}:{raw}".encode()).decode()
    response = client.get("/api/v1/assets/", HTTP_AUTHORIZATION=f"Basic {token}")
    assert response.status_code == 401
    assert "user name must be the key's prefix" in response.json()["error"]["message"]


def test_http_basic_with_a_wrong_password_is_refused(client, deployment, make_key):
    key, _ = make_key(deployment)
    token = base64.b64encode(f"{key.prefix}:hub_{key.prefix}_nope".encode()).decode()
    assert client.get("/api/v1/assets/", HTTP_AUTHORIZATION=f"Basic {token}").status_code == 401


def test_a_read_only_key_cannot_write(deployment, make_key, client_for, make_device):
    make_device(deployment, "m1")
    _, raw = make_key(deployment, access=ApiKey.Access.READ)
    client = client_for(raw)
    response = client.post("/api/v1/readings/", {"readings": [{"meter": "m1"}]}, format="json")
    assert response.status_code == 403
    assert "read-only" in response.json()["error"]["message"]
    assert client.put("/api/v1/assets/x/", {"name": "X"}, format="json").status_code == 403


def test_a_key_over_several_deployments_must_name_one(deployment, other_deployment, make_key,
                                                      client_for):
    _, raw = make_key(deployment, other_deployment)
    client = client_for(raw)
    response = client.get("/api/v1/assets/")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "deployment_required"
    assert client.get("/api/v1/assets/?deployment=globex").status_code == 200


def test_a_key_whose_other_deployments_were_deactivated_reaches_its_active_one(
        client_for, make_key):
    from apps.core.models import Deployment

    retired = [Deployment.objects.create(slug=f"retired-{n}", name="Retired", timezone="UTC",
                                         is_active=False) for n in range(2)]
    # The active deployment has the highest id: the inactive ones must not fill the two
    # places the key's statement reads.
    newest = Deployment.objects.create(slug="newest", name="Newest", timezone="UTC")
    _, raw = make_key(*retired, newest)
    response = client_for(raw).get("/api/v1/assets/")
    assert response.status_code == 200, response.json()
    assert client_for(raw).get("/api/v1/assets/?deployment=retired-0").status_code == 403


def test_an_unknown_path_answers_404_in_the_error_shape(api):
    response = api.get("/api/v1/nothing-here/")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
