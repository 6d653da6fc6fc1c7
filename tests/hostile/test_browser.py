"""CORS as a browser enforces it, in headless Chromium against a live hub.

Framing (CSP frame-ancestors) is proven in tests/dexma/test_browser.py: the platform origin
frames the creation page and the form works; another origin gets the browser's error page.
The header-level checks of both are in tests/dexma/test_pages.py.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page

from tests.browser import chromium, needs_chromium

from .conftest import World

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, needs_chromium]

FETCH = """([url, method]) => fetch(url, {method, mode: 'cors'}).then(
    async r => ({read: true, status: r.status, body: await r.text()}),
    e => ({read: false, error: String(e)}))"""


@pytest.fixture
def hub(live_server, settings, world: World):
    port = live_server.url.rsplit(":", 1)[1]
    settings.DEXMA_PLATFORM_ORIGINS = [f"http://localhost:{port}"]
    settings.ALLOWED_HOSTS = ["*"]
    return port


def page_at(browser: Browser, url: str) -> Page:
    """A tab at `url` whose own CSP is bypassed, so that only CORS decides what it may read."""
    page = browser.new_context(bypass_csp=True).new_page()
    page.goto(url)
    return page


def fetch(page: Page, url: str, method: str = "GET") -> dict:
    return page.evaluate(FETCH, [url, method])


def test_cors_lets_the_platform_origin_read_and_refuses_another(hub, world):
    hub_url = f"http://127.0.0.1:{hub}"
    acme = world.acme
    delete_ours = f"{hub_url}/dexma/datasources/260?dep_token={acme.dep_token}"
    with chromium("--host-resolver-rules=MAP evil.test 127.0.0.1") as browser:
        platform = page_at(browser, f"http://localhost:{hub}/healthz")
        assert platform.evaluate("location.origin") == f"http://localhost:{hub}"
        ping = fetch(platform, f"{hub_url}/dexma/ping")
        assert ping == {"read": True, "status": 200, "body": "pong"}
        # A preflighted method: the platform's DELETE of an unknown datasource gets through
        # the preflight and is answered by the hub.
        unknown = fetch(platform,
                        f"{hub_url}/dexma/datasources/999?dep_token={acme.dep_token}", "DELETE")
        assert unknown["read"] and unknown["status"] == 404
        # The platform origin does not open the partner API.
        api = fetch(platform, f"{hub_url}/api/v1/assets/")
        assert not api["read"], api

        evil = page_at(browser, f"http://evil.test:{hub}/healthz")
        assert evil.evaluate("location.origin") == f"http://evil.test:{hub}"
        refused = fetch(evil, f"{hub_url}/dexma/ping")
        assert not refused["read"] and "Failed to fetch" in refused["error"], refused
        # The preflight is refused, so the DELETE itself is never sent.
        blocked = fetch(evil, delete_ours, "DELETE")
        assert not blocked["read"], blocked
    from apps.dexma.models import DexmaDatasource

    assert DexmaDatasource.objects.filter(pk=acme.datasource.pk).exists()
