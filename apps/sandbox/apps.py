from django.apps import AppConfig
from django.conf import settings

from apps.core.schedules import Schedule


class SandboxConfig(AppConfig):
    name = "apps.sandbox"
    label = "sandbox"
    verbose_name = "Sandbox platforms"

    @property
    def schedules(self) -> tuple[Schedule, ...]:
        if not settings.SANDBOX_ENABLED:
            return ()
        return (
            Schedule(
                name="sandbox: demo meters",
                task="sandbox.demo_meters_tick",
                every_seconds=60,
                description="Feeds simulated meter readings into demo deployments.",
            ),
        )
