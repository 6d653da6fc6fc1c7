"""State of the simulated DEXMA platform: accounts, app tokens with their rate budgets,
datasources, devices and user sessions."""

import secrets

from django.conf import settings
from django.db import models


def new_token(length: int = 20) -> str:
    """DEXMA tokens are 20-character keys."""
    return secrets.token_hex(length)[:length]


class PlatformDeployment(models.Model):
    dep_id = models.CharField(max_length=128, unique=True)
    name = models.CharField(max_length=200)

    def __str__(self) -> str:
        return self.dep_id


class TempToken(models.Model):
    """Issued when a user clicks "install"; traded once for the permanent token."""

    deployment = models.ForeignKey(PlatformDeployment, on_delete=models.CASCADE)
    app_id = models.CharField(max_length=64)
    token = models.CharField(max_length=40, unique=True, default=new_token)
    used = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"temp token for {self.deployment_id}"


def _hour_limit() -> int:
    return getattr(settings, "SANDBOX_DEXMA_HOUR_LIMIT", 1000)


def _day_limit() -> int:
    return getattr(settings, "SANDBOX_DEXMA_DAY_LIMIT", 10000)


class AppToken(models.Model):
    """The permanent x-dexcell-token of one app in one deployment, with its budget."""

    deployment = models.ForeignKey(PlatformDeployment, on_delete=models.CASCADE)
    app_id = models.CharField(max_length=64)
    token = models.CharField(max_length=40, unique=True, default=new_token)
    hour_limit = models.PositiveIntegerField(default=_hour_limit)
    day_limit = models.PositiveIntegerField(default=_day_limit)
    hour_used = models.PositiveIntegerField(default=0)
    hour_started = models.DateTimeField(null=True, blank=True)
    day_used = models.PositiveIntegerField(default=0)
    day_started = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.app_id}@{self.deployment}"


class PlatformDatasource(models.Model):
    deployment = models.ForeignKey(PlatformDeployment, on_delete=models.CASCADE,
                                   related_name="datasources")
    app_id = models.CharField(max_length=64)
    key = models.CharField(max_length=128, unique=True)
    name = models.CharField(max_length=200)
    type = models.CharField(max_length=32, default="VIRTUAL")
    timezone = models.CharField(max_length=64, default="UTC")
    status = models.CharField(max_length=16, default="ENABLED")
    source_token = models.CharField(max_length=40, default=new_token)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return self.key

    def as_json(self) -> dict:
        return {"id": self.pk, "key": self.key, "name": self.name, "type": self.type,
                "timezone": self.timezone, "status": self.status}


class PlatformDevice(models.Model):
    datasource = models.ForeignKey(PlatformDatasource, on_delete=models.CASCADE,
                                   related_name="devices")
    local_id = models.CharField(max_length=25)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=16, default="PENDING")

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["datasource", "local_id"],
                                    name="sandbox_dexma_device_unique_did"),
        ]

    def __str__(self) -> str:
        return self.local_id

    def as_json(self) -> dict:
        return {"id": self.pk, "local_id": self.local_id, "name": self.name,
                "description": self.description, "status": self.status,
                "datasource": {"id": self.datasource_id}}


class PlatformSession(models.Model):
    """A user's session in the platform UI (what `session_id` points at)."""

    deployment = models.ForeignKey(PlatformDeployment, on_delete=models.CASCADE)
    session_id = models.CharField(max_length=40, unique=True, default=new_token)
    user_name = models.CharField(max_length=200)
    user_email = models.CharField(max_length=200)

    def __str__(self) -> str:
        return f"{self.user_name} @ {self.deployment_id}"


class Is3Stats(models.Model):
    """What the simulated IS3 saw for one datasource: the counters a backfill is judged by."""

    datasource = models.OneToOneField(PlatformDatasource, on_delete=models.CASCADE,
                                      related_name="is3_stats")
    requests = models.PositiveBigIntegerField(default=0)
    stored = models.PositiveBigIntegerField(default=0, help_text="Values kept (new or not).")
    overwrites = models.PositiveBigIntegerField(default=0)
    out_of_order = models.PositiveBigIntegerField(
        default=0, help_text="Values older than the newest one already held for their series."
    )
    discarded = models.PositiveBigIntegerField(
        default=0, help_text="Misaligned interval values dropped while answering 200 OK."
    )
    refused = models.PositiveBigIntegerField(default=0, help_text="Requests answered non-200.")

    class Meta:
        verbose_name = "IS3 statistics"
        verbose_name_plural = "IS3 statistics"

    def __str__(self) -> str:
        return f"IS3 {self.datasource}"


class Is3Series(models.Model):
    """One device parameter (did, IS3 parameter id) of a datasource, with its newest value."""

    datasource = models.ForeignKey(PlatformDatasource, on_delete=models.CASCADE,
                                   related_name="is3_series")
    did = models.CharField(max_length=25)
    p = models.PositiveIntegerField()
    last_ts = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["datasource", "did", "p"],
                                    name="sandbox_is3_series_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.did}/{self.p}"


class Is3Value(models.Model):
    """One stored value (UTC)."""

    id = models.BigAutoField(primary_key=True)
    series = models.ForeignKey(Is3Series, on_delete=models.CASCADE, related_name="values",
                               db_index=False)
    ts = models.DateTimeField()
    v = models.FloatField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["series", "ts"], name="sandbox_is3_value_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.series_id}@{self.ts.isoformat()}={self.v}"


class PlatformFault(models.Model):
    """The switch that makes the simulated platform misbehave: IS3 or APIv3 answers every
    request with 500, 503 or 429 (with `Retry-After`) until the switch is turned off.

    While any switch of a target exists, on or off, every request to that target is
    recorded as a `PlatformRequest`: what a storm test reads to judge the hub's waits.
    """

    class Target(models.TextChoices):
        IS3 = "is3", "IS3 inserts"
        API = "api", "APIv3"

    class Status(models.IntegerChoices):
        NONE = 0, "Answer normally (record requests only)"
        E500 = 500, "500 Internal Server Error"
        E503 = 503, "503 Service Unavailable"
        E429 = 429, "429 Too Many Requests"

    target = models.CharField(max_length=8, choices=Target.choices, default=Target.IS3)
    enabled = models.BooleanField(default=True)
    status = models.IntegerField(choices=Status.choices, default=Status.NONE)
    retry_after = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds sent in Retry-After (429 and 503 only)."
    )
    hits = models.IntegerField(default=0)

    class Meta:
        verbose_name = "fault switch"
        verbose_name_plural = "fault switches"

    def __str__(self) -> str:
        wait = f", Retry-After {self.retry_after}s" if self.retry_after is not None else ""
        return f"{self.get_target_display()}: {self.get_status_display()}{wait}"


class PlatformRequest(models.Model):
    """One request the simulated IS3 or APIv3 received while a fault switch existed."""

    id = models.BigAutoField(primary_key=True)
    target = models.CharField(max_length=8, choices=PlatformFault.Target.choices)
    credential = models.CharField(
        max_length=128, help_text="IS3: the source_key; APIv3: the app token's id."
    )
    arrived_at = models.DateTimeField(db_index=True)
    status = models.IntegerField()
    retry_after = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["arrived_at", "id"]
        verbose_name = "received request"

    def __str__(self) -> str:
        return f"{self.target} {self.credential} {self.arrived_at.isoformat()} → {self.status}"
