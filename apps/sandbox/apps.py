from django.apps import AppConfig
from django.conf import settings

from apps.core.schedules import Schedule
from apps.sandbox.demo import DEMO_DEPLOYMENT, DEVICES, SITES


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

    def overview_notes(self) -> list[str]:
        """The demo's figures explained where ops first see them (the overview)."""
        if not settings.SANDBOX_ENABLED:
            return []
        from apps.core.models import Deployment
        from apps.sandbox.demo.pull import PROFILE
        from apps.sandbox.upstream.models import Profile

        demo = Deployment.objects.filter(slug=DEMO_DEPLOYMENT).first()
        profile = Profile.objects.filter(slug=PROFILE).first()
        if demo is None or profile is None:
            return []
        notes = [
            f"Demo: {demo.name} starts with {len(SITES)} sites and "
            f"{len(DEVICES)} meters; the first pull sync from the "
            f"sandbox provider '{PROFILE}' adds its {profile.asset_count} assets and "
            f"{profile.meter_count} meters as sites and devices."]
        if profile.invalid_every:
            notes.append(
                f"The sandbox provider spoils every {profile.invalid_every}th usage record on "
                f"purpose (a value 'n/a', an unknown meter, a reversed period, a cost without "
                f"currency), so open quarantine entries are expected here: open one to see its "
                f"reason, then Replay or Discard it.")
        return notes
