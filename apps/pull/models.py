"""Declarative connections to upstream provider APIs (Scaler-style pull sync).

A Connection says where the provider is, how to authenticate, and — per Endpoint — how
its pages are walked and where each canonical field sits in a record. The sync reads
nothing else: adding a provider is configuration, not code.
"""

from __future__ import annotations

import datetime as dt
import re

from django.core.exceptions import ValidationError
from django.db import models

from apps.core.fields import EncryptedTextField
from apps.core.models import COMMODITY_SUBTYPES, Datasource, Deployment, Run, validate_timezone

_PATH = re.compile(r"^\$?(\.?[A-Za-z0-9_\-]+|\[\d+\]|\['[^']+'\])*$")

# Canonical fields each endpoint role can map, and which of them are required.
FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "assets": (("external_id", "name"),
               ("street", "city", "postal_code", "country", "latitude", "longitude",
                "timezone")),
    "meters": (("external_id", "type", "unit"),
               ("asset_id", "name", "subtype", "asset_name", "street", "city", "postal_code",
                "country")),
    "consumption": (("meter_id", "start", "end", "value"),
                    ("redelivery", "production", "cost", "currency", "estimated")),
    "readings": (("meter_id", "timestamp", "value"), ("estimated",)),
}

DEFAULT_TYPE_MAP = {
    "electricity": "energy/Off-site Electricity",
    "solar": "energy/On-site Renewable Electricity",
    "natural_gas": "energy/Natural Gas",
    "gas": "energy/Natural Gas",
    "district_heating": "energy/District Heating and Cooling",
    "heat": "energy/District Heating and Cooling",
    "water": "water/Potable",
    "waste": "waste/Non-hazardous",
}
# Keys tried in order: "commodity/subtype", "commodity"; values are parameter keys.
DEFAULT_CONSUMPTION_PARAMETERS = {
    "energy/Natural Gas": "gas_volume_delta",
    "energy/District Heating and Cooling": "thermal_energy_delta",
    "energy/District Hot Water": "thermal_energy_delta",
    "energy": "active_energy_delta",
    "water": "water_volume_delta",
    "redelivery": "exported_active_energy_delta",
}
DEFAULT_READING_PARAMETERS = {
    "energy/Natural Gas": "gas_volume",
    "energy/District Heating and Cooling": "thermal_energy",
    "energy/District Hot Water": "thermal_energy",
    "energy": "active_energy",
    "water": "water_volume",
}


def _type_map_default() -> dict:
    return dict(DEFAULT_TYPE_MAP)


def _consumption_default() -> dict:
    return dict(DEFAULT_CONSUMPTION_PARAMETERS)


def _reading_default() -> dict:
    return dict(DEFAULT_READING_PARAMETERS)


