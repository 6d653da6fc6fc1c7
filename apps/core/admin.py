"""The ops console for the shared model: browse everything, steer with services.

Machine-written tables (readings, runs, quarantine metadata, outbound batches, daily
stats) are read-only here; what ops may do to them is an action that calls a service.
Readings, runs and batches grow without bound, so their lists never COUNT(*) the table,
never offer facets or sorting that would scan it, and page only forwards and backwards.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import cached_property
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.core.paginator import EmptyPage, PageNotAnInteger, Paginator
from django.db.models import Count, QuerySet
from django.forms.fields import InvalidJSONInput
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from apps.core import selectors
from apps.core.admin_site import duration_text
from apps.core.models import (
    DailyIngestStat,
    Datasource,
    DeliveryLink,
    Deployment,
    Device,
    OutboundBatch,
    Parameter,
    Quarantine,
    Reading,
    Run,
    Site,
)
from apps.core.services import quarantine_discard, quarantine_replay

ADMIN_CSS = {"all": ["core/admin.css"]}


def _badge(value: str, label: str) -> str:
    return format_html('<span class="hub-badge hub-badge-{}">{}</span>', value, label)


def _short(text: str, length: int = 80) -> str:
    return Truncator(text).chars(length)


def _utc(value: dt.datetime | None) -> str:
    """Compact UTC time for dense lists: the hub stores and speaks UTC."""
    return "—" if value is None else f"{value.astimezone(dt.UTC):%Y-%m-%d %H:%M:%S}"


def _changelist_url(model: type, **params: object) -> str:
    url = reverse(f"admin:core_{model._meta.model_name}_changelist")
    return f"{url}?{urlencode(params)}" if params else url


# --- Huge tables ---------------------------------------------------------------------------


class EstimatedCountPaginator(Paginator):
    """A paginator that never runs COUNT(*) over its table.

    Unfiltered, PostgreSQL's statistics stand in for the count. Filtered, or where there
    are no statistics (SQLite) or the table is small, ids are read up to `cap` and the
    count says "more than" beyond it. Pages are not bounded by the count, which may be an
    estimate: the list simply ends.
    """

    cap = 10_000
    count_kind = "exact"  # or "estimate" (statistics) or "capped" (more than `cap`)

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not queryset.query.where:
            estimate = selectors.table_rows_estimate(model=queryset.model)
            if estimate is not None and estimate > self.cap:
                self.count_kind = "estimate"
                return estimate
        ids = queryset.order_by().values_list("pk", flat=True)[: self.cap + 1]
        found = len(ids)
        self.count_kind = "capped" if found > self.cap else "exact"
        return found

    def validate_number(self, number: object) -> int:
        try:
            if isinstance(number, float) and not number.is_integer():
                raise ValueError
            number = int(number)
        except (TypeError, ValueError):
            raise PageNotAnInteger("That page number is not an integer") from None
        if number < 1:
            raise EmptyPage("That page number is less than 1")
        return number

    def page(self, number: object):
        number = self.validate_number(number)
        bottom = (number - 1) * self.per_page
        return self._get_page(self.object_list[bottom : bottom + self.per_page], number, self)


class HugeTableChangeList(ChangeList):
    """Previous/next links instead of a page range that invites a jump to page 1,000,000."""

    def _page_url(self, number: int) -> str:
        return self.get_query_string({PAGE_VAR: number})

    @property
    def previous_page_url(self) -> str:
        return self._page_url(self.page_num - 1) if self.page_num > 1 else ""

    @property
    def next_page_url(self) -> str:
        full = len(self.result_list) >= self.list_per_page
        return self._page_url(self.page_num + 1) if full and not self.show_all else ""


class HugeTableAdmin(admin.ModelAdmin):
    paginator = EstimatedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50

    def get_changelist(self, request: HttpRequest, **kwargs) -> type[ChangeList]:
        return HugeTableChangeList

    def response_action(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse | None:
        if request.POST.get("select_across") == "1":
            # "Select all" would hand the action every row of the table.
            self.message_user(
                request,
                "Actions here work on the rows of one page: select them on the page "
                "instead of selecting all.",
                messages.ERROR,
            )
            return None
        return super().response_action(request, queryset)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


def _superuser_deletes(request: HttpRequest) -> bool:
    # Deleting a deployment cascades through these tables, so a superuser must be able to.
    return request.user.is_superuser


# --- Tenants and their equipment -------------------------------------------------------


class DatasourceInline(admin.TabularInline):
    model = Datasource
    fields = ("name", "key", "kind", "consent_status", "is_active")
    extra = 0
    show_change_link = True


class DeliveryLinkInline(admin.TabularInline):
    model = DeliveryLink
    fields = ("platform", "name", "state", "cursor", "last_success_at")
    readonly_fields = fields
    extra = 0
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


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
        return (*self.readonly_fields, "slug") if obj else self.readonly_fields

    def get_prepopulated_fields(self, request: HttpRequest, obj=None) -> dict:
        return {} if obj else self.prepopulated_fields

    @admin.display(description="Equipment")
    def equipment(self, obj: Deployment) -> str:
        return format_html(
            '<a href="{}">sites</a> · <a href="{}">devices</a>',
            _changelist_url(Site, deployment__id__exact=obj.pk),
            _changelist_url(Device, deployment__id__exact=obj.pk),
        )


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ("name", "external_id", "deployment", "city", "country", "timezone",
                    "is_active")
    list_filter = ("deployment", "is_active", "country")
    list_select_related = ("deployment",)
    search_fields = ("name", "external_id", "city", "postal_code")
    readonly_fields = ("created_at", "updated_at")


class DeviceInline(admin.TabularInline):
    """The datasource's devices at a glance; each one is edited on its own page."""

    model = Device
    fk_name = "datasource"
    fields = ("external_id", "local_id", "name", "commodity", "unit", "site", "is_active")
    readonly_fields = fields
    extra = 0
    show_change_link = True

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

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
        url = _changelist_url(Device, datasource__id__exact=obj.pk)
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
        url = _changelist_url(Reading, device__id__exact=obj.pk)
        return format_html('<a href="{}">readings</a>', url)


