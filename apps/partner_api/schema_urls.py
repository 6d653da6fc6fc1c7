"""The URL tree the OpenAPI schema is generated from: the partner API under /api/v1/."""

from django.urls import include, path

from apps.partner_api.urls import api_urlpatterns

urlpatterns = [path("api/v1/", include((api_urlpatterns, "partner_api")))]
