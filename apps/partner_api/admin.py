"""Ops manage partner API keys here: issue, scope, rotate, revoke."""

from django.contrib import admin, messages
from django.http import HttpRequest

from apps.core.admin import ReadOnlyAdmin
from apps.partner_api.auth import key_generate, key_hash
from apps.partner_api.models import ApiKey, IdempotencyRecord
from apps.partner_api.services import apikey_rotate


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ("name", "prefix", "access", "scope", "is_active", "rate_per_minute",
                    "last_used_at", "expires_at")
    list_filter = ("access", "is_active", "deployments")
    search_fields = ("name", "prefix")
    filter_horizontal = ("deployments",)
    readonly_fields = ("prefix", "created_at", "last_used_at")
    fields = ("name", "access", "deployments", "rate_per_minute", "is_active", "expires_at",
              "prefix", "created_at", "last_used_at")
    actions = ("rotate", "revoke")

    @admin.display(description="deployments")
    def scope(self, obj: ApiKey) -> str:
        return ", ".join(d.slug for d in obj.deployments.all())

    def get_queryset(self, request: HttpRequest):
        return super().get_queryset(request).prefetch_related("deployments")

    def save_model(self, request: HttpRequest, obj: ApiKey, form, change: bool) -> None:
        if not change:
            obj.prefix, raw = key_generate()
            obj.key_hash = key_hash(raw)
            # Shown once: only its hash is stored.
            messages.warning(request, f"New API key for '{obj.name}': {raw} — copy it now, "
                                      "it cannot be shown again.")
        super().save_model(request, obj, form, change)

    @admin.action(description="Rotate: issue a new key, the old one stops working")
    def rotate(self, request: HttpRequest, queryset) -> None:
        for key in queryset:
            raw = apikey_rotate(key=key)
            messages.warning(request, f"New API key for '{key.name}': {raw} — copy it now.")

    @admin.action(description="Revoke (deactivate)")
    def revoke(self, request: HttpRequest, queryset) -> None:
        count = queryset.update(is_active=False)
        messages.success(request, f"{count} key(s) revoked.")


@admin.register(IdempotencyRecord)
class IdempotencyRecordAdmin(ReadOnlyAdmin):
    list_display = ("key", "api_key", "status_code", "created_at")
    list_filter = ("status_code",)
    search_fields = ("key",)
    readonly_fields = ("api_key", "key", "fingerprint", "status_code", "response", "created_at")
