"""Headless Chromium for the browser tests: Playwright's sync API driving the distribution's
Chromium (`apt-get install chromium`), never a browser Playwright downloads itself."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connections
from playwright.sync_api import Browser, sync_playwright

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-dev-shm-usage")
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                    reason="chromium is not installed")


@contextmanager
def chromium(*extra_args: str) -> Iterator[Browser]:
    """A headless Chromium with the suite's flags and `extra_args`, closed on the way out.

    Playwright's sync API keeps an event loop running in this thread, and Django refuses the
    ORM where one runs; the tests read the database between browser steps (the live server
    answering the browser runs in its own thread), so that check is lifted for the block only.
    Queries in the block run in Playwright's greenlet, on connections of their own: closed at
    the end, or they would hold the test database open.
    """
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=[*ARGS, *extra_args])
            try:
                yield browser
            finally:
                connections.close_all()
                browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous
