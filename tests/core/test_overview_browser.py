"""The overview's chart as an ops person sees it, in headless Chromium: the figures the
script draws must not contradict the cards above it."""

from __future__ import annotations

import pytest
from django.test import Client
from django.utils import timezone

from apps.core.models import DailyIngestStat, Quarantine
from apps.core.services.quarantine import Refused, quarantine_add
from tests.browser import chromium, needs_chromium

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, needs_chromium]


def test_the_chart_legend_counts_ingest_rejections_beside_the_open_quarantine(
        live_server, admin_user, deployment):
    DailyIngestStat.objects.create(deployment=deployment, day=timezone.now().date(),
                                   accepted=12, quarantined=1)
    # Open entries the chart's figure does not count: a platform refused two values.
    quarantine_add(source=Quarantine.source_for("dexma", "datasource", 7),
                   deployment_id=deployment.pk,
                   entries=[Refused("refused by the platform", {"value": value})
                            for value in (1, 2)])
    client = Client()
    client.force_login(admin_user)
    session = client.cookies["sessionid"].value
    with chromium() as browser:
        context = browser.new_context()
        context.add_cookies([{"name": "sessionid", "value": session,
                              "url": live_server.url}])
        page = context.new_page()
        page.goto(f"{live_server.url}/admin/")
        page.wait_for_selector("#hub-readings-chart svg")
        legend = page.locator("#hub-readings-chart .legend").inner_text()
        card = page.locator("a[href$='status__exact=open']").inner_text()
    assert "Accepted: 12 in 30 days" in legend
    assert "Rejected at ingest: 1 in 30 days" in legend
    assert "Quarantined" not in legend
    assert card.split() == ["2", "open", "in", "quarantine"]
