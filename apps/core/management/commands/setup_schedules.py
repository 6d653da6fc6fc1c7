from django.core.management.base import BaseCommand

from apps.core.schedules import schedules_setup


class Command(BaseCommand):
    help = "Create the periodic tasks the code declares; never overwrites what ops changed."

    def handle(self, *args, **options):
        report = schedules_setup()
        for label, names in (("created", report.created), ("updated task path", report.updated),
                             ("kept as configured", report.kept)):
            for name in names:
                self.stdout.write(f"{label}: {name}")
        self.stdout.write(self.style.SUCCESS(
            f"{len(report.created)} created, {len(report.updated)} updated, "
            f"{len(report.kept)} kept"))
