"""Readings and what the ingest records: readings, daily ingest figures, quarantine, runs."""

from __future__ import annotations

import datetime as dt
import json

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.forms.fields import InvalidJSONInput
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from apps.core.admin.toolkit import (
    ADMIN_CSS,
    HugeTableAdmin,
    ReadOnlyAdmin,
    badge_html,
    short,
    superuser_deletes,
    utc,
)
from apps.core.admin_site import duration_text
from apps.core.models import (
    DailyIngestStat,
    Device,
    Quarantine,
    Reading,
    Run,
)
from apps.core.services import quarantine_discard, quarantine_replay


class ParameterKindFilter(admin.ChoicesFieldListFilter):
    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.title = "parameter kind"


@admin.register(Reading)
class ReadingAdmin(HugeTableAdmin, ReadOnlyAdmin):
    list_display = ("time", "device_external_id", "deployment", "parameter_key", "value_text",
                    "flags", "cost_text", "seq")
    list_display_links = ("time",)
    list_select_related = ("device__deployment", "parameter")
    # Choices known up front: the filter itself reads nothing from the readings table.
    list_filter = (("parameter__kind", ParameterKindFilter),)
    search_fields = ("=device__external_id",)
    search_help_text = "Exact device external id."
    empty_value_display = ""
    raw_id_fields = ("device",)
    ordering = ("-id",)
    sortable_by = ()
    fields = ("device", "parameter", "time", "value_text", "estimated", "quality", "cost_text",
              "seq")
    readonly_fields = ("time", "value_text", "cost_text")

    class Media:
        css = ADMIN_CSS

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return superuser_deletes(request)

    def render_change_form(self, request: HttpRequest, context: dict, *args, obj=None, **kwargs):
        if obj is not None:
            # The model's own str() speaks in row ids; ops think in external ids and keys.
            context["subtitle"] = (
                f"{obj.device.external_id} · {obj.parameter.key} · {self.time(obj)} UTC"
            )
        return super().render_change_form(request, context, *args, obj=obj, **kwargs)

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Reading], search_term: str
    ) -> tuple[QuerySet[Reading], bool]:
        # Admin's "=" means iexact, i.e. UPPER(external_id), which no index serves; resolve
        # the exact external id to device ids first so the natural-key index does the rest.
        term = search_term.strip()
        if not term:
            return queryset, False
        device_ids = list(Device.objects.filter(external_id=term).values_list("pk", flat=True))
        return queryset.filter(device_id__in=device_ids), False

    @admin.display(description="Device")
    def device_external_id(self, obj: Reading) -> str:
        return obj.device.external_id

    @admin.display(description="Deployment")
    def deployment(self, obj: Reading) -> str:
        return obj.device.deployment.name

    @admin.display(description="Parameter")
    def parameter_key(self, obj: Reading) -> str:
        return obj.parameter.key

    @admin.display(description="Time (UTC)")
    def time(self, obj: Reading) -> str:
        text = utc(obj.ts)
        if obj.period_end is None:
            return text
        start = obj.ts.astimezone(dt.UTC)
        end = obj.period_end.astimezone(dt.UTC)
        end_format = "%H:%M:%S" if end.date() == start.date() else "%Y-%m-%d %H:%M:%S"
        return f"{text} → {end.strftime(end_format)}"

    @admin.display(description="Value")
    def value_text(self, obj: Reading) -> str:
        return f"{obj.value:g} {obj.parameter.unit}".strip()

    @admin.display(description="Flags")
    def flags(self, obj: Reading) -> str:
        badges = []
        if obj.estimated:
            badges.append(("estimated", "estimated"))
        if obj.quality != Reading.Quality.GOOD:
            badges.append((f"quality-{obj.quality}", obj.get_quality_display()))
        return format_html_join(
            " ", '<span class="hub-badge hub-badge-{}">{}</span>', badges
        )

    @admin.display(description="Cost")
    def cost_text(self, obj: Reading) -> str:
        return "" if obj.cost is None else f"{obj.cost:g} {obj.currency}"


@admin.register(DailyIngestStat)
class DailyIngestStatAdmin(ReadOnlyAdmin):
    list_display = ("day", "deployment", "accepted", "quarantined")
    list_filter = ("deployment",)
    list_select_related = ("deployment",)
    date_hierarchy = "day"
    ordering = ("-day", "deployment")

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return superuser_deletes(request)


class IndentedJSONField(forms.JSONField):
    """One key per line, so ops can spot and fix the wrong field."""

    def prepare_value(self, value: object) -> str:
        if isinstance(value, InvalidJSONInput):
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)


