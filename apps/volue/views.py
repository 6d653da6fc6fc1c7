"""The webhook the platform notifies: verify, store once, answer at once, process later."""

from __future__ import annotations

import logging

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from kombu.exceptions import OperationalError as BrokerUnavailable

from apps.volue import tasks
from apps.volue.schemas import (
    SIGNATURE_HEADER,
    MalformedPayload,
    notification_parse,
    signature_valid,
)
from apps.volue.selectors import active_secrets
from apps.volue.services import notification_store

logger = logging.getLogger(__name__)


@csrf_exempt  # the platform signs its notifications; it has no CSRF token
@require_POST
def webhook(request: HttpRequest) -> JsonResponse:
    body = request.body  # the raw bytes: the signature covers exactly these
    signature = request.headers.get(SIGNATURE_HEADER, "")
    if not signature or not signature_valid(body, signature, active_secrets()):
        logger.warning("volue webhook: %s signature", "bad" if signature else "missing")
        return JsonResponse({"error": f"missing or invalid {SIGNATURE_HEADER}"}, status=401)
    try:
        notification = notification_parse(body)
    except MalformedPayload as exc:
        return JsonResponse({"error": f"malformed notification: {exc}"}, status=400)
    stored = notification_store(notification=notification)
    if stored is None:
        # A replay (or the platform's retry of a delivery we did get): already stored.
        return JsonResponse({"status": "duplicate",
                             "notificationId": notification.notification_id})
    transaction.on_commit(lambda: _process_soon(stored.pk))
    return JsonResponse(
        {"status": "accepted", "notificationId": notification.notification_id}, status=202
    )


def _process_soon(notification_id: int) -> None:
    """Hand the stored notification to a worker. With the broker down it stays stored, and
    the next events catch-up processes it: the platform still gets its 202."""
    try:
        tasks.notification_process.delay(notification_id)
    except BrokerUnavailable as exc:
        logger.warning("volue webhook: notification %s stored, left for the catch-up (the "
                       "broker is unavailable: %s)", notification_id, exc)
