"""Sending: resume from Wattics' last packet, one packet per POST, each code treated.

Per the seed's error table: 200 accepted; 400 the packet is quarantined with the answer and
the stream goes on; 401/403 stop every stream on those credentials; 404 stops the stream;
500/503 and connection failures are retried with backoff and the stream's later packets
wait. A POST that got no answer or a 5xx may have arrived: the last-packet GET decides
before it is sent again, so nothing is skipped and nothing is sent twice.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from django.conf import settings
from django.db import connections, transaction
from django.db.models import F, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from apps.core.http import PermanentError, TransientError
from apps.core.models import DeliveryLink, OutboundBatch, Quarantine
from apps.core.services import (
    Outcome,
    Refused,
    outbox_dispatch,
    quarantine_add,
    quarantine_payload,
    run_logged,
)
from apps.wattics.client import InsecureURL, PostResult, WatticsClient
from apps.wattics.models import WatticsAccount, WatticsStream
from apps.wattics.schemas import parse_timestamp
from apps.wattics.selectors import PUSH_RUN_KIND, account_for_stream
from apps.wattics.services.accounts import account_reject, stream_stop
from apps.wattics.services.streams import PlanResult, stream_plan

logger = logging.getLogger("apps.wattics")
Progress = Callable[[int, int], None]  # (stream id, packets handled: sent, refused, skipped)


@dataclass(slots=True)
class PushResult:
    planned: PlanResult = field(default_factory=PlanResult)
    sent: int = 0
    refused: int = 0
    skipped: int = 0
    batches: int = 0
    error: str = ""
    # Stopped at the deadline with batches perhaps left to send: run again.
    more: bool = False

    def as_counts(self) -> dict:
        return {"packets_planned": self.planned.packets, "late": self.planned.late_readings,
                "sent": self.sent, "refused_400": self.refused, "skipped": self.skipped,
                "batches": self.batches}


def _advance(stream: WatticsStream, ts: dt.datetime | None, *, accepted: bool, sent: int = 0,
             refused: int = 0, **extra: object) -> None:
    """Record progress; timestamps only ever move forward, whoever writes last."""
    changes: dict = dict(extra)
    if ts is not None:
        changes["sent_through_ts"] = Greatest(Coalesce(F("sent_through_ts"), Value(ts)), Value(ts))
        if accepted:
            changes["last_accepted_ts"] = Greatest(
                Coalesce(F("last_accepted_ts"), Value(ts)), Value(ts)
            )
    if sent:
        changes["sent_count"] = F("sent_count") + sent
        changes["last_sent_at"] = timezone.now()
    if refused:
        changes["refused_count"] = F("refused_count") + refused
    if changes:
        WatticsStream.objects.filter(pk=stream.pk).update(**changes)


def _client_for(account: WatticsAccount) -> WatticsClient:
    return WatticsClient(url=account.api_url or settings.WATTICS_API_URL,
                         username=account.username, password=account.password)


class StreamSender:
    """Sends one stream's batches; `outbox_dispatch` calls it once per claimed batch."""

    def __init__(self, *, stream: WatticsStream, account: WatticsAccount,
                 client: WatticsClient, progress: Progress | None = None) -> None:
        self.stream, self.account, self.client = stream, account, client
        self.progress = progress
        self.result = PushResult()
        self.fresh = True

    # --- what Wattics answered ---------------------------------------------------------

    def refused(self, status: int, body: str, *, during: str) -> Outcome:
        """401/403 stop every stream on the account; 404 and the like stop this one."""
        if status in (401, 403):
            reason = account_reject(account=self.account, status=status, body=body)
        else:
            what = ("Wattics does not know this meter id (404): register the Data Stream ID "
                    "with Wattics or correct the stream's meter id"
                    if status == 404 else
                    f"Wattics answered {status}, which its API does not document for {during}")
            reason = (f"stream {self.stream.meter_id} stopped: {what}. Answer: "
                      f"{' '.join(body.split())[:200]}. Resume the stream once fixed.")
            stream_stop(stream=self.stream, reason=reason)
        # Not `permanent`: the batch itself is fine and keeps its place; the stopped link
        # holds it until ops resume, so nothing has to be requeued.
        return Outcome(ok=False, status=status, body=body, error=reason)

    def sync(self) -> Outcome | None:
        """Ask Wattics for the meter's last packet and continue right after it."""
        try:
            _, ts = self.client.last_packet(self.stream.meter_id)
        except PermanentError as exc:
            return self.refused(exc.status_code or 0, exc.body, during="the last-packet GET")
        except TransientError as exc:
            return Outcome(ok=False, status=exc.status_code, body=exc.body,
                           error=f"last-packet GET failed, will retry: {exc}",
                           retry_after=exc.retry_after)
        _advance(self.stream, ts, accepted=True, synced_at=timezone.now(), needs_resync=False)
        self.stream.refresh_from_db(fields=["last_accepted_ts", "sent_through_ts",
                                            "needs_resync", "synced_at"])
        return None

    def post(self, packet: dict, ts: dt.datetime) -> PostResult | Outcome:
        """POST until answered; a POST that may have arrived is repeated only once the
        last-packet GET said Wattics does not hold it (the client's `retry_policy`)."""
        result = self.client.post_packet(packet)
        while result.may_have_arrived:
            WatticsStream.objects.filter(pk=self.stream.pk).update(needs_resync=True)
            failed = self.sync()
            if failed is not None:
                return failed
            if self.stream.last_accepted_ts and self.stream.last_accepted_ts >= ts:
                return PostResult(status=200, body="confirmed by the last-packet GET")
            result = self.client.post_packet(packet, after=result.failure)
        if result.failure is None or isinstance(result.failure, PermanentError):
            return result
        tries = result.failure.attempts
        return Outcome(ok=False, status=result.status, body=result.body,
                       retry_after=result.retry_after,
                       error=f"packet {packet['tsISO8601']} not accepted after {tries} "
                             f"tries ({result.error or result.status}); "
                             "later packets of this stream wait")

    def quarantine(self, packet: dict, ts: dt.datetime, result: PostResult) -> None:
        with transaction.atomic():
            quarantine_add(
                source=Quarantine.source_for("wattics", "stream", self.stream.meter_id),
                deployment_id=self.stream.deployment_id, kind=Quarantine.Kind.RECORD,
                entries=[Refused(
                    f"Wattics refused the packet with 400: {result.body[:500]}. The stream "
                    "went on; once later packets are accepted this one can never be "
                    "re-sent (Wattics discards out-of-order packets): fix the stream's "
                    "mapping for future packets and discard this entry.",
                    quarantine_payload(raw=packet, context={"status": result.status,
                                                            "answer": result.body}))])
            _advance(self.stream, ts, accepted=False, refused=1)

    # --- one batch -----------------------------------------------------------------------

    def __call__(self, batch: OutboundBatch) -> Outcome:
        stream = self.stream
        stream.refresh_from_db(fields=["last_accepted_ts", "sent_through_ts", "needs_resync"])
        dead = (OutboundBatch.objects.filter(link_id=batch.link_id, position__lt=batch.position,
                                             state=OutboundBatch.State.DEAD)
                .order_by("position").first())
        if dead is not None:
            reason = (f"stream {stream.meter_id} stopped: batch #{dead.position} gave up "
                      f"({dead.last_error[:200]}). Wattics discards packets sent out of order, "
                      "so nothing after it may go first: requeue it, then resume the stream.")
            stream_stop(stream=stream, reason=reason)
            return Outcome(ok=False, error=reason)
        if self.account.state != WatticsAccount.State.ACTIVE:
            reason = self.account.rejected_reason or "the stream's Wattics account is rejected"
            stream_stop(stream=stream, reason=reason, alert=False)
            return Outcome(ok=False, error=reason)
        # Each run starts from Wattics' own word (ops may have pushed elsewhere, a worker
        # may have died mid-batch); so does a retried batch and any unanswered POST.
        if self.fresh or stream.needs_resync or batch.attempts > 1:
            self.fresh = False
            failed = self.sync()
            if failed is not None:
                return failed
        sent = handled = 0
        through: dt.datetime | None = None
        try:
            for packet in batch.payload["packets"]:
                ts = parse_timestamp(packet["tsISO8601"])
                if stream.sent_through_ts is not None and ts <= stream.sent_through_ts:
                    self.result.skipped += 1
                    handled += 1
                    continue
                answer = self.post(packet, ts)
                if isinstance(answer, Outcome):
                    return answer
                if 200 <= answer.status < 300:
                    sent += 1
                    through = ts
                elif answer.status == 400:
                    _advance(stream, through, accepted=True, sent=sent)
                    self.result.sent += sent
                    sent, through = 0, None
                    self.quarantine(packet, ts, answer)
                    self.result.refused += 1
                else:
                    return self.refused(answer.status, answer.body, during="a packet POST")
                stream.sent_through_ts = ts
                handled += 1
        finally:
            _advance(stream, through, accepted=True, sent=sent)
            self.result.sent += sent
            if self.progress is not None:
                self.progress(stream.pk, handled)
        self.result.batches += 1
        return Outcome(ok=True, status=200, body=f"{len(batch.payload['packets'])} packets done")


