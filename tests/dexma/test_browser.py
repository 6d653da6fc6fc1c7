"""In headless Chromium: the platform's page frames the hub's creation page from an allowed
origin, and the frame works; from any other origin the browser refuses the frame."""

import os
import time

import pytest

from apps.dexma.models import DexmaDatasource
from apps.sandbox.dexma.models import PlatformDatasource, PlatformDeployment
from apps.sandbox.dexma.platform import platform_install

from .cdp import CHROMIUM, Browser

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.slow,
    pytest.mark.skipif(not os.path.exists(CHROMIUM), reason="chromium is not installed"),
]


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


def frame_session(browser, timeout=15):
    event = browser.wait_for(
        lambda e: e.get("method") == "Target.attachedToTarget"
        and e["params"]["targetInfo"]["type"] == "iframe", timeout=timeout)
    return event["params"]["sessionId"] if event else None


def test_platform_origin_frames_the_new_page_and_the_form_creates_a_datasource(hub):
    page = f"http://localhost:{hub}/sandbox/dexma/platform/?dep=acme&view=new&lang=es_ES"
    with Browser() as browser:
        browser.open_page(page)
        frame = frame_session(browser)
        assert frame, "the hub's page was not framed"
        browser.send("Runtime.enable", session=frame)
        deadline = time.monotonic() + 15
        while not browser.evaluate("!!document.querySelector('form input[name=name]')", frame):
            assert time.monotonic() < deadline, "the framed form never appeared"
            time.sleep(0.1)
        assert browser.evaluate("location.origin", frame) == f"http://127.0.0.1:{hub}"
        assert browser.evaluate("document.documentElement.lang", frame) == "es"
        browser.evaluate("""
            document.querySelector('input[name=name]').value = 'Sede Madrid';
            document.querySelector('input[name=device]').checked = true;
            document.querySelector('form').requestSubmit();
        """, frame)
        deadline = time.monotonic() + 20
        while not DexmaDatasource.objects.exclude(platform_id=None).exists():
            assert time.monotonic() < deadline, "no datasource was created"
            time.sleep(0.2)
    assert PlatformDatasource.objects.get().name == "Sede Madrid"


def test_another_origin_is_refused_the_frame(hub):
    page = f"http://evil.test:{hub}/sandbox/dexma/platform/?dep=acme&view=new"
    with Browser("--host-resolver-rules=MAP evil.test 127.0.0.1") as browser:
        main = browser.open_page(page)
        # The platform page loaded and asked for the frame (so this test can fail)…
        assert browser.evaluate("!!document.getElementById('app-frame')", main)
        frame = frame_session(browser)
        assert frame, "the page did not even try to frame the hub"
        browser.send("Runtime.enable", session=frame)
        committed = "location.href !== 'about:blank' && document.readyState === 'complete'"
        deadline = time.monotonic() + 10
        while not browser.evaluate(committed, frame):
            assert time.monotonic() < deadline, "the frame never committed a document"
            time.sleep(0.1)
        # …but the browser put its error page in the frame instead of the hub's document.
        assert browser.evaluate("location.origin", frame) != f"http://127.0.0.1:{hub}"
        assert browser.evaluate("location.href", frame).startswith("chrome-error://")
        assert not browser.evaluate("!!document.querySelector('form')", frame)
