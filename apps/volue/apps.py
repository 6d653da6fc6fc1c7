from django.apps import AppConfig

from apps.core.schedules import Schedule


class VolueConfig(AppConfig):
    name = "apps.volue"
    label = "volue"
    verbose_name = "Volue Energy Coordination"

    retention_holds = "apps.volue.retention.holds"
    retention_payload_platforms = ("volue",)

    schedules = (
        Schedule(name="volue: registrations", task="volue.sync", every_seconds=120,
                 description="Subscribe the webhook; register users, locations, resources."),
        Schedule(name="volue: enrollment and eligibility", task="volue.status_refresh",
                 every_seconds=3600,
                 description="Read each customer's enrollment, eligibility and compensation."),
        Schedule(name="volue: events catch-up", task="volue.events_catch_up",
                 every_seconds=300,
                 description="Read GET /events for notifications the webhook missed."),
        Schedule(name="volue: plan reports", task="volue.reports_plan", every_seconds=120,
                 description="Queue EnergyUsage reports of finished events."),
        Schedule(name="volue: send reports", task="volue.reports_dispatch", every_seconds=60,
                 description="Send queued reports through the outbox."),
    )

    def demo_setup(self, *, deployment, write) -> None:
        from apps.volue.demo import demo_setup

        demo_setup(deployment=deployment, write=write)