def stream_sync(*, stream: WatticsStream, client: WatticsClient,
                account: WatticsAccount) -> Outcome | None:
    return StreamSender(stream=stream, account=account, client=client).sync()


def stream_push(
    *,
    stream: WatticsStream,
    plan: bool = True,
    deadline: float | None = None,
    progress: Progress | None = None,
) -> PushResult:
    """Resume from Wattics, plan new readings, send due batches until done or `deadline`."""
    stream = WatticsStream.objects.select_related(
        "link", "device__site", "device__datasource", "deployment").get(pk=stream.pk)
    if stream.link.state != DeliveryLink.State.ACTIVE:
        return PushResult(error=f"link is {stream.link.state}: {stream.link.broken_reason}")
    account = account_for_stream(stream=stream)
    if account is None:
        reason = (f"no Wattics credentials cover meter {stream.meter_id}: add an account for "
                  "its device, site, deployment or partner group, then resume the stream")
        stream_stop(stream=stream, reason=reason)
        return PushResult(error=reason)
    try:
        client = _client_for(account)
    except InsecureURL as exc:
        stream_stop(stream=stream, reason=str(exc))
        return PushResult(error=str(exc))
    sender = StreamSender(stream=stream, account=account, client=client, progress=progress)
    try:
        # A stream's first start: what Wattics already holds makes older readings late.
        if stream.synced_at is None and account.state == WatticsAccount.State.ACTIVE:
            failed = sender.sync()
            if failed is not None:
                sender.result.error = failed.error
                return sender.result
            sender.fresh = False
        if plan:
            sender.result.planned = stream_plan(stream=stream)
        while True:
            if deadline is not None and time.monotonic() >= deadline:
                sender.result.more = True
                break
            done = outbox_dispatch(send=sender, link=stream.link, limit=1)
            if done.failed or done.dead:
                batch = stream.link.batches.exclude(last_error="").order_by("-position").first()
                sender.result.error = batch.last_error if batch else "a batch failed"
                break
            if not done.sent:
                break
    finally:
        client.close()
    return sender.result


