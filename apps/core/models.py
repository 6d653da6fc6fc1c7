"""The shared model: deployments, sites, datasources, devices, parameters, readings.

Everything below a Deployment belongs to exactly one deployment. Devices carry their
deployment too, so tenant checks never need a join; on PostgreSQL composite foreign keys
(see migration 0002) make a device of one deployment under another's datasource or site
impossible at the database level.
"""

import zoneinfo

from django.core.exceptions import ValidationError
from django.core.validators import MaxLengthValidator, RegexValidator
from django.db import models
from django.db.models import F, Q

from apps.core.fields import EncryptedTextField

__all__ = [
    "Commodity",
    "DailyIngestStat",
    "Datasource",
    "DeliveryLink",
    "Deployment",
    "Device",
    "EncryptedTextField",
    "OutboundBatch",
    "Parameter",
    "Quarantine",
    "Reading",
    "ReadingCommit",
    "Run",
    "Site",
]

# Largest finite double: a check "value between -MAX and MAX" also refuses NaN on PostgreSQL,
# where NaN sorts above every number.
FLOAT_MAX = 1.7976931348623157e308


def validate_timezone(value: str) -> None:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValidationError(f"'{value}' is not an IANA time zone (e.g. Europe/Madrid)") from exc


currency_validator = RegexValidator(r"^[A-Z]{3}$", "currency must be an ISO 4217 code like EUR")


class Deployment(models.Model):
    """A customer account."""

    slug = models.SlugField(max_length=64, unique=True, help_text="Stable identifier.")
    name = models.CharField(max_length=200)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    is_active = models.BooleanField(default=True)
    retention_days = models.PositiveIntegerField(
        blank=True, null=True,
        help_text="Readings older than this many days leave once every delivery link "
                  "of the deployment has delivered them. Blank: keep everything.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Site(models.Model):
    """A building or property (Scaler's "asset")."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="sites")
    external_id = models.CharField(max_length=255)
    name = models.CharField(max_length=255)
    street = models.CharField(max_length=255, blank=True)
    city = models.CharField(max_length=128, blank=True)
    postal_code = models.CharField(max_length=32, blank=True)
    country = models.CharField(max_length=2, blank=True, help_text="ISO 3166-1 alpha-2")
    latitude = models.FloatField(null=True, blank=True)
    longitude = models.FloatField(null=True, blank=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    metadata = models.JSONField(default=dict, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["deployment", "name"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "external_id"], name="site_unique_external_id"
            ),
            models.CheckConstraint(
                condition=Q(latitude__isnull=True) | Q(latitude__gte=-90, latitude__lte=90),
                name="site_latitude_range",
            ),
            models.CheckConstraint(
                condition=Q(longitude__isnull=True)
                | Q(longitude__gte=-180, longitude__lte=180),
                name="site_longitude_range",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class Datasource(models.Model):
    """One logical source of data: an upstream connection, a partner gateway, a consent."""

    class Kind(models.TextChoices):
        PULL = "pull", "Upstream pull connection"
        PARTNER = "partner", "Partner push"
        CONSENT = "consent", "Customer consent"
        MANUAL = "manual", "Manual"

    class Consent(models.TextChoices):
        NOT_REQUIRED = "not_required", "Not required"
        ACTIVE = "active", "Active"
        EXPIRED = "expired", "Expired"
        REVOKED = "revoked", "Revoked"

    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, related_name="datasources"
    )
    key = models.SlugField(max_length=64, help_text="Unique within the deployment.")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.PARTNER)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    consent_status = models.CharField(
        max_length=16, choices=Consent.choices, default=Consent.NOT_REQUIRED
    )
    consent_expires_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["deployment", "name"]
        constraints = [
            models.UniqueConstraint(fields=["deployment", "key"], name="datasource_unique_key"),
        ]

    def __str__(self) -> str:
        return self.name


class Commodity(models.TextChoices):
    """Scaler's top-level meter categories."""

    ENERGY = "energy", "Energy"
    WATER = "water", "Water"
    WASTE = "waste", "Waste"


# Scaler's sub-categories per commodity (the seed's examples; the list is closed here).
COMMODITY_SUBTYPES: dict[str, tuple[str, ...]] = {
    Commodity.ENERGY: (
        "Coal", "Coke", "Diesel", "District Chilled Water", "District Heating and Cooling",
        "District Hot Water", "District Steam", "EV Charging", "Fuel Oil", "Natural Gas",
        "Off-site Electricity", "On-site Renewable Electricity", "Propane", "Wood",
    ),
    Commodity.WATER: ("Potable", "Reclaimed", "Grey"),
    Commodity.WASTE: ("Hazardous", "Non-hazardous"),
}


class Device(models.Model):
    """One meter or sensor."""

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="devices")
    datasource = models.ForeignKey(Datasource, on_delete=models.CASCADE, related_name="devices")
    site = models.ForeignKey(
        Site, on_delete=models.PROTECT, related_name="devices", null=True, blank=True
    )
    external_id = models.CharField(max_length=255, help_text="Stable, provider-assigned.")
    # DEXMA's did: at most 25 characters, unique within the datasource.
    local_id = models.CharField(max_length=25, validators=[MaxLengthValidator(25)])
    name = models.CharField(max_length=255)
    commodity = models.CharField(max_length=16, choices=Commodity.choices)
    subtype = models.CharField(max_length=64, blank=True)
    unit = models.CharField(max_length=32)
    is_active = models.BooleanField(default=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["deployment", "external_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["deployment", "external_id"], name="device_unique_external_id"
            ),
            models.UniqueConstraint(
                fields=["datasource", "local_id"], name="device_unique_local_id"
            ),
            models.CheckConstraint(
                condition=Q(commodity__in=Commodity.values), name="device_commodity_known"
            ),
            models.CheckConstraint(condition=~Q(local_id=""), name="device_local_id_set"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.external_id})"

    def clean(self) -> None:
        errors = {}
        if self.subtype and self.subtype not in COMMODITY_SUBTYPES.get(self.commodity, ()):
            allowed = ", ".join(COMMODITY_SUBTYPES.get(self.commodity, ()))
            errors["subtype"] = f"'{self.subtype}' is not a {self.commodity} subtype ({allowed})"
        if (
            self.datasource_id
            and self.deployment_id
            and self.datasource.deployment_id != self.deployment_id
        ):
            errors["datasource"] = "the datasource belongs to another deployment"
        if self.site_id and self.deployment_id and self.site.deployment_id != self.deployment_id:
            errors["site"] = "the site belongs to another deployment"
        if errors:
            raise ValidationError(errors)


