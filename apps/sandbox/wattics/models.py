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
    """The switch: answer POSTs with 500/503 (nothing stored) and/or slowly."""

    class Status(models.IntegerChoices):
        NONE = 0, "Answer normally"
        E500 = 500, "500 Internal Server Error"
        E503 = 503, "503 Service Unavailable"

    enabled = models.BooleanField(default=True)
    meter_id = models.CharField(max_length=200, blank=True, help_text="Blank: every meter.")
    status = models.IntegerField(choices=Status.choices, default=Status.NONE)
    delay_ms = models.PositiveIntegerField(
        default=0, help_text="Answer this late (a stored packet is stored before the wait)."
    )
    remaining = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests still affected; blank: until disabled."
    )
    hits = models.IntegerField(default=0)

    class Meta:
        verbose_name = "fault switch"

    def __str__(self) -> str:
        return f"{self.get_status_display()} +{self.delay_ms} ms ({self.meter_id or 'all'})"
