"""Wattics push: credentials, partner groups, streams (one Wattics meter each), channels.

The partner level is a named group of deployments (`WatticsPartner`), not "the account
with no scope": a hub can serve several resellers that each signed their own Wattics
agreement, and an account that silently applied to every deployment would send one
customer's data under another partner's credentials. A deployment belongs to at most one
partner group, so resolution never has to choose between two partner accounts.
"""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from apps.core.fields import EncryptedTextField
from apps.core.models import DeliveryLink, Deployment, Device, Parameter, Site, validate_timezone

PHASE_FIELDS = ("aP", "rP", "apP", "v", "c", "pC")
LINE_FIELDS = ("v_12", "v_13", "v_23")
ELECTRICITY_FIELDS = tuple(f"{f}_{p}" for f in PHASE_FIELDS for p in (1, 2, 3)) + LINE_FIELDS
FIELD_LABELS = {
    "aP": "Active power (W)", "rP": "Reactive power (VAr)", "apP": "Apparent power (VA)",
    "v": "Voltage (V)", "c": "Current (A)", "pC": "Energy since start (Wh)",
}


def _field_choices() -> list[tuple[str, str]]:
    choices = [("value", "value — single value")]
    for name in ELECTRICITY_FIELDS:
        prefix, _, phase = name.partition("_")
        if name in LINE_FIELDS:
            label = f"Phase-to-phase voltage {phase[0]}-{phase[1]} (V)"
        else:
            label = f"{FIELD_LABELS[prefix]}, phase {phase}"
        choices.append((name, f"{name} — {label}"))
    return choices


class WatticsPartner(models.Model):
    """A named group of deployments sharing one partner-level Wattics agreement."""

    name = models.CharField(max_length=200, unique=True)
    notes = models.TextField(blank=True)
    deployments = models.ManyToManyField(
        Deployment, through="WatticsPartnerMember", related_name="+", blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "partner group"

    def __str__(self) -> str:
        return self.name


class WatticsPartnerMember(models.Model):
    partner = models.ForeignKey(WatticsPartner, on_delete=models.CASCADE, related_name="members")
    deployment = models.OneToOneField(
        Deployment, on_delete=models.CASCADE, related_name="wattics_partner_member",
        help_text="A deployment belongs to at most one partner group.",
    )

    class Meta:
        verbose_name = "member deployment"

    def __str__(self) -> str:
        return f"{self.partner} ∋ {self.deployment}"


class WatticsAccount(models.Model):
    """Basic-auth credentials agreed with Wattics, attached at exactly one level."""

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        REJECTED = "rejected", "Rejected by Wattics (401/403)"

    name = models.CharField(max_length=200)
    username = models.CharField(max_length=200)
    password = EncryptedTextField()
    api_url = models.URLField(
        max_length=500, blank=True,
        help_text="Blank: settings.WATTICS_API_URL. Wattics accepts HTTPS only.",
    )
    partner = models.OneToOneField(
        WatticsPartner, on_delete=models.CASCADE, null=True, blank=True, related_name="account"
    )
    deployment = models.OneToOneField(
        Deployment, on_delete=models.CASCADE, null=True, blank=True,
        related_name="wattics_account", help_text="End-user level.",
    )
    site = models.OneToOneField(
        Site, on_delete=models.CASCADE, null=True, blank=True, related_name="wattics_account"
    )
    device = models.OneToOneField(
        Device, on_delete=models.CASCADE, null=True, blank=True, related_name="wattics_account",
        help_text="Meter level: the most specific.",
    )
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    rejected_reason = models.TextField(blank=True)
    rejected_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "account"
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(partner__isnull=False, deployment__isnull=True, site__isnull=True,
                      device__isnull=True)
                    | Q(partner__isnull=True, deployment__isnull=False, site__isnull=True,
                        device__isnull=True)
                    | Q(partner__isnull=True, deployment__isnull=True, site__isnull=False,
                        device__isnull=True)
                    | Q(partner__isnull=True, deployment__isnull=True, site__isnull=True,
                        device__isnull=False)
                ),
                name="wattics_account_one_scope",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.level})"

    @property
    def level(self) -> str:
        for name in ("device", "site", "deployment", "partner"):
            if getattr(self, f"{name}_id"):
                return {"device": "meter", "deployment": "end-user"}.get(name, name)
        return "unscoped"

    def clean(self) -> None:
        levels = ("partner", "deployment", "site", "device")
        scopes = [n for n in levels if getattr(self, f"{n}_id")]
        if len(scopes) != 1:
            raise ValidationError(
                "attach the account at exactly one level: a partner group, an end-user "
                "(deployment), a site or a meter (device)"
            )


