"""Delivery: the platform links and their outbound batches."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html

from apps.core import selectors
from apps.core.admin.toolkit import (
    ADMIN_CSS,
    HugeTableAdmin,
    badge_html,
    changelist_url,
    short,
    superuser_deletes,
    utc,
)
from apps.core.admin_site import duration_text
from apps.core.models import (
    DeliveryLink,
    OutboundBatch,
)


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
        badge = badge_html(obj.state, obj.get_state_display())
        if obj.broken_reason:
            return format_html('{}<div class="hub-quiet hub-reason" title="{}">{}</div>', badge,
                               obj.broken_reason, short(obj.broken_reason, 90))
        return badge

    @admin.display(description="Last success (UTC)", ordering="last_success_at")
    def last_success(self, obj: DeliveryLink) -> str:
        return utc(obj.last_success_at) if obj.last_success_at else "never"

    def _batches_link(self, obj: DeliveryLink, state: str, count: int) -> str:
        if not count:
            return "0"
        url = changelist_url(OutboundBatch, link__id__exact=obj.pk, state__exact=state)
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
                    changelist_url(OutboundBatch, state__exact=OutboundBatch.State.DEAD),
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
        return superuser_deletes(request)

    @admin.display(description="State")
    def state_badge(self, obj: OutboundBatch) -> str:
        return badge_html(obj.state, obj.get_state_display())

    @admin.display(description="Items")
    def items(self, obj: OutboundBatch) -> int:
        return obj.item_count

    @admin.display(description="Next attempt (UTC)")
    def next_attempt(self, obj: OutboundBatch) -> str:
        # Meaningless once a batch is settled.
        if obj.state in (OutboundBatch.State.SENT, OutboundBatch.State.DEAD):
            return "—"
        return utc(obj.next_attempt_at)

    @admin.display(description="Sent (UTC)")
    def sent(self, obj: OutboundBatch) -> str:
        return utc(obj.sent_at)

    @admin.display(description="Last error")
    def error_short(self, obj: OutboundBatch) -> str:
        return short(obj.last_error, 100)

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
