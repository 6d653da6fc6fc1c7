from django.conf import settings
from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.views.generic import RedirectView

from apps.core import views as core_views
from apps.core.metrics import metrics_view

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    # Browsers ask for /favicon.ico on every page whatever the page links to.
    path("favicon.ico", RedirectView.as_view(url=static("core/favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    path("dexma/", include("apps.dexma.urls")),
    path("api/v1/", include("apps.partner_api.urls")),
    path("volue/", include("apps.volue.urls")),
]

handler400 = "apps.core.views.bad_request"

if settings.SANDBOX_ENABLED:
    urlpatterns.append(path("sandbox/", include("apps.sandbox.urls")))
