"""In headless Chromium: the platform's page frames the hub's creation page from an allowed
origin, and the frame works; from any other origin the browser refuses the frame."""

import time

import pytest
from playwright.sync_api import Frame, Page

from apps.dexma.models import DexmaDatasource
from apps.sandbox.dexma.models import PlatformDatasource, PlatformDeployment
from apps.sandbox.dexma.platform import platform_install
from tests.browser import chromium, needs_chromium

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, needs_chromium]


@pytest.fixture
def hub(live_server, settings, deployment, meters):
    port = live_server.url.rsplit(":", 1)[1]
    base = f"http://127.0.0.1:{port}"
    settings.HUB_BASE_URL = base
    settings.DEXMA_API_URL = f"{base}/sandbox/dexma/v3"
    settings.DEXMA_PLATFORM_ORIGINS = [f"http://localhost:{port}"]
    settings.ALLOWED_HOSTS = ["*"]
    account = PlatformDeployment.objects.create(dep_id=deployment.slug, name=deployment.name)
    ok, said = platform_install(deployment=account)
    assert ok, said
    return port


def app_frame(page: Page, timeout: float = 15) -> Frame | None:
    """The frame the platform page opens for the hub (`#app-frame`), once it has one."""
    handle = page.wait_for_selector("#app-frame", state="attached", timeout=timeout * 1000)
    return handle.content_frame() if handle else None


def test_platform_origin_frames_the_new_page_and_the_form_creates_a_datasource(hub):
    page_url = f"http://localhost:{hub}/sandbox/dexma/platform/?dep=acme&view=new&lang=es_ES"
    with chromium() as browser:
        page = browser.new_page()
        page.goto(page_url)
        frame = app_frame(page)
        assert frame, "the hub's page was not framed"
        frame.wait_for_selector("form input[name=name]", timeout=15_000)
        assert frame.evaluate("location.origin") == f"http://127.0.0.1:{hub}"
        assert frame.evaluate("document.documentElement.lang") == "es"
        frame.evaluate("""() => {
            document.querySelector('input[name=name]').value = 'Sede Madrid';
            document.querySelector('input[name=device]').checked = true;
            document.querySelector('form').requestSubmit();
        }""")
        deadline = time.monotonic() + 20
        while not DexmaDatasource.objects.exclude(platform_id=None).exists():
            assert time.monotonic() < deadline, "no datasource was created"
            page.wait_for_timeout(200)
    assert PlatformDatasource.objects.get().name == "Sede Madrid"


def test_another_origin_is_refused_the_frame(hub):
    page_url = f"http://evil.test:{hub}/sandbox/dexma/platform/?dep=acme&view=new"
    with chromium("--host-resolver-rules=MAP evil.test 127.0.0.1") as browser:
        page = browser.new_page()
        page.goto(page_url)
        # The platform page loaded and asked for the frame (so this test can fail)…
        assert page.evaluate("!!document.getElementById('app-frame')")
        frame = app_frame(page)
        assert frame, "the page did not even try to frame the hub"
        deadline = time.monotonic() + 10
        while frame.url in ("", "about:blank"):
            assert time.monotonic() < deadline, "the frame never committed a document"
            page.wait_for_timeout(100)
        # …but the browser put its error page in the frame instead of the hub's document.
        assert not frame.url.startswith(f"http://127.0.0.1:{hub}")
        assert frame.url.startswith("chrome-error://")
        assert frame.query_selector("form") is None
