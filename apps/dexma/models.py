"""The DEXMA Market App's own state: one installation per platform deployment, and the
virtual datasources the app registered there.

A DEXMA datasource carries what IS3 delivery needs (the source key and token, the local
on/off state, which devices and which of their parameters to send, and a core
DeliveryLink holding the delivery cursor); delivery itself lives elsewhere.
"""

import hashlib
import zoneinfo

from django.core.exceptions import ValidationError
from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.core.fields import EncryptedTextField
from apps.core.models import DeliveryLink, Deployment, Device, Parameter


def token_digest(token: str) -> str:
    """SHA-256 of a platform token: lets a `dep_token` find its installation without
    storing the token in clear (the token itself is compared in constant time)."""
    return hashlib.sha256(token.encode()).hexdigest()


class Installation(models.Model):
    """The app installed in one DEXMA deployment: the permanent `x-dexcell-token`."""

    dep_id = models.CharField(max_length=128, unique=True, help_text="DEXMA deployment id.")
    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="dexma_installations",
        help_text="The hub deployment whose meters this DEXMA account receives.",
    )
    token = EncryptedTextField(help_text="Permanent x-dexcell-token (encrypted).")
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    installed_at = models.DateTimeField(auto_now_add=True)
    reinstalled_at = models.DateTimeField(null=True, blank=True)
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["dep_id"]

    def __str__(self) -> str:
        return f"{self.dep_id} → {self.deployment}"

    def set_token(self, token: str) -> None:
        self.token = token
        self.token_digest = token_digest(token)


class DexmaDatasource(models.Model):
    """A virtual datasource the app registered in DEXMA, and what it sends there."""

    class PlatformStatus(models.TextChoices):
        ENABLED = "ENABLED", _("Enabled")
        DISABLED = "DISABLED", _("Disabled")
        MISSING = "MISSING", _("Missing on the platform")

    installation = models.ForeignKey(
        Installation, on_delete=models.CASCADE, related_name="datasources"
    )
    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="dexma_datasources"
    )
    name = models.CharField(max_length=200)
    # Null only inside the creation transaction, before the platform answered.
    platform_id = models.BigIntegerField(null=True, blank=True)
    key = models.CharField(max_length=128, blank=True, help_text="IS3 source_key.")
    source_token = EncryptedTextField(blank=True, help_text="x-dexcell-source-token (encrypted).")
    timezone = models.CharField(max_length=64, default="UTC")
    enabled = models.BooleanField(
        default=True, help_text="The user's choice in the embedded page."
    )
    consent_suspended = models.BooleanField(
        default=False,
        help_text="Disabled on the platform because a hub datasource's consent lapsed.",
    )
    platform_status = models.CharField(
        max_length=16, choices=PlatformStatus.choices, default=PlatformStatus.ENABLED
    )
    link = models.OneToOneField(
        DeliveryLink, on_delete=models.SET_NULL, null=True, blank=True,
        related_name="dexma_datasource", help_text="Delivery cursor for IS3.",
    )
    last_sync_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    verification = models.TextField(
        blank=True, help_text="Last read-back through APIv3: how many sampled intervals match."
    )
    verification_details = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["deployment", "name"]
        verbose_name = "DEXMA datasource"
        constraints = [
            models.UniqueConstraint(
                fields=["installation", "platform_id"], name="dexma_datasource_unique_platform_id"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.key or 'unregistered'})"

    @property
    def sendable(self) -> bool:
        """IS3 refuses datasources that are not enabled: judged by the local state only."""
        return (self.enabled and not self.consent_suspended and bool(self.key)
                and self.platform_status == self.PlatformStatus.ENABLED)

    @property
    def wanted_status(self) -> str:
        """What the platform should say: only name and status are modifiable there."""
        if self.enabled and not self.consent_suspended:
            return self.PlatformStatus.ENABLED
        return self.PlatformStatus.DISABLED


class SelectedDevice(models.Model):
    """A hub device sent to a DEXMA datasource, with the parameters it sends.

    Each accepted device parameter is a billed datapoint on the platform, so parameters are
    chosen one by one; `did` is the device's local id (at most 25 characters).
    """

    datasource = models.ForeignKey(
        DexmaDatasource, on_delete=models.CASCADE, related_name="selections"
    )
    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="dexma_selections")
    parameters = models.ManyToManyField(Parameter, related_name="+")
    # Interval parameters only: {parameter id: frequency} fixed at configuration time, since
    # a device parameter cannot have two discrete resolutions on the platform.
    resolutions = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["datasource", "device__external_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["datasource", "device"], name="dexma_selection_unique_device"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.datasource_id}: {self.device_id}"

    def clean(self) -> None:
        if (
            self.device_id and self.datasource_id
            and self.device.deployment_id != self.datasource.deployment_id
        ):
            raise ValidationError({"device": "the device belongs to another deployment"})


class Backfill(models.Model):
    """History sent to one DEXMA datasource, oldest first, through its delivery link.

    Planning is resumable (`planned_until`) and every planned batch is in the outbox, so a
    crash resends nothing that IS3 acknowledged.
    """

    class State(models.TextChoices):
        PLANNING = "planning", _("Planning")
        SENDING = "sending", _("Sending")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    datasource = models.ForeignKey(DexmaDatasource, on_delete=models.CASCADE,
                                   related_name="backfills")
    date_from = models.DateTimeField()
    date_to = models.DateTimeField()
    # Readings changed after the backfill started have a higher seq: live delivery sends them.
    seq_snapshot = models.BigIntegerField()
    state = models.CharField(max_length=16, choices=State.choices, default=State.PLANNING)
    planned_until = models.DateTimeField(null=True, blank=True)
    batches = models.PositiveIntegerField(default=0)
    values_planned = models.PositiveBigIntegerField(default=0)
    values_sent = models.PositiveBigIntegerField(default=0)
    quarantined = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        # In the datasource's own zone, to the minute: a Madrid month starts at 22:00 or
        # 23:00 UTC the day before, so UTC dates would name the wrong first day.
        try:
            zone = zoneinfo.ZoneInfo(self.datasource.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            zone = zoneinfo.ZoneInfo("UTC")
        start, end = (moment.astimezone(zone) for moment in (self.date_from, self.date_to))
        return (f"backfill {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M} ({zone.key}) "
                f"of {self.datasource}")

    @property
    def progress(self) -> str:
        if not self.values_planned:
            return self.get_state_display()
        share = self.values_sent / self.values_planned
        return f"{self.values_sent:,} of {self.values_planned:,} values ({share:.0%})"