class Connection(models.Model):
    class Environment(models.TextChoices):
        STAGING = "staging", "Staging"
        PRODUCTION = "production", "Production"

    class AuthKind(models.TextChoices):
        NONE = "none", "None"
        API_KEY_HEADER = "api_key_header", "API key in a header"
        API_KEY_QUERY = "api_key_query", "API key in a query parameter"
        BASIC = "basic", "HTTP Basic"
        BEARER = "bearer", "Static bearer token"
        CLIENT_CREDENTIALS = "oauth2_client_credentials", "OAuth2 client credentials"
        PASSWORD = "oauth2_password", "OAuth2 password grant"

    class Frequency(models.TextChoices):
        DAILY = "daily", "Daily"
        WEEKLY = "weekly", "Weekly (Mondays)"
        MONTHLY = "monthly", "Monthly (the 1st)"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE,
                                   related_name="pull_connections")
    datasource = models.OneToOneField(
        Datasource, on_delete=models.PROTECT, null=True, blank=True, related_name="pull_connection",
        help_text="Created on first save (kind 'pull'); the connection's devices hang under it.",
    )
    name = models.CharField(max_length=200)
    key = models.SlugField(max_length=64, help_text="Datasource key; unique in the deployment.")
    is_enabled = models.BooleanField(default=True)
    environment = models.CharField(max_length=16, choices=Environment.choices,
                                   default=Environment.STAGING)
    staging_url = models.URLField(max_length=500, blank=True)
    production_url = models.URLField(max_length=500, blank=True)
    timeout_seconds = models.PositiveIntegerField(default=30)
    concurrency = models.PositiveSmallIntegerField(
        default=2, help_text="Pages requested at once on offset and page-number endpoints, "
                             "whose next page is known in advance (1: one after another).")

    auth_kind = models.CharField(max_length=32, choices=AuthKind.choices, default=AuthKind.NONE)
    auth_name = models.CharField(
        max_length=64, blank=True, default="X-Api-Key",
        help_text="Header or query parameter that carries the API key; header of a bearer.",
    )
    api_key = EncryptedTextField(blank=True, help_text="API key or static bearer token.")
    bearer_format = models.CharField(max_length=64, default="Bearer {token}",
                                     help_text="How the header value is written, e.g. "
                                               "'Token {token}'.")
    username = models.CharField(max_length=200, blank=True)
    password = EncryptedTextField(blank=True)
    token_url = models.URLField(max_length=500, blank=True)
    client_id = models.CharField(max_length=200, blank=True)
    client_secret = EncryptedTextField(blank=True)
    scope = models.CharField(max_length=200, blank=True)
    refresh_token = EncryptedTextField(
        blank=True, help_text="Latest refresh token; providers that rotate them get the new one "
                              "saved here after every refresh.",
    )

    date_from_param = models.CharField(max_length=64, default="from")
    date_to_param = models.CharField(max_length=64, default="to")
    date_format = models.CharField(
        max_length=64, default="%Y-%m-%d",
        help_text="strftime format of the range parameters (the range end is exclusive).",
    )
    max_range_days = models.PositiveIntegerField(
        default=31, help_text="Longest range one request may ask for; larger ranges are split.")
    min_window_hours = models.PositiveIntegerField(
        default=24, help_text="Smallest window the sync shrinks to when the provider refuses "
                              "or times out on a range.")
    source_timezone = models.CharField(
        max_length=64, default="UTC", validators=[validate_timezone],
        help_text="Zone assumed for timestamps that carry no offset.")
    initial_days = models.PositiveIntegerField(default=30, help_text="History on the first run.")
    lookback_days = models.PositiveIntegerField(
        default=2, help_text="Re-read this much before the watermark (late corrections).")

    type_map = models.JSONField(
        default=_type_map_default, blank=True,
        help_text='Provider meter type → "commodity/Subtype" (Scaler category).')
    consumption_parameters = models.JSONField(
        default=_consumption_default, blank=True,
        help_text='"commodity/Subtype" or "commodity" (or "redelivery", "production") → '
                  "interval parameter key.")
    reading_parameters = models.JSONField(
        default=_reading_default, blank=True,
        help_text='"commodity/Subtype" or "commodity" → cumulative parameter key.')

    frequency = models.CharField(max_length=16, choices=Frequency.choices,
                                 default=Frequency.DAILY)
    run_hour = models.PositiveSmallIntegerField(default=3, help_text="UTC hour.")
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", on_delete=models.SET_NULL, null=True, blank=True,
        editable=False, related_name="+",
    )
    max_retries = models.PositiveSmallIntegerField(default=5)
    quota_window_seconds = models.PositiveIntegerField(
        default=60, help_text="The provider's rate-limit window.")
    retry_after_cap_seconds = models.PositiveIntegerField(
        default=300, help_text="Longest Retry-After honoured; at least the quota window.")
    notify_email = models.EmailField(blank=True, help_text="Failures go here and to OPS_EMAILS.")

    usage_watermark = models.DateTimeField(
        null=True, blank=True, help_text="Usage is complete up to here (committed with it).")
    last_status = models.CharField(max_length=16, blank=True, choices=Run.Status.choices)
    last_run = models.ForeignKey(Run, on_delete=models.SET_NULL, null=True, blank=True,
                                 related_name="+")
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["deployment", "name"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "key"], name="pull_connection_key"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def base_url(self) -> str:
        return self.production_url if self.environment == "production" else self.staging_url

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if not self.base_url:
            errors["production_url" if self.environment == "production" else "staging_url"] = (
                f"the active environment is {self.environment}: give its base URL"
            )
        need = {
            self.AuthKind.API_KEY_HEADER: ("auth_name", "api_key"),
            self.AuthKind.API_KEY_QUERY: ("auth_name", "api_key"),
            self.AuthKind.BASIC: ("username", "password"),
            self.AuthKind.BEARER: ("api_key",),
            self.AuthKind.CLIENT_CREDENTIALS: ("token_url", "client_id", "client_secret"),
            self.AuthKind.PASSWORD: ("token_url", "client_id", "client_secret", "username",
                                     "password"),
        }.get(self.auth_kind, ())
        for name in need:
            if not getattr(self, name):
                errors[name] = f"required for {self.get_auth_kind_display()} auth"
        if self.auth_kind == self.AuthKind.BEARER and "{token}" not in self.bearer_format:
            errors["bearer_format"] = "must contain {token}, e.g. 'Bearer {token}'"
        try:
            sample = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC).strftime(self.date_format)
        except ValueError as exc:
            errors["date_format"] = f"not a strftime format: {exc}"
        else:
            if sample == self.date_format:
                errors["date_format"] = "has no % directive, e.g. %Y-%m-%d"
        if self.retry_after_cap_seconds < self.quota_window_seconds:
            errors["retry_after_cap_seconds"] = (
                f"must be at least the quota window ({self.quota_window_seconds} s), or a "
                "rate-limited run gives up before the quota resets"
            )
        if not 1 <= self.concurrency <= 8:
            errors["concurrency"] = "from 1 to 8 requests at once"
        if self.run_hour > 23:
            errors["run_hour"] = "an hour from 0 to 23 (UTC)"
        errors.update(self._clean_maps())
        if errors:
            raise ValidationError(errors)

    def _clean_maps(self) -> dict[str, str]:
        from apps.core.models import Parameter

        errors = {}
        if not isinstance(self.type_map, dict):
            return {"type_map": 'a JSON object like {"electricity": "energy/Off-site Electricity"}'}
        for provider_type, category in self.type_map.items():
            commodity, _, subtype = str(category).partition("/")
            if commodity not in COMMODITY_SUBTYPES:
                errors["type_map"] = (f"'{provider_type}': '{category}' must start with energy, "
                                      "water or waste")
            elif subtype and subtype not in COMMODITY_SUBTYPES[commodity]:
                allowed = ", ".join(COMMODITY_SUBTYPES[commodity])
                errors["type_map"] = f"'{provider_type}': '{subtype}' is not a {commodity} " \
                                     f"subtype ({allowed})"
        kinds = {"consumption_parameters": "interval", "reading_parameters": "cumulative"}
        known = dict(Parameter.objects.values_list("key", "kind"))
        for name, kind in kinds.items():
            mapping = getattr(self, name)
            if not isinstance(mapping, dict):
                errors[name] = 'a JSON object like {"energy": "active_energy_delta"}'
                continue
            for target, key in mapping.items():
                if key not in known:
                    errors[name] = f"'{target}': unknown parameter '{key}'"
                elif known[key] != kind:
                    errors[name] = f"'{target}': '{key}' is {known[key]}, need a {kind} parameter"
        return errors