class Parameter(models.Model):
    """What a value measures: the catalogue, seeded with DEXMA's parameter codes.

    One base quantity appears once per kind it can be delivered as: an energy register as
    a cumulative index and as interval deltas; a power as an instantaneous value and as
    interval averages, maxima and minima. An interval reading's frequency comes from its
    period, so DEXMA's five-digit code is derived, not stored.
    """

    class Kind(models.TextChoices):
        CUMULATIVE = "cumulative", "Cumulative (meter index)"
        INSTANTANEOUS = "instantaneous", "Instantaneous"
        INTERVAL = "interval", "Interval (value over a period)"

    class Nature(models.TextChoices):
        ACCUMULATED = "accumulated", "Accumulated"
        INSTANTANEOUS = "instantaneous", "Instantaneous"

    class Operation(models.TextChoices):
        NONE = "", "—"
        DELTA = "delta", "Delta"
        AVG = "avg", "Average"
        MAX = "max", "Maximum"
        MIN = "min", "Minimum"

    id = models.SmallAutoField(primary_key=True)
    key = models.SlugField(max_length=64, unique=True)
    name = models.CharField(max_length=128)
    unit = models.CharField(max_length=16, blank=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    nature = models.CharField(max_length=16, choices=Nature.choices)
    operation = models.CharField(max_length=8, choices=Operation.choices, blank=True)
    dexma_code = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="DEXMA's three-digit base code."
    )

    class Meta:
        ordering = ["dexma_code", "key"]
        constraints = [
            models.UniqueConstraint(
                fields=["dexma_code", "kind", "operation"], name="parameter_unique_code_kind"
            ),
            models.CheckConstraint(
                condition=(Q(kind="interval") & ~Q(operation=""))
                | (~Q(kind="interval") & Q(operation="")),
                name="parameter_interval_has_operation",
            ),
            models.CheckConstraint(
                condition=~Q(operation="delta") | Q(nature="accumulated"),
                name="parameter_delta_only_accumulated",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} [{self.key}]"


class Reading(models.Model):
    """One value of one parameter of one device at one instant (UTC).

    The one big table: narrow, written only through `readings_ingest`. `seq` is drawn from
    a sequence on every insert and every change, under a per-deployment lock, so "rows
    with seq above my cursor" is exactly what a delivery link has not seen yet.
    """

    class Quality(models.IntegerChoices):
        GOOD = 0, "Good"
        SUSPECT = 1, "Suspect"
        BAD = 2, "Bad"

    id = models.BigAutoField(primary_key=True)
    # The natural-key index leads with device, so no separate FK indexes. No database foreign
    # keys either: checked row by row at commit they cost more than the whole ingest does.
    # `readings_ingest` only writes devices and parameters it has just read under the
    # deployment's readings lock, and deleting a device takes that lock (apps.core.signals),
    # so nothing orphans; CASCADE and PROTECT are applied by Django as before.
    device = models.ForeignKey(
        Device, on_delete=models.CASCADE, db_index=False, db_constraint=False
    )
    parameter = models.ForeignKey(
        Parameter, on_delete=models.PROTECT, db_index=False, db_constraint=False
    )
    ts = models.DateTimeField(help_text="Instant, or start of the interval.")
    period_end = models.DateTimeField(null=True, blank=True)
    value = models.FloatField()
    estimated = models.BooleanField(default=False)
    quality = models.SmallIntegerField(choices=Quality.choices, default=Quality.GOOD)
    cost = models.FloatField(null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True, validators=[currency_validator])
    seq = models.BigIntegerField(db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["device", "parameter", "ts"], name="reading_natural_key"
            ),
            models.CheckConstraint(
                condition=Q(value__gte=-FLOAT_MAX, value__lte=FLOAT_MAX),
                name="reading_value_finite",
            ),
            models.CheckConstraint(
                condition=Q(period_end__isnull=True) | Q(period_end__gt=F("ts")),
                name="reading_period_end_after_start",
            ),
            models.CheckConstraint(
                condition=Q(cost__isnull=True) | ~Q(currency=""),
                name="reading_cost_has_currency",
            ),
        ]

    def __str__(self) -> str:
        # Shown one object at a time (admin, logs): the joins are affordable there.
        return (f"{self.device.external_id} {self.parameter.key} "
                f"@ {self.ts.isoformat()} = {self.value:g}")


