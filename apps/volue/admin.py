"""Volue in the ops console: customers with their enrollment, eligibility and compensation,
their meters (locations) and resources, the webhook, events
with their targets and curves, and the EnergyUsage reports with what is missing."""

from __future__ import annotations

import json

from django.contrib import admin, messages
from django.db import models
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.translation import gettext_lazy as _

from apps.core.admin import ReadOnlyInline
from apps.core.http import HubHTTPError
from apps.core.models import OutboundBatch
from apps.volue import services, tasks
from apps.volue.client import volue_client
from apps.volue.models import (
    EnergyReport,
    Event,
    EventTarget,
    Notification,
    VolueCustomer,
    VolueMeter,
    VolueResource,
    WebhookSubscription,
)

CHART_MEDIA = {"css": {"all": ["volue/admin.css"]}, "js": ["volue/event_chart.js"]}


def _pretty(value: object) -> str:
    return format_html("<pre class=\"volue-json\">{}</pre>",
                       json.dumps(value, indent=2, sort_keys=True, default=str))


class VolueMeterInline(admin.TabularInline):
    model = VolueMeter
    extra = 0
    verbose_name_plural = "meters (one Volue location each)"
    fields = ("device", "meter_point_id", "meter_number", "location_type", "remote_id",
              "eligible", "compensation", "compensation_problems", "registered_at", "removed_at")
    readonly_fields = ("remote_id", "eligible", "compensation", "compensation_problems",
                       "registered_at", "removed_at")
    raw_id_fields = ("device",)

    @admin.display(description="compensation to date")
    def compensation(self, obj: VolueMeter) -> str:
        return _compensation_text(obj)


def _compensation_text(meter: VolueMeter) -> str:
    if meter.compensation_active is None:
        return "—"
    text = f"{meter.compensation_active:.2f} {meter.compensation_currency}"
    if meter.compensation_blocked:
        text += f" (+{meter.compensation_blocked:.2f} blocked)"
    return text


class VolueResourceInline(admin.TabularInline):
    model = VolueResource
    extra = 0
    fields = ("kind", "resource_id", "resource_type", "metadata", "meter", "device",
              "is_active", "registered_at", "removed_at", "last_error")
    readonly_fields = ("registered_at", "removed_at", "last_error")
    raw_id_fields = ("device",)


@admin.register(VolueCustomer)
class VolueCustomerAdmin(admin.ModelAdmin):
    list_display = ("name", "deployment", "key", "remote_user_id", "enrolled", "eligible",
                    "compensation", "is_active", "last_synced_at", "has_error")
    list_filter = ("is_active", "enrolled", "eligible", "deployment")
    search_fields = ("name", "key", "remote_user_id", "deployment__slug")
    filter_horizontal = ("sites", "datasources")
    readonly_fields = ("remote_user_id", "enrolled", "enrollment_id", "enrolled_at", "eligible",
                       "eligibility_updated_at", "compensation", "compensation_period",
                       "status_checked_at", "status_error", "removed_at", "last_synced_at",
                       "last_error")
    inlines = (VolueMeterInline, VolueResourceInline)
    actions = ("sync_now", "enroll", "unenroll", "refresh_status")

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        # Deleting a registered customer here would leave its user and meters on Volue:
        # clear "is active" instead; once the sync has removed it there, it may be deleted.
        if isinstance(obj, VolueCustomer) and obj.removed_at is None:
            return False
        return super().has_delete_permission(request, obj)

    def get_actions(self, request: HttpRequest) -> dict:
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # one at a time, and only once removed
        return actions

    @admin.display(boolean=True, description="error")
    def has_error(self, obj: VolueCustomer) -> bool:
        return bool(obj.last_error)

    @admin.display(description="compensation to date")
    def compensation(self, obj: VolueCustomer) -> str:
        meters = [m for m in obj.meters.all() if m.compensation_active is not None]
        if not meters:
            return "—"
        by_currency: dict[str, float] = {}
        for meter in meters:
            by_currency[meter.compensation_currency] = (
                by_currency.get(meter.compensation_currency, 0.0) + meter.compensation_active)
        return ", ".join(f"{amount:.2f} {cur}" for cur, amount in sorted(by_currency.items()))

    def get_queryset(self, request: HttpRequest) -> QuerySet[VolueCustomer]:
        return super().get_queryset(request).prefetch_related("meters")

    def _each(self, request: HttpRequest, queryset: QuerySet[VolueCustomer], call, done: str):
        client = volue_client()
        for customer in queryset.select_related("deployment"):
            try:
                customer = call(customer=customer, client=client)
            except HubHTTPError as exc:
                self.message_user(request, f"{customer}: {exc}", messages.ERROR)
                continue
            if customer.status_error:
                self.message_user(request, f"{customer}: {customer.status_error}",
                                  messages.WARNING)
            else:
                self.message_user(request, f"{customer}: {done} (enrolled: "
                                  f"{customer.enrolled}, eligible: {customer.eligible})",
                                  messages.SUCCESS)

    @admin.action(description="Enroll in Volue (the user earns from reports)")
    def enroll(self, request: HttpRequest, queryset: QuerySet[VolueCustomer]) -> None:
        self._each(request, queryset, services.customer_enroll, "enrolled")

    @admin.action(description="Withdraw the Volue enrollment")
    def unenroll(self, request: HttpRequest, queryset: QuerySet[VolueCustomer]) -> None:
        self._each(request, queryset, services.customer_unenroll, "enrollment withdrawn")

    @admin.action(description="Refresh enrollment, eligibility and compensation")
    def refresh_status(self, request: HttpRequest, queryset: QuerySet[VolueCustomer]) -> None:
        self._each(request, queryset, services.customer_status_refresh, "refreshed")

    @admin.action(description="Register on Volue now")
    def sync_now(self, request: HttpRequest, queryset: QuerySet[VolueCustomer]) -> None:
        client = volue_client()
        for customer in queryset.select_related("deployment"):
            try:
                result = services.customer_sync(customer=customer, client=client)
            except HubHTTPError as exc:
                self.message_user(request, f"{customer}: {exc}", messages.ERROR)
                continue
            level = messages.WARNING if result.errors else messages.SUCCESS
            self.message_user(request, f"{customer}: {result.counts()}", level)


