from django.apps import AppConfig


class WatticsConfig(AppConfig):
    name = "apps.wattics"
    label = "wattics"
    verbose_name = "Wattics"
