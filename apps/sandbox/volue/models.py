"""State of the simulated Volue Energy Coordination platform."""

from django.db import models

from apps.core.fields import EncryptedTextField


class SbUser(models.Model):
    user_id = models.CharField(max_length=128, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.user_id


class SbMeter(models.Model):
    meter_id = models.CharField(max_length=64, unique=True)
    user = models.ForeignKey(SbUser, on_delete=models.CASCADE, related_name="meters")
    # A metering point belongs to one user only: registering it twice is a conflict.
    meter_point_id = models.CharField(max_length=64, unique=True)
    body = models.JSONField()

    def __str__(self) -> str:
        return self.meter_point_id


class SbResource(models.Model):
    resource_id = models.CharField(max_length=128, unique=True)
    user = models.ForeignKey(SbUser, on_delete=models.CASCADE, related_name="resources")
    vehicle = models.BooleanField(default=False)
    body = models.JSONField()

    def __str__(self) -> str:
        return self.resource_id


class SbWebhook(models.Model):
    webhook_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200, blank=True)
    url = models.URLField(max_length=500)
    secret = EncryptedTextField(blank=True)
    notification_types = models.JSONField(default=list)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    modified_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return self.url


class SbEvent(models.Model):
    event_id = models.CharField(max_length=64, unique=True)
    notification_type = models.CharField(max_length=32)
    payload = models.JSONField()
    created_at = models.DateTimeField()

    class Meta:
        ordering = ["-created_at", "-pk"]

    def __str__(self) -> str:
        return f"{self.notification_type} {self.event_id}"


class SbDelivery(models.Model):
    notification_id = models.CharField(max_length=64)
    event = models.ForeignKey(SbEvent, on_delete=models.CASCADE, related_name="deliveries")
    webhook = models.ForeignKey(SbWebhook, on_delete=models.CASCADE)
    attempts = models.IntegerField(default=0)
    last_status = models.IntegerField(null=True)
    delivered = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.notification_id


class SbReport(models.Model):
    report_id = models.CharField(max_length=64, unique=True)
    event_id = models.CharField(max_length=128, blank=True)
    body = models.JSONField()
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-received_at"]

    def __str__(self) -> str:
        return self.report_id
