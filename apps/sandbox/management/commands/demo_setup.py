"""Load the demo: an admin login, a demo deployment with sites and meters, a few days of
readings, and the periodic tasks. Safe to run again."""

import datetime as dt

from django.apps import apps
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from apps.core.models import Datasource, Deployment, Device, Site
from apps.core.schedules import schedules_setup
from apps.sandbox.demo import DEMO_DEPLOYMENT, DEVICES, SITES
from apps.sandbox.demo.dexma import demo_datasource_setup
from apps.sandbox.demo.pull import demo_pull_setup
from apps.sandbox.tasks import demo_meters_ingest

DEMO_USER, DEMO_PASSWORD = "admin", "admin"
# The parts of the demo that need a simulator's own records, by the integration they set up:
# they run where that integration's AppConfig.demo_setup() would.
SANDBOX_PARTS = {"dexma": demo_datasource_setup, "pull": demo_pull_setup}


class Command(BaseCommand):
    help = "Create the demo data (DEBUG only): login admin/admin, a deployment, meters."

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=7, help="Days of history to load.")

    def handle(self, *args, days: int, **options):
        if not settings.DEBUG:
            raise CommandError("demo_setup creates a known admin password: DEBUG must be on")
        user_model = get_user_model()
        user, _ = user_model.objects.get_or_create(
            username=DEMO_USER, defaults={"is_staff": True, "is_superuser": True}
        )
        user.set_password(DEMO_PASSWORD)
        user.save()

        deployment, _ = Deployment.objects.get_or_create(
            slug=DEMO_DEPLOYMENT,
            defaults={"name": "Acme Retail (demo)", "timezone": "Europe/Madrid"},
        )
        datasource, _ = Datasource.objects.get_or_create(
            deployment=deployment, key="acme-gateway",
            defaults={"name": "Acme metering gateway", "kind": Datasource.Kind.PARTNER,
                      "timezone": "Europe/Madrid"},
        )
        sites = {}
        for ext, name, street, city, postal, country, lat, lon, tz in SITES:
            sites[ext], _ = Site.objects.get_or_create(
                deployment=deployment, external_id=ext,
                defaults={"name": name, "street": street, "city": city, "postal_code": postal,
                          "country": country, "latitude": lat, "longitude": lon,
                          "timezone": tz},
            )
        for ext, name, site, subtype in DEVICES:
            Device.objects.get_or_create(
                deployment=deployment, external_id=ext,
                defaults={"datasource": datasource, "site": sites[site], "local_id": ext,
                          "name": name, "commodity": "energy", "subtype": subtype,
                          "unit": "kWh"},
            )
        self.stdout.write(f"Loading {days} days of readings for {len(DEVICES)} meters…")
        now = timezone.now()
        counts = demo_meters_ingest(deployment=deployment, start=now - dt.timedelta(days=days))
        self.stdout.write(f"  {counts}")
        # Each integration adds its part of the demo through its AppConfig.demo_setup() (or
        # the sandbox's part for it), given the demo deployment and a writer for progress lines.
        notes: list[str] = []

        def write(line: str) -> None:
            self.stdout.write(line)
            notes.append(line)

        for config in apps.get_app_configs():
            extend = SANDBOX_PARTS.get(config.label) or getattr(config, "demo_setup", None)
            if callable(extend):
                write(f"{config.verbose_name}:")
                extend(deployment=deployment, write=write)
        # rundemo prints these again under its banner, after the setup output scrolled away.
        (settings.VAR_DIR / "demo-notes.txt").write_text("\n".join(notes) + "\n")
        report = schedules_setup()
        self.stdout.write(f"Schedules: {len(report.created)} created, {len(report.kept)} kept")
        self.stdout.write(self.style.SUCCESS("Demo data ready."))
