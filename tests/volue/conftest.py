"""Volue fixtures: a mocked platform (responses) and a customer with two meters."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from typing import Any

import pytest
import responses

from tests.fakes import FakeTime

API = "https://volue.test/energy-coordination/v1"
AUTH = "https://auth.volue.test/connect/token"
NOON = dt.datetime(2026, 3, 3, 12, tzinfo=dt.UTC)


def eligibility_events_page(platform: responses.RequestsMock, event_id: str, *,
                            added: tuple[str, ...] = (), removed: tuple[str, ...] = ()) -> None:
    """GET /events answers one page holding one UserEligibility event."""
    platform.get(f"{API}/events", json={
        "pagination": {"totalRecords": 1, "pageSize": 100, "currentPage": 1},
        "events": [{"id": event_id, "createdAt": "2026-03-03T10:00:00Z",
                    "payload": {"payloadType": "UserEligibility",
                                "lastUpdated": "2026-03-03T10:00:00Z",
                                "addedUsers": list(added), "removedUsers": list(removed)}}]})


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime(start=NOON.timestamp())


@pytest.fixture
def volue_urls(settings):
    settings.VOLUE_API_URL = API
    settings.VOLUE_AUTH_URL = AUTH
    settings.VOLUE_CLIENT_ID = "hub"
    settings.VOLUE_CLIENT_SECRET = "s3cret"
    settings.VOLUE_WEBHOOK_URL = "https://hub.test/volue/webhook"
    return settings


@pytest.fixture
def platform(volue_urls) -> Iterator[responses.RequestsMock]:
    """The platform mocked at the HTTP boundary; a token is always available."""
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mocked:
        mocked.post(AUTH, json={"access_token": "tok-1", "expires_in": 1800})
        yield mocked


@pytest.fixture
def volue(platform, fake):
    from apps.volue.client import volue_client

    return volue_client(sleep=fake.sleep, clock=fake.clock)


def calls(mocked: responses.RequestsMock, method: str, path: str) -> list[Any]:
    url = API + path
    return [c for c in mocked.calls
            if c.request.method == method and c.request.url.split("?")[0] == url]


def sent_json(call: Any) -> Any:
    return json.loads(call.request.body)


@pytest.fixture
def customer(deployment, make_device):
    from apps.core.models import Site
    from apps.volue.models import VolueCustomer

    main = make_device(deployment, "main-01", metadata={"meterPointId": "707057500000000011"})
    Site.objects.filter(pk=main.site_id).update(
        street="Calle de Alcalá 45", city="Madrid", postal_code="28014",
        latitude=40.4189, longitude=-3.6967,
    )
    make_device(deployment, "hvac-02", metadata={"meterPointId": "707057500000000028",
                                                "meterNumber": "HV-2"})
    return VolueCustomer.objects.create(deployment=deployment, key="acme", name="Acme")
