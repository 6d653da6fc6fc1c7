from django.urls import path

from apps.sandbox.volue import views

app_name = "sandbox_volue"
urlpatterns = [
    path("", views.index, name="index"),
    path("connect/token", views.token, name="token"),
    path("trigger", views.trigger, name="trigger"),
    path("control", views.control, name="control"),
    path("api/users", views.users, name="users"),
    path("api/users/<str:user_id>", views.user, name="user"),
    path("api/users/<str:user_id>/meters", views.meters, name="meters"),
    path("api/users/<str:user_id>/meters/<str:meter_id>", views.meter, name="meter"),
    path("api/users/<str:user_id>/vehicles", views.vehicles, name="vehicles"),
    path("api/users/<str:user_id>/resources", views.resources, name="resources"),
    path("api/users/<str:user_id>/vehicles/<str:resource_id>", views.resource,
         {"kind": "vehicles"}, name="vehicle"),
    path("api/users/<str:user_id>/resources/<str:resource_id>", views.resource,
         {"kind": "resources"}, name="resource"),
    path("api/webhooks", views.webhooks, name="webhooks"),
    path("api/webhooks/<str:webhook_id>", views.webhook, name="webhook"),
    path("api/events", views.events, name="events"),
    path("api/events/<str:event_id>", views.event, name="event"),
    path("api/reports", views.reports, name="reports"),
]
