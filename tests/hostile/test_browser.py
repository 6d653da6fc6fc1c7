"""CORS as a browser enforces it, in headless Chromium against a live hub.

Framing (CSP frame-ancestors) is proven in tests/dexma/test_browser.py: the platform origin
frames the creation page and the form works; another origin gets the browser's error page.
The header-level checks of both are in tests/dexma/test_pages.py.
"""

from __future__ import annotations

import json
import os

import pytest

from tests.dexma.cdp import CHROMIUM, Browser

from .conftest import World

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed"),
]

FETCH = """fetch(%s, {method: %s, mode: 'cors'}).then(
    async r => ({read: true, status: r.status, body: await r.text()}),
    e => ({read: false, error: String(e)}))"""


@pytest.fixture
def hub(live_server, settings, world: World):
    port = live_server.url.rsplit(":", 1)[1]
    settings.DEXMA_PLATFORM_ORIGINS = [f"http://localhost:{port}"]
    settings.ALLOWED_HOSTS = ["*"]
    return port


def page_at(browser: Browser, url: str) -> str:
    """A tab at `url` whose own CSP is bypassed, so that only CORS decides what it may read."""
    target = browser.send("Target.createTarget", {"url": "about:blank"})["targetId"]
    session = browser.send("Target.attachToTarget", {"targetId": target,
                                                     "flatten": True})["sessionId"]
    browser.send("Page.enable", session=session)
    browser.send("Runtime.enable", session=session)
    browser.send("Page.setBypassCSP", {"enabled": True}, session=session)
    browser.send("Page.navigate", {"url": url}, session=session)
    browser.wait_for(lambda e: e.get("method") == "Page.loadEventFired"
                     and e.get("sessionId") == session)
    return session


def fetch(browser: Browser, session: str, url: str, method: str = "GET") -> dict:
    return browser.evaluate(FETCH % (json.dumps(url), json.dumps(method)), session)


def test_cors_lets_the_platform_origin_read_and_refuses_another(hub, world):
    hub_url = f"http://127.0.0.1:{hub}"
    acme = world.acme
    delete_ours = f"{hub_url}/dexma/datasources/260?dep_token={acme.dep_token}"
    with Browser("--host-resolver-rules=MAP evil.test 127.0.0.1") as browser:
        platform = page_at(browser, f"http://localhost:{hub}/healthz")
        assert browser.evaluate("location.origin", platform) == f"http://localhost:{hub}"
        ping = fetch(browser, platform, f"{hub_url}/dexma/ping")
        assert ping == {"read": True, "status": 200, "body": "pong"}
        # A preflighted method: the platform's DELETE of an unknown datasource gets through
        # the preflight and is answered by the hub.
        unknown = fetch(browser, platform,
                        f"{hub_url}/dexma/datasources/999?dep_token={acme.dep_token}", "DELETE")
        assert unknown["read"] and unknown["status"] == 404
        # The platform origin does not open the partner API.
        api = fetch(browser, platform, f"{hub_url}/api/v1/assets/")
        assert not api["read"], api

        evil = page_at(browser, f"http://evil.test:{hub}/healthz")
        assert browser.evaluate("location.origin", evil) == f"http://evil.test:{hub}"
        refused = fetch(browser, evil, f"{hub_url}/dexma/ping")
        assert not refused["read"] and "Failed to fetch" in refused["error"], refused
        # The preflight is refused, so the DELETE itself is never sent.
        blocked = fetch(browser, evil, delete_ours, "DELETE")
        assert not blocked["read"], blocked
    from apps.dexma.models import DexmaDatasource

    assert DexmaDatasource.objects.filter(pk=acme.datasource.pk).exists()
