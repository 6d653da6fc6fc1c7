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
        """The demo's read-write key: the same on every run, so a key copied earlier works.

        Only a key's hash is stored, so the clear text the demo prints is kept under var/
        (a development directory, like the dev secret key) and the key recreated from it.
        """
        from apps.partner_api.auth import key_generate, key_hash
        from apps.partner_api.models import ApiKey
        name = "Demo partner"
        kept = settings.VAR_DIR / "demo-api-key"
        if not kept.exists():
            kept.write_text(key_generate()[1] + "\n")
            kept.chmod(0o600)
        raw = kept.read_text().strip()
        key = ApiKey.objects.filter(name=name, key_hash=key_hash(raw)).first()
        if key is None:
            ApiKey.objects.filter(name=name).delete()
            key = ApiKey.objects.create(name=name, prefix=raw.split("_")[1],
                                        key_hash=key_hash(raw),
                                        access=ApiKey.Access.READ_WRITE)
        key.deployments.add(deployment)
        write(f"  API key for {deployment.slug}: {raw} (kept in {kept})")
        write(f"  try: curl -H 'X-API-Key: {raw}' '{settings.HUB_BASE_URL}/api/v1/usage/?limit=5'")
        write(f"  docs: {settings.HUB_BASE_URL}/api/v1/docs/")
