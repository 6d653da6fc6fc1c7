from django.apps import AppConfig


class SandboxVolueConfig(AppConfig):
    name = "apps.sandbox.volue"
    label = "sandbox_volue"
    verbose_name = "Sandbox: Volue"
