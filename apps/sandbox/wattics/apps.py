from django.apps import AppConfig


class SandboxWatticsConfig(AppConfig):
    name = "apps.sandbox.wattics"
    label = "sandbox_wattics"
    verbose_name = "Sandbox: Wattics collector"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from apps.sandbox.wattics.models import CollectorFault
        from apps.sandbox.wattics.views import faults_changed

        post_save.connect(faults_changed, sender=CollectorFault)
        post_delete.connect(faults_changed, sender=CollectorFault)

    def demo_setup(self, *, deployment, write) -> None:
        """The collector account the demo's Wattics account logs in with."""
        from django.conf import settings

        from apps.sandbox.wattics.models import CollectorAccount

        account, _ = CollectorAccount.objects.get_or_create(
            username=settings.WATTICS_DEMO_USERNAME, defaults={"auto_register": True})
        account.set_password(settings.WATTICS_DEMO_PASSWORD)
        account.auto_register = True
        account.save()
        write(f"  collector account {account.username} (meters register on first packet)")
