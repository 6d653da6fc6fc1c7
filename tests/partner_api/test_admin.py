import pytest

from apps.partner_api.auth import key_hash
from apps.partner_api.models import ApiKey

pytestmark = pytest.mark.django_db


def test_adding_a_key_in_the_admin_shows_it_once_and_stores_its_hash(admin_client, deployment):
    response = admin_client.post("/admin/partner_api/apikey/add/", {
        "name": "Scaler", "access": "read", "deployments": [deployment.pk], "is_active": "on",
    }, follow=True)
    [message] = [str(m) for m in response.context["messages"] if "copy it now" in str(m)]
    raw = message.split(": ", 1)[1].split(" ")[0]
    key = ApiKey.objects.get(name="Scaler")
    assert key.key_hash == key_hash(raw)
    assert list(key.deployments.all()) == [deployment]
    page = admin_client.get(f"/admin/partner_api/apikey/{key.pk}/change/")
    assert raw.encode() not in page.content


def test_the_rotate_action_retires_the_old_key(admin_client, deployment, make_key, client):
    key, raw = make_key(deployment)
    admin_client.post("/admin/partner_api/apikey/", {
        "action": "rotate", "_selected_action": [key.pk]})
    assert client.get("/api/v1/assets/", HTTP_X_API_KEY=raw).status_code == 401
