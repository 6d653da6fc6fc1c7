from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps

from apps.core.schedules import Schedule


class CoreConfig(AppConfig):
    default = True
    name = "apps.core"
    label = "core"
    verbose_name = "Hub core"
    schedules = (
        Schedule(
            name="core: expire consents",
            task="core.consents_expire",
            every_seconds=900,
            description="Marks datasources whose consent passed its expiry as expired.",
        ),
        Schedule(
            name="core: readings partitions and retention",
            task="core.readings_maintain",
            every_seconds=3600,
            description="Creates the readings' monthly partitions ahead and removes what "
            "each deployment's retention lets go (PostgreSQL).",
        ),
    )

    def ready(self) -> None:
        from apps.core import signals  # noqa: F401  (connects the receivers)


class HubAdminConfig(admin_apps.AdminConfig):
    default = False
    default_site = "apps.core.admin_site.HubAdminSite"
