from django.urls import include, path

from apps.sandbox import views

app_name = "sandbox"
urlpatterns = [
    path("", views.index, name="index"),
    path("dexma/", include("apps.sandbox.dexma.urls")),
    path("wattics/", include("apps.sandbox.wattics.urls")),
    path("volue/", include("apps.sandbox.volue.urls")),
    path("upstream/", include("apps.sandbox.upstream.urls")),
]
