"""Credentials: stop every stream on rejected credentials, resume them once fixed."""

from __future__ import annotations

import logging

from django.core.mail import mail_admins
from django.utils import timezone

from apps.core.models import DeliveryLink
from apps.core.services import link_reactivate
from apps.wattics.models import WatticsAccount, WatticsStream
from apps.wattics.selectors import streams_of_account

logger = logging.getLogger("apps.wattics")


def ops_alert(*, subject: str, message: str) -> None:
    logger.error("%s: %s", subject, message)
    mail_admins(f"Wattics: {subject}", message, fail_silently=True)


def links_break(*, streams: list[WatticsStream], reason: str) -> int:
    """Stop streams without killing their batches: they wait, in order, for a resume."""
    ids = [s.link_id for s in streams]
    WatticsStream.objects.filter(pk__in=[s.pk for s in streams]).update(last_error=reason)
    return DeliveryLink.objects.filter(pk__in=ids).update(
        state=DeliveryLink.State.BROKEN, broken_reason=reason
    )


def account_reject(*, account: WatticsAccount, status: int, body: str) -> str:
    """Wattics refused these credentials: stop every stream that uses them, and alert."""
    streams = streams_of_account(account=account)
    meters = ", ".join(s.meter_id for s in streams) or "none"
    reason = (
        f"Wattics answered {status} to account '{account.name}' (user {account.username}): "
        f"{' '.join(body.split())[:200]}. Every stream on these credentials is stopped "
        f"({meters}). Fix the username/password (or ask Wattics to enable them), then use "
        "'Credentials fixed: resume streams' on the account."
    )
    WatticsAccount.objects.filter(pk=account.pk).update(
        state=WatticsAccount.State.REJECTED, rejected_reason=reason, rejected_at=timezone.now()
    )
    account.state, account.rejected_reason = WatticsAccount.State.REJECTED, reason
    links_break(streams=streams, reason=reason)
    ops_alert(subject=f"credentials '{account.name}' rejected ({status})", message=reason)
    return reason


def account_reactivate(*, account: WatticsAccount) -> int:
    """Credentials fixed: accept them again and resume the streams they stopped."""
    WatticsAccount.objects.filter(pk=account.pk).update(
        state=WatticsAccount.State.ACTIVE, rejected_reason="", rejected_at=None
    )
    account.state, account.rejected_reason = WatticsAccount.State.ACTIVE, ""
    resumed = 0
    for stream in streams_of_account(account=account):
        if stream.link.state == DeliveryLink.State.BROKEN:
            stream_resume(stream=stream)
            resumed += 1
    return resumed


def stream_stop(*, stream: WatticsStream, reason: str, alert: bool = True) -> None:
    links_break(streams=[stream], reason=reason)
    if alert:
        ops_alert(subject=f"stream {stream.meter_id} stopped", message=reason)


def stream_pause(*, stream: WatticsStream) -> None:
    DeliveryLink.objects.filter(pk=stream.link_id).update(state=DeliveryLink.State.PAUSED)


def stream_resume(*, stream: WatticsStream) -> None:
    """Send again; ask Wattics where the meter stands first (it may have moved meanwhile)."""
    link_reactivate(link=stream.link)
    WatticsStream.objects.filter(pk=stream.pk).update(needs_resync=True, last_error="")
