"""The ops console's door and memory: failed logins are throttled per account and per
address (django-axes), and every configuration change is kept in an audit history ops can
read in the admin (django-auditlog), without a secret in it."""

from __future__ import annotations

import pytest
from auditlog.context import set_actor
from auditlog.models import LogEntry
from django.conf import settings
from django.urls import reverse

from apps.core.models import DeliveryLink
from apps.partner_api.models import ApiKey
from apps.partner_api.services import apikey_create
from apps.volue.models import WebhookSubscription

pytestmark = pytest.mark.django_db

LIMIT = settings.AXES_FAILURE_LIMIT


def _login(client, username: str, password: str, address: str = "10.0.0.1"):
    return client.post(reverse("admin:login"), {"username": username, "password": password},
                       REMOTE_ADDR=address)


@pytest.fixture
def ops(django_user_model):
    return django_user_model.objects.create_superuser("ops", password="right-password-1")


def test_a_correct_login_reaches_the_admin(client, ops):
    response = _login(client, "ops", "right-password-1")
    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


def test_an_account_is_locked_after_repeated_failures_even_from_other_addresses(client, ops):
    answers = [_login(client, "ops", "wrong", address=f"10.0.1.{attempt}").status_code
               for attempt in range(LIMIT)]
    assert answers == [200] * (LIMIT - 1) + [429]  # the failure that reaches the limit locks
    # The right password no longer opens it, from yet another address.
    response = _login(client, "ops", "right-password-1", address="10.0.2.1")
    assert response.status_code == 429
    assert client.get(reverse("admin:index")).status_code == 302


def test_an_address_is_locked_after_failures_on_many_accounts(client, ops):
    for attempt in range(LIMIT):
        _login(client, f"guess{attempt}", "wrong", address="10.9.9.9")
    assert _login(client, "ops", "right-password-1", address="10.9.9.9").status_code == 429
    # The same account from another address still logs in.
    assert _login(client, "ops", "right-password-1", address="10.9.9.8").status_code == 302


def test_a_success_before_the_limit_resets_the_count(client, ops):
    for _ in range(LIMIT - 1):
        _login(client, "ops", "wrong")
    assert _login(client, "ops", "right-password-1").status_code == 302
    client.logout()
    for _ in range(LIMIT - 1):
        _login(client, "ops", "wrong")
    assert _login(client, "ops", "right-password-1").status_code == 302


def test_behind_a_trusted_proxy_the_forwarded_address_is_counted(client, ops, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    for _ in range(LIMIT):
        client.post(reverse("admin:login"), {"username": "x", "password": "wrong"},
                    REMOTE_ADDR="10.0.0.254", HTTP_X_FORWARDED_FOR="1.2.3.4, 203.0.113.7")
    # Locked: the client the proxy saw (203.0.113.7), not the proxy itself.
    assert client.post(reverse("admin:login"), {"username": "ops", "password": "right-password-1"},
                       REMOTE_ADDR="10.0.0.254",
                       HTTP_X_FORWARDED_FOR="203.0.113.7").status_code == 429
    assert client.post(reverse("admin:login"), {"username": "ops", "password": "right-password-1"},
                       REMOTE_ADDR="10.0.0.254",
                       HTTP_X_FORWARDED_FOR="203.0.113.8").status_code == 302


def test_a_failed_attempt_keeps_no_password(client, ops):
    from axes.models import AccessAttempt

    _login(client, "ops", "typed-wrong-password")
    (attempt,) = AccessAttempt.objects.all()
    assert "typed-wrong-password" not in str(attempt.post_data)


def test_a_configuration_change_is_in_the_history_with_who_made_it(ops, deployment):
    with set_actor(ops):
        key, _ = apikey_create(name="Scaler", deployments=[deployment])
        key.access = ApiKey.Access.READ_WRITE
        key.save()
    entries = LogEntry.objects.get_for_object(key).order_by("timestamp")
    assert [e.action for e in entries] == [LogEntry.Action.CREATE, LogEntry.Action.UPDATE]
    assert entries[1].actor == ops
    assert entries[1].changes_dict["access"] == ["read", "read_write"]
    assert "key_hash" not in entries[0].changes_dict


def test_a_secret_change_is_never_copied_into_the_history(ops):
    with set_actor(ops):
        sub = WebhookSubscription.objects.create(name="hub", url="https://hub.test/volue/webhook",
                                                 secret="webhook-secret-one-111")
        sub.secret = "webhook-secret-two-222"
        sub.url = "https://hub.test/volue/webhook2"
        sub.save()
    text = " ".join(str(e.changes) for e in LogEntry.objects.get_for_object(sub))
    assert "webhook2" in text
    assert "webhook-secret" not in text


def test_what_the_hub_updates_as_it_runs_is_not_in_the_history(deployment):
    link = DeliveryLink.objects.create(platform="dexma", name="ds-1", deployment=deployment)
    link.cursor = 12345
    link.save()
    assert list(LogEntry.objects.get_for_object(link).values_list("action", flat=True)) == [
        LogEntry.Action.CREATE]


def test_ops_read_the_history_in_the_admin(admin_client, admin_user, deployment):
    with set_actor(admin_user):
        apikey_create(name="Wattics bridge", deployments=[deployment])
    response = admin_client.get(reverse("admin:auditlog_logentry_changelist"))
    assert response.status_code == 200
    assert b"Wattics bridge" in response.content
