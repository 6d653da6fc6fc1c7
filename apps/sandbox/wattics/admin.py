from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin
from apps.sandbox.wattics.models import (
    CollectorAccount,
    CollectorFault,
    CollectorMeter,
    CollectorPacket,
    CollectorRequest,
)


@admin.register(CollectorAccount)
class CollectorAccountAdmin(admin.ModelAdmin):
    list_display = ("username", "auto_register")
    exclude = ("password_sha256",)


@admin.register(CollectorMeter)
class CollectorMeterAdmin(admin.ModelAdmin):
    list_display = ("meter_id", "account", "kind", "last_ts", "accepted", "discarded")
    search_fields = ("meter_id",)
    readonly_fields = ("last_ts", "last_packet", "accepted", "discarded")


@admin.register(CollectorPacket)
class CollectorPacketAdmin(ReadOnlyAdmin):
    list_display = ("meter", "ts", "discarded", "received_at", "packet")
    ordering = ("-pk",)  # the latest first, as one looks for what just arrived
    list_filter = ("discarded",)
    show_full_result_count = False


@admin.register(CollectorFault)
class CollectorFaultAdmin(admin.ModelAdmin):
    list_display = ("__str__", "enabled", "meter_id", "status", "retry_after", "delay_ms",
                    "remaining", "hits")
    list_editable = ("enabled",)
    list_display_links = ("__str__",)


@admin.register(CollectorRequest)
class CollectorRequestAdmin(ReadOnlyAdmin):
    """When each POST arrived while a fault switch existed, and what it was answered."""

    list_display = ("meter_id", "arrived_at", "status", "retry_after")
    list_filter = ("status",)
    show_full_result_count = False
