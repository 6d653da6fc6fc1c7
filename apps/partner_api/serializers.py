"""Wire shapes of the partner API: inputs are validated here; outputs document the schema.

List outputs are built as plain dicts by the selectors (a 500-row page through DRF field
objects costs more than the query); these serializers describe the same shapes for OpenAPI.
"""

import math
import zoneinfo

from django.conf import settings
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.core.models import COMMODITY_SUBTYPES, Commodity

ALL_SUBTYPES = sorted({s for subs in COMMODITY_SUBTYPES.values() for s in subs})
METADATA_MAX_DEPTH = 32


def storable_json(value, depth: int = 0) -> None:
    """Refuse what the database's JSON cannot hold: NaN, infinity, very deep nesting."""
    if depth > METADATA_MAX_DEPTH:
        raise serializers.ValidationError(
            f"nested more than {METADATA_MAX_DEPTH} levels deep; flatten it")
    if isinstance(value, float) and not math.isfinite(value):
        raise serializers.ValidationError("NaN and Infinity are not JSON numbers; send null "
                                          "or a finite number")
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for child in value:
            storable_json(child, depth + 1)


# Input fields that take exactly the JSON type the schema gives: DRF's own fields coerce
# (0 is false, 12 is "12", "1.5" is 1.5), so a request the schema refuses would be stored.
class TextField(serializers.CharField):
    """A JSON string, kept as sent (no trimming: the schema's minLength is what counts)."""

    default_error_messages = {"not_text": "must be a JSON string, not {kind}"}

    def __init__(self, **kwargs) -> None:
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_text", kind=type(data).__name__)
        return super().to_internal_value(data)


class NumberField(serializers.FloatField):
    """A JSON number (not a string holding one, not true/false)."""

    default_error_messages = {"not_number": "must be a JSON number, not {kind}"}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int | float):
            self.fail("not_number", kind=type(data).__name__)
        try:
            return super().to_internal_value(data)
        except OverflowError:
            self.fail("max_string_length")


class FlagField(serializers.BooleanField):
    """JSON true or false only."""

    default_error_messages = {"not_flag": "must be true or false, not {kind}"}

    def to_internal_value(self, data):
        if type(data) is not bool:
            self.fail("not_flag", kind=type(data).__name__)
        return data


ZONES = frozenset(zoneinfo.available_timezones())


@extend_schema_field({"type": "string", "enum": sorted(ZONES),
                      "description": "IANA time zone, e.g. Europe/Madrid."})
class TimeZoneField(TextField):
    """The schema lists the zones the hub knows, so a client can tell a valid one."""

    default_error_messages = {"unknown_zone": "'{zone}' is not an IANA time zone this hub "
                              "knows (e.g. Europe/Madrid)"}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if value not in ZONES:
            self.fail("unknown_zone", zone=value[:64])
        return value


class AddressSerializer(serializers.Serializer):
    street = TextField(max_length=255, required=False, allow_blank=True)
    city = TextField(max_length=128, required=False, allow_blank=True)
    postal_code = TextField(max_length=32, required=False, allow_blank=True)
    country = TextField(max_length=2, required=False, allow_blank=True,
                        help_text="ISO 3166-1 alpha-2")


class AssetOutputSerializer(serializers.Serializer):
    external_id = serializers.CharField(help_text="Stable identifier; match assets on it.")
    name = serializers.CharField()
    address = AddressSerializer()
    latitude = serializers.FloatField(allow_null=True)
    longitude = serializers.FloatField(allow_null=True)
    timezone = serializers.CharField(help_text="IANA zone of the building.")
    metadata = serializers.DictField(help_text="Free attributes, stored as given.")
    active = serializers.BooleanField()
    updated_at = serializers.DateTimeField(help_text=(
        "When the record last changed (created, edited, deactivated, deleted): use it with "
        "`updated_since`."))
    deleted = serializers.BooleanField(help_text=(
        "True on a tombstone (`include_deleted=true`), whose other fields are null but "
        "external_id, active and the times."))
    deleted_at = serializers.DateTimeField(allow_null=True)


