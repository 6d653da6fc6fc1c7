"""Fixed paths: both the Datasource Type "URL" and "URL for UI" registered in the platform
are `<hub>/dexma`."""

from django.urls import path

from apps.dexma import views

app_name = "dexma"
urlpatterns = [
    path("install", views.install, name="install"),
    path("uninstall", views.uninstall, name="uninstall"),
    path("ping", views.ping, name="ping"),
    path("app-status", views.app_status, name="app_status"),
    path("datasources", views.datasource_list, name="datasource_list"),
    path("datasources/new", views.datasource_new, name="datasource_new"),
    path("datasources/<int:datasource_id>", views.datasource_detail, name="datasource_detail"),
]