class WatticsStream(models.Model):
    """One device pushed to one Wattics meter (Data Stream ID), strictly in time order."""

    class Kind(models.TextChoices):
        ELECTRICITY = "electricity", "Electricity packet"
        SINGLE = "single", "Single value"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+")
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="wattics_streams")
    meter_id = models.CharField(
        "Wattics meter id", max_length=200, unique=True, help_text="The Data Stream ID."
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    interval_seconds = models.PositiveIntegerField(
        "registered interval (s)", default=900,
        help_text="The transmission interval registered with Wattics for this meter.",
    )
    timezone = models.CharField(
        max_length=64, blank=True, validators=[validate_timezone],
        help_text="Blank: the site's, else the datasource's, else the deployment's zone.",
    )
    start_at = models.DateTimeField(
        null=True, blank=True, help_text="Readings before this instant are not pushed."
    )
    link = models.OneToOneField(DeliveryLink, on_delete=models.PROTECT, related_name="+")
    # Planning watermarks: readings up to examined_seq were examined; packets up to
    # planned_ts are in batches. Anything older than planned_ts arriving later is late.
    # Not the link's cursor, nor core's `link_planned_seq` (the top of the batches' seq
    # ranges): a round whose readings all turn out late, held or unconvertible enqueues no
    # batch, yet they are examined and must not be counted again by the next round.
    # A sweep too large for one round plans by time, whole instants at once: round_seq is
    # its seq snapshot, and readings up to it at or before planned_ts are planned.
    examined_seq = models.BigIntegerField(default=0)
    planned_ts = models.DateTimeField(null=True, blank=True)
    round_seq = models.BigIntegerField(null=True, blank=True)
    # Sending state: Wattics' last accepted packet, and the last packet we are done with
    # (accepted, or refused with 400 and quarantined).
    last_accepted_ts = models.DateTimeField(null=True, blank=True)
    sent_through_ts = models.DateTimeField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    needs_resync = models.BooleanField(default=True)
    sent_count = models.BigIntegerField(default=0)
    late_count = models.BigIntegerField(default=0)
    held_count = models.BigIntegerField(
        default=0, help_text="Readings not sent because Wattics already held packets up to "
                             "their instant when this stream started (an earlier stream's).")
    held_through_ts = models.DateTimeField(
        null=True, blank=True,
        help_text="Wattics' last packet when this stream first planned: held before it.")
    refused_count = models.BigIntegerField(default=0)
    observed_interval_seconds = models.PositiveIntegerField(null=True, blank=True)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["meter_id"]
        verbose_name = "stream"

    def __str__(self) -> str:
        return self.meter_id

    @property
    def zone_name(self) -> str:
        if self.timezone:
            return self.timezone
        device = self.device
        if device.site_id:
            return device.site.timezone
        if device.datasource_id:
            return device.datasource.timezone
        return self.deployment.timezone


class WatticsChannel(models.Model):
    """Which reading fills which packet field, converted to the field's Wattics unit."""

    stream = models.ForeignKey(WatticsStream, on_delete=models.CASCADE, related_name="channels")
    field = models.CharField(max_length=8, choices=_field_choices())
    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, null=True, blank=True, related_name="+",
        help_text="Blank: the stream's device (another one for per-phase sub-meters).",
    )
    parameter = models.ForeignKey(Parameter, on_delete=models.PROTECT, related_name="+")
    source_unit = models.CharField(
        max_length=16, blank=True, help_text="Blank: the parameter's unit."
    )

    class Meta:
        ordering = ["stream", "field"]
        constraints = [
            models.UniqueConstraint(fields=["stream", "field"], name="wattics_channel_field"),
        ]

    def __str__(self) -> str:
        return f"{self.field} ← {self.parameter.key}"


class WatticsLatePacket(models.Model):
    """Readings that can never reach Wattics: older than what the stream already sent."""

    stream = models.ForeignKey(WatticsStream, on_delete=models.CASCADE, related_name="late")
    ts = models.DateTimeField()
    packet = models.JSONField()
    readings = models.PositiveIntegerField(default=1)
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-ts"]
        verbose_name = "undeliverable (late) packet"
        indexes = [models.Index(fields=["stream", "-ts"], name="wattics_late_stream_ts")]

    def __str__(self) -> str:
        return f"{self.stream_id}@{self.ts.isoformat()}"
