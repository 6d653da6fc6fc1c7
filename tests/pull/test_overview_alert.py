"""The admin overview names the pull connections whose last sync failed."""

import pytest

from apps.core.models import Run

pytestmark = pytest.mark.django_db


def test_overview_names_failing_connections_and_links_to_them(admin_client, make_connection,
                                                              make_profile):
    failing = make_connection("https://provider.example", make_profile("north"))
    healthy = make_connection("https://provider.example", make_profile("south"))
    type(failing).objects.filter(pk=failing.pk).update(last_status=Run.Status.FAILED)
    type(healthy).objects.filter(pk=healthy.pk).update(last_status=Run.Status.SUCCEEDED)

    page = admin_client.get("/admin/").content.decode()

    assert "1 failing" in page
    assert "pull connection whose last sync failed: Provider north." in page
    assert "Provider south" not in page
    assert "/admin/pull/connection/?last_status__exact=failed&amp;is_enabled__exact=1" in page


def test_overview_shows_no_pull_alert_when_every_connection_is_healthy(admin_client,
                                                                       make_connection,
                                                                       make_profile):
    connection = make_connection("https://provider.example", make_profile("north"))
    type(connection).objects.filter(pk=connection.pk).update(last_status=Run.Status.FAILED,
                                                             is_enabled=False)

    page = admin_client.get("/admin/").content.decode()

    assert "failing" not in page
    assert "whose last sync failed" not in page
