"""API key authentication (header or HTTP Basic) and the read/write permission."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from django.core.cache import cache
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from apps.partner_api.models import ApiKey

logger = logging.getLogger(__name__)

HEADER = "X-API-Key"
KEY_PREFIX_LENGTH = 8
# "hub_" + prefix + "_" + secret: recognisable in logs and by secret scanners.
KEY_FORMAT = "hub_{prefix}_{secret}"
LAST_USED_EVERY = 60  # seconds between last_used_at writes per key


def key_hash(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def key_generate() -> tuple[str, str]:
    """A new (prefix, full key)."""
    prefix = secrets.token_hex(KEY_PREFIX_LENGTH // 2)
    return prefix, KEY_FORMAT.format(prefix=prefix, secret=secrets.token_urlsafe(30))


def _prefix_of(raw: str) -> str:
    parts = raw.split("_")
    # Prefixes are hex: anything else (a NUL, which PostgreSQL text refuses) matches no key.
    ok = len(parts) >= 3 and parts[0] == "hub" and parts[1].isascii() and parts[1].isalnum()
    return parts[1] if ok else ""


@dataclass(frozen=True, slots=True)
class Partner:
    """request.user for the partner API: the key behind the request."""

    key: ApiKey

    is_authenticated = True
    is_anonymous = False

    @property
    def pk(self) -> int:
        return self.key.pk

    def __str__(self) -> str:
        return f"api key {self.key.prefix}"


def key_check(raw: str) -> ApiKey:
    """The active key matching `raw`; the same answer for unknown, wrong and revoked keys."""
    prefix = _prefix_of(raw)
    key = ApiKey.objects.filter(prefix=prefix, is_active=True).first() if prefix else None
    expected = key.key_hash if key else "0" * 64
    matches = hmac.compare_digest(key_hash(raw), expected)
    if key is None or not matches or (key.expires_at and key.expires_at <= timezone.now()):
        raise exceptions.AuthenticationFailed(
            "invalid or revoked API key; ask the hub operator for a new one"
        )
    _touch(key)
    return key


def _touch(key: ApiKey) -> None:
    try:
        due = cache.add(f"partner_api:used:{key.prefix}", 1, timeout=LAST_USED_EVERY)
    except Exception as exc:  # Redis down: last_used_at waits, the request does not fail
        logger.warning("partner API: cache unavailable, last use of key %s not recorded: %s",
                       key.prefix, exc)
        return
    if due:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`X-API-Key: hub_…` header."""

    def authenticate(self, request):
        raw = request.META.get("HTTP_X_API_KEY")
        if not raw:
            return None
        key = key_check(raw.strip())
        return Partner(key), key

    def authenticate_header(self, request) -> str:
        return 'Basic realm="hub partner API", charset="UTF-8"'


class ApiKeyBasicAuthentication(authentication.BaseAuthentication):
    """HTTP Basic: user name = the key's prefix, password = the whole key."""

    def authenticate(self, request):
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic" or not encoded:
            return None
        try:
            user, _, password = base64.b64decode(encoded.strip()).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise exceptions.AuthenticationFailed(
                "malformed Basic credentials; send base64('<key prefix>:<API key>')"
            ) from None
        key = key_check(password)
        # The user name is part of the credential: a client configured with someone else's
        # name (or none) is told, rather than let in on the password alone.
        if not hmac.compare_digest(user.encode(), key.prefix.encode()):
            raise exceptions.AuthenticationFailed(
                "HTTP Basic user name must be the key's prefix (the 8 characters after "
                "'hub_'), password the whole key")
        return Partner(key), key

    def authenticate_header(self, request) -> str:
        return 'Basic realm="hub partner API", charset="UTF-8"'


class PartnerAccess(permissions.BasePermission):
    """Any valid key reads; writing needs a read-write key."""

    message = "this API key is read-only; writing needs a read-write key"

    def has_permission(self, request, view) -> bool:
        if not isinstance(request.user, Partner):
            return False
        if request.method in permissions.SAFE_METHODS:
            return True
        return request.user.key.can_write
