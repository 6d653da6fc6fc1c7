"""Scenario 5: Volue. The access token expires and is revoked mid-run, reports are refused
twice; a webhook notification is replayed; forged notifications arrive (tampered body, a
secret the hub never issued, no signature, and a subscription someone else registered on
the platform pointing at the hub). Every event is processed and reported exactly once;
nothing forged changes anything."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid

import pytest
import requests

from tests.faults.conftest import scaled

pytestmark = pytest.mark.faults

TOKEN_LIFETIME = 5  # seconds: several expiries within the scenario
FAILED_REPORTS = 2  # the platform answers the next report POSTs with 503
_SIGNED_REPLAY = """
import json
from apps.volue.schemas import signature_of
from apps.volue.models import Notification, WebhookSubscription
notification = Notification.objects.get(event_id=%r)
body = json.dumps(notification.body)
secret = WebhookSubscription.objects.filter(is_active=True).first().secret
print(json.dumps({"body": body, "signature": signature_of(body.encode(), secret)}))
"""
_SIGN = """
import json
from apps.volue.schemas import signature_of
print(json.dumps(signature_of(%r.encode(), %r)))
"""


def _control(hub, **knobs) -> dict:
    response = requests.post(f"{hub.base_url}/sandbox/volue/control", json=knobs, timeout=30)
    assert response.status_code == 200, response.text
    return response.json()


def _trigger(hub, start: dt.datetime, hours: int) -> str:
    response = requests.post(f"{hub.base_url}/sandbox/volue/trigger", timeout=60, params={
        "type": "LocationLPCRequested", "start": start.isoformat(), "hours": hours})
    assert response.status_code == 200, response.text
    return response.json()["events"][0]["eventId"]


def _webhook(hub, body: str, signature: str | None) -> requests.Response:
    headers = {"Content-Type": "application/json"}
    if signature is not None:
        headers["X-Payload-Signature"] = signature
    return requests.post(f"{hub.base_url}/volue/webhook", data=body.encode(), headers=headers,
                         timeout=30)


def _count(hub, table: str, where: str = "TRUE", params: tuple = ()) -> int:
    return hub.sql(f"SELECT count(*) FROM {table} WHERE {where}", params)[0][0]


def _snapshot(hub) -> dict[str, int]:
    return {
        "notifications": _count(hub, "volue_notification"),
        "processed": _count(hub, "volue_notification", "processed_at IS NOT NULL"),
        "events": _count(hub, "volue_event"),
        "hub_reports": _count(hub, "volue_energyreport"),
        "platform_reports": _count(hub, "sandbox_volue_sbreport"),
    }


def _reported(hub, event_id: str) -> bool:
    return _count(hub, "sandbox_volue_sbreport", "event_id = %s", (event_id,)) >= 1


def test_volue_token_expiry_replay_and_forgery(hub_factory):
    settle = scaled(20, 12)  # long enough for every Volue schedule to run twice
    with hub_factory(env={"SANDBOX_VOLUE_AUTO_EVENT": "false"}) as hub:
        hub.seed_demo(days=1)
        hub.start()
        hub.wait_for(lambda: _count(hub, "sandbox_volue_sbmeterpoint") >= 4
                     and _count(hub, "sandbox_volue_sbwebhook") >= 1,
                     120, "the demo customer registered and the webhook subscribed")
        hour = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)

        # --- the token expires mid-run ------------------------------------------------
        began = _control(hub, tokenLifetime=TOKEN_LIFETIME, revokeTokens=True,
                         failReports=FAILED_REPORTS)
        first = _trigger(hub, hour - dt.timedelta(hours=4), 3)
        time.sleep(1)
        _control(hub, revokeTokens=True)  # again, while the report is due
        hub.wait_for(lambda: _reported(hub, first), 180, "the first event's report")
        time.sleep(TOKEN_LIFETIME + 2)  # whatever token the hub holds has now expired
        second = _trigger(hub, hour - dt.timedelta(hours=8), 2)
        hub.wait_for(lambda: _reported(hub, second), 180, "the second event's report")
        ended = _control(hub)
        report_states = hub.sql("SELECT e.event_id, r.state FROM volue_energyreport r "
                                "JOIN volue_event e ON e.id = r.event_id ORDER BY r.id")
        batches = hub.sql("SELECT b.state, b.attempts, b.last_status FROM core_outboundbatch b "
                          "JOIN core_deliverylink l ON l.id = b.link_id "
                          "WHERE l.platform = 'volue' ORDER BY b.id")

        # --- a replayed notification --------------------------------------------------
        time.sleep(settle)
        before_replay = _snapshot(hub)
        signed = hub.shell(_SIGNED_REPLAY % first)
        replay = _webhook(hub, signed["body"], signed["signature"])
        time.sleep(settle)
        after_replay = _snapshot(hub)

        # --- forged notifications -----------------------------------------------------
        original = json.loads(signed["body"])
        forged_events = [str(uuid.uuid4()) for _ in range(3)]

        def forged(event_id: str) -> dict:
            return {**original, "notificationId": str(uuid.uuid4()), "eventId": event_id}

        tampered = json.dumps(forged(forged_events[0]))
        unknown_body = json.dumps(forged(forged_events[1]))
        unknown_signature = hub.shell(_SIGN % (unknown_body, "a-secret-the-hub-never-issued"))
        answers = {
            "tampered body, genuine signature": _webhook(hub, tampered, signed["signature"]),
            "signed with an unknown secret": _webhook(hub, unknown_body, unknown_signature),
            "no signature": _webhook(hub, json.dumps(forged(forged_events[2])), None),
        }
        # Someone registers their own webhook on the platform, aimed at the hub: the
        # platform signs with that subscription's secret, which the hub never issued.
        token = requests.post(f"{hub.base_url}/sandbox/volue/connect/token", timeout=30, data={
            "grant_type": "client_credentials", "client_id": "hub-demo",
            "client_secret": "sandbox-client-secret"}).json()["access_token"]
        intruder = requests.post(
            f"{hub.base_url}/sandbox/volue/api/webhooks", timeout=30,
            headers={"Authorization": f"Bearer {token}"},
            json={"webhookUrl": f"{hub.base_url}/volue/webhook", "name": "not the hub",
                  "webhookSecret": "someone-elses-secret",
                  "notificationTypes": ["LocationLPCRequested"]}).json()["webhookId"]
        third = _trigger(hub, hour - dt.timedelta(hours=12), 2)
        time.sleep(settle)
        after_forgery = _snapshot(hub)
        deliveries = hub.sql(
            "SELECT w.webhook_id = %s, d.last_status, d.delivered, d.attempts "
            "FROM sandbox_volue_sbdelivery d JOIN sandbox_volue_sbevent e ON e.id = d.event_id "
            "JOIN sandbox_volue_sbwebhook w ON w.id = d.webhook_id WHERE e.event_id = %s",
            (intruder, third))
        forged_seen = _count(hub, "volue_event", "event_id = ANY(%s)", (forged_events,))

        print(f"\nFIGURES volue: tokens issued {ended['tokensIssued'] - began['tokensIssued']}"
              f", calls refused for an expired or revoked token "
              f"{ended['refusedTokens'] - began['refusedTokens']}; reports {report_states}, "
              f"their outbox batches (state, attempts, last status) {batches}; "
              f"replay answered {replay.status_code} {replay.json()}; forged answered "
              f"{ {k: v.status_code for k, v in answers.items()} }; intruder's deliveries "
              f"{deliveries}; snapshots {before_replay} -> {after_replay} -> {after_forgery}")

        # The token kept expiring and was refused once revoked; the hub got fresh ones.
        assert ended["tokensIssued"] - began["tokensIssued"] >= 2
        assert ended["refusedTokens"] - began["refusedTokens"] >= 1
        assert {event for event, _ in report_states} >= {first, second}
        # Sent through the outbox, the refused attempts (503) retried, none given up.
        assert batches and all(state == "sent" for state, _, _ in batches), batches
        assert ended["failReports"] == 0  # every refusal was met, and retried
        for event_id in (first, second):
            assert _count(hub, "sandbox_volue_sbreport", "event_id = %s", (event_id,)) == 1
        # The replay is recognised and changes nothing.
        assert replay.status_code == 200 and replay.json()["status"] == "duplicate"
        assert after_replay == before_replay
        assert _count(hub, "sandbox_volue_sbreport", "event_id = %s", (first,)) == 1
        # Forgeries are refused and change nothing; the genuine third event goes through
        # once, through the hub's own subscription only.
        assert all(answer.status_code == 401 for answer in answers.values()), answers
        assert forged_seen == 0
        assert [(status, delivered) for intruders, status, delivered, _ in deliveries
                if intruders] == [(401, False)]
        assert after_forgery["notifications"] == after_replay["notifications"] + 1
        assert after_forgery["events"] == after_replay["events"] + 1
        assert _count(hub, "volue_notification", "event_id = %s", (third,)) == 1
