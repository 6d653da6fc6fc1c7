import datetime as dt

import pytest
from rest_framework.test import APIClient

from apps.core.services import ReadingIn, readings_ingest
from apps.partner_api.models import ApiKey
from apps.partner_api.selectors import catalogue
from apps.partner_api.services import apikey_create

T0 = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
QH = dt.timedelta(minutes=15)


@pytest.fixture(autouse=True)
def _fresh_catalogue():
    catalogue.cache_clear()
    yield
    catalogue.cache_clear()


@pytest.fixture
def make_key(db):
    def make(*deployments, access=ApiKey.Access.READ_WRITE, rate=None):
        key, raw = apikey_create(name="partner", deployments=deployments, access=access,
                                 rate_per_minute=rate)
        return key, raw
    return make


@pytest.fixture
def client_for():
    def make(raw: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_X_API_KEY=raw)
        return client
    return make


@pytest.fixture
def api(deployment, make_key, client_for):
    _, raw = make_key(deployment)
    return client_for(raw)


def ingest_usage(deployment, meter: str, count: int, start=T0, parameter="active_energy_delta",
                 **extra):
    records = [ReadingIn(device=meter, parameter=parameter, ts=start + i * QH,
                         period_end=start + (i + 1) * QH, value=float(i), **extra)
               for i in range(count)]
    result = readings_ingest(deployment=deployment, records=records, source="test")
    assert not result.rejections, result.rejections
    return result
