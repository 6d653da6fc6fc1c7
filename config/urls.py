from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponsePermanentRedirect
from django.templatetags.static import static
from django.urls import include, path

from apps.core import views as core_views
from apps.core.metrics import metrics_view


def favicon(request: HttpRequest) -> HttpResponsePermanentRedirect:
    """Browsers ask for /favicon.ico whatever a page links to. The static URL is looked up
    per request: with DEBUG off it names the collected (hashed) file."""
    return HttpResponsePermanentRedirect(static("core/favicon.svg"))


urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("metrics", metrics_view, name="metrics"),
    path("favicon.ico", favicon),
    path("admin/", admin.site.urls),
    path("dexma/", include("apps.dexma.urls")),
    path("api/v1/", include("apps.partner_api.urls")),
    path("volue/", include("apps.volue.urls")),
]

handler400 = "apps.core.views.bad_request"

if settings.SANDBOX_ENABLED:
    urlpatterns.append(path("sandbox/", include("apps.sandbox.urls")))