@admin.register(VolueResource)
class VolueResourceAdmin(admin.ModelAdmin):
    list_display = ("resource_id", "resource_type", "kind", "customer", "meter", "device",
                    "is_active", "registered_at")
    list_filter = ("kind", "resource_type", "is_active")
    search_fields = ("resource_id", "customer__name")
    raw_id_fields = ("device",)
    readonly_fields = ("registered_at", "removed_at", "last_error")


@admin.register(WebhookSubscription)
class WebhookSubscriptionAdmin(admin.ModelAdmin):
    # URLs without a scheme are taken as https (Django 6 default, set now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    list_display = ("name", "url", "remote_id", "is_active", "updated_at")
    fields = ("name", "url", "notification_types", "remote_id", "is_active", "created_at",
              "updated_at")
    readonly_fields = ("url", "notification_types", "remote_id", "created_at", "updated_at")
    actions = ("subscribe_now", "catch_up_now")

    @admin.action(description="Subscribe (or update) the webhook on Volue now")
    def subscribe_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        try:
            subscription = services.subscription_ensure(client=volue_client())
        except HubHTTPError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        self.message_user(request, f"Subscribed as {subscription.remote_id}")

    @admin.action(description="Catch up on events now (GET /events)")
    def catch_up_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        # The scheduled job itself, run now: its lock and run log, stored notifications
        # retried, customers' status refreshed and reports planned as on schedule.
        try:
            counts = tasks.events_catch_up()
        except HubHTTPError as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        if "skipped" in counts:
            self.message_user(request, "A catch-up is running already; its run appears in "
                              "the run log when it ends", messages.WARNING)
            return
        self.message_user(request, f"{counts['recorded']} new of {counts['seen']} events read"
                          + ("; reports are being planned" if counts["recorded"] else ""))


class EventTargetInline(ReadOnlyInline):
    model = EventTarget
    fields = ("location_id", "meter_point_id", "resource_id", "resolution", "matched_meter",
              "matched_resource", "limits")

    @admin.display(description="power limits (kW)")
    def limits(self, obj: EventTarget) -> str:
        values = [p.get("maxPowerInKiloWatts") for p in obj.points or []]
        return ", ".join(str(v) for v in values[:12]) + (" …" if len(values) > 12 else "")


def _price_series(event: Event) -> list[dict]:
    curve = event.payload.get("priceCurveDelta") or {}
    unit = f"{curve.get('currency', '')}/{curve.get('energyUnit', 'kWh')}"
    points = [[p.get("timestamp"), p.get("price")] for p in curve.get("points") or []]
    return [{"label": f"price ({unit})", "points": points}] if points else []


