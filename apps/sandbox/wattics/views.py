"""The simulated Wattics collector, with the real one's traps.

POST one packet (Basic auth, JSON on one line): 200 when taken, but a packet not later
than the meter's last one is silently discarded (still 200). GET ?stream=<meter id> gives
the last accepted packet. 401 with Wattics' plain-text body without valid credentials,
403 for another account's meter, 404 for an unknown meter, 400 for a malformed packet.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hmac
import json
import re
import time

from django.db import connection, transaction
from django.db.models import F, Q, Subquery
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from apps.sandbox.wattics.models import (
    CollectorAccount,
    CollectorFault,
    CollectorMeter,
    CollectorPacket,
    CollectorRequest,
    password_digest,
)

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}[+-]\d{2}:\d{2}$")
ELECTRICITY = {f"{p}_{n}" for p in ("aP", "rP", "apP", "v", "c", "pC") for n in (1, 2, 3)}
ELECTRICITY |= {"v_12", "v_13", "v_23"}


def _plain(status: int, text: str) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain")


def _unauthorized() -> HttpResponse:
    response = _plain(401, "Full authentication is required to access this resource")
    response["WWW-Authenticate"] = 'Basic realm="wattics"'
    return response


def _account(request: HttpRequest) -> CollectorAccount | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Basic "):
        return None
    try:
        username, _, password = base64.b64decode(header[6:]).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    account = CollectorAccount.objects.filter(username=username).first()
    if account is None or not hmac.compare_digest(account.password_sha256,
                                                  password_digest(password)):
        return None
    return account


_no_fault_until = [0.0]


def faults_changed(**kwargs) -> None:
    _no_fault_until[0] = 0.0


def _fault(meter_id: str) -> tuple[bool, CollectorFault | None]:
    """(record this POST?, the switch on for this meter, if any)."""
    # "No switch at all" is remembered for a second (and forgotten as soon as one is saved
    # in this process): one query less per packet.
    if _no_fault_until[0] > time.monotonic():
        return False, None
    fault = (CollectorFault.objects.filter(enabled=True)
             .filter(Q(meter_id="") | Q(meter_id=meter_id))
             .filter(Q(remaining__isnull=True) | Q(remaining__gt=0)).order_by("pk").first())
    if fault is None:
        if not CollectorFault.objects.exists():
            _no_fault_until[0] = time.monotonic() + 1.0
            return False, None
        return True, None
    changes = {"hits": F("hits") + 1}
    if fault.remaining is not None:
        changes["remaining"] = F("remaining") - 1
    CollectorFault.objects.filter(pk=fault.pk).update(**changes)
    return True, fault


_FAULT_TEXT = {500: "Internal Server Error", 503: "Service Unavailable",
               429: "Too Many Requests"}


def _validate(packet: object) -> str:
    if not isinstance(packet, dict):
        return "the packet must be a JSON object"
    if not isinstance(packet.get("id"), str) or not packet["id"]:
        return "missing id"
    if not isinstance(packet.get("tsISO8601"), str) or not TS.match(packet["tsISO8601"]):
        return "tsISO8601 must look like 2017-12-01T12:00:00.000+00:00"
    fields = set(packet) - {"id", "tsISO8601"}
    if not fields:
        return "no measurement in the packet"
    if fields != {"value"} and not fields <= ELECTRICITY:
        return f"unknown fields: {', '.join(sorted(fields - ELECTRICITY - {'value'}))}"
    for name in fields:
        value = packet[name]
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name} must be a number"
    return ""


@csrf_exempt
def measurements(request: HttpRequest) -> HttpResponse:
    account = _account(request)
    if account is None:
        return _unauthorized()
    if request.method == "GET":
        return _last_packet(request, account)
    if request.method != "POST":
        return _plain(405, "POST a packet or GET ?stream=<meter id>")
    if request.content_type != "application/json":
        return _plain(400, "Content-Type must be application/json")
    body = request.body.decode("utf-8", errors="replace")
    if "\n" in body.strip() or "\r" in body:
        return _plain(400, "The JSON packet must be sent in one line, no line breaks")
    try:
        packet = json.loads(body)
    except ValueError:
        return _plain(400, "Malformed JSON")
    problem = _validate(packet)
    if problem:
        return _plain(400, problem)
    kind = "single" if "value" in packet else "electricity"
    arrived = timezone.now()
    recording, fault = _fault(packet["id"])
    if fault is not None and fault.status:
        time.sleep(fault.delay_ms / 1000)
        answer = _plain(fault.status, _FAULT_TEXT.get(fault.status, "Error"))
        if fault.retry_after is not None and fault.status in (429, 503):
            answer["Retry-After"] = str(fault.retry_after)
    else:
        answer = _store(account, packet, kind)
        if fault is not None and fault.delay_ms:
            time.sleep(fault.delay_ms / 1000)
    if recording:
        CollectorRequest.objects.create(
            meter_id=packet["id"], arrived_at=arrived, status=answer.status_code,
            retry_after=int(answer["Retry-After"]) if answer.has_header("Retry-After") else None)
    return answer


def _store(account: CollectorAccount, packet: dict, kind: str) -> HttpResponse:
    ts = dt.datetime.fromisoformat(packet["tsISO8601"])
    meter_id = packet["id"]
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # A simulator: its packets need no fsync per commit (the hub's data does).
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        # One statement decides in the common case; the row lock it takes keeps two
        # packets of one meter in order.
        taken = CollectorMeter.objects.filter(
            Q(last_ts__isnull=True) | Q(last_ts__lt=ts), Q(kind="") | Q(kind=kind),
            meter_id=meter_id, account=account,
        ).update(last_ts=ts, last_packet=packet, accepted=F("accepted") + 1, kind=kind)
        if not taken:
            meter = CollectorMeter.objects.select_for_update().filter(meter_id=meter_id).first()
            if meter is None and account.auto_register:
                CollectorMeter.objects.get_or_create(
                    meter_id=meter_id, defaults={"account": account, "kind": kind})
                return _store(account, packet, kind)
            if meter is None:
                return _plain(404, f"Unknown meter {meter_id}")
            if meter.account_id != account.pk:
                return _plain(403, "This meter belongs to another account")
            if meter.kind and meter.kind != kind:
                return _plain(400, f"Meter {meter_id} takes {meter.kind} packets")
            # The trap: not chronological, silently dropped, still 200.
            CollectorMeter.objects.filter(pk=meter.pk).update(discarded=F("discarded") + 1)
        if account.log_packets:
            meter_pk = Subquery(CollectorMeter.objects.filter(meter_id=meter_id).values("pk"))
            CollectorPacket.objects.create(meter_id=meter_pk, ts=ts, packet=packet,
                                           discarded=not taken)
    return JsonResponse({})


def _last_packet(request: HttpRequest, account: CollectorAccount) -> HttpResponse:
    meter_id = request.GET.get("stream", "")
    meter = CollectorMeter.objects.filter(meter_id=meter_id).first()
    if meter is None:
        if account.auto_register and meter_id:
            return JsonResponse({})
        return _plain(404, f"Unknown meter {meter_id}")
    if meter.account_id != account.pk:
        return _plain(403, "This meter belongs to another account")
    return JsonResponse(meter.last_packet or {})
