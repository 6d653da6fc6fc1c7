from django.apps import AppConfig

from apps.core.schedules import Schedule


class PullConfig(AppConfig):
    name = "apps.pull"
    label = "pull"
    verbose_name = "Upstream pull sync"
    # Each connection's own daily/weekly/monthly entry is written by connection_setup.
    schedules = (
        Schedule(
            name="pull: first sync of new connections",
            task="pull.connections_kickoff",
            every_seconds=60,
            description="Starts the first sync of connections that never ran.",
        ),
    )

    def demo_setup(self, *, deployment, write) -> None:
        from apps.pull.demo import demo_connection_setup

        connection = demo_connection_setup(deployment=deployment)
        write(f"  pull connection '{connection.name}' → {connection.base_url} "
              f"({connection.get_frequency_display()}; first sync within a minute)")
