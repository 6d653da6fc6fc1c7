from django.contrib import admin

from apps.core.admin import ReadOnlyAdmin
from apps.sandbox.dexma.models import (
    AppToken,
    Is3Stats,
    Is3Value,
    PlatformDatasource,
    PlatformDeployment,
    PlatformDevice,
    PlatformFault,
    PlatformRequest,
    PlatformSession,
)


@admin.register(PlatformDeployment)
class PlatformDeploymentAdmin(admin.ModelAdmin):
    list_display = ("dep_id", "name")


@admin.register(AppToken)
class AppTokenAdmin(admin.ModelAdmin):
    """The simulated rate budgets: lower the limits here to watch the hub back off."""

    list_display = ("app_id", "deployment", "hour_limit", "hour_used", "day_limit", "day_used")
    fields = ("app_id", "deployment", "hour_limit", "day_limit", "hour_used", "hour_started",
              "day_used", "day_started")


@admin.register(PlatformDatasource)
class PlatformDatasourceAdmin(admin.ModelAdmin):
    list_display = ("key", "name", "deployment", "status", "type", "timezone")
    exclude = ("source_token",)


@admin.register(PlatformDevice)
class PlatformDeviceAdmin(admin.ModelAdmin):
    list_display = ("local_id", "name", "datasource", "status")


@admin.register(PlatformSession)
class PlatformSessionAdmin(admin.ModelAdmin):
    list_display = ("session_id", "deployment", "user_name")


@admin.register(Is3Stats)
class Is3StatsAdmin(admin.ModelAdmin):
    """What the simulated IS3 did with the hub's deliveries."""

    list_display = ("datasource", "requests", "stored", "overwrites", "out_of_order",
                    "discarded", "refused")
    readonly_fields = list_display

    def has_add_permission(self, request) -> bool:
        return False  # IS3 keeps them


@admin.register(Is3Value)
class Is3ValueAdmin(admin.ModelAdmin):
    """The values IS3 holds, as a DEXMA user sees them on the platform: search a device's
    local id, narrow by time (`?ts__gte=…&ts__lt=…`)."""

    list_display = ("datasource", "device", "parameter", "ts", "v")
    list_select_related = ("series__datasource",)
    search_fields = ("series__did",)
    show_full_result_count = False

    @admin.display(description="datasource")
    def datasource(self, obj: Is3Value) -> str:
        return obj.series.datasource.key

    @admin.display(description="device (did)")
    def device(self, obj: Is3Value) -> str:
        return obj.series.did

    @admin.display(description="IS3 parameter")
    def parameter(self, obj: Is3Value) -> int:
        return obj.series.p

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PlatformFault)
class PlatformFaultAdmin(admin.ModelAdmin):
    """Storms on demand: switch IS3 or APIv3 to 500, 503 or 429 and watch the hub wait."""

    list_display = ("__str__", "target", "enabled", "status", "retry_after", "hits")
    list_editable = ("enabled",)
    list_display_links = ("__str__",)


@admin.register(PlatformRequest)
class PlatformRequestAdmin(ReadOnlyAdmin):
    """When each request arrived while a fault switch existed, and what it was answered."""

    list_display = ("target", "credential", "arrived_at", "status", "retry_after")
    list_filter = ("target", "status")
    show_full_result_count = False
