from django.urls import path

from apps.sandbox.upstream import views

app_name = "sandbox_upstream"
urlpatterns = [
    path("<slug:slug>/oauth/token", views.token, name="token"),
    path("<slug:slug>/assets", views.assets, name="assets"),
    path("<slug:slug>/meters", views.meters, name="meters"),
    path("<slug:slug>/consumption", views.consumption, name="consumption"),
    path("<slug:slug>/readings", views.readings, name="readings"),
]