@admin.register(Parameter)
class ParameterAdmin(ReadOnlyAdmin):
    """The catalogue is seeded from DEXMA's parameter codes; code depends on its keys."""

    list_display = ("key", "name", "unit", "kind", "nature", "operation", "dexma_code")
    list_filter = ("kind", "nature", "operation")
    search_fields = ("key", "name", "=dexma_code")

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


# --- Readings and what the ingest records ----------------------------------------------


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
        return _superuser_deletes(request)

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
        text = _utc(obj.ts)
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
        return _superuser_deletes(request)


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
        return _superuser_deletes(request)

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
        return _badge(obj.status, obj.get_status_display())

    @admin.display(description="Created (UTC)", ordering="created_at")
    def created(self, obj: Quarantine) -> str:
        return _utc(obj.created_at)

    @admin.display(description="Record")
    def record(self, obj: Quarantine) -> str:
        payload = obj.payload
        if obj.kind != Quarantine.Kind.READING or not isinstance(payload, dict):
            return _short(str(payload), 60)
        return _short(f"{payload.get('device')} · {payload.get('parameter')} · "
                      f"{payload.get('ts')} = {payload.get('value')}", 90)

    @admin.display(description="Reason")
    def reason_short(self, obj: Quarantine) -> str:
        return _short(obj.reason, 110)

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


def _counts_text(counts) -> str:
    """Run counts as words: nested stages become "meters: fetched 6, stored 6"."""
    if not isinstance(counts, dict):
        return "" if counts in (None, "", [], 0, False) else str(counts)
    parts = []
    for key, value in counts.items():
        if isinstance(value, dict):
            inner = _counts_text(value)
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
    search_help_text = "Exact kind (sync, delivery, …) or task id, or words of the target."
    ordering = ("-started_at",)
    sortable_by = ()

    class Media:
        css = ADMIN_CSS

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="Started (UTC)")
    def started(self, obj: Run) -> str:
        return _utc(obj.started_at)

    @admin.display(description="Status")
    def status_badge(self, obj: Run) -> str:
        return _badge(obj.status, obj.get_status_display())

    @admin.display(description="Duration")
    def duration(self, obj: Run) -> str:
        if obj.finished_at is None:
            return f"running {duration_text(timezone.now() - obj.started_at)}"
        return duration_text(obj.duration)

    @admin.display(description="Outcome")
    def outcome(self, obj: Run) -> str:
        """The error when there is one, else what the run counted."""
        if obj.error:
            return format_html('<span class="hub-alert-text">{}</span>', _short(obj.error, 140))
        return _counts_text(obj.counts) or "—"


# --- Delivery --------------------------------------------------------------------------