def _limit_series(target: EventTarget) -> list[dict]:
    label = target.resource_id or target.meter_point_id or target.location_id
    points = [[p.get("timestamp"), p.get("maxPowerInKiloWatts")] for p in target.points]
    return [{"label": f"{label} max kW", "points": points}] if points else []


def event_series(event: Event) -> list[dict]:
    """The curves an event carries, as chart series: prices, or power limits per target."""
    if event.payload_type == "PriceCurve":
        return _price_series(event)
    return [series for target in event.targets.all() for series in _limit_series(target)]


def chart_html(series: list[dict]) -> str:
    if not series:
        return "—"
    # Data only: static/volue/event_chart.js draws it (the CSP forbids inline scripts).
    return format_html('<div class="volue-chart" data-series="{}"></div>', json.dumps(series))


@admin.register(EventTarget)
class EventTargetAdmin(admin.ModelAdmin):
    """Price curves and power-limit requests per location and resource."""

    list_display = ("event", "payload_type", "location", "resource_id", "window_start",
                    "limits_summary")
    list_filter = ("event__payload_type", "matched_meter", "matched_resource")
    search_fields = ("meter_point_id", "location_id", "resource_id", "event__event_id")
    list_select_related = ("event", "matched_meter")
    readonly_fields = ("event", "location_id", "meter_point_id", "resource_id", "resolution",
                       "matched_meter", "matched_resource", "chart")
    exclude = ("points",)

    class Media:
        css = CHART_MEDIA["css"]
        js = CHART_MEDIA["js"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="type", ordering="event__payload_type")
    def payload_type(self, obj: EventTarget) -> str:
        return obj.event.payload_type

    @admin.display(description="location")
    def location(self, obj: EventTarget) -> str:
        matched = obj.matched_meter.meter_point_id if obj.matched_meter else ""
        return obj.meter_point_id or matched or obj.location_id

    @admin.display(description="from (UTC)", ordering="event__window_start")
    def window_start(self, obj: EventTarget) -> object:
        return obj.event.window_start

    @admin.display(description="limits / prices")
    def limits_summary(self, obj: EventTarget) -> str:
        if obj.points:
            values = [v for p in obj.points
                      if isinstance(v := p.get("maxPowerInKiloWatts"), int | float)]
            if values:
                return f"{len(values)} limits, {min(values)} to {max(values)} kW"
        prices = (obj.event.payload.get("priceCurveDelta") or {}).get("points") or []
        return f"{len(prices)} prices" if prices else "—"

    @admin.display(description="curve")
    def chart(self, obj: EventTarget) -> str:
        if obj.event.payload_type == "PriceCurve":
            return chart_html(_price_series(obj.event))
        return chart_html(_limit_series(obj))


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ("event_id", "payload_type", "created_at_remote", "source", "window_start",
                    "window_end", "target_count", "report_states")
    list_filter = ("payload_type", "source")
    search_fields = ("event_id", "targets__meter_point_id", "targets__resource_id")
    date_hierarchy = "created_at_remote"
    readonly_fields = ("event_id", "payload_type", "created_at_remote", "source", "window_start",
                       "window_end", "received_at", "processed_at", "process_error", "chart",
                       "payload_pretty")
    exclude = ("payload",)
    inlines = (EventTargetInline,)

    class Media:
        css = CHART_MEDIA["css"]
        js = CHART_MEDIA["js"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Event]:
        return super().get_queryset(request).prefetch_related("targets", "reports")

    @admin.display(description="targets")
    def target_count(self, obj: Event) -> int:
        return len(obj.targets.all())

    @admin.display(description="reports")
    def report_states(self, obj: Event) -> str:
        return ", ".join(r.get_state_display() for r in obj.reports.all()) or "—"

    @admin.display(description="curve")
    def chart(self, obj: Event) -> str:
        return chart_html(event_series(obj))

    @admin.display(description="payload")
    def payload_pretty(self, obj: Event) -> str:
        return _pretty(obj.payload)


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = ("notification_id", "notification_type", "event_id", "sent_at",
                    "received_at", "processed_at")
    list_filter = ("notification_type",)
    search_fields = ("notification_id", "event_id")
    readonly_fields = ("notification_id", "event_id", "notification_type", "sent_at",
                       "received_at", "processed_at", "body_pretty")
    exclude = ("body",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="body")
    def body_pretty(self, obj: Notification) -> str:
        return _pretty(obj.body)


WAITING, FLAGGED, SENDING, SENT, NOT_SENT = "waiting", "flagged", "sending", "sent", "not-sent"


