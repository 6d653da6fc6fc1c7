"""Send a DEXMA datasource's history to IS3, oldest first, with a progress bar.

    manage.py dexma_backfill <datasource id or key> --from 2025-01-01 --to 2026-01-01
    manage.py dexma_backfill <datasource id or key> --days 7
    manage.py dexma_backfill --resume <backfill id>

`--days N` is the last N local days, today included (or the N days before `--to`).

Resumable: run it again (or `--resume`) after a crash; batches IS3 acknowledged are not sent
again. Progress also shows in the admin (DEXMA > Backfills). A verification reads a sample
back through APIv3 at the end.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q
from django.utils import timezone

from apps.core.progress import progress_bar
from apps.dexma import services
from apps.dexma.models import Backfill, DexmaDatasource
from apps.dexma.schemas import Is3MappingError


class Command(BaseCommand):
    help = "Backfill a DEXMA datasource's history to IS3 (resumable), then verify a sample."

    def add_arguments(self, parser):
        parser.add_argument("datasource", nargs="?", help="DEXMA datasource id or IS3 key.")
        start = parser.add_mutually_exclusive_group()
        start.add_argument("--from", dest="date_from", help="Start date (YYYY-MM-DD), local.")
        start.add_argument("--days", type=int,
                           help="The last N local days, today included (or before --to).")
        parser.add_argument("--to", dest="date_to",
                            help="End date (YYYY-MM-DD), exclusive; default with --days: "
                                 "tomorrow.")
        parser.add_argument("--resume", type=int, help="Continue this backfill id.")
        parser.add_argument("--no-verify", action="store_true")

    def handle(self, *args, datasource, date_from, date_to, days, resume, no_verify,
               **options):
        if resume:
            backfill = Backfill.objects.filter(pk=resume).first()
            if backfill is None:
                raise CommandError(f"no backfill {resume}")
        else:
            if days is not None and days < 1:
                raise CommandError("--days must be 1 or more")
            if not (datasource and (days or (date_from and date_to))):
                raise CommandError(
                    "give a datasource and --from and --to, or --days N (or --resume ID)")
            found = DexmaDatasource.objects.filter(
                Q(key=datasource) | Q(pk=int(datasource) if datasource.isdigit() else None)
            ).first()
            if found is None:
                raise CommandError(f"no DEXMA datasource '{datasource}'")
            zone = ZoneInfo(found.timezone or "UTC")
            try:
                last = (dt.date.fromisoformat(date_to) if date_to
                        else timezone.localdate(timezone=zone) + dt.timedelta(days=1))
                first = (last - dt.timedelta(days=days) if days
                         else dt.date.fromisoformat(date_from))
                start = dt.datetime.combine(first, dt.time(), tzinfo=zone)
                end = dt.datetime.combine(last, dt.time(), tzinfo=zone)
                backfill = services.backfill_start(datasource=found, date_from=start,
                                                   date_to=end)
            except (ValueError, Is3MappingError) as exc:
                raise CommandError(str(exc)) from exc
        self.stdout.write(f"Backfill {backfill.pk}: {backfill}")
        # The planned total is known once the backfill starts; the bar follows what is sent.
        bar = None

        def show(current: Backfill) -> None:
            nonlocal bar
            if not current.values_planned:
                return  # nothing to send: no 0/0 bar, the summary below says so
            if bar is None:
                bar = progress_bar(total=current.values_planned, unit="values",
                                   initial=current.values_sent, stream=self.stdout._out)
            bar.total = current.values_planned
            bar.update(current.values_sent - bar.n)

        try:
            backfill = services.backfill_run(backfill=backfill, progress=show)
        finally:
            if bar is not None:
                bar.close()
        if backfill.state != Backfill.State.DONE:
            raise CommandError(
                f"backfill {backfill.pk} stopped ({backfill.get_state_display()}): "
                f"{backfill.error or 'see the outbox for the failing batch'}; fix it, then "
                f"`manage.py dexma_backfill --resume {backfill.pk}`")
        self.stdout.write(self.style.SUCCESS(
            f"Done: {backfill.values_sent:,} values in {backfill.batches} batches."))
        if not no_verify:
            result = services.datasource_verify(datasource=backfill.datasource,
                                                date_from=backfill.date_from,
                                                date_to=backfill.date_to)
            self.stdout.write(f"Verification: {result.summary}")
