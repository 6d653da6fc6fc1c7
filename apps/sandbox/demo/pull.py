"""The demo's upstream connection: the sandbox provider, synced on a schedule."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Callable

from django.conf import settings
from django.utils import timezone

from apps.core.models import Deployment
from apps.pull.models import Connection, Endpoint
from apps.pull.services import connection_setup
from apps.sandbox.upstream.models import Profile

PROFILE = "demo-provider"


def _hub_base_url() -> str:
    # `PORT=8001 make demo` runs demo_setup before rundemo sets HUB_BASE_URL from the port.
    if "HUB_BASE_URL" not in os.environ and os.environ.get("PORT"):
        return f"http://127.0.0.1:{os.environ['PORT']}"
    return settings.HUB_BASE_URL.rstrip("/")


ENDPOINTS = {
    Endpoint.Role.ASSETS: {"path": "assets", "fields": {
        "external_id": "assetId", "name": "name", "street": "address.street",
        "city": "address.city", "postal_code": "address.zip", "country": "address.country"}},
    Endpoint.Role.METERS: {"path": "meters", "fields": {
        "external_id": "id", "asset_id": "$.asset.id", "name": "label", "type": "kind",
        "unit": "unit"}},
    Endpoint.Role.CONSUMPTION: {"path": "consumption", "page_size": 200, "fields": {
        "meter_id": "meter", "start": "period.from", "end": "period.to", "value": "quantity",
        "cost": "cost.amount", "currency": "cost.currency", "estimated": "flags.estimated"}},
}


def demo_pull_setup(*, deployment: Deployment, write: Callable[[str], None]) -> None:
    connection = demo_connection_setup(deployment=deployment)
    write(f"  pull connection '{connection.name}' → {connection.base_url} "
          f"({connection.get_frequency_display()}; first sync within a minute)")


def demo_connection_setup(*, deployment: Deployment) -> Connection:
    Profile.objects.get_or_create(slug=PROFILE, defaults={
        "auth_kind": Profile.Auth.API_KEY_HEADER, "pagination": Profile.Paging.CURSOR,
        "page_size": 100, "asset_count": 3, "meter_count": 6, "interval_minutes": 60,
        "data_start": timezone.now() - dt.timedelta(days=30), "naive_timestamps": True,
        "naive_timezone": "Europe/Madrid", "max_range_days": 7, "burst_every": 30,
        "burst_length": 2, "error_every": 45, "invalid_every": 150, "flapping_meters": 1,
    })
    connection, created = Connection.objects.get_or_create(
        deployment=deployment, key="acme-upstream",
        defaults={
            "name": "Acme utility provider (sandbox)",
            "environment": Connection.Environment.STAGING,
            "staging_url": f"{_hub_base_url()}/sandbox/upstream/{PROFILE}/",
            "auth_kind": Connection.AuthKind.API_KEY_HEADER, "auth_name": "X-Api-Key",
            "api_key": "sandbox-key", "date_format": "%Y-%m-%d", "max_range_days": 7,
            "source_timezone": "Europe/Madrid", "initial_days": 7, "lookback_days": 1,
            "frequency": Connection.Frequency.DAILY, "run_hour": 4,
            "retry_after_cap_seconds": 120, "quota_window_seconds": 60,
        },
    )
    if created:
        for role, spec in ENDPOINTS.items():
            Endpoint.objects.create(
                connection=connection, role=role, path=spec["path"],
                pagination=Endpoint.Paging.CURSOR, page_size=spec.get("page_size", 100),
                cursor_param="cursor", cursor_path="paging.next", records_path="data",
                fields=spec["fields"],
            )
    connection_setup(connection=connection)
    return connection
