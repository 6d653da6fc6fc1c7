"""A token that goes stale while a request is being retried is refreshed again."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import responses

from apps.core.http import PermanentError
from tests.core.test_http import (
    BASE,
    FakeTime,
    calls_to,
    client_credentials,
    make_client,
    token_reply,
)


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime()


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as rsps:
        yield rsps


def test_token_revoked_during_retries_is_refreshed_again(fake, mocked):
    for access in ("first", "second", "third"):
        token_reply(mocked, access)
    for status in (401, 503, 401, 200):
        mocked.get(f"{BASE}/meters", status=status)

    make_client(fake, auth=client_credentials(fake)).get("/meters")

    used = [c.request.headers["Authorization"] for c in calls_to(mocked, f"{BASE}/meters")]
    assert used == ["Bearer first", "Bearer second", "Bearer second", "Bearer third"]


def test_a_401_right_after_each_refresh_is_still_permanent(fake, mocked):
    for access in ("first", "second", "third"):
        token_reply(mocked, access)
    for status in (401, 503, 401, 401):
        mocked.get(f"{BASE}/meters", status=status)

    with pytest.raises(PermanentError, match="check the credentials"):
        make_client(fake, auth=client_credentials(fake)).get("/meters")

    assert len(calls_to(mocked, f"{BASE}/meters")) == 4
