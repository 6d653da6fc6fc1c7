from django.urls import path

from apps.sandbox.wattics import views

app_name = "sandbox_wattics"
urlpatterns = [
    path("measurements/v2/unifiedjson/", views.measurements, name="measurements"),
]
