"""The ops console for the shared model: browse everything, steer with services.

Machine-written tables (readings, runs, quarantine metadata, outbound batches, daily
stats) are read-only here; what ops may do to them is an action that calls a service.
Readings, runs and batches grow without bound, so their lists never COUNT(*) the table,
never offer facets or sorting that would scan it, and page only forwards and backwards.

The package holds one module an area; importing it registers every admin (Django's admin
autodiscovery imports `apps.core.admin`).
"""

from apps.core.admin.delivery import DeliveryLinkAdmin, LinkPlatformFilter, OutboundBatchAdmin
from apps.core.admin.readings import (
    DailyIngestStatAdmin,
    QuarantineAdmin,
    ReadingAdmin,
    RunAdmin,
    counts_text,
)
from apps.core.admin.tenants import (
    DatasourceAdmin,
    DeploymentAdmin,
    DeviceAdmin,
    ParameterAdmin,
    SiteAdmin,
)
from apps.core.admin.toolkit import (
    ADMIN_CSS,
    EstimatedCountPaginator,
    HugeTableAdmin,
    ReadOnlyAdmin,
    ReadOnlyInline,
    badge_html,
    changelist_url,
    short,
    superuser_deletes,
    utc,
)

__all__ = (
    "ADMIN_CSS", "DailyIngestStatAdmin", "DatasourceAdmin", "DeliveryLinkAdmin",
    "DeploymentAdmin", "DeviceAdmin", "EstimatedCountPaginator", "HugeTableAdmin",
    "LinkPlatformFilter", "OutboundBatchAdmin", "ParameterAdmin", "QuarantineAdmin",
    "ReadOnlyAdmin", "ReadOnlyInline", "ReadingAdmin", "RunAdmin", "SiteAdmin", "badge_html",
    "changelist_url", "counts_text", "short", "superuser_deletes", "utc",
)
