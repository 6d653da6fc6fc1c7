from django.apps import AppConfig


class SandboxDexmaConfig(AppConfig):
    name = "apps.sandbox.dexma"
    label = "sandbox_dexma"
    verbose_name = "Sandbox: DEXMA APIv3 and IS3"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from apps.sandbox.dexma.faults import switches_changed
        from apps.sandbox.dexma.models import PlatformFault

        post_save.connect(switches_changed, sender=PlatformFault)
        post_delete.connect(switches_changed, sender=PlatformFault)

    def demo_setup(self, *, deployment, write) -> None:
        """A platform account for the demo deployment (the DEXMA demo installs the app in it)."""
        import os
        from urllib.parse import urlsplit

        from django.conf import settings

        from apps.sandbox.dexma.models import PlatformDeployment, PlatformSession

        account, _ = PlatformDeployment.objects.get_or_create(
            dep_id=deployment.slug, defaults={"name": deployment.name}
        )
        PlatformSession.objects.get_or_create(
            deployment=account,
            defaults={"user_name": "Dana Demo", "user_email": "dana@example.com"},
        )
        port = os.environ.get("PORT") or urlsplit(settings.HUB_BASE_URL).port or 8000
        write(f"  DEXMA sandbox platform: http://localhost:{port}/sandbox/dexma/platform/"
              f"?dep={account.dep_id} (the app is installed already: + Add datasource opens "
              f"the hub's pages; Uninstall, then Install, shows the handshake)")
