"""Times in the admin name their zone: ops read an unmarked time as their own local one."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import formats, translation

from apps.partner_api.models import ApiKey
from apps.partner_api.services import apikey_create

AT = dt.datetime(2026, 12, 2, 16, 5, tzinfo=dt.UTC)


@pytest.mark.parametrize(("language", "expected"), [
    ("en", "Dec. 2, 2026, 4:05 p.m. UTC"),
    ("es", "2 de diciembre de 2026 a las 16:05 UTC"),
])
def test_a_datetime_is_written_with_its_zone(language, expected):
    with translation.override(language):
        assert formats.date_format(AT.astimezone(dt.UTC), "DATETIME_FORMAT") == expected


@pytest.mark.django_db
def test_an_admin_page_shows_a_time_with_its_zone(admin_client, deployment):
    # Dense lists write compact UTC times under a "(UTC)" header; fields Django renders
    # (here a partner key's creation time) use DATETIME_FORMAT.
    key, _ = apikey_create(name="zone check", deployments=[deployment])
    ApiKey.objects.filter(pk=key.pk).update(created_at=AT)
    url = reverse("admin:partner_api_apikey_change", args=[key.pk])
    assert "Dec. 2, 2026, 4:05 p.m. UTC" in admin_client.get(url).content.decode()
