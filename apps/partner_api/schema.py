"""OpenAPI descriptions of the partner API's authentication schemes."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "apps.partner_api.auth.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey", "in": "header", "name": "X-API-Key",
            "description": "A partner API key (hub_…), issued by the hub operator. Keys are "
            "scoped to deployments and are read-only or read-write.",
        }


class BasicScheme(OpenApiAuthenticationExtension):
    target_class = "apps.partner_api.auth.ApiKeyBasicAuthentication"
    name = "basic"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http", "scheme": "basic",
            "description": "User name: the key's prefix (the 8 characters after 'hub_'); "
            "password: the whole API key.",
        }
