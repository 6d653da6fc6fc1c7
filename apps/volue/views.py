"""The webhook the platform notifies: verify, store once, answer at once, process later."""

from __future__ import annotations

import logging

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from apps.volue import tasks
from apps.volue.client import (
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
    transaction.on_commit(lambda: tasks.notification_process.delay(stored.pk))
    return JsonResponse(
        {"status": "accepted", "notificationId": notification.notification_id}, status=202
    )
