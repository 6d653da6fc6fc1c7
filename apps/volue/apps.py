from django.apps import AppConfig


class VolueConfig(AppConfig):
    name = "apps.volue"
    label = "volue"
    verbose_name = "Volue Energy Coordination"