@admin.register(Quarantine)
class QuarantineAdmin(admin.ModelAdmin):
    list_display = ("created", "status_badge", "deployment", "source", "record",
                    "reason_short")
    list_filter = ("status", "kind", "deployment")
    list_select_related = ("deployment",)
    search_fields = ("reason", "source")
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    actions = ("replay_selected", "discard_selected")
    fields = ("status", "deployment", "kind", "source", "reason", "payload", "run",
              "created_at", "resolved_at")
    readonly_fields = ("status", "deployment", "kind", "source", "reason", "run",
                       "created_at", "resolved_at")

    class Media:
        css = ADMIN_CSS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return superuser_deletes(request)

    def formfield_for_dbfield(self, db_field, request: HttpRequest, **kwargs):
        if db_field.name == "payload":
            kwargs["form_class"] = IndentedJSONField
            kwargs["widget"] = forms.Textarea(attrs={"rows": 14, "class": "hub-json"})
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj=None) -> tuple[str, ...]:
        if obj is not None and obj.status != Quarantine.Status.OPEN:
            return (*self.readonly_fields, "payload")
        return self.readonly_fields

    @admin.display(description="Status", ordering="status")
    def status_badge(self, obj: Quarantine) -> str:
        return badge_html(obj.status, obj.get_status_display())

    @admin.display(description="Created (UTC)", ordering="created_at")
    def created(self, obj: Quarantine) -> str:
        return utc(obj.created_at)

    @admin.display(description="Record")
    def record(self, obj: Quarantine) -> str:
        payload = obj.payload
        if obj.kind != Quarantine.Kind.READING or not isinstance(payload, dict):
            return short(str(payload), 60)
        return short(f"{payload.get('device')} · {payload.get('parameter')} · "
                      f"{payload.get('ts')} = {payload.get('value')}", 90)

    @admin.display(description="Reason")
    def reason_short(self, obj: Quarantine) -> str:
        return short(obj.reason, 110)

    @admin.action(description="Replay selected", permissions=["change"])
    def replay_selected(self, request: HttpRequest, queryset: QuerySet[Quarantine]) -> None:
        result = quarantine_replay(entries=queryset.select_related("deployment"))
        self._report_replay(request, result)

    @admin.action(description="Discard selected", permissions=["change"])
    def discard_selected(self, request: HttpRequest, queryset: QuerySet[Quarantine]) -> None:
        entries = list(queryset)
        discarded = quarantine_discard(entries=entries)
        self.message_user(request, f"Discarded {discarded} of {len(entries)} selected entries.",
                          messages.SUCCESS if discarded else messages.WARNING)
        if discarded < len(entries):
            self.message_user(
                request,
                f"{len(entries) - discarded} were not open (already replayed or discarded) "
                "and were left as they are.",
                messages.INFO,
            )

    def response_change(self, request: HttpRequest, obj: Quarantine) -> HttpResponse:
        if "_replay" in request.POST:
            self._report_replay(request, quarantine_replay(entries=[obj]))
            return HttpResponseRedirect(request.path)
        return super().response_change(request, obj)

    def _report_replay(self, request: HttpRequest, result) -> None:
        if result.replayed:
            self.message_user(request, f"Replayed {result.replayed}: the readings are stored.",
                              messages.SUCCESS)
        if result.still_invalid:
            self.message_user(
                request,
                f"{result.still_invalid} still fail validation; their reason is updated. "
                "Fix the payload (or create the missing device) and replay again.",
                messages.WARNING,
            )
        if result.skipped:
            self.message_user(
                request,
                f"Skipped {result.skipped}: only open reading entries can be replayed.",
                messages.INFO,
            )


def counts_text(counts) -> str:
    """Run counts as words: nested stages become "meters: fetched 6, stored 6"."""
    if not isinstance(counts, dict):
        return "" if counts in (None, "", [], 0, False) else str(counts)
    parts = []
    for key, value in counts.items():
        if isinstance(value, dict):
            inner = counts_text(value)
            if inner:
                parts.append(f"{key}: {inner}")
        elif isinstance(value, list | tuple):
            if value:
                parts.append(f"{key} {', '.join(map(str, value))}")
        elif value not in (None, "", 0, False):
            parts.append(f"{key} {value}")
    return "; ".join(parts) if any(isinstance(v, dict) for v in counts.values()) \
        else ", ".join(parts)


@admin.register(Run)
class RunAdmin(HugeTableAdmin, ReadOnlyAdmin):
    list_display = ("started", "status_badge", "kind", "target", "deployment", "duration",
                    "outcome")
    list_filter = ("status", "deployment")
    list_select_related = ("deployment",)
    search_fields = ("=kind", "target", "=task_id")
    search_help_text = ("Exact kind (dexma.deliver, wattics.push, pull.sync, …) or task id, "
                        "or words of the target.")
    ordering = ("-started_at",)
    sortable_by = ()

    class Media:
        css = ADMIN_CSS

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="Started (UTC)")
    def started(self, obj: Run) -> str:
        return utc(obj.started_at)

    @admin.display(description="Status")
    def status_badge(self, obj: Run) -> str:
        return badge_html(obj.status, obj.get_status_display())

    @admin.display(description="Duration")
    def duration(self, obj: Run) -> str:
        if obj.finished_at is None:
            return f"running {duration_text(timezone.now() - obj.started_at)}"
        return duration_text(obj.duration)

    @admin.display(description="Outcome")
    def outcome(self, obj: Run) -> str:
        """The error when there is one, else what the run counted."""
        if obj.error:
            return format_html('<span class="hub-alert-text">{}</span>', short(obj.error, 140))
        return counts_text(obj.counts) or "—"
