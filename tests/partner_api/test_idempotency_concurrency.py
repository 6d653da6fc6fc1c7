import threading

import pytest
from django.db import connection
from rest_framework.test import APIClient

from apps.core.models import Reading, Run

pytestmark = pytest.mark.django_db(transaction=True)


def test_two_simultaneous_requests_with_one_idempotency_key_store_once(
        deployment, make_device, make_key):
    make_device(deployment, "m1")
    _, raw = make_key(deployment)
    body = {"readings": [{"meter": "m1", "parameter": "active_power",
                          "ts": f"2026-03-01T00:{i:02d}:00Z", "value": i} for i in range(50)]}
    answers, barrier = [], threading.Barrier(2)

    def send():
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=raw)
        barrier.wait()
        response = client.post("/api/v1/readings/", body, format="json",
                               HTTP_IDEMPOTENCY_KEY="same")
        answers.append((response.status_code, response.json(),
                        response.headers["Idempotent-Replayed"]))
        connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(answers) == 2
    assert answers[0][:2] == answers[1][:2]
    assert sorted(a[2] for a in answers) == ["false", "true"]
    assert Reading.objects.count() == 50
    assert Run.objects.filter(kind="partner_api.push").count() == 1
