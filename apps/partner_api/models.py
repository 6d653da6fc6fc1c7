"""Partner API keys, idempotent request records and change marks for `updated_since`."""

from django.db import models

from apps.core.models import Deployment


class ApiKey(models.Model):
    """One partner's credential. Only a SHA-256 of the key is stored; the key is shown once.

    Keys are random 40-character secrets, so a fast hash is enough (no dictionary to guess
    from); the prefix identifies the key without revealing it and doubles as the Basic
    auth user name.
    """

    class Access(models.TextChoices):
        READ = "read", "Read only"
        READ_WRITE = "read_write", "Read and write"

    name = models.CharField(max_length=200, help_text="Who holds it, e.g. 'Scaler production'.")
    prefix = models.CharField(max_length=12, unique=True, editable=False)
    key_hash = models.CharField(max_length=64, editable=False)
    access = models.CharField(max_length=16, choices=Access.choices, default=Access.READ)
    deployments = models.ManyToManyField(
        Deployment, related_name="api_keys", help_text="The only deployments this key sees."
    )
    rate_per_minute = models.PositiveIntegerField(
        null=True, blank=True, help_text="Requests per minute; empty uses PARTNER_API_RATE."
    )
    is_active = models.BooleanField(default=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def can_write(self) -> bool:
        return self.access == self.Access.READ_WRITE


class IdempotencyRecord(models.Model):
    """The first answer to a request sent with an `Idempotency-Key`, replayed on retries."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="SHA-256 of method, path and body.")
    status_code = models.PositiveSmallIntegerField()
    response = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["api_key", "key"], name="idempotency_unique_key"),
        ]
        indexes = [models.Index(fields=["created_at"], name="idempotency_created_idx")]

    def __str__(self) -> str:
        return f"{self.api_key_id}:{self.key}"


class ChangeMark(models.Model):
    """The highest reading `seq` of a deployment at an instant.

    Readings carry a change number but no change time; `updated_since=<time>` is answered
    with "seq above the last mark taken at or before that time", which may repeat a few
    records changed just before it but never misses one (a deployment's readings commit in
    seq order).
    """

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+")
    at = models.DateTimeField()
    seq = models.BigIntegerField()

    class Meta:
        ordering = ["deployment", "-at"]
        indexes = [models.Index(fields=["deployment", "-at"], name="changemark_lookup_idx")]

    def __str__(self) -> str:
        return f"{self.deployment_id}@{self.at.isoformat()}: {self.seq}"
