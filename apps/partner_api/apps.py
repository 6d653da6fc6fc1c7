from django.apps import AppConfig

from apps.core.schedules import Schedule


class PartnerApiConfig(AppConfig):
    name = "apps.partner_api"
    label = "partner_api"
    verbose_name = "Partner API"

    schedules = (
        Schedule(
            name="partner_api: change marks",
            task="partner_api.record_change_marks",
            every_seconds=300,
            description="Note each deployment's latest reading change number, so "
            "updated_since=<time> on usage and readings knows where to start.",
        ),
        Schedule(
            name="partner_api: purge idempotency records",
            task="partner_api.purge_idempotency",
            crontab={"minute": "17", "hour": "*/6"},
            description="Forget first answers to Idempotency-Key requests after 24 hours.",
        ),
    )

    def ready(self) -> None:
        from apps.partner_api import schema  # noqa: F401  (registers OpenAPI extensions)

    def demo_setup(self, *, deployment, write) -> None:
        """A read-write key for the demo deployment, printed once (idempotent by name)."""
        from apps.partner_api.models import ApiKey
        from apps.partner_api.services import apikey_create, changemarks_record

        name = "Demo partner"
        changemarks_record()
        if ApiKey.objects.filter(name=name).exists():
            write(f"  API key '{name}' exists (rotate it in the admin to see a new one)")
            return
        _, raw = apikey_create(name=name, deployments=[deployment],
                               access=ApiKey.Access.READ_WRITE)
        write(f"  API key for {deployment.slug}: {raw}")
        write("  try: curl -H 'X-API-Key: <key>' http://127.0.0.1:8000/api/v1/usage/?limit=5"
              "  — docs at /api/v1/docs/")
