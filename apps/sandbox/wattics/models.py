"""State of the simulated Wattics collector: accounts, meters, packets, the fault switch."""

import hashlib

from django.db import models


def password_digest(password: str) -> str:
    # A simulator: a fast digest keeps the hub's demo password out of a dump in clear.
    return hashlib.sha256(password.encode()).hexdigest()


class CollectorAccount(models.Model):
    username = models.CharField(max_length=200, unique=True)
    password_sha256 = models.CharField(max_length=64)
    auto_register = models.BooleanField(
        default=False, help_text="Register unknown meter ids on their first packet (demo)."
    )
    log_packets = models.BooleanField(
        default=True, help_text="Keep every packet received (off: counters only, faster)."
    )

    class Meta:
        verbose_name = "collector account"

    def __str__(self) -> str:
        return self.username

    def set_password(self, password: str) -> None:
        self.password_sha256 = password_digest(password)


class CollectorMeter(models.Model):
    class Kind(models.TextChoices):
        ANY = "", "Any"
        ELECTRICITY = "electricity", "Electricity"
        SINGLE = "single", "Single value"

    meter_id = models.CharField(max_length=200, unique=True)
    account = models.ForeignKey(CollectorAccount, on_delete=models.CASCADE, related_name="meters")
    kind = models.CharField(max_length=16, choices=Kind.choices, blank=True)
    last_ts = models.DateTimeField(null=True, blank=True)
    last_packet = models.JSONField(null=True, blank=True)
    accepted = models.IntegerField(default=0)
    discarded = models.IntegerField(default=0, help_text="Out of order: answered 200, dropped.")

    class Meta:
        verbose_name = "collector meter"

    def __str__(self) -> str:
        return self.meter_id


class CollectorPacket(models.Model):
    meter = models.ForeignKey(CollectorMeter, on_delete=models.CASCADE, related_name="packets")
    ts = models.DateTimeField()
    packet = models.JSONField()
    discarded = models.BooleanField(default=False)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]
        verbose_name = "received packet"

    def __str__(self) -> str:
        return f"{self.meter_id}@{self.ts.isoformat()}"


class CollectorFault(models.Model):
    """The switch: answer POSTs with 500/503/429 (nothing stored) and/or slowly.

    While any switch exists, on or off, every POST is recorded as a `CollectorRequest`.
    """

    class Status(models.IntegerChoices):
        NONE = 0, "Answer normally"
        E500 = 500, "500 Internal Server Error"
        E503 = 503, "503 Service Unavailable"
        E429 = 429, "429 Too Many Requests"

    enabled = models.BooleanField(default=True)
    meter_id = models.CharField(max_length=200, blank=True, help_text="Blank: every meter.")
    status = models.IntegerField(choices=Status.choices, default=Status.NONE)
    delay_ms = models.PositiveIntegerField(
        default=0, help_text="Answer this late (a stored packet is stored before the wait)."
    )
    remaining = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests still affected; blank: until disabled."
    )
    retry_after = models.PositiveIntegerField(
        null=True, blank=True, help_text="Seconds sent in Retry-After (429 and 503 only)."
    )
    hits = models.IntegerField(default=0)

    class Meta:
        verbose_name = "fault switch"
        verbose_name_plural = "fault switches"

    def __str__(self) -> str:
        return f"{self.get_status_display()} +{self.delay_ms} ms ({self.meter_id or 'all'})"


class CollectorRequest(models.Model):
    """One POST the collector received while a fault switch existed: when, and the answer."""

    id = models.BigAutoField(primary_key=True)
    meter_id = models.CharField(max_length=200)
    arrived_at = models.DateTimeField(db_index=True)
    status = models.IntegerField()
    retry_after = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["arrived_at", "id"]
        verbose_name = "received request"

    def __str__(self) -> str:
        return f"{self.meter_id} {self.arrived_at.isoformat()} → {self.status}"
