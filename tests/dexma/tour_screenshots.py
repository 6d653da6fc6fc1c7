"""The README's screenshot tour, taken in the suite's headless Chromium (`make screenshots`):
the admin overview, a DEXMA platform page framing the hub, and the partner API docs.

Not part of `make test` (the file name is outside `test_*.py`): it rewrites docs/tour/*.png.
"""

import base64
import os
import time
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model

from apps.sandbox.dexma.models import PlatformDeployment
from apps.sandbox.dexma.platform import platform_install

from .cdp import CHROMIUM, Browser
from .test_browser import frame_session

OUT = Path(__file__).resolve().parents[2] / "docs" / "tour"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed"),
]


def _until(browser, session, expression: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not browser.evaluate(expression, session):
        assert time.monotonic() < deadline, f"never true: {expression}"
        time.sleep(0.2)


def _shoot(browser, session, name: str) -> Path:
    browser.send("Emulation.setDeviceMetricsOverride", {
        "width": 1280, "height": 800, "deviceScaleFactor": 1, "mobile": False}, session=session)
    time.sleep(0.5)  # a layout pass at the new size
    data = browser.send("Page.captureScreenshot", {"format": "png"}, session=session)["data"]
    path = OUT / f"{name}.png"
    path.write_bytes(base64.b64decode(data))
    return path


def test_tour(live_server, settings, deployment, meters):
    port = live_server.url.rsplit(":", 1)[1]
    base = f"http://127.0.0.1:{port}"
    settings.HUB_BASE_URL = base
    settings.DEXMA_API_URL = f"{base}/sandbox/dexma/v3"
    settings.DEXMA_PLATFORM_ORIGINS = [f"http://localhost:{port}"]
    settings.ALLOWED_HOSTS = ["*"]
    get_user_model().objects.create_superuser("admin", "admin@example.com", "admin")
    account = PlatformDeployment.objects.create(dep_id=deployment.slug, name=deployment.name)
    ok, said = platform_install(deployment=account)
    assert ok, said
    OUT.mkdir(parents=True, exist_ok=True)
    shots = []
    with Browser("--window-size=1280,800") as browser:
        page = browser.open_page(f"{base}/admin/login/?next=/admin/")
        browser.evaluate("""
            document.querySelector('#id_username').value = 'admin';
            document.querySelector('#id_password').value = 'admin';
            document.querySelector('form').requestSubmit();""", page)
        _until(browser, page, "!!document.querySelector('.hub-overview')")
        shots.append(_shoot(browser, page, "admin-overview"))

        page = browser.open_page(
            f"http://localhost:{port}/sandbox/dexma/platform/?dep={deployment.slug}&view=new")
        frame = frame_session(browser)
        assert frame, "the hub's page was not framed"
        browser.send("Runtime.enable", session=frame)
        _until(browser, frame, "!!document.querySelector('form input[name=name]')")
        shots.append(_shoot(browser, page, "dexma-iframe"))

        page = browser.open_page(f"{base}/api/v1/docs/")
        _until(browser, page, "document.querySelectorAll('.opblock').length > 0")
        shots.append(_shoot(browser, page, "api-docs"))
    for path in shots:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