class Endpoint(models.Model):
    class Role(models.TextChoices):
        ASSETS = "assets", "Assets (buildings)"
        METERS = "meters", "Meters"
        CONSUMPTION = "consumption", "Usage, consumption format (start to end)"
        READINGS = "readings", "Usage, reading format (timestamp)"

    class Paging(models.TextChoices):
        NONE = "none", "No pagination"
        OFFSET = "offset", "Offset / limit"
        PAGE = "page", "Page number"
        CURSOR = "cursor", "Cursor / next token in the body"
        LINK = "link", "RFC 8288 Link header"

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE,
                                   related_name="endpoints")
    role = models.CharField(max_length=16, choices=Role.choices)
    path = models.CharField(max_length=500, help_text="Relative to the base URL.")
    params = models.JSONField(default=dict, blank=True, help_text="Fixed query parameters.")
    pagination = models.CharField(max_length=16, choices=Paging.choices, default=Paging.OFFSET)
    page_size = models.PositiveIntegerField(default=100)
    size_param = models.CharField(max_length=64, blank=True, default="limit",
                                  help_text="Query parameter for the page size (blank: none).")
    offset_param = models.CharField(max_length=64, default="offset")
    page_param = models.CharField(max_length=64, default="page")
    first_page = models.PositiveSmallIntegerField(default=1)
    cursor_param = models.CharField(max_length=64, default="cursor")
    cursor_path = models.CharField(max_length=200, blank=True, default="next",
                                   help_text="Where the next cursor sits in the body.")
    records_path = models.CharField(max_length=200, blank=True, default="data",
                                    help_text="Where the record list sits (blank: the body).")
    fields = models.JSONField(
        default=dict, blank=True,
        help_text="Canonical field → dotted path or JSONPath in a record, e.g. "
                  '{"external_id": "id", "unit": "$.unit", "asset_id": "asset.id"}.')

    class Meta:
        ordering = ["connection", "role"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "role"], name="pull_endpoint_role"),
        ]

    def __str__(self) -> str:
        return f"{self.connection}: {self.role}"

    def clean(self) -> None:
        errors: dict[str, list[str]] = {}

        def add(name: str, message: str) -> None:
            errors.setdefault(name, []).append(message)

        if not isinstance(self.fields, dict):
            raise ValidationError({"fields": "a JSON object of canonical field → path"})
        required, optional = FIELDS.get(self.role, ((), ()))
        missing = [name for name in required if not self.fields.get(name)]
        if missing:
            add("fields", f"{self.role} needs a path for: {', '.join(missing)}")
        allowed = {*required, *optional, "metadata"}
        unknown = sorted(set(self.fields) - allowed)
        if unknown:
            add("fields", f"unknown field(s) {', '.join(unknown)}; {self.role} maps "
                          f"{', '.join(sorted(allowed))}")
        for name, path in self.fields.items():
            if not isinstance(path, str) or not _PATH.match(path):
                add("fields", f"'{name}': '{path}' is not a dotted path or JSONPath like $.a.b[0]")
        for name in ("records_path", "cursor_path"):
            value = getattr(self, name)
            if value and not _PATH.match(value):
                add(name, f"'{value}' is not a dotted path or JSONPath")
        if self.pagination == self.Paging.CURSOR and not self.cursor_path:
            add("cursor_path", "cursor pagination needs the path of the next cursor")
        if not isinstance(self.params, dict):
            add("params", "a JSON object of query parameters")
        if not 1 <= self.page_size <= 10_000:
            add("page_size", "between 1 and 10000")
        if errors:
            raise ValidationError(errors)


class SeenUnit(models.Model):
    """Units a connection's meters reported: registered on first sight (seed 002)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="units")
    unit = models.CharField(max_length=32)
    first_seen_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["connection", "unit"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "unit"], name="pull_unit_unique"),
        ]

    def __str__(self) -> str:
        return self.unit
