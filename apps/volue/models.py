"""What the hub registered on Volue Energy Coordination, and what Volue told the hub.

Registrations mirror the hub's model: a customer groups sites and is one Volue user; each
metered device is one Volue *location* holding its metering point; vehicles and other
flexible resources hang off the user or one of its locations. Every row keeps the id it has
on the platform, so running the sync again creates nothing twice.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from apps.core.fields import EncryptedTextField
from apps.core.models import Datasource, Deployment, Device, OutboundBatch, Site


class LocationType(models.TextChoices):
    RESIDENTIAL = "Residential", "Residential"
    COMMERCIAL = "Commercial", "Commercial"
    OTHER = "Other", "Other"
    UNKNOWN = "Unknown", "Unknown"


class ResourceType(models.TextChoices):
    """The Partner API's `ResourceType`; anything else is refused by the platform."""

    GENERIC = "Generic", "Generic"
    VEHICLE = "Vehicle", "Vehicle"
    CHARGER = "Charger", "Charger"
    HOT_WATER_TANK = "HotWaterTank", "Hot-water tank"
    HVAC = "HVAC", "HVAC"
    SOLAR_INVERTER = "SolarInverter", "Solar inverter"


class VolueCustomer(models.Model):
    """One Volue user: an end customer, either a whole deployment or a grouping of its sites."""

    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="volue_customers"
    )
    key = models.SlugField(
        max_length=64, help_text="Unique within the deployment; part of the Volue user id."
    )
    name = models.CharField(max_length=200)
    sites = models.ManyToManyField(
        Site, blank=True, related_name="volue_customers",
        help_text="The sites this customer owns; none selected means every site.",
    )
    datasources = models.ManyToManyField(
        Datasource, blank=True, related_name="volue_customers",
        help_text="Only meters from these datasources; none selected means every datasource.",
    )
    location_type = models.CharField(
        max_length=16, choices=LocationType.choices, default=LocationType.COMMERCIAL,
        help_text="Default locationType of this customer's meters.",
    )
    is_active = models.BooleanField(
        default=True, help_text="Clear to remove the user (and its meters) from Volue."
    )
    remote_user_id = models.CharField(max_length=128, blank=True, db_index=True)
    eligible = models.BooleanField(
        null=True, blank=True,
        help_text="From GET /users/{id}/eligibility and UserEligibilityUpdated events.",
    )
    eligibility_updated_at = models.DateTimeField(null=True, blank=True)
    enrolled = models.BooleanField(null=True, blank=True, help_text="From GET /enrollment.")
    enrollment_id = models.CharField(max_length=64, blank=True)
    enrolled_at = models.DateTimeField(null=True, blank=True)
    compensation_period = models.CharField(
        max_length=32, blank=True, help_text="The month the compensation figures cover."
    )
    status_checked_at = models.DateTimeField(null=True, blank=True)
    status_error = models.TextField(blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    last_synced_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["deployment", "key"]
        verbose_name = "customer"
        constraints = [
            models.UniqueConstraint(fields=["deployment", "key"], name="volue_customer_unique_key"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.deployment.slug}/{self.key})"

    @property
    def user_id(self) -> str:
        """The id the hub proposes for this user: stable, so a repeated create conflicts."""
        return f"hub-{self.deployment.slug}-{self.key}"


class VolueMeter(models.Model):
    """A metered device registered as one Volue location holding its metering point.

    One location per metering point rather than per site: events and reports name a
    location, and the hub must tell which device's energy answers for it; a site with two
    grid connections has two metering points that DSOs compensate separately.
    """

    customer = models.ForeignKey(VolueCustomer, on_delete=models.CASCADE, related_name="meters")
    # SET_NULL: a deleted device leaves this row behind so the sync removes it from Volue.
    device = models.ForeignKey(
        Device, on_delete=models.SET_NULL, null=True, blank=True, related_name="volue_meters"
    )
    meter_point_id = models.CharField(max_length=64, help_text="The grid's metering point id.")
    meter_number = models.CharField(max_length=64, blank=True)
    location_type = models.CharField(
        max_length=16, choices=LocationType.choices, default=LocationType.COMMERCIAL
    )
    remote_id = models.CharField(
        max_length=128, blank=True, db_index=True,
        help_text="The locationId on Volue (empty: not registered).",
    )
    registered_fingerprint = models.CharField(max_length=64, blank=True)
    registered_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    eligible = models.BooleanField(
        null=True, blank=True, help_text="From GET /meters/{meterPointId}/eligible."
    )
    compensation_active = models.FloatField(null=True, blank=True)
    compensation_blocked = models.FloatField(null=True, blank=True)
    compensation_currency = models.CharField(max_length=3, blank=True)
    compensation_problems = models.TextField(blank=True)

    class Meta:
        ordering = ["customer", "meter_point_id"]
        verbose_name = "meter (location)"
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "device"], name="volue_meter_unique_device",
                condition=models.Q(device__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.meter_point_id

    @property
    def proposed_location_id(self) -> str:
        """The locationId the hub gives it (the platform takes the caller's): stable, so a
        repeated create conflicts instead of making a second location."""
        return f"{self.customer.user_id}-loc-{self.pk}"


class VolueResource(models.Model):
    """A vehicle or another flexible resource (hot-water tank, charger, HVAC, inverter…)."""

    class Kind(models.TextChoices):
        VEHICLE = "vehicle", "Vehicle"
        RESOURCE = "resource", "Other resource"

    customer = models.ForeignKey(
        VolueCustomer, on_delete=models.CASCADE, related_name="resources"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.RESOURCE)
    resource_id = models.CharField(
        max_length=128, unique=True, help_text="The id sent to Volue (vehicleId / resourceId)."
    )
    resource_type = models.CharField(
        max_length=32, choices=ResourceType.choices, default=ResourceType.HOT_WATER_TANK,
        help_text="The Partner API's resourceType; a vehicle is always Vehicle.",
    )
    metadata = models.JSONField(
        default=dict, blank=True,
        help_text="brand, model, year, vin, capacity, … (kept in the hub; the Partner API "
        "has no field for it)",
    )
    meter = models.ForeignKey(
        VolueMeter, on_delete=models.SET_NULL, null=True, blank=True, related_name="resources",
        help_text="The meter (location) this resource sits behind; required for anything "
        "but a vehicle.",
    )
    device = models.ForeignKey(
        Device, on_delete=models.SET_NULL, null=True, blank=True, related_name="volue_resources",
        help_text="A sub-meter measuring this resource alone, if the hub has one.",
    )
    is_active = models.BooleanField(default=True, help_text="Clear to remove it from Volue.")
    registered_at = models.DateTimeField(null=True, blank=True)
    registered_fingerprint = models.CharField(max_length=64, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["customer", "resource_id"]
        verbose_name = "resource"

    def __str__(self) -> str:
        return f"{self.resource_type} {self.resource_id}"


class WebhookSubscription(models.Model):
    """The hub's webhook on the platform, with the secret its notifications are signed with."""

    name = models.CharField(max_length=200, default="energy hub")
    url = models.URLField(max_length=500)
    secret = EncryptedTextField()
    notification_types = models.JSONField(default=list)
    remote_id = models.CharField(max_length=128, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "webhook subscription"

    def __str__(self) -> str:
        return f"{self.name} → {self.url}"


class Event(models.Model):
    """One platform event, however it arrived (webhook or catch-up); stored once."""

    class Source(models.TextChoices):
        WEBHOOK = "webhook", "Webhook"
        CATCH_UP = "catch_up", "Catch-up (GET /events)"

    event_id = models.CharField(max_length=128, unique=True)
    payload_type = models.CharField(max_length=32, db_index=True)
    created_at_remote = models.DateTimeField(null=True, blank=True)
    source = models.CharField(max_length=16, choices=Source.choices)
    payload = models.JSONField()
    window_start = models.DateTimeField(null=True, blank=True)
    window_end = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)
    process_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at_remote", "-received_at"]

    def __str__(self) -> str:
        return f"{self.payload_type} {self.event_id}"


class EventTarget(models.Model):
    """One location or resource an event is about, matched to what the hub registered."""

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="targets")
    location_id = models.CharField(max_length=128, blank=True)
    meter_point_id = models.CharField(max_length=64, blank=True)
    resource_id = models.CharField(max_length=128, blank=True)
    resolution = models.CharField(max_length=16, blank=True)
    # LPC: [{"timestamp", "maxPowerInKiloWatts"}]; price curves keep theirs on the event.
    points = models.JSONField(default=list, blank=True)
    # What the target is in the hub: empty when the hub did not register it.
    matched_meter = models.ForeignKey(
        VolueMeter, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    matched_resource = models.ForeignKey(
        VolueResource, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["event", "pk"]

    def __str__(self) -> str:
        return self.resource_id or self.location_id or self.meter_point_id


class Notification(models.Model):
    """A webhook delivery as received (signature verified), kept once per notificationId."""

    notification_id = models.CharField(max_length=128, unique=True)
    event_id = models.CharField(max_length=128, db_index=True)
    notification_type = models.CharField(max_length=32)
    body = models.JSONField()
    sent_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return f"{self.notification_type} {self.notification_id}"


class EnergyReport(models.Model):
    """The EnergyUsage report of one event for one customer: planned, then sent via the outbox."""

    # `queued` is the report's last state here: once complete it is the outbox's batch that
    # says whether it went out (the admin's status reads both).
    class State(models.TextChoices):
        WAITING = "waiting", _("Waiting for the event's hours or data")
        FLAGGED = "flagged", _("Incomplete past the deadline")
        QUEUED = "queued", _("Complete, handed to delivery")

    event = models.ForeignKey(Event, on_delete=models.CASCADE, related_name="reports")
    customer = models.ForeignKey(VolueCustomer, on_delete=models.CASCADE, related_name="reports")
    state = models.CharField(max_length=16, choices=State.choices, default=State.WAITING)
    missing = models.TextField(blank=True, help_text="What data is missing, per meter.")
    payload = models.JSONField(null=True, blank=True)
    superseded = models.TextField(
        blank=True,
        help_text="The readings changed after the report went out: Volue holds other kWh "
        "than the hub's readings now give (the Partner API cannot replace a report).",
    )
    posted_attempt = models.IntegerField(
        null=True, blank=True,
        help_text="The outbox attempt whose POST /reports left without a known outcome yet.",
    )
    batch = models.OneToOneField(
        OutboundBatch, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    checked_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "energy report"
        constraints = [
            models.UniqueConstraint(fields=["event", "customer"], name="volue_report_unique"),
        ]

    def __str__(self) -> str:
        return f"report {self.event.event_id} / {self.customer.key}"