@admin.register(DeliveryLink)
class DeliveryLinkAdmin(admin.ModelAdmin):
    list_display = ("name", "platform", "deployment", "state_badge", "pending", "retry", "dead",
                    "oldest_due", "cursor", "last_success")
    list_filter = ("state", "platform", "deployment")
    list_select_related = ("deployment",)
    search_fields = ("name", "platform")
    readonly_fields = ("cursor", "broken_reason", "last_success_at", "created_at")
    actions = ("reactivate",)

    class Media:
        css = ADMIN_CSS

    def get_queryset(self, request: HttpRequest) -> QuerySet[DeliveryLink]:
        return selectors.links_with_backlog(super().get_queryset(request))

    @admin.display(description="State", ordering="state")
    def state_badge(self, obj: DeliveryLink) -> str:
        badge = _badge(obj.state, obj.get_state_display())
        if obj.broken_reason:
            return format_html('{}<div class="hub-quiet hub-reason" title="{}">{}</div>', badge,
                               obj.broken_reason, _short(obj.broken_reason, 90))
        return badge

    @admin.display(description="Last success (UTC)", ordering="last_success_at")
    def last_success(self, obj: DeliveryLink) -> str:
        return _utc(obj.last_success_at) if obj.last_success_at else "never"

    def _batches_link(self, obj: DeliveryLink, state: str, count: int) -> str:
        if not count:
            return "0"
        url = _changelist_url(OutboundBatch, link__id__exact=obj.pk, state__exact=state)
        css = "hub-alert" if state == OutboundBatch.State.DEAD else ""
        return format_html('<a class="{}" href="{}">{}</a>', css, url, count)

    @admin.display(description="Pending", ordering="pending")
    def pending(self, obj: DeliveryLink) -> str:
        return self._batches_link(obj, OutboundBatch.State.PENDING, obj.pending)

    @admin.display(description="Retry", ordering="retry")
    def retry(self, obj: DeliveryLink) -> str:
        return self._batches_link(obj, OutboundBatch.State.RETRY, obj.retry)

    @admin.display(description="Dead", ordering="dead")
    def dead(self, obj: DeliveryLink) -> str:
        return self._batches_link(obj, OutboundBatch.State.DEAD, obj.dead)

    @admin.display(description="Oldest due for", ordering="oldest_due_at")
    def oldest_due(self, obj: DeliveryLink) -> str:
        if obj.oldest_due_at is None:
            return "—"
        return duration_text(timezone.now() - obj.oldest_due_at)

    @admin.action(description="Re-activate link", permissions=["change"])
    def reactivate(self, request: HttpRequest, queryset: QuerySet[DeliveryLink]) -> None:
        from apps.core.services.outbox import link_reactivate

        links = [link for link in queryset if link.state != DeliveryLink.State.ACTIVE]
        for link in links:
            link_reactivate(link=link)
        if not links:
            self.message_user(request, "The selected links were already active.",
                              messages.INFO)
            return
        names = ", ".join(str(link) for link in links)
        self.message_user(request, f"Re-activated {names}.", messages.SUCCESS)
        with_dead = [link for link in links if link.dead]
        if with_dead:
            self.message_user(
                request,
                format_html(
                    'Their dead batches stay dead: <a href="{}">requeue them</a> with '
                    '"Retry dead letters".',
                    _changelist_url(OutboundBatch, state__exact=OutboundBatch.State.DEAD),
                ),
                messages.WARNING,
            )


class LinkPlatformFilter(admin.SimpleListFilter):
    """The platforms of the links, read from the small link table, not the batches."""

    title = "platform"
    parameter_name = "platform"

    def lookups(self, request: HttpRequest, model_admin) -> list[tuple[str, str]]:
        platforms = (
            DeliveryLink.objects.order_by("platform").values_list("platform", flat=True)
            .distinct()
        )
        return [(p, p) for p in platforms]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(link__platform=self.value()) if self.value() else queryset


@admin.register(OutboundBatch)
class OutboundBatchAdmin(HugeTableAdmin):
    list_display = ("id", "link", "position", "state_badge", "items", "attempts", "next_attempt",
                    "last_status", "error_short", "sent")
    list_filter = ("state", LinkPlatformFilter, "link__deployment")
    list_select_related = ("link",)
    search_fields = ("=idempotency_key", "=link__name")
    search_help_text = "Exact idempotency key or link name."
    ordering = ("-id",)
    sortable_by = ()
    actions = ("retry_dead_letters",)
    readonly_fields = ("link", "position", "idempotency_key", "seq_from", "seq_to", "payload",
                       "item_count", "state", "attempts", "next_attempt_at", "last_status",
                       "last_body", "last_error", "created_at", "sent_at")

    class Media:
        css = ADMIN_CSS

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return _superuser_deletes(request)

    @admin.display(description="State")
    def state_badge(self, obj: OutboundBatch) -> str:
        return _badge(obj.state, obj.get_state_display())

    @admin.display(description="Items")
    def items(self, obj: OutboundBatch) -> int:
        return obj.item_count

    @admin.display(description="Next attempt (UTC)")
    def next_attempt(self, obj: OutboundBatch) -> str:
        # Meaningless once a batch is settled.
        if obj.state in (OutboundBatch.State.SENT, OutboundBatch.State.DEAD):
            return "—"
        return _utc(obj.next_attempt_at)

    @admin.display(description="Sent (UTC)")
    def sent(self, obj: OutboundBatch) -> str:
        return _utc(obj.sent_at)

    @admin.display(description="Last error")
    def error_short(self, obj: OutboundBatch) -> str:
        return _short(obj.last_error, 100)

    @admin.action(description="Retry dead letters", permissions=["change"])
    def retry_dead_letters(self, request: HttpRequest, queryset: QuerySet[OutboundBatch]) -> None:
        from apps.core.services.outbox import batch_requeue

        batches = list(queryset.select_related("link"))
        requeued = batch_requeue(batches=batches)
        self.message_user(
            request,
            f"Requeued {requeued} dead batch{'es' if requeued != 1 else ''} "
            f"({len(batches) - requeued} selected were not dead).",
            messages.SUCCESS if requeued else messages.WARNING,
        )
        stuck = sorted({str(b.link) for b in batches if b.state == OutboundBatch.State.DEAD
                        and b.link.state != DeliveryLink.State.ACTIVE})
        if stuck:
            self.message_user(
                request,
                f"Not sent until re-activated: {', '.join(stuck)} "
                "(Delivery links → Re-activate link).",
                messages.WARNING,
            )