def stream_push_logged(*, stream: WatticsStream, plan: bool = True,
                       deadline: float | None = None,
                       progress: Progress | None = None) -> PushResult:
    """`stream_push` with a run-log row whenever something happened."""
    result = stream_push(stream=stream, plan=plan, deadline=deadline, progress=progress)
    if result.sent or result.refused or result.error or result.planned.readings:
        with run_logged(kind=PUSH_RUN_KIND, target=f"wattics {stream.meter_id}",
                        deployment=stream.deployment) as run:
            run.counts = result.as_counts()
            if result.error:
                run.status = run.Status.PARTIAL if result.sent else run.Status.FAILED
                run.error = result.error
    return result


def _in_thread(stream_id: int, plan: bool, deadline: float | None,
               progress: Progress | None) -> PushResult:
    try:
        stream = WatticsStream.objects.get(pk=stream_id)
        return stream_push_logged(stream=stream, plan=plan, deadline=deadline,
                                  progress=progress)
    except Exception as exc:
        logger.exception("wattics: pushing stream %s failed", stream_id)
        return PushResult(error=f"{type(exc).__name__}: {exc}")
    finally:
        connections.close_all()


def streams_push(
    *,
    streams: Iterable[WatticsStream],
    workers: int = 8,
    plan: bool = True,
    deadline: float | None = None,
    progress: Progress | None = None,
) -> dict[int, PushResult]:
    """Push many streams in parallel, one thread per stream at a time: each stays ordered."""
    ids = [s.pk for s in streams]
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(ids) or 1))) as pool:
        futures = {i: pool.submit(_in_thread, i, plan, deadline, progress) for i in ids}
        return {i: f.result() for i, f in futures.items()}
