from csp.constants import NONCE, SELF
from csp.decorators import csp_update
from django.urls import path, re_path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.partner_api import views
from apps.partner_api.errors import not_found

app_name = "partner_api"
api_urlpatterns = [
    path("assets/", views.AssetListView.as_view(), name="assets"),
    path("assets/<str:external_id>/", views.AssetDetailView.as_view(), name="asset"),
    path("meters/", views.MeterListView.as_view(), name="meters"),
    path("meters/<str:external_id>/", views.MeterDetailView.as_view(), name="meter"),
    path("usage/", views.UsageView.as_view(), name="usage"),
    path("readings/", views.ReadingsView.as_view(), name="readings"),
]
urlpatterns = [
    *api_urlpatterns,
    # The schema covers this API only, whatever other DRF views the project grows.
    path("schema/", SpectacularAPIView.as_view(urlconf="apps.partner_api.schema_urls"),
         name="schema"),
    # Swagger UI's page has one inline style block; it carries this response's nonce
    # (templates/drf_spectacular/swagger_ui.html) instead of the policy allowing inline style.
    path("docs/", csp_update({"style-src": [SELF, NONCE]})(
        SpectacularSwaggerSplitView.as_view(url_name="partner_api:schema")), name="docs"),
    re_path(r"^.*$", not_found),
]
