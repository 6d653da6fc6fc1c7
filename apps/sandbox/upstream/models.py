"""The upstream provider simulator's profiles: each one is a provider API with its own
auth kind, pagination style, limits and faults, served under /sandbox/upstream/<slug>/."""

from django.db import models


class Profile(models.Model):
    class Auth(models.TextChoices):
        API_KEY_HEADER = "api_key_header", "API key in a header (X-Api-Key)"
        API_KEY_QUERY = "api_key_query", "API key in the query (?api_key=)"
        BASIC = "basic", "HTTP Basic"
        BEARER = "bearer", "Static bearer token"
        CLIENT_CREDENTIALS = "oauth2_client_credentials", "OAuth2 client credentials"
        PASSWORD = "oauth2_password", "OAuth2 password grant"

    class Paging(models.TextChoices):
        OFFSET = "offset", "offset / limit"
        PAGE = "page", "page number"
        CURSOR = "cursor", "cursor in the body"
        LINK = "link", "RFC 8288 Link header"

    slug = models.SlugField(max_length=64, unique=True)
    auth_kind = models.CharField(max_length=32, choices=Auth.choices, default=Auth.API_KEY_HEADER)
    pagination = models.CharField(max_length=16, choices=Paging.choices, default=Paging.OFFSET)
    page_size = models.PositiveIntegerField(default=50, help_text="Default and cap is 1000.")
    # Credentials the simulator accepts (sandbox values, never real ones).
    api_key = models.CharField(max_length=64, default="sandbox-key")
    username = models.CharField(max_length=64, default="sandbox-user")
    password = models.CharField(max_length=64, default="sandbox-pass")
    client_id = models.CharField(max_length=64, default="sandbox-client")
    client_secret = models.CharField(max_length=64, default="sandbox-secret")
    bearer_format = models.CharField(max_length=64, default="Token {token}")
    token_lifetime = models.PositiveIntegerField(default=3600, help_text="Seconds.")
    # The data.
    asset_count = models.PositiveIntegerField(default=2)
    meter_count = models.PositiveIntegerField(default=4)
    interval_minutes = models.PositiveIntegerField(default=60)
    data_start = models.DateTimeField(help_text="No usage before this instant.")
    naive_timestamps = models.BooleanField(
        default=False, help_text="Usage timestamps without offset, in naive_timezone."
    )
    naive_timezone = models.CharField(max_length=64, default="Europe/Madrid")
    # Limits and faults.
    max_range_days = models.PositiveIntegerField(default=0, help_text="0: unlimited.")
    burst_every = models.PositiveIntegerField(
        default=0, help_text="Every Nth request starts a burst of 429 (0: never)."
    )
    burst_length = models.PositiveIntegerField(default=2)
    retry_after_seconds = models.PositiveIntegerField(default=1)
    error_every = models.PositiveIntegerField(default=0, help_text="Every Nth request is a 503.")
    invalid_every = models.PositiveIntegerField(
        default=0, help_text="Every Nth usage record is invalid (0: none)."
    )
    flapping_meters = models.PositiveIntegerField(
        default=0, help_text="The last N meters vanish from every other meter listing."
    )
    hidden_meters = models.JSONField(default=list, blank=True)
    loop_cursor = models.BooleanField(
        default=False, help_text="Page 3 points back at page 2 (a broken provider)."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["slug"]

    def __str__(self) -> str:
        return self.slug
