from django.apps import AppConfig
from django.conf import settings

from apps.core.schedules import Schedule


class WatticsConfig(AppConfig):
    name = "apps.wattics"
    label = "wattics"
    verbose_name = "Wattics"

    @property
    def schedules(self) -> tuple[Schedule, ...]:
        return (
            Schedule(
                name="wattics: push streams",
                task="wattics.push_due",
                every_seconds=settings.WATTICS_PUSH_EVERY_SECONDS,
                description="Plans new readings of every active Wattics stream and pushes "
                            "them (one task per stream).",
            ),
        )

    def demo_setup(self, *, deployment, write) -> None:
        from apps.wattics.demo import demo_streams_setup

        demo_streams_setup(deployment=deployment, write=write)
