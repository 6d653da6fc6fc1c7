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

    def overview_alerts(self) -> list:
        from django.urls import reverse

        from apps.core.admin_site import OverviewAlert
        from apps.pull.selectors import connections_failing

        failing = connections_failing()
        if not failing:
            return []
        return [OverviewAlert(
            count=len(failing),
            label=f"pull connection{'s' if len(failing) > 1 else ''} whose last sync failed:",
            detail=", ".join(c.name for c in failing),
            url=reverse("admin:pull_connection_changelist")
            + "?last_status__exact=failed&is_enabled__exact=1",
            link_text="Open the failing connections",
        )]
