from django.urls import path, re_path

from apps.sandbox.volue import views

app_name = "sandbox_volue"
urlpatterns = [
    path("", views.index, name="index"),
    path("connect/token", views.token, name="token"),
    path("trigger", views.trigger, name="trigger"),
    path("control", views.control, name="control"),
    # Every path under api/ is the Partner API's: the document decides what exists.
    re_path(r"^api/(?P<path>.*)$", views.partner_api, name="api"),
]
