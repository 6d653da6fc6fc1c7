"""Builders for the pull tests: a sandbox provider profile and a connection that reads it."""

from __future__ import annotations

import datetime as dt

import pytest

# A fixed past instant on the hour: usage is asked for up to NOW, so counts are exact.
NOW = dt.datetime(2026, 3, 10, 12, 0, tzinfo=dt.UTC)
DATA_START = NOW - dt.timedelta(hours=36)

FIELDS = {
    "assets": {"external_id": "assetId", "name": "name", "street": "address.street",
               "city": "$.address.city", "postal_code": "address.zip",
               "country": "address['country']"},
    "meters": {"external_id": "id", "asset_id": "$.asset.id", "name": "label", "type": "kind",
               "unit": "unit"},
    "consumption": {"meter_id": "meter", "start": "period.from", "end": "period.to",
                    "value": "quantity", "cost": "cost.amount", "currency": "cost.currency",
                    "estimated": "flags.estimated"},
    "readings": {"meter_id": "meter", "timestamp": "timestamp", "value": "reading",
                 "estimated": "flags.estimated"},
}


class Recorder:
    """Stands in for time.sleep: remembers every wait instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> Recorder:
    return Recorder()


@pytest.fixture
def make_profile(db):
    from apps.sandbox.upstream.models import Profile

    def make(slug: str = "provider", **extra) -> Profile:
        values = {"asset_count": 2, "meter_count": 3, "page_size": 10,
                  "data_start": DATA_START, "interval_minutes": 60}
        values.update(extra)
        return Profile.objects.create(slug=slug, **values)

    return make


def endpoint_paging(style: str) -> dict:
    from apps.pull.models import Endpoint

    return {
        "offset": {"pagination": Endpoint.Paging.OFFSET, "size_param": "limit"},
        "page": {"pagination": Endpoint.Paging.PAGE, "size_param": "per_page",
                 "page_param": "page", "first_page": 1},
        "cursor": {"pagination": Endpoint.Paging.CURSOR, "size_param": "limit",
                   "cursor_param": "cursor", "cursor_path": "paging.next"},
        "link": {"pagination": Endpoint.Paging.LINK, "size_param": "limit"},
    }[style]


AUTH = {
    "api_key_header": {"auth_name": "X-Api-Key", "api_key": "sandbox-key"},
    "api_key_query": {"auth_name": "api_key", "api_key": "sandbox-key"},
    "basic": {"username": "sandbox-user", "password": "sandbox-pass"},
    "bearer": {"api_key": "sandbox-key", "bearer_format": "Token {token}"},
    "oauth2_client_credentials": {"client_id": "sandbox-client",
                                  "client_secret": "sandbox-secret"},
    "oauth2_password": {"client_id": "sandbox-client", "client_secret": "sandbox-secret",
                        "username": "sandbox-user", "password": "sandbox-pass"},
}


@pytest.fixture
def make_connection(deployment):
    from apps.pull.models import Connection, Endpoint
    from apps.pull.services import connection_setup

    def make(base: str, profile, *, roles=("assets", "meters", "consumption"), page_size=10,
             **extra) -> Connection:
        base = base.rstrip("/")
        values = {
            "name": f"Provider {profile.slug}", "key": profile.slug,
            "staging_url": f"{base}/sandbox/upstream/{profile.slug}/",
            "auth_kind": profile.auth_kind,
            "token_url": f"{base}/sandbox/upstream/{profile.slug}/oauth/token",
            "date_format": "%Y-%m-%dT%H:%M:%SZ", "initial_days": 2, "lookback_days": 1,
            "max_range_days": 7, "min_window_hours": 6, "max_retries": 3,
            "retry_after_cap_seconds": 60, "quota_window_seconds": 10,
            **AUTH[profile.auth_kind],
        }
        values.update(extra)
        connection = Connection(deployment=deployment, **values)
        connection.full_clean(exclude=["deployment"])
        connection.save()
        for role in roles:
            endpoint = Endpoint(connection=connection, role=role, path=role,
                                page_size=page_size, records_path="data",
                                fields=FIELDS[role], **endpoint_paging(profile.pagination))
            endpoint.full_clean()
            endpoint.save()
        return connection_setup(connection=connection)

    return make
