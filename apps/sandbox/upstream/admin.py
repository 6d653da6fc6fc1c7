from django.contrib import admin

from apps.sandbox.upstream.models import Profile


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ("slug", "auth_kind", "pagination", "page_size", "meter_count",
                    "max_range_days", "burst_every", "invalid_every", "flapping_meters")
    list_filter = ("auth_kind", "pagination")
    search_fields = ("slug",)
