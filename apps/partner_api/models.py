"""Partner API keys, idempotent request records and tombstones of deleted meters and assets."""

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


class Tombstone(models.Model):
    """A deleted meter or asset, kept so that pullers learn of the deletion.

    Listed by `?include_deleted=true` for PARTNER_API_TOMBSTONE_DAYS, then purged. `record_id`
    is the deleted row's id: lists are ordered by id, so a tombstone keeps its place.
    """

    class Kind(models.TextChoices):
        ASSET = "asset", "Asset"
        METER = "meter", "Meter"

    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    record_id = models.BigIntegerField()
    external_id = models.CharField(max_length=255)
    deleted_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [
            models.Index(fields=["deployment", "kind", "record_id"], name="tombstone_list_idx"),
            models.Index(fields=["deleted_at"], name="tombstone_purge_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.external_id} deleted {self.deleted_at.isoformat()}"
