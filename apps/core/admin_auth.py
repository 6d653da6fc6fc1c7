"""Who is trying to log in to the admin, as django-axes counts failed attempts."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest | None) -> str | None:
    """The client's address: the socket's, or behind TRUSTED_PROXY_COUNT proxies the entry
    of X-Forwarded-For the outermost trusted proxy wrote (entries left of it are whatever
    the client sent, so they cannot be believed)."""
    if request is None:
        return None
    # None when there is no socket (a login made in code, not over HTTP).
    remote = request.META.get("REMOTE_ADDR") or None
    count = settings.TRUSTED_PROXY_COUNT
    if count <= 0:
        return remote
    chain = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
             if part.strip()]
    return chain[-count] if len(chain) >= count else remote
