"""Installation of the DEXMA Market App: the handshake, uninstall, authenticating calls.

Every platform call goes through `DexmaClient`; `client_for` makes one for an installation.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.core.http import HubHTTPError
from apps.core.models import DeliveryLink, Deployment
from apps.dexma.client import DexmaClient, access_token_create, describe_error
from apps.dexma.models import Installation, token_digest
from apps.dexma.services.errors import InstallError, TokenInvalid, TokenMissing

logger = logging.getLogger(__name__)

ClientFactory = Callable[[Installation], DexmaClient]


def client_for(installation: Installation, **kwargs) -> DexmaClient:
    return DexmaClient(installation.token, **kwargs)


def _deployment_for(dep_id: str) -> Deployment:
    """The hub deployment a DEXMA account maps to: the one whose slug is the account id
    (ops can re-point it in the admin), or a new, empty one."""
    slug = slugify(dep_id)[:64] or "dexma"
    deployment, _ = Deployment.objects.get_or_create(slug=slug, defaults={"name": dep_id[:200]})
    return deployment


def installation_install(*, dep_id: str, temp_token: str) -> Installation:
    """The handshake: trade `temp_token` for the permanent token and store it (encrypted).

    A reinstall replaces the old token. A platform failure stores nothing.
    """
    try:
        token = access_token_create(
            app_id=settings.DEXMA_APP_ID, secret=settings.DEXMA_APP_SECRET, temp_token=temp_token
        )
    except HubHTTPError as exc:
        raise InstallError(describe_error(exc)) from exc
    with transaction.atomic():
        installation = Installation.objects.select_for_update().filter(dep_id=dep_id).first()
        if installation is None:
            installation = Installation(dep_id=dep_id, deployment=_deployment_for(dep_id))
        else:
            installation.reinstalled_at = timezone.now()
        installation.set_token(token)
        installation.last_error = ""
        installation.save()
    logger.info("DEXMA app installed for deployment %s", dep_id)
    return installation


def installation_uninstall(*, installation: Installation) -> None:
    """Forget the token and every local trace of the account: datasources, device choices,
    delivery links with their cursors and batches. The hub's readings stay."""
    with transaction.atomic():
        link_ids = list(
            installation.datasources.exclude(link=None).values_list("link_id", flat=True)
        )
        installation.delete()
        DeliveryLink.objects.filter(pk__in=link_ids).delete()
    logger.info("DEXMA app uninstalled for deployment %s", installation.dep_id)


def installation_authenticate(*, dep_token: str | None) -> Installation:
    """The installation a platform call is for, from its `dep_token`.

    The digest finds the candidate; the stored token is then compared in constant time.
    """
    if not dep_token:
        raise TokenMissing("dep_token is required")
    candidate = Installation.objects.select_related("deployment").filter(
        token_digest=token_digest(dep_token)
    ).first()
    stored = candidate.token if candidate is not None else secrets.token_hex(16)
    if not hmac.compare_digest(stored.encode(), dep_token.encode()) or candidate is None:
        raise TokenInvalid("dep_token does not match an installation")
    return candidate
