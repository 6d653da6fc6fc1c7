from django.apps import AppConfig

from apps.core.schedules import Schedule


def _cors_for_platform(sender, request, **kwargs) -> bool:
    """CORS on the /dexma/ endpoints for the platform origins only (no credentials)."""
    from django.conf import settings

    origin = request.headers.get("origin", "")
    return request.path_info.startswith("/dexma/") and origin in settings.DEXMA_PLATFORM_ORIGINS


class DexmaConfig(AppConfig):
    name = "apps.dexma"
    label = "dexma"
    verbose_name = "DEXMA (Spacewell Energy)"

    retention_holds = "apps.dexma.retention.holds"

    schedules = (
        Schedule(
            name="dexma: reconcile datasources",
            task="dexma.reconcile_all",
            crontab={"minute": "17"},
            description="Hourly: compare local DEXMA datasources with the platform (one list "
            "call per installation) and push what differs.",
        ),
        Schedule(
            name="dexma: apply consents",
            task="dexma.consents_apply",
            every_seconds=60,
            description="Disable DEXMA datasources whose meters lost consent; enable them "
            "again on renewal.",
        ),
        Schedule(
            name="dexma: deliver readings",
            task="dexma.deliver_all",
            every_seconds=60,
            description="Every minute: one delivery per DEXMA datasource, sending new readings "
            "to IS3 in batches of at most 5,000 values through the outbox.",
        ),
    )

    def ready(self) -> None:
        from corsheaders.signals import check_request_enabled

        check_request_enabled.connect(_cors_for_platform, dispatch_uid="dexma-cors")
