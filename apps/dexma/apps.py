from django.apps import AppConfig


class DexmaConfig(AppConfig):
    name = "apps.dexma"
    label = "dexma"
    verbose_name = "DEXMA (Spacewell Energy)"
