from django.urls import path

from apps.volue import views

app_name = "volue"
urlpatterns = [
    path("webhook", views.webhook, name="webhook"),
]
