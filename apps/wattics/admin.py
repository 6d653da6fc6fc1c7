"""Ops console for the Wattics push: credentials, streams, holes, late data, backfills."""

from __future__ import annotations

import datetime as dt

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import models, transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from apps.core.admin import ReadOnlyAdmin, badge_html
from apps.core.admin_site import link_accounts_html
from apps.core.forms import https_url_formfield
from apps.core.models import DeliveryLink, Parameter, Run
from apps.core.services import link_get_or_create
from apps.wattics import selectors
from apps.wattics.models import (
    WatticsAccount,
    WatticsChannel,
    WatticsLatePacket,
    WatticsPartner,
    WatticsPartnerMember,
    WatticsStream,
)
from apps.wattics.schemas import DEFAULT_ELECTRICITY_CHANNELS, local_timestamp
from apps.wattics.services import account_reactivate, stream_pause, stream_resume
from apps.wattics.services.streams import PLATFORM, stream_channels

BACKFILL_RUN = selectors.BACKFILL_RUN_KIND


def _interval(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    if seconds % 60 == 0:
        return f"{seconds // 60} min"
    return f"{seconds} s"


class MemberInline(admin.TabularInline):
    model = WatticsPartnerMember
    extra = 1
    autocomplete_fields = ()


@admin.register(WatticsPartner)
class WatticsPartnerAdmin(admin.ModelAdmin):
    list_display = ("name", "member_count")
    inlines = (MemberInline,)

    @admin.display(description="Deployments")
    def member_count(self, obj: WatticsPartner) -> int:
        return obj.members.count()


class AccountForm(forms.ModelForm):
    password = forms.CharField(
        widget=forms.PasswordInput(render_value=False), required=False,
        help_text="Stored encrypted. Leave blank to keep the current password.",
    )

    api_url = forms.URLField(
        assume_scheme="https", required=False, max_length=500,
        help_text="Blank: settings.WATTICS_API_URL. Wattics accepts HTTPS only.",
    )

    class Meta:
        formfield_callback = https_url_formfield
        model = WatticsAccount
        fields = ("name", "username", "password", "api_url", "partner", "deployment", "site",
                  "device")

    def clean_password(self) -> str:
        password = self.cleaned_data.get("password", "")
        if not password and not self.instance.pk:
            raise ValidationError("a new account needs the password Wattics agreed")
        return password or self.instance.password


@admin.register(WatticsAccount)
class WatticsAccountAdmin(admin.ModelAdmin):
    # URLs without a scheme are taken as https (Django 6 default, set now).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}
    form = AccountForm
    list_display = ("name", "level", "scope", "username", "state_badge", "stream_count")
    list_filter = ("state",)
    search_fields = ("name", "username")
    readonly_fields = ("state", "rejected_reason", "rejected_at")
    actions = ("resume_streams",)

    @admin.display(description="Applies to")
    def scope(self, obj: WatticsAccount) -> str:
        return str(obj.device or obj.site or obj.deployment or obj.partner)

    @admin.display(description="State")
    def state_badge(self, obj: WatticsAccount) -> str:
        badge = badge_html("broken" if obj.state == obj.State.REJECTED else "active",
                       obj.get_state_display())
        if obj.rejected_reason:
            return format_html('{}<div class="hub-quiet">{}</div>', badge,
                               obj.rejected_reason[:160])
        return badge

    @admin.display(description="Streams using it")
    def stream_count(self, obj: WatticsAccount) -> int:
        return len(selectors.streams_of_account(account=obj))

    @admin.action(description="Credentials fixed: resume streams", permissions=["change"])
    def resume_streams(self, request: HttpRequest, queryset: QuerySet[WatticsAccount]) -> None:
        resumed = sum(account_reactivate(account=a) for a in queryset)
        self.message_user(request, f"Accounts accepted again; {resumed} stream(s) resumed.",
                          messages.SUCCESS)


class ChannelInline(admin.TabularInline):
    model = WatticsChannel
    extra = 0
    fields = ("field", "parameter", "device", "source_unit")
    raw_id_fields = ("device",)


class StreamForm(forms.ModelForm):
    class Meta:
        model = WatticsStream
        fields = ("deployment", "device", "meter_id", "kind", "interval_seconds", "timezone",
                  "start_at")

    def clean(self) -> dict:
        data = super().clean()
        device, deployment = data.get("device"), data.get("deployment")
        if device and deployment and device.deployment_id != deployment.pk:
            raise ValidationError({"device": "the device belongs to another deployment"})
        return data


@admin.register(WatticsStream)
class WatticsStreamAdmin(admin.ModelAdmin):
    form = StreamForm
    list_display = ("meter_id", "device", "state_badge", "cadence", "last_accepted", "sent",
                    "late", "refused", "backlog_text")
    list_filter = ("kind", "link__state", "deployment")
    list_select_related = ("device", "link", "device__site", "device__datasource",
                           "deployment")
    search_fields = ("meter_id", "device__external_id", "device__name")
    raw_id_fields = ("device",)
    inlines = (ChannelInline,)
    actions = ("push_now", "pause", "resume")
    readonly_fields = ("account_used", "delivery", "progress", "accounts", "health")
    fieldsets = (
        (None, {"fields": ("deployment", "device", "meter_id", "kind", "interval_seconds",
                           "timezone", "start_at")}),
        ("Delivery", {"fields": ("account_used", "delivery", "progress", "accounts")}),
        ("Cadence and holes (last 7 days)", {"fields": ("health",)}),
    )
    change_list_template = "wattics/stream_changelist.html"

    class Media:
        css = {"all": ["core/admin.css", "wattics/admin.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[WatticsStream]:
        return selectors.streams_with_backlog(super().get_queryset(request))

    def get_fieldsets(self, request: HttpRequest, obj=None):
        return self.fieldsets if obj else self.fieldsets[:1]

    def save_model(self, request, obj: WatticsStream, form, change: bool) -> None:
        if not change:
            obj.link = link_get_or_create(platform=PLATFORM, name=f"wattics {obj.meter_id}",
                                          deployment=obj.deployment)
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        stream = form.instance
        if (stream.kind == WatticsStream.Kind.ELECTRICITY
                and not stream.channels.exists()):
            parameters = {p.key: p for p in Parameter.objects.filter(
                key__in=DEFAULT_ELECTRICITY_CHANNELS.values())}
            WatticsChannel.objects.bulk_create(
                WatticsChannel(stream=stream, field=f, parameter=parameters[k])
                for f, k in DEFAULT_ELECTRICITY_CHANNELS.items())
            self.message_user(request, "No channels given: totals mapped on phase 1 "
                                       "(aP_1, rP_1, apP_1, v_1, c_1, pC_1).", messages.INFO)
        try:
            stream_channels(stream=stream)
        except ValidationError as exc:
            self.message_user(request, "Channels need fixing before this stream can send: "
                              + "; ".join(exc.messages), messages.ERROR)

    # --- columns -----------------------------------------------------------------------

    @admin.display(description="State", ordering="link__state")
    def state_badge(self, obj: WatticsStream) -> str:
        badge = badge_html(obj.link.state, obj.link.get_state_display())
        if obj.link.broken_reason:
            return format_html('{}<div class="hub-quiet hub-reason" title="{}">{}</div>',
                               badge, obj.link.broken_reason, obj.link.broken_reason[:90])
        return badge

    @admin.display(description="Last accepted (local)", ordering="last_accepted_ts")
    def last_accepted(self, obj: WatticsStream) -> str:
        if obj.last_accepted_ts is None:
            return "never"
        return local_timestamp(obj.last_accepted_ts, obj.zone_name)

    @admin.display(description="Sent", ordering="sent_count")
    def sent(self, obj: WatticsStream) -> int:
        return obj.sent_count

    @admin.display(description="Refused (400)", ordering="refused_count")
    def refused(self, obj: WatticsStream) -> int:
        return obj.refused_count

    @admin.display(description="Late", ordering="late_count")
    def late(self, obj: WatticsStream) -> str:
        if not obj.late_count:
            return "0"
        url = reverse("admin:wattics_watticslatepacket_changelist") + f"?stream__id__exact={obj.pk}"
        return format_html('<a class="hub-alert" href="{}">{}</a>', url, obj.late_count)

    @admin.display(description="Backlog")
    def backlog_text(self, obj: WatticsStream) -> str:
        return str(obj.backlog or 0)

    @admin.display(description="Cadence")
    def cadence(self, obj: WatticsStream) -> str:
        registered = _interval(obj.interval_seconds)
        observed = obj.observed_interval_seconds
        if observed and observed > obj.interval_seconds:
            return format_html(
                '<span class="hub-alert" title="Wattics expects a packet every {}; data comes '
                'every {}: you will not see data. Change the transmission frequency in the '
                'Wattics admin, or this stream\'s interval.">cadence mismatch: data every {}, '
                'registered {}</span>', registered, _interval(observed), _interval(observed),
                registered)
        return f"registered {registered}" + (f", data every {_interval(observed)}"
                                              if observed else "")

    # --- change page -------------------------------------------------------------------

    @admin.display(description="Credentials")
    def account_used(self, obj: WatticsStream) -> str:
        account = selectors.account_for_stream(stream=obj)
        if account is None:
            return format_html('<span class="hub-alert">{}</span>',
                               "no account covers this meter: add one for its device, site, "
                               "deployment or partner group")
        url = reverse("admin:wattics_watticsaccount_change", args=[account.pk])
        return format_html('<a href="{}">{}</a> — {} level, user {}, {}', url, account.name,
                           account.level, account.username, account.get_state_display())

    @admin.display(description="Delivery")
    def delivery(self, obj: WatticsStream) -> str:
        zone = obj.zone_name

        def when(ts: dt.datetime | None) -> str:
            return local_timestamp(ts, zone) if ts else "—"

        rows = [
            ("Link", f"{obj.link.get_state_display()} {obj.link.broken_reason}".strip()),
            ("Local time zone", zone),
            ("Last accepted by Wattics", when(obj.last_accepted_ts)),
            ("Done through (accepted or refused)", when(obj.sent_through_ts)),
            ("Planned through", when(obj.planned_ts)),
            ("Last asked Wattics (GET)", when(obj.synced_at)),
            ("Packets sent", obj.sent_count),
            ("Refused with 400 (quarantined)", obj.refused_count),
            ("Late readings (undeliverable)", obj.late_count),
            ("Already at Wattics when the stream started", obj.held_count),
            ("Last error", obj.last_error or "—"),
        ]
        return format_html('<table class="wattics-facts">{}</table>', format_html_join(
            "", "<tr><th>{}</th><td>{}</td></tr>", rows))

    @admin.display(description="Readings")
    def accounts(self, obj: WatticsStream) -> str:
        return link_accounts_html(selectors.stream_accounts(stream=obj))

    @admin.display(description="Backlog")
    def progress(self, obj: WatticsStream) -> str:
        done, backlog = obj.sent_count + obj.refused_count, obj.backlog or 0
        total = done + backlog
        return format_html('<progress max="{}" value="{}"></progress> {} of {} packets sent, '
                           '{} waiting', total or 1, done, done, total, backlog)

    @admin.display(description="Health")
    def health(self, obj: WatticsStream) -> str:
        cadence = selectors.stream_cadence(stream=obj)
        zone = obj.zone_name
        parts = []
        if cadence.mismatch:
            parts.append(format_html(
                '<p class="hub-alert">Cadence mismatch: Wattics expects a packet every {}, '
                'the data comes every {}. You will not see data on Wattics: change the '
                'datapoint\'s transmission frequency in the Wattics admin (and this '
                'stream\'s registered interval).</p>', _interval(cadence.registered_seconds),
                _interval(cadence.observed_seconds)))
        else:
            parts.append(format_html('<p>Registered every {}; data every {} ({} packets).</p>',
                                     _interval(cadence.registered_seconds),
                                     _interval(cadence.observed_seconds), cadence.packets))
        if cadence.holes:
            parts.append(format_html('<p>{} missing interval(s) in {} hole(s):</p>',
                                     cadence.missing_intervals, len(cadence.holes)))
            parts.append(format_html('<table class="wattics-holes"><tr><th>After</th>'
                                     '<th>Next packet</th><th>Missing</th></tr>{}</table>',
                                     format_html_join("", "<tr><td>{}</td><td>{}</td>"
                                                      "<td>{}</td></tr>",
                                                      ((local_timestamp(h.after, zone),
                                                        local_timestamp(h.before, zone),
                                                        h.missing)
                                                       for h in cadence.holes[-50:]))))
        else:
            parts.append(format_html("<p>{}</p>", "No missing intervals."))
        return format_html_join("", "{}", ((p,) for p in parts))

    # --- actions -----------------------------------------------------------------------

    @admin.action(description="Push now", permissions=["change"])
    def push_now(self, request: HttpRequest, queryset: QuerySet[WatticsStream]) -> None:
        from apps.wattics.tasks import stream_push

        ids = list(queryset.values_list("pk", flat=True))
        transaction.on_commit(lambda: [stream_push.delay(i) for i in ids])
        self.message_user(request, f"Push queued for {len(ids)} stream(s).", messages.SUCCESS)

    @admin.action(description="Pause", permissions=["change"])
    def pause(self, request: HttpRequest, queryset: QuerySet[WatticsStream]) -> None:
        for stream in queryset:
            stream_pause(stream=stream)
        self.message_user(request, "Paused; batches wait in order.", messages.SUCCESS)

    @admin.action(description="Resume (asks Wattics for its last packet first)",
                  permissions=["change"])
    def resume(self, request: HttpRequest, queryset: QuerySet[WatticsStream]) -> None:
        for stream in queryset.select_related("link"):
            stream_resume(stream=stream)
        self.message_user(request, "Resumed.", messages.SUCCESS)

    def changelist_view(self, request: HttpRequest, extra_context: dict | None = None):
        backfills = []
        recent = timezone.now() - dt.timedelta(hours=6)
        for run in Run.objects.filter(kind=BACKFILL_RUN, started_at__gte=recent)[:5]:
            counts = run.counts if isinstance(run.counts, dict) else {}
            backfills.append({"run": run, "total": counts.get("packets_total", 0),
                              "done": counts.get("packets_done", 0),
                              "percent": counts.get("percent", 0)})
        extra = {"backfills": backfills,
                 "broken": DeliveryLink.objects.filter(platform=PLATFORM,
                                                       state=DeliveryLink.State.BROKEN).count()}
        return super().changelist_view(request, extra_context={**extra, **(extra_context or {})})


@admin.register(WatticsLatePacket)
class WatticsLatePacketAdmin(ReadOnlyAdmin):
    list_display = ("stream", "ts", "readings", "reason", "created_at")
    list_filter = ("stream",)
    list_select_related = ("stream",)
    show_full_result_count = False
