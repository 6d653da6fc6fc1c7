"""`manage.py readings_partitions`: the readings' monthly partitions and retention."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from apps.core.services.partitions import (
    partitions_list,
    partitions_maintain,
    readings_partitioned,
)
from apps.core.services.retention import readings_retention_apply


class Command(BaseCommand):
    help = ("Create core_reading's monthly partitions ahead (moving strays out of DEFAULT), "
            "list them, apply retention. PostgreSQL only; nothing to do on SQLite.")

    def add_arguments(self, parser):
        parser.add_argument("--ahead", type=int, default=settings.READINGS_PARTITIONS_AHEAD,
                            help="Months to have partitions for after the current one.")
        parser.add_argument("--list", action="store_true",
                            help="Only list the partitions: range, rows (estimate), size.")
        parser.add_argument("--retention", action="store_true",
                            help="Also remove what each deployment's retention lets go.")
        parser.add_argument("--max-rows", type=int, default=settings.READINGS_RETENTION_MAX_ROWS,
                            help="At most this many readings deleted in this run "
                                 "(whole partitions dropped do not count).")

    def handle(self, *args, ahead, list, retention, max_rows, **options):
        if ahead < 0 or max_rows < 0:
            raise CommandError("--ahead and --max-rows take a number of 0 or more")
        if not readings_partitioned():
            self.stdout.write("core_reading is not partitioned on this database (SQLite, or "
                              "migration core/0008 not applied): nothing to do.")
            return
        if list:
            self._list()
            return
        made = partitions_maintain(ahead=ahead)
        for name in made.created:
            self.stdout.write(f"created {name}")
        self.stdout.write(f"{len(made.created)} partitions created, {made.moved:,} readings "
                          "moved out of DEFAULT")
        if retention:
            kept = readings_retention_apply(max_rows=max_rows)
            for name in kept.dropped:
                self.stdout.write(f"dropped {name}")
            self.stdout.write(
                f"retention: {len(kept.dropped)} partitions dropped, {kept.deleted_total:,} "
                "readings deleted" + (f" (stopped at --max-rows {max_rows:,}; the next run "
                                      "continues)" if kept.limited else ""))

    def _list(self) -> None:
        self.stdout.write(f"{'partition':<24} {'from (UTC)':<17} {'to (UTC)':<17} "
                          f"{'rows (est.)':>12} {'size':>10}")
        for part in partitions_list():
            lower = part.lower.strftime("%Y-%m-%d %H:%M") if part.lower else "DEFAULT"
            upper = part.upper.strftime("%Y-%m-%d %H:%M") if part.upper else ""
            self.stdout.write(f"{part.name:<24} {lower:<17} {upper:<17} "
                              f"{part.rows_estimate:>12,} {part.total_bytes / 2**20:>8.1f}MB")
