"""Push the history of Wattics streams now, in parallel across streams, with a progress bar.

    manage.py wattics_backfill [--meter ID ...] [--deployment SLUG] [--since 2026-01-01]
                               [--workers 8]

Wattics discards packets older than a meter's last one, so history can only go to a meter
that has nothing newer: `--since` moves a stream's start earlier only while it has sent
nothing. Progress shows here and in the admin (Wattics > Streams).
"""

from __future__ import annotations

import datetime as dt
import threading
import time

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Sum
from django.utils import timezone

from apps.core.models import DeliveryLink, OutboundBatch, Run
from apps.core.progress import progress_bar
from apps.core.services import run_finish, run_start
from apps.wattics.models import WatticsStream
from apps.wattics.selectors import BACKFILL_RUN_KIND as BACKFILL_RUN
from apps.wattics.services import streams_push
from apps.wattics.services.push import Progress


class Command(BaseCommand):
    help = "Send the outstanding history of Wattics streams, in parallel, with progress."

    def add_arguments(self, parser):
        parser.add_argument("--meter", action="append", default=[], help="Wattics meter id.")
        parser.add_argument("--deployment", help="Only this deployment's streams (slug).")
        parser.add_argument("--since", help="Start date (YYYY-MM-DD) for streams not yet sent.")
        parser.add_argument("--workers", type=int, default=8)

    def handle(self, *args, meter: list[str], deployment: str | None, since: str | None,
               workers: int, **options):
        streams = WatticsStream.objects.filter(link__state=DeliveryLink.State.ACTIVE)
        if meter:
            streams = streams.filter(meter_id__in=meter)
        if deployment:
            streams = streams.filter(deployment__slug=deployment)
        streams = list(streams.select_related("link"))
        if not streams:
            raise CommandError("no active Wattics stream matches")
        if since:
            start = dt.datetime.combine(dt.date.fromisoformat(since), dt.time(),
                                        tzinfo=dt.UTC)
            for s in streams:
                if (s.examined_seq == 0 and s.planned_ts is None
                        and (s.start_at is None or s.start_at > start)):
                    WatticsStream.objects.filter(pk=s.pk).update(start_at=start)
                elif s.start_at is None or s.start_at > start:
                    self.stderr.write(f"{s.meter_id}: already sending; history before "
                                      f"{s.planned_ts} would be discarded by Wattics, skipped")
        names = ", ".join(s.meter_id for s in streams[:5]) + ("…" if len(streams) > 5 else "")
        run = run_start(kind=BACKFILL_RUN, target=f"{len(streams)} stream(s): {names}")
        self.stdout.write(f"Planning {len(streams)} stream(s)…")
        # deadline=0: resume from Wattics and plan, send nothing yet (the total is known first).
        planned = streams_push(streams=streams, workers=workers, deadline=0)
        errors = {i: r.error for i, r in planned.items() if r.error}
        links = [s.link_id for s in streams]
        open_batches = OutboundBatch.objects.filter(link_id__in=links,
                                                    state__in=OutboundBatch.OPEN_STATES)
        total = open_batches.aggregate(n=Sum("item_count"))["n"] or 0
        done = [0]
        lock = threading.Lock()

        def count(stream_id: int, sent: int) -> None:
            with lock:
                done[0] += sent

        result = self._send(streams, workers, total, done, run, count)
        errors.update({i: r.error for i, r in result.items() if r.error})
        counts = {"streams": len(streams), "packets_total": total, "packets_done": done[0],
                  "percent": round(100 * done[0] / total, 1) if total else 100.0,
                  "errors": len(errors)}
        if errors:
            by_meter = {s.pk: s.meter_id for s in streams}
            text = "; ".join(f"{by_meter[i]}: {e}" for i, e in errors.items())
            run_finish(run=run, status=Run.Status.PARTIAL, counts=counts, error=text[:5000])
            self.stderr.write(self.style.WARNING(f"Finished with errors: {text}"))
        else:
            run_finish(run=run, status=Run.Status.SUCCEEDED, counts=counts)
            self.stdout.write(self.style.SUCCESS(f"Sent {done[0]:,} packets."))

    def _send(self, streams, workers: int, total: int, done: list[int], run: Run,
              count: Progress) -> dict:
        results: dict = {}
        worker = threading.Thread(
            target=lambda: results.update(streams_push(streams=streams, workers=workers,
                                                       plan=False, progress=count)))
        worker.start()
        last_saved = 0.0
        # No bar for nothing to send (0/0): the summary line says it.
        bar = progress_bar(total=total, unit="packets", stream=self.stdout._out) if total else None
        try:
            while worker.is_alive():
                worker.join(0.25)
                if bar is not None:
                    bar.update(done[0] - bar.n)
                if time.monotonic() - last_saved >= 1.0 or not worker.is_alive():
                    last_saved = time.monotonic()
                    Run.objects.filter(pk=run.pk).update(counts={
                        "streams": len(streams), "packets_total": total,
                        "packets_done": done[0],
                        "percent": round(100 * done[0] / total, 1) if total else 100.0,
                        "updated": timezone.now().isoformat()})
        finally:
            if bar is not None:
                bar.update(done[0] - bar.n)
                bar.close()
        return results
