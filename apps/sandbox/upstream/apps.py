from django.apps import AppConfig


class SandboxUpstreamConfig(AppConfig):
    name = "apps.sandbox.upstream"
    label = "sandbox_upstream"
    verbose_name = "Sandbox: upstream provider API"