class ReportStatusFilter(admin.SimpleListFilter):
    """What happened to a report, its state and its batch's read together: an ops person
    filters on "sent", not on the internal `queued`."""

    title = _("status")
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list:
        return [(WAITING, EnergyReport.State.WAITING.label),
                (FLAGGED, EnergyReport.State.FLAGGED.label),
                (SENDING, _("Being sent")), (SENT, _("Sent to Volue")),
                (NOT_SENT, _("Not sent (dead letter)"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        handed = queryset.filter(state=EnergyReport.State.QUEUED)
        batch = OutboundBatch.State
        return {
            WAITING: queryset.filter(state=EnergyReport.State.WAITING),
            FLAGGED: queryset.filter(state=EnergyReport.State.FLAGGED),
            SENDING: handed.exclude(batch__state__in=[batch.SENT, batch.DEAD]),
            SENT: handed.filter(batch__state=batch.SENT),
            NOT_SENT: handed.filter(batch__state=batch.DEAD),
        }.get(self.value(), queryset)


def report_status(report: EnergyReport) -> str:
    """The report's state where it is the truth, else what its outbox batch did."""
    if report.state != EnergyReport.State.QUEUED:
        return str(report.get_state_display())
    batch = report.batch
    if batch is None:
        return str(EnergyReport.State.QUEUED.label)
    state = OutboundBatch.State
    if batch.state == state.SENT:
        return _("Sent to Volue %(when)s") % {"when": _local(batch.sent_at)}
    if batch.state == state.DEAD:
        return _("Not sent (dead letter): %(reason)s") % {"reason": batch.last_error}
    if batch.state == state.RETRY:
        return _("Waiting to retry (attempt %(attempts)s failed), next try %(when)s") % {
            "attempts": batch.attempts, "when": _local(batch.next_attempt_at)}
    return str(_("Being sent"))


def _local(moment) -> str:
    return date_format(timezone.localtime(moment), "DATETIME_FORMAT") if moment else "—"


@admin.register(EnergyReport)
class EnergyReportAdmin(admin.ModelAdmin):
    list_display = ("event", "customer", "status", "delivery", "missing_short",
                    "superseded_short", "checked_at")
    list_filter = (ReportStatusFilter,)
    list_select_related = ("event", "customer", "batch")
    search_fields = ("event__event_id", "customer__name")
    readonly_fields = ("event", "customer", "status", "missing", "superseded", "delivery",
                       "checked_at", "created_at", "hours", "payload_pretty")
    exclude = ("payload", "batch", "posted_attempt", "state")
    actions = ("plan_now",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description=_("status"), ordering="state")
    def status(self, obj: EnergyReport) -> str:
        return report_status(obj)

    @admin.display(description=_("delivery"))
    def delivery(self, obj: EnergyReport) -> str:
        batch = obj.batch
        if batch is None:
            return "—"
        shown = _("%(state)s (attempts %(attempts)s, last HTTP %(status)s)") % {
            "state": batch.get_state_display(), "attempts": batch.attempts,
            "status": batch.last_status or "—"}
        # A dead report says why: a refusal, or a POST whose outcome is unknown.
        return f"{shown}: {batch.last_error}" if batch.state == batch.State.DEAD else shown

    @admin.display(description="Volue holds other kWh")
    def superseded_short(self, obj: EnergyReport) -> str:
        return obj.superseded[:120]

    @admin.display(description="missing")
    def missing_short(self, obj: EnergyReport) -> str:
        return obj.missing.splitlines()[0] if obj.missing else ""

    @admin.display(description="energy per hour (kWh)")
    def hours(self, obj: EnergyReport) -> str:
        rows = [
            (payload.get("meterPointId") or payload.get("resourceId"), point["timestamp"],
             point["kiloWattHours"])
            for payload in (obj.payload or {}).get("payloads", [])
            for point in payload.get("points", [])
        ]
        if not rows:
            return "—"
        return format_html(
            "<table><tr><th>meter point / resource</th><th>hour (UTC)</th><th>kWh</th></tr>"
            "{}</table>",
            format_html_join("", "<tr><td>{}</td><td>{}</td><td>{}</td></tr>", rows),
        )

    @admin.display(description="payload sent")
    def payload_pretty(self, obj: EnergyReport) -> str:
        return _pretty(obj.payload) if obj.payload else "—"

    @admin.action(description="Re-check data and queue the complete ones now")
    def plan_now(self, request: HttpRequest, queryset: QuerySet) -> None:
        result = services.reports_plan()
        self.message_user(request, f"queued {result.queued}, waiting {result.waiting}, "
                                   f"flagged {result.flagged}")
