from django.apps import AppConfig


class SandboxWatticsConfig(AppConfig):
    name = "apps.sandbox.wattics"
    label = "sandbox_wattics"
    verbose_name = "Sandbox: Wattics collector"