class ReadingCommit(models.Model):
    """One ingest transaction that inserted or changed readings of a deployment.

    Written by `readings_ingest` under the deployment's readings lock, just before commit:
    `seq` is at least the highest seq the transaction gave and below every seq a later one
    of the deployment gives, and `at` is taken under the lock, so commits of a deployment
    are ordered alike by `seq` and by `at`. A reading's change time is therefore the `at`
    of the first commit of its deployment with `seq` at or above its own: exact, without a
    timestamp column on the big table.
    """

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+")
    seq = models.BigIntegerField()
    at = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["deployment", "seq"], name="readingcommit_seq_idx"),
            models.Index(fields=["deployment", "at"], name="readingcommit_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id}: seq {self.seq} at {self.at.isoformat()}"


class Run(models.Model):
    """The run log: every sync, ingest, push and delivery attempt leaves one row."""

    class Status(models.TextChoices):
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        PARTIAL = "partial", "Partial"
        FAILED = "failed", "Failed"

    deployment = models.ForeignKey(
        Deployment, on_delete=models.SET_NULL, null=True, blank=True, related_name="runs"
    )
    kind = models.CharField(max_length=32,
                            help_text="<app>.<job>: dexma.deliver, wattics.push, pull.sync, …")
    target = models.CharField(max_length=255, blank=True, help_text="What ran, readable.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    counts = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)
    task_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [
            models.Index(fields=["-started_at"], name="run_started_idx"),
            models.Index(fields=["kind", "status", "-started_at"], name="run_kind_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.target} ({self.status})"

    @property
    def duration(self):
        return self.finished_at - self.started_at if self.finished_at else None


class Quarantine(models.Model):
    """A record that failed validation, kept with its raw payload and the reason."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        REPLAYED = "replayed", "Replayed"
        DISCARDED = "discarded", "Discarded"

    class Kind(models.TextChoices):
        READING = "reading", "Reading"
        RECORD = "record", "Other record"

    deployment = models.ForeignKey(
        Deployment, on_delete=models.CASCADE, null=True, blank=True, related_name="quarantine"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.READING)
    source = models.CharField(max_length=128, help_text="Where it came from.")
    reason = models.TextField()
    payload = models.JSONField(help_text="The raw record; fix it here, then replay.")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    run = models.ForeignKey(Run, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    resolved_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "quarantined record"
        verbose_name_plural = "quarantined records"
        indexes = [
            models.Index(fields=["status", "-created_at"], name="quarantine_status_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.source}: {self.reason[:60]}"

    @staticmethod
    def source_for(app: str, obj: str, key: object) -> str:
        """The one source format: `<app>:<object>:<id>`, e.g. `wattics:stream:wm-1`."""
        return f"{app}:{obj}:{key}"[:128]


class DailyIngestStat(models.Model):
    """Readings accepted and quarantined per deployment and UTC day, kept by the ingest.

    The overview chart reads this instead of counting a hundred-million-row table.
    """

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE)
    day = models.DateField()
    accepted = models.BigIntegerField(default=0)
    quarantined = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["deployment", "day"], name="ingeststat_unique_day"),
        ]

    def __str__(self) -> str:
        return f"{self.deployment_id} {self.day}: {self.accepted} accepted"


class DeliveryLink(models.Model):
    """One binding of hub data to a platform target: its durable cursor and its state.

    An integration's own link model (a DEXMA datasource, a Wattics stream) points at one
    of these; the outbox works on them without knowing the platform.
    """

    class State(models.TextChoices):
        ACTIVE = "active", "Active"
        PAUSED = "paused", "Paused by ops"
        BROKEN = "broken", "Broken (permanent error)"

    platform = models.CharField(max_length=32)
    name = models.CharField(max_length=200)
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="links")
    state = models.CharField(max_length=16, choices=State.choices, default=State.ACTIVE)
    broken_reason = models.TextField(blank=True)
    ordered = models.BooleanField(
        default=True, help_text="Send this link's batches strictly one after another, in order."
    )
    # Highest reading seq the platform acknowledged; planning continues after the last batch.
    cursor = models.BigIntegerField(default=0)
    # The deployment's newest ReadingCommit seq when the link's planner last looked at every
    # reading up to it: beat's fan-out skips the link until a commit goes above it.
    examined_commit_seq = models.BigIntegerField(default=0)
    last_success_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["platform", "name"]
        constraints = [
            models.UniqueConstraint(fields=["platform", "name"], name="link_unique_name"),
        ]

    def __str__(self) -> str:
        return f"{self.platform}: {self.name}"


class OutboundBatch(models.Model):
    """One unit of delivery: recorded before it is sent, retried until acknowledged."""

    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        SENDING = "sending", "Sending"
        RETRY = "retry", "Waiting to retry"
        SENT = "sent", "Sent"
        DEAD = "dead", "Dead letter"

    # Not yet sent nor given up: what a link still has to deliver.
    OPEN_STATES = (State.PENDING, State.SENDING, State.RETRY)

    link = models.ForeignKey(DeliveryLink, on_delete=models.CASCADE, related_name="batches")
    position = models.BigIntegerField(help_text="Order within the link.")
    idempotency_key = models.CharField(max_length=128, unique=True)
    seq_from = models.BigIntegerField(null=True, blank=True, help_text="Exclusive.")
    seq_to = models.BigIntegerField(null=True, blank=True, help_text="Inclusive.")
    payload = models.JSONField(
        null=True, blank=True, help_text="Set when not rebuilt from a range."
    )
    item_count = models.IntegerField(default=0)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    attempts = models.IntegerField(default=0)
    # When due; while SENDING, when the claim lapses (the sender is presumed dead).
    next_attempt_at = models.DateTimeField()
    last_status = models.IntegerField(null=True, blank=True)
    last_body = models.TextField(blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["link", "position"]
        verbose_name_plural = "outbound batches"
        constraints = [
            models.UniqueConstraint(fields=["link", "position"], name="batch_unique_position"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                name="batch_due_idx",
                condition=Q(state__in=["pending", "sending", "retry"]),
            ),
            models.Index(fields=["link", "state", "position"], name="batch_link_state_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.link} #{self.position} ({self.state})"