class AssetInputSerializer(serializers.Serializer):
    name = TextField(max_length=255)
    address = AddressSerializer(required=False)
    latitude = NumberField(required=False, allow_null=True, min_value=-90, max_value=90)
    longitude = NumberField(required=False, allow_null=True, min_value=-180, max_value=180)
    timezone = TimeZoneField(max_length=64, required=False)
    metadata = serializers.DictField(required=False, validators=[storable_json])
    active = FlagField(required=False)

    def to_model_fields(self) -> dict:
        data = dict(self.validated_data)
        address = data.pop("address", {}) or {}
        if "active" in data:
            data["is_active"] = data.pop("active")
        return {**data, **address}


class MeterOutputSerializer(serializers.Serializer):
    external_id = serializers.CharField(help_text="Stable identifier; match meters on it.")
    asset = serializers.CharField(allow_null=True, help_text="external_id of the asset.")
    name = serializers.CharField(help_text="Description of the meter.")
    type = serializers.ChoiceField(choices=Commodity.labels, help_text="Scaler meter type.")
    subtype = serializers.CharField(allow_null=True, help_text="Scaler sub-category.")
    unit = serializers.CharField()
    metadata = serializers.DictField(help_text="MPAN, serial number… stored as given.")
    active = serializers.BooleanField()
    updated_at = serializers.DateTimeField(help_text=(
        "When the record last changed (created, edited, deactivated, deleted): use it with "
        "`updated_since`."))
    deleted = serializers.BooleanField(help_text=(
        "True on a tombstone (`include_deleted=true`), whose other fields are null but "
        "external_id, active and the times."))
    deleted_at = serializers.DateTimeField(allow_null=True)


class MeterInputSerializer(serializers.Serializer):
    asset = TextField(max_length=255, required=False, allow_null=True,
                      help_text="external_id of an existing asset.")
    name = TextField(max_length=255, required=False, allow_blank=True)
    type = serializers.ChoiceField(choices=[*Commodity.labels, *Commodity.values])
    subtype = serializers.ChoiceField(choices=ALL_SUBTYPES, required=False, allow_blank=True,
                                      help_text="Must belong to the type.")
    unit = TextField(max_length=32)
    metadata = serializers.DictField(required=False, validators=[storable_json])
    active = FlagField(required=False)

    def to_model_fields(self) -> dict:
        data = dict(self.validated_data)
        data["commodity"] = data.pop("type")
        if "active" in data:
            data["is_active"] = data.pop("active")
        return data


USAGE_DESCRIPTION = """Consumption format: one record per interval reading of a consumption
parameter (an interval *delta*: `active_energy_delta`, `gas_volume_delta`,
`water_volume_delta`…).

**Periods.** `period_start` (inclusive) and `period_end` (exclusive) are the period's ISO 8601
instants in UTC, always. `start_date` (inclusive) and `end_date` (exclusive) are Scaler's
`YYYY-MM-DD` dates in the time zone of the meter's asset (the deployment's zone for a meter
without one) when the period is whole local days, and null otherwise (a 15-minute or an
hourly interval): a Madrid day starts at 23:00Z of the previous date (22:00Z in summer),
so its date is not the UTC instant's. `from`/`to` (or `start_date`/`end_date`) filter on the
period start: a period is returned when `from <= period_start < to`.

**Values.** `value` is the reading's value in `unit`; `redelivery` is the export register of
the same period (for `active_energy_delta`, the `exported_active_energy_delta` reading at the
same start); `production` repeats `value` on meters of subtype *On-site Renewable
Electricity* and is null elsewhere; `cost`, `currency` (ISO 4217) and `estimated` are the
reading's own. `updated_at` is when the record was stored or last corrected (the commit
time): pass the newest one you hold as `updated_since` to get every later change."""


class UsageSerializer(serializers.Serializer):
    meter = serializers.CharField(help_text="The meter's external_id.")
    parameter = serializers.CharField(help_text="Parameter key, e.g. active_energy_delta.")
    start_date = serializers.DateField(allow_null=True, help_text=(
        "Inclusive first local day (YYYY-MM-DD) when the period is whole days, else null."))
    end_date = serializers.DateField(allow_null=True, help_text=(
        "Exclusive end day (YYYY-MM-DD) when the period is whole days, else null."))
    period_start = serializers.DateTimeField(help_text="Inclusive period start (UTC).")
    period_end = serializers.DateTimeField(help_text="Exclusive period end (UTC).")
    value = serializers.FloatField()
    unit = serializers.CharField()
    redelivery = serializers.FloatField(allow_null=True,
                                        help_text="Exported to the grid in the same period.")
    production = serializers.FloatField(allow_null=True,
                                        help_text="Produced on site (renewable meters).")
    cost = serializers.FloatField(allow_null=True)
    currency = serializers.CharField(allow_null=True, help_text="ISO 4217, set with cost.")
    estimated = serializers.BooleanField()
    updated_at = serializers.DateTimeField(help_text="Commit time of the last change.")


