from django.apps import AppConfig


class SandboxDexmaConfig(AppConfig):
    name = "apps.sandbox.dexma"
    label = "sandbox_dexma"
    verbose_name = "Sandbox: DEXMA APIv3 and IS3"
