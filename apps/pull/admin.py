"""The ops console for pull connections: edit and validate, test, sync now, watch."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.db import models, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from apps.core.admin import ADMIN_CSS, ReadOnlyInline, badge_html
from apps.core.forms import https_url_formfield
from apps.pull.models import Connection, Endpoint, SeenUnit
from apps.pull.selectors import connections_failing
from apps.pull.services import connection_preview, connection_setup

SECRETS = ("api_key", "password", "client_secret", "refresh_token")


class ConnectionForm(forms.ModelForm):
    """Secrets are write-only: the form never shows them; blank keeps the stored one."""

    class Meta:
        formfield_callback = https_url_formfield
        model = Connection
        fields = "__all__"  # noqa: DJ007 (the admin's fieldsets choose)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for name in SECRETS:
            stored = bool(self.instance.pk and getattr(self.instance, name))
            self.fields[name] = forms.CharField(
                required=False, strip=True,
                widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
                help_text=("A value is stored; leave blank to keep it. " if stored else "")
                + (Connection._meta.get_field(name).help_text or ""),
                label=Connection._meta.get_field(name).verbose_name.capitalize(),
            )
            self.initial[name] = ""

    def clean(self) -> dict:
        data = super().clean()
        for name in SECRETS:
            if not data.get(name) and self.instance.pk:
                data[name] = getattr(self.instance, name)
        return data


class EndpointInline(admin.StackedInline):
    model = Endpoint
    extra = 0
    fieldsets = (
        (None, {"fields": (("role", "path"), "params", ("records_path", "fields"))}),
        ("Pagination", {"fields": (("pagination", "page_size", "size_param"),
                                   ("offset_param", "page_param", "first_page"),
                                   ("cursor_param", "cursor_path"))}),
    )


class SeenUnitInline(ReadOnlyInline):
    model = SeenUnit
    fields = ("unit", "first_seen_at")
    verbose_name_plural = "units seen (registered on first sight)"


@admin.register(Connection)
class ConnectionAdmin(admin.ModelAdmin):
    # URLs without a scheme are taken as https (Django 6 default, set now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    form = ConnectionForm
    change_form_template = "pull/connection_change_form.html"
    inlines = (EndpointInline, SeenUnitInline)
    list_display = ("name", "deployment", "environment", "auth_kind", "frequency",
                    "status_badge", "last_success_at", "usage_watermark", "is_enabled")
    list_filter = ("last_status", "environment", "auth_kind", "frequency", "is_enabled",
                   "deployment")
    list_select_related = ("deployment",)
    search_fields = ("name", "key", "staging_url", "production_url")
    readonly_fields = ("datasource", "usage_watermark", "last_status", "last_run_link",
                       "last_success_at", "last_error", "periodic_task")
    actions = ("sync_now",)
    fieldsets = (
        (None, {"fields": ("deployment", ("name", "key"), "is_enabled", "datasource")}),
        ("Provider", {"fields": ("environment", "staging_url", "production_url",
                                 "timeout_seconds")}),
        ("Authentication", {"fields": (
            "auth_kind", ("auth_name", "api_key"), "bearer_format", ("username", "password"),
            "token_url", ("client_id", "client_secret"), "scope", "refresh_token")}),
        ("Dates", {"fields": (("date_from_param", "date_to_param", "date_format"),
                              ("max_range_days", "min_window_hours"), "source_timezone",
                              ("initial_days", "lookback_days"))}),
        ("Mapping", {"fields": ("type_map", "consumption_parameters", "reading_parameters")}),
        ("Schedule and retries", {"fields": (
            ("frequency", "run_hour"), ("max_retries", "quota_window_seconds",
                                        "retry_after_cap_seconds"),
            "notify_email", "periodic_task")}),
        ("State", {"fields": ("usage_watermark", "last_status", "last_run_link",
                              "last_success_at", "last_error")}),
    )

    class Media:
        css = ADMIN_CSS

    @admin.display(description="status", ordering="last_status")
    def status_badge(self, obj: Connection) -> str:
        if not obj.last_status:
            return mark_safe('<span class="hub-quiet">never ran</span>')
        return badge_html(obj.last_status, obj.get_last_status_display())

    @admin.display(description="last run")
    def last_run_link(self, obj: Connection) -> str:
        if obj.last_run_id is None:
            return "—"
        url = reverse("admin:core_run_change", args=[obj.last_run_id])
        return format_html('<a href="{}">run #{}</a>', url, obj.last_run_id)

    def save_related(self, request: HttpRequest, form, formsets, change) -> None:
        super().save_related(request, form, formsets, change)
        connection_setup(connection=form.instance)

    def delete_model(self, request: HttpRequest, obj: Connection) -> None:
        task = obj.periodic_task
        super().delete_model(request, obj)
        if task is not None:
            task.delete()

    def changelist_view(self, request: HttpRequest, extra_context=None):
        failing = connections_failing()
        if failing and request.method == "GET":
            names = ", ".join(c.name for c in failing[:5])
            messages.error(request, f"{len(failing)} connection(s) failing: {names}. "
                                    "Open one for its last run's error.")
        return super().changelist_view(request, extra_context)

    @admin.action(description="Sync now")
    def sync_now(self, request: HttpRequest, queryset) -> None:
        from apps.pull.tasks import connection_sync_task

        ids = list(queryset.filter(is_enabled=True).values_list("pk", flat=True))
        for pk in ids:
            transaction.on_commit(lambda pk=pk: connection_sync_task.delay(pk))
        self.message_user(request, f"Sync queued for {len(ids)} connection(s); see the run log.")

    def get_urls(self):
        extra = [
            path("<int:pk>/test/", self.admin_site.admin_view(self.test_view),
                 name="pull_connection_test"),
            path("<int:pk>/sync/", self.admin_site.admin_view(self.sync_view),
                 name="pull_connection_sync"),
        ]
        return extra + super().get_urls()

    def test_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        connection = get_object_or_404(Connection, pk=pk)
        if not self.has_change_permission(request, connection):
            return HttpResponseRedirect(reverse("admin:index"))
        previews = connection_preview(connection=connection)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Test connection: {connection.name}",
            "opts": self.model._meta,
            "original": connection,
            "connection": connection,
            "previews": [
                {"preview": p, "table": [[row.get(c, "") for c in p.columns] for row in p.rows]}
                for p in previews
            ],
        }
        return TemplateResponse(request, "pull/connection_test.html", context)

    def sync_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        connection = get_object_or_404(Connection, pk=pk)
        change_url = reverse("admin:pull_connection_change", args=[pk])
        if request.method != "POST" or not self.has_change_permission(request, connection):
            return HttpResponseRedirect(change_url)
        self.sync_now(request, Connection.objects.filter(pk=pk))
        return HttpResponseRedirect(change_url)