class ReadingOutputSerializer(serializers.Serializer):
    meter = serializers.CharField(help_text="The meter's external_id.")
    parameter = serializers.CharField(help_text="Parameter key, e.g. active_energy.")
    timestamp = serializers.DateTimeField()
    value = serializers.FloatField(help_text="Meter index (cumulative) or instant value.")
    unit = serializers.CharField()
    estimated = serializers.BooleanField()
    updated_at = serializers.DateTimeField(help_text="Commit time of the last change.")


def page_serializer(item: type[serializers.Serializer], name: str):
    return type(name, (serializers.Serializer,), {
        "results": item(many=True),
        "next": serializers.URLField(allow_null=True, help_text=(
            "Next page (continues by cursor); null on the last page.")),
        "previous": serializers.URLField(allow_null=True),
        "next_cursor": serializers.CharField(
            allow_null=True,
            help_text="Opaque position after this page: pass it as `cursor` to continue; "
                      "null on the last page. For the next pull use `updated_since`."),
    })


AssetPageSerializer = page_serializer(AssetOutputSerializer, "AssetPage")
MeterPageSerializer = page_serializer(MeterOutputSerializer, "MeterPage")
UsagePageSerializer = page_serializer(UsageSerializer, "UsagePage")
ReadingPageSerializer = page_serializer(ReadingOutputSerializer, "ReadingPage")


class ReadingItemSerializer(serializers.Serializer):
    """One pushed reading (documentation; the core ingest validates each record)."""

    meter = serializers.CharField(help_text="external_id of a meter of the deployment.")
    parameter = serializers.CharField(
        help_text="Parameter key: active_energy (index), active_energy_delta (interval), "
                  "exported_active_energy_delta (redelivery), active_power, temperature…")
    ts = serializers.DateTimeField(help_text="Instant, or period start; with an offset.")
    value = serializers.FloatField()
    period_end = serializers.DateTimeField(required=False, allow_null=True,
                                           help_text="Interval parameters only.")
    estimated = serializers.BooleanField(required=False, default=False)
    quality = serializers.ChoiceField(choices=[0, 1, 2], required=False,
                                      help_text="0 good, 1 suspect, 2 bad.")
    cost = serializers.FloatField(required=False, allow_null=True)
    currency = serializers.CharField(required=False, allow_blank=True, max_length=3,
                                     help_text="ISO 4217; required with cost.")


class ReadingBatchDocSerializer(serializers.Serializer):
    readings = ReadingItemSerializer(many=True, allow_empty=False, min_length=1,
                                     max_length=settings.PARTNER_API_MAX_BATCH)


class RejectionSerializer(serializers.Serializer):
    index = serializers.IntegerField(help_text="Position in the request's readings list.")
    field = serializers.CharField(allow_null=True,
                                  help_text="The reading's field the reason is about (meter, "
                                            "ts, value, …); null when the item is not a reading.")
    reason = serializers.CharField()


class BatchResultSerializer(serializers.Serializer):
    received = serializers.IntegerField()
    accepted = serializers.IntegerField(help_text="inserted + updated + unchanged.")
    inserted = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()
    duplicates = serializers.IntegerField(help_text="Repeats in the batch; the last wins.")
    rejected = serializers.IntegerField(help_text="Quarantined; see rejections.")
    rejections = RejectionSerializer(many=True)


class ErrorDetailSerializer(serializers.Serializer):
    status = serializers.IntegerField()
    code = serializers.CharField(help_text="Stable machine-readable code.")
    message = serializers.CharField(help_text="What went wrong and what to do.")
    fields = serializers.DictField(required=False,
                                   help_text="Field → messages, on validation errors.")


class ErrorSerializer(serializers.Serializer):
    error = ErrorDetailSerializer()
