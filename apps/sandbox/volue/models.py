"""State of the simulated Volue Energy Coordination platform."""

from django.db import models

from apps.core.fields import EncryptedTextField


class SbUser(models.Model):
    user_id = models.CharField(max_length=128, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    enrollment_id = models.UUIDField(null=True, blank=True)
    enrolled_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.user_id


class SbLocation(models.Model):
    location_id = models.CharField(max_length=128, unique=True)
    user = models.ForeignKey(SbUser, on_delete=models.CASCADE, related_name="locations")
    location_type = models.CharField(max_length=16, default="Unknown")
    coordinates = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.location_id

    @property
    def meter_point_ids(self) -> list[str]:
        return [m.meter_point_id for m in self.meter_points.all()]


class SbMeterPoint(models.Model):
    # A metering point belongs to one location only: registering it twice is a conflict.
    meter_point_id = models.CharField(max_length=64, unique=True)
    location = models.ForeignKey(SbLocation, on_delete=models.CASCADE,
                                 related_name="meter_points")

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.meter_point_id


class SbResource(models.Model):
    resource_id = models.CharField(max_length=128, unique=True)
    user = models.ForeignKey(SbUser, on_delete=models.CASCADE, related_name="resources")
    location = models.ForeignKey(SbLocation, on_delete=models.CASCADE, null=True, blank=True,
                                 related_name="resources")
    resource_type = models.CharField(max_length=16, default="Generic")
    meter_point_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.resource_id


class SbCall(models.Model):
    """Every API call the platform received, in order: what tests and the page inspect."""

    method = models.CharField(max_length=8)
    path = models.CharField(max_length=500)
    operation_id = models.CharField(max_length=64, blank=True)
    status = models.IntegerField()
    body = models.JSONField(null=True, blank=True)
    answer = models.TextField(blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return f"{self.method} {self.path} -> {self.status}"


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
