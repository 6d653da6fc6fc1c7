"""API key authentication (header or HTTP Basic) and the read/write permission."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass

from django.core.cache import cache
from django.db import connection
from django.utils import timezone
from rest_framework import authentication, exceptions, permissions

from apps.core.models import Deployment
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
    """request.user for the partner API: the key behind the request.

    `reach`: the active deployments the key reaches, read with the key (at most two, or the
    one named `slug` when the request names one), so that the view needs no query for them.
    """

    key: ApiKey
    reach: tuple[Deployment, ...] | None = None
    slug: str | None = None

    is_authenticated = True
    is_anonymous = False

    @property
    def pk(self) -> int:
        return self.key.pk

    def __str__(self) -> str:
        return f"api key {self.key.prefix}"


_KEY_FIELDS = [f.attname for f in ApiKey._meta.concrete_fields]
_DEPLOYMENT_FIELDS = [f.attname for f in Deployment._meta.concrete_fields]


@functools.cache
def _key_and_reach_sql(with_slug: bool) -> str:
    """The statement of `_key_and_reach`, written once from the models' tables: built by
    the ORM (a FilteredRelation) it cost 2 to 4 ms of Python a request, the query 0.1 ms."""
    q = connection.ops.quote_name
    key, deployment = ApiKey._meta, Deployment._meta
    through = ApiKey.deployments.through._meta
    columns = ", ".join([*(f"k.{q(f.column)}" for f in key.concrete_fields),
                         *(f"d.{q(f.column)}" for f in deployment.concrete_fields)])
    slug = " AND d.slug = %s" if with_slug else ""
    # Names from the models; values go as parameters.
    return (
        f"SELECT {columns} FROM {q(key.db_table)} k "  # noqa: S608
        f"LEFT JOIN {q(through.db_table)} kd "
        f"ON kd.{q(through.get_field('apikey').column)} = k.id "
        f"LEFT JOIN {q(deployment.db_table)} d "
        f"ON d.id = kd.{q(through.get_field('deployment').column)} AND d.is_active{slug} "
        "WHERE k.is_active AND k.prefix = %s "
        # The reachable deployments first (NULL, none reached, sorts last everywhere).
        "ORDER BY d.id IS NULL, d.id LIMIT 2"
    )


def _key_and_reach(prefix: str, slug: str | None) -> tuple[ApiKey | None, tuple]:
    """The active key of `prefix` and its first two active deployments (or the one named
    `slug`), in one query."""
    with connection.cursor() as cursor:
        cursor.execute(_key_and_reach_sql(bool(slug)), [slug, prefix] if slug else [prefix])
        rows = cursor.fetchall()
    if not rows:
        return None, ()
    size, db = len(_KEY_FIELDS), ApiKey.objects.db
    convert = _converters()
    rows = [[value if not fns or value is None else _apply(fns, value, col)
             for value, (col, fns) in zip(row, convert, strict=True)] for row in rows]
    key = ApiKey.from_db(db, _KEY_FIELDS, rows[0][:size])
    return key, tuple(Deployment.from_db(db, _DEPLOYMENT_FIELDS, row[size:])
                      for row in rows if row[size] is not None)


@functools.cache
def _converters() -> list[tuple]:
    """Per column of the statement, what the ORM would apply to the value read (SQLite's
    text datetimes and integer booleans; nothing much on PostgreSQL)."""
    out = []
    for field in (*ApiKey._meta.concrete_fields, *Deployment._meta.concrete_fields):
        col = field.get_col(field.model._meta.db_table)
        out.append((col, [*connection.ops.get_db_converters(col),
                          *col.get_db_converters(connection)]))
    return out


def _apply(fns, value, col):
    for fn in fns:
        value = fn(value, col, connection)
    return value


def key_check(raw: str, *, slug: str | None = None) -> Partner:
    """The active key matching `raw`; the same answer for unknown, wrong and revoked keys."""
    prefix = _prefix_of(raw)
    key, reach = _key_and_reach(prefix, slug) if prefix else (None, ())
    expected = key.key_hash if key else "0" * 64
    matches = hmac.compare_digest(key_hash(raw), expected)
    if key is None or not matches or (key.expires_at and key.expires_at <= timezone.now()):
        raise exceptions.AuthenticationFailed(
            "invalid or revoked API key; ask the hub operator for a new one"
        )
    return Partner(key, reach, slug)


def key_touch(key: ApiKey, *, due: bool | None = None) -> None:
    """Record the key's use, at most every LAST_USED_EVERY seconds.

    `due`: what the cache already answered (the throttle asks it beside its count, in the
    same round trip); None to ask it here.
    """
    if due is None:
        try:
            due = cache.add(f"partner_api:used:{key.prefix}", 1, timeout=LAST_USED_EVERY)
        except Exception as exc:  # Redis down: last_used_at waits, the request does not fail
            logger.warning("partner API: cache unavailable, last use of key %s not "
                           "recorded: %s", key.prefix, exc)
            return
    if due:
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())


def _slug(request) -> str | None:
    """The deployment the request names, read with the key; one PostgreSQL cannot hold (a
    NUL, refused by the view with 400) is left to the view."""
    slug = request.query_params.get("deployment")
    return slug if slug and "\x00" not in slug else None


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """`X-API-Key: hub_…` header."""

    def authenticate(self, request):
        raw = request.META.get("HTTP_X_API_KEY")
        if not raw:
            return None
        partner = key_check(raw.strip(), slug=_slug(request))
        return partner, partner.key

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
        partner = key_check(password, slug=_slug(request))
        key = partner.key
        # The user name is part of the credential: a client configured with someone else's
        # name (or none) is told, rather than let in on the password alone.
        if not hmac.compare_digest(user.encode(), key.prefix.encode()):
            raise exceptions.AuthenticationFailed(
                "HTTP Basic user name must be the key's prefix (the 8 characters after "
                "'hub_'), password the whole key")
        return partner, key

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
