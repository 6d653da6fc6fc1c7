"""Ops console for the DEXMA app: installations (tokens never shown) and datasources."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from apps.core.admin_site import link_accounts_html
from apps.core.models import OutboundBatch
from apps.dexma import selectors, services, tasks
from apps.dexma.models import Backfill, DexmaDatasource, Installation, SelectedDevice
from apps.dexma.schemas import Is3MappingError


def _reconcile(modeladmin: admin.ModelAdmin, request: HttpRequest,
               installations: Iterable[Installation]) -> None:
    for installation in installations:
        try:
            report = services.installation_reconcile(installation=installation)
        except services.DexmaError as exc:
            modeladmin.message_user(request, f"{installation.dep_id}: {exc}", messages.ERROR)
            continue
        level = messages.WARNING if report.failed or report.missing else messages.SUCCESS
        modeladmin.message_user(
            request,
            f"{installation.dep_id}: {report.pushed} pushed, {report.missing} missing on "
            f"the platform, {report.failed} failed. {' '.join(report.errors)}",
            level,
        )


@admin.register(Installation)
class InstallationAdmin(admin.ModelAdmin):
    list_display = ("dep_id", "deployment", "installed_at", "reinstalled_at", "last_sync_at",
                    "datasource_count", "last_error")
    search_fields = ("dep_id", "deployment__name", "deployment__slug")
    list_select_related = ("deployment",)
    # The token and its digest never appear; ops may only re-point the hub deployment.
    fields = ("dep_id", "deployment", "installed_at", "reinstalled_at", "last_sync_at",
              "last_error")
    readonly_fields = ("dep_id", "installed_at", "reinstalled_at", "last_sync_at", "last_error")
    actions = ("reconcile",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # installations come from the platform's handshake

    @admin.display(description="datasources")
    def datasource_count(self, obj: Installation) -> int:
        return obj.datasources.count()

    @admin.action(description="Reconcile with the platform")
    def reconcile(self, request: HttpRequest, queryset: QuerySet[Installation]) -> None:
        _reconcile(self, request, queryset)


class SelectedDeviceInline(admin.TabularInline):
    model = SelectedDevice
    extra = 0
    fields = ("device", "parameters")
    autocomplete_fields = ()
    raw_id_fields = ("device",)
    filter_horizontal = ("parameters",)


@admin.register(DexmaDatasource)
class DexmaDatasourceAdmin(admin.ModelAdmin):
    list_display = ("name", "deployment", "key", "platform_id", "platform_status", "enabled",
                    "consent_suspended", "last_sync_at", "last_delivery", "backlog",
                    "verification", "last_error")
    list_filter = ("platform_status", "enabled", "consent_suspended")
    search_fields = ("name", "key", "installation__dep_id")
    list_select_related = ("deployment", "link")
    readonly_fields = ("installation", "deployment", "platform_id", "key", "platform_status",
                       "consent_suspended", "link", "last_sync_at", "last_error", "verified_at",
                       "verification", "verification_details", "accounts", "created_at",
                       "updated_at")
    # The source token stays out of the form; only what ops may decide is editable.
    fields = ("name", "enabled", *readonly_fields)
    inlines = (SelectedDeviceInline,)
    actions = ("reconcile", "disable", "delete_on_platform", "deliver_now", "backfill_30_days",
               "verify")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # created through the embedded page, which registers them in DEXMA

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # "Delete on the platform" removes both sides; a local-only delete strands it

    @admin.display(description="Live readings")
    def accounts(self, obj: DexmaDatasource) -> str:
        return link_accounts_html(selectors.datasource_accounts(datasource=obj))

    @admin.display(description="last delivery")
    def last_delivery(self, obj: DexmaDatasource):
        return obj.link.last_success_at if obj.link else None

    @admin.display(description="open batches")
    def backlog(self, obj: DexmaDatasource) -> int:
        if not obj.link_id:
            return 0
        return obj.link.batches.filter(state__in=OutboundBatch.OPEN_STATES).count()

    @admin.action(description="Push now (send new readings to IS3)")
    def deliver_now(self, request: HttpRequest, queryset: QuerySet[DexmaDatasource]) -> None:
        for datasource in queryset.select_related("link"):
            result = services.datasource_deliver(datasource=datasource)
            self.message_user(request, f"{datasource.name}: {result.as_counts()}",
                              messages.WARNING if result.failed or result.dead or
                              result.skipped else messages.SUCCESS)

    @admin.action(description="Backfill the last 30 days (in the background)")
    def backfill_30_days(self, request: HttpRequest,
                         queryset: QuerySet[DexmaDatasource]) -> None:
        end = timezone.now()
        for datasource in queryset.select_related("link"):
            try:
                backfill = services.backfill_start(
                    datasource=datasource, date_from=end - dt.timedelta(days=30), date_to=end)
            except Is3MappingError as exc:
                self.message_user(request, f"{datasource.name}: {exc}", messages.ERROR)
                continue
            transaction.on_commit(lambda pk=backfill.pk: tasks.backfill_run.delay(pk))
            self.message_user(request, f"{datasource.name}: backfill {backfill.pk} started; "
                              "follow it under DEXMA > Backfills.", messages.SUCCESS)

    @admin.action(description="Verify: read a sample back through APIv3")
    def verify(self, request: HttpRequest, queryset: QuerySet[DexmaDatasource]) -> None:
        for datasource in queryset.select_related("link", "installation"):
            result = services.datasource_verify(datasource=datasource)
            self.message_user(request, f"{datasource.name}: {result.summary}",
                              messages.SUCCESS if result.matched == result.sampled
                              and not result.error else messages.WARNING)

    def save_model(self, request, obj, form, change) -> None:
        if change and {"name", "enabled"} & set(form.changed_data):
            try:
                services.datasource_update(datasource=DexmaDatasource.objects.get(pk=obj.pk),
                                           name=obj.name, enabled=obj.enabled)
            except services.DexmaError as exc:
                self.message_user(request, f"not saved: {exc}", messages.ERROR)
            return
        super().save_model(request, obj, form, change)

    @admin.action(description="Reconcile with the platform")
    def reconcile(self, request: HttpRequest, queryset: QuerySet[DexmaDatasource]) -> None:
        installations = {ds.installation for ds in queryset.select_related("installation")}
        _reconcile(self, request, installations)

    @admin.action(description="Disable (on the platform too)")
    def disable(self, request: HttpRequest, queryset: QuerySet[DexmaDatasource]) -> None:
        done = 0
        for datasource in queryset.select_related("installation", "deployment"):
            try:
                services.datasource_disable(datasource=datasource)
                done += 1
            except services.DexmaError as exc:
                self.message_user(request, f"{datasource.name}: {exc}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} datasource(s) disabled.", messages.SUCCESS)

    @admin.action(description="Delete on the platform (and here)")
    def delete_on_platform(self, request: HttpRequest,
                           queryset: QuerySet[DexmaDatasource]) -> None:
        done = 0
        for datasource in queryset.select_related("installation"):
            try:
                services.datasource_delete(datasource=datasource)
                done += 1
            except services.DexmaError as exc:
                self.message_user(request, f"{datasource.name}: {exc}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} datasource(s) deleted.", messages.SUCCESS)


@admin.register(Backfill)
class BackfillAdmin(admin.ModelAdmin):
    """History sends: progress comes from the outbox while they run."""

    list_display = ("id", "datasource", "date_from", "date_to", "state", "progress_shown",
                    "batches", "started_at", "finished_at", "error")
    list_filter = ("state",)
    list_select_related = ("datasource",)
    readonly_fields = ("datasource", "date_from", "date_to", "seq_snapshot", "state",
                       "planned_until", "batches", "values_planned", "values_sent",
                       "quarantined", "error", "started_at", "finished_at")
    actions = ("resume",)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # started from a datasource's action or `manage.py dexma_backfill`

    @admin.display(description="progress")
    def progress_shown(self, obj: Backfill) -> str:
        if obj.state == Backfill.State.SENDING:
            obj = services.backfill_refresh(backfill=obj)
        return obj.progress

    @admin.action(description="Resume (send what is left)")
    def resume(self, request: HttpRequest, queryset: QuerySet[Backfill]) -> None:
        for backfill in queryset:
            if backfill.state == Backfill.State.FAILED:
                Backfill.objects.filter(pk=backfill.pk).update(
                    state=Backfill.State.SENDING if backfill.batches else
                    Backfill.State.PLANNING, error="")
            transaction.on_commit(lambda pk=backfill.pk: tasks.backfill_run.delay(pk))
        self.message_user(request, f"{queryset.count()} backfill(s) resumed.", messages.SUCCESS)
