"""The README's screenshot tour, taken in the suite's headless Chromium (`make screenshots`):
the admin overview, a DEXMA platform page framing the hub, and the partner API docs.

Not part of `make test` (the file name is outside `test_*.py`): it rewrites docs/tour/*.png.
"""

from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from playwright.sync_api import Page

from apps.sandbox.dexma.models import PlatformDeployment
from apps.sandbox.dexma.platform import platform_install
from tests.browser import chromium, needs_chromium

from .test_browser import app_frame

OUT = Path(__file__).resolve().parents[2] / "docs" / "tour"

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, needs_chromium]


def _shoot(page: Page, name: str) -> Path:
    path = OUT / f"{name}.png"
    page.screenshot(path=path)
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
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        page.goto(f"{base}/admin/login/?next=/admin/")
        page.fill("#id_username", "admin")
        page.fill("#id_password", "admin")
        page.evaluate("document.querySelector('form').requestSubmit()")
        page.wait_for_selector(".hub-overview", timeout=20_000)
        shots.append(_shoot(page, "admin-overview"))

        page.goto(f"http://localhost:{port}/sandbox/dexma/platform/?dep={deployment.slug}&view=new")
        frame = app_frame(page)
        assert frame, "the hub's page was not framed"
        frame.wait_for_selector("form input[name=name]", timeout=20_000)
        shots.append(_shoot(page, "dexma-iframe"))

        page.goto(f"{base}/api/v1/docs/")
        page.wait_for_selector(".opblock", timeout=20_000)
        shots.append(_shoot(page, "api-docs"))
    for path in shots:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
