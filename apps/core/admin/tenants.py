"""Tenants and their equipment: deployments, sites, datasources, devices, the parameter
catalogue."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from apps.core.admin.toolkit import (
    ReadOnlyAdmin,
    ReadOnlyInline,
    changelist_url,
)
from apps.core.models import (
    Datasource,
    DeliveryLink,
    Deployment,
    Device,
    Parameter,
    Reading,
    Site,
)
from apps.core.services.retention import retention_preview


class DatasourceInline(admin.TabularInline):
    model = Datasource
    fields = ("name", "key", "kind", "consent_status", "is_active")
    extra = 0
    show_change_link = True


class DeliveryLinkInline(ReadOnlyInline):
    model = DeliveryLink
    fields = ("platform", "name", "state", "cursor", "last_success_at")
    show_change_link = True


@admin.register(Deployment)
class DeploymentAdmin(admin.ModelAdmin):
    list_display = ("name", "slug", "timezone", "is_active", "equipment", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name", "slug")
    prepopulated_fields = {"slug": ("name",)}
    readonly_fields = ("created_at", "updated_at")
    inlines = (DatasourceInline, DeliveryLinkInline)

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> tuple[str, ...]:
        # Platforms and URLs know a deployment by its slug: fixed once created.
        if obj is None:
            return self.readonly_fields
        return (*self.readonly_fields, "slug", "retention_removes")

    @admin.display(description="What retention removes")
    def retention_removes(self, obj: Deployment) -> str:
        preview = retention_preview(deployment=obj)
        if preview.window_days is None:
            return "Nothing: no retention window, every reading is kept."
        if not preview.applies:
            return (f"Window {preview.window_days} days; retention runs on PostgreSQL only, "
                    "so nothing is removed on this database.")
        day = "%Y-%m-%d %H:%M"
        if not preview.past_window:
            text = format_html("Window {} days: no reading is older than {} yet.",
                               preview.window_days,
                               timezone.localtime(preview.window_end).strftime(day))
        else:
            text = format_html(
                "Window {} days: {}{} readings from {} to {} are past it; {} leave at the "
                "next run ({}).",
                preview.window_days, "more than " if preview.past_window_capped else "",
                f"{preview.past_window:,}", timezone.localtime(preview.oldest).strftime(day),
                timezone.localtime(preview.window_end).strftime(day),
                f"{preview.removable:,}", preview.next_run)
        if preview.holding:
            text = format_html("{}<br>Held back by:<ul>{}</ul>", text, format_html_join(
                "", "<li>{}</li>", ((line,) for line in preview.holding)))
        return text

    def get_prepopulated_fields(self, request: HttpRequest, obj=None) -> dict:
        return {} if obj else self.prepopulated_fields

    @admin.display(description="Equipment")
    def equipment(self, obj: Deployment) -> str:
        return format_html(
            '<a href="{}">sites</a> · <a href="{}">devices</a>',
            changelist_url(Site, deployment__id__exact=obj.pk),
            changelist_url(Device, deployment__id__exact=obj.pk),
        )


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("name", "external_id", "deployment", "city", "country", "timezone",
                    "is_active")
    list_filter = ("deployment", "is_active", "country")
    list_select_related = ("deployment",)
    search_fields = ("name", "external_id", "city", "postal_code")
    readonly_fields = ("created_at", "updated_at")


class DeviceInline(ReadOnlyInline):
    """The datasource's devices at a glance; each one is edited on its own page."""

    model = Device
    fk_name = "datasource"
    fields = ("external_id", "local_id", "name", "commodity", "unit", "site", "is_active")
    show_change_link = True

    def get_queryset(self, request: HttpRequest) -> QuerySet[Device]:
        return super().get_queryset(request).select_related("site")


@admin.register(Datasource)
class DatasourceAdmin(admin.ModelAdmin):
    list_display = ("name", "key", "deployment", "kind", "consent_status", "consent_expires_at",
                    "is_active", "device_count")
    list_filter = ("deployment", "kind", "consent_status", "is_active")
    list_select_related = ("deployment",)
    search_fields = ("name", "key")
    readonly_fields = ("created_at", "updated_at")
    inlines = (DeviceInline,)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Datasource]:
        return super().get_queryset(request).annotate(device_count=Count("devices"))

    @admin.display(description="Devices", ordering="device_count")
    def device_count(self, obj: Datasource) -> str:
        url = changelist_url(Device, datasource__id__exact=obj.pk)
        return format_html('<a href="{}">{}</a>', url, obj.device_count)


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = ("external_id", "name", "deployment", "datasource", "site", "commodity",
                    "subtype", "unit", "is_active", "readings_link")
    list_filter = ("deployment", "commodity", "is_active", "datasource__kind")
    list_select_related = ("deployment", "datasource", "site")
    search_fields = ("external_id", "local_id", "name")
    autocomplete_fields = ("datasource", "site")
    readonly_fields = ("created_at", "updated_at", "readings_link")

    @admin.display(description="Readings")
    def readings_link(self, obj: Device) -> str:
        if obj.pk is None:
            return "—"
        url = changelist_url(Reading, device__id__exact=obj.pk)
        return format_html('<a href="{}">readings</a>', url)


@admin.register(Parameter)
class ParameterAdmin(ReadOnlyAdmin):
    """The catalogue is seeded from DEXMA's parameter codes; code depends on its keys."""

    list_display = ("key", "name", "unit", "kind", "nature", "operation", "dexma_code")
    list_filter = ("kind", "nature", "operation")
    search_fields = ("key", "name", "=dexma_code")

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
