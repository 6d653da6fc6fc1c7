"""Datasource state that integrations read: consent lifecycle."""

from __future__ import annotations

import datetime as dt

from django.utils import timezone

from apps.core.models import Datasource


def datasources_expire_consents(*, now: dt.datetime | None = None) -> int:
    """Mark active consents whose expiry has passed as expired; returns how many."""
    return Datasource.objects.filter(
        consent_status=Datasource.Consent.ACTIVE, consent_expires_at__lte=now or timezone.now()
    ).update(consent_status=Datasource.Consent.EXPIRED, updated_at=timezone.now())


def datasource_set_consent(
    *, datasource: Datasource, status: str, expires_at: dt.datetime | None = None
) -> Datasource:
    """Record a consent renewal, revocation or expiry."""
    if status not in Datasource.Consent.values:
        raise ValueError(f"unknown consent status '{status}'")
    datasource.consent_status = status
    datasource.consent_expires_at = expires_at
    datasource.save(update_fields=["consent_status", "consent_expires_at", "updated_at"])
    return datasource
