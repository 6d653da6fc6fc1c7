"""The partner API when a store is briefly gone: without the cache (Redis) pushes still land;
without the database the answer is a 503 a partner can wait out, never a bare 500."""

from unittest import mock

import pytest
from django.db import OperationalError

from apps.core.models import Reading

pytestmark = pytest.mark.django_db

GOOD = {"meter": "m1", "parameter": "active_energy_delta", "ts": "2026-03-01T00:00:00+01:00",
        "period_end": "2026-03-01T00:15:00+01:00", "value": 1.5}


class _CacheDown:
    def __getattr__(self, name):
        def fail(*args, **kwargs):
            raise ConnectionError("Error 111 connecting to 127.0.0.1:6379. Connection refused.")
        return fail


def test_push_is_stored_while_the_cache_is_down(api, deployment, make_device):
    meter = make_device(deployment, "m1")
    with mock.patch("apps.partner_api.auth.cache", _CacheDown()), \
            mock.patch("apps.partner_api.throttling.cache", _CacheDown()):
        response = api.post("/api/v1/readings/", {"readings": [GOOD]}, format="json")
    assert response.status_code == 201, response.content
    assert Reading.objects.filter(device=meter).count() == 1


def test_database_outage_is_a_503_with_retry_after(api, deployment, make_device):
    make_device(deployment, "m1")
    with mock.patch("apps.partner_api.services.readings_push",
                    side_effect=OperationalError("server closed the connection unexpectedly")):
        response = api.post("/api/v1/readings/", {"readings": [GOOD]}, format="json")
    assert response.status_code == 503
    assert response["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "unavailable"
