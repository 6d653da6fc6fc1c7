from django.urls import path

from apps.sandbox.dexma import api, is3, platform

app_name = "sandbox_dexma"
urlpatterns = [
    path("platform/", platform.platform, name="platform"),
    path("v3/oauth/access-token", api.access_token, name="access_token"),
    path("v3/datasources", api.datasources, name="datasources"),
    path("v3/datasources/<int:datasource_id>", api.datasource, name="datasource"),
    path("v3/datasources/<int:datasource_id>/token", api.datasource_token,
         name="datasource_token"),
    path("v3/devices", api.devices, name="devices"),
    path("v3/readings", is3.readings_read, name="readings_read"),
    path("is3/readings", is3.readings, name="is3_readings"),
    path("v3/sessions/<str:session_id>", api.session, name="session"),
]
