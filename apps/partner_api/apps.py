from django.apps import AppConfig
from django.conf import settings

from apps.core.schedules import Schedule


class PartnerApiConfig(AppConfig):
    name = "apps.partner_api"
    label = "partner_api"
    verbose_name = "Partner API"

    schedules = (
        Schedule(
            name="partner_api: purge tombstones",
            task="partner_api.purge_tombstones",
            crontab={"minute": "43", "hour": "3"},
            description="Forget deleted meters and assets after PARTNER_API_TOMBSTONE_DAYS.",
        ),
        Schedule(
            name="partner_api: purge idempotency records",
            task="partner_api.purge_idempotency",
            crontab={"minute": "17", "hour": "*/6"},
            description="Forget first answers to Idempotency-Key requests after 24 hours.",
        ),
    )

    def ready(self) -> None:
        from apps.partner_api import schema, signals  # noqa: F401  (extensions, receivers)

    def demo_setup(self, *, deployment, write) -> None:
        """A fresh read-write key for the demo deployment on every run, so it can be shown."""
        from apps.partner_api.models import ApiKey
        from apps.partner_api.services import apikey_create

        name = "Demo partner"
        # Only the hash is stored, so the demo replaces its key to be able to print one.
        ApiKey.objects.filter(name=name).delete()
        _, raw = apikey_create(name=name, deployments=[deployment],
                               access=ApiKey.Access.READ_WRITE)
        write(f"  API key for {deployment.slug}: {raw}")
        write(f"  try: curl -H 'X-API-Key: {raw}' '{settings.HUB_BASE_URL}/api/v1/usage/?limit=5'")
        write(f"  docs: {settings.HUB_BASE_URL}/api/v1/docs/")
