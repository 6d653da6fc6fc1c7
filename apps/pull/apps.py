from django.apps import AppConfig


class PullConfig(AppConfig):
    name = "apps.pull"
    label = "pull"
    verbose_name = "Upstream pull sync"
