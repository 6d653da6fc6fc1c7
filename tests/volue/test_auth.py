"""Client-credentials tokens: fetched once for every worker, refreshed before expires_in runs
out, and one retry after a 401."""

import pytest
import responses

from apps.volue.client import volue_client
from tests.volue.conftest import API, AUTH, calls

pytestmark = pytest.mark.django_db


def _tokens(platform, *replies):
    platform.remove(responses.POST, AUTH)
    for access, lifetime in replies:
        platform.post(AUTH, json={"access_token": access, "expires_in": lifetime})


def _bearers(platform):
    return [c.request.headers["Authorization"] for c in platform.calls
            if c.request.url.startswith(API)]


def test_token_request_sends_client_credentials_form(platform, volue):
    platform.post(f"{API}/users", json={"userId": "u1"}, status=201)

    volue.user_create(user_id="u1")

    body = platform.calls[0].request.body
    assert "grant_type=client_credentials" in body
    assert "client_id=hub" in body and "client_secret=s3cret" in body
    assert _bearers(platform) == ["Bearer tok-1"]


def test_token_is_refreshed_before_expires_in_runs_out_mid_run(platform, fake):
    _tokens(platform, ("tok-1", 600), ("tok-2", 600))
    platform.post(f"{API}/users", json={"userId": "u"}, status=201)
    client = volue_client(sleep=fake.sleep, clock=fake.clock)

    client.user_create(user_id="a")
    fake.now += 300  # still fresh: reused
    client.user_create(user_id="b")
    fake.now += 250  # 50 s left of 600: inside the refresh margin
    client.user_create(user_id="c")

    assert _bearers(platform) == ["Bearer tok-1", "Bearer tok-1", "Bearer tok-2"]
    assert len([c for c in platform.calls if c.request.url == AUTH]) == 2


def test_lifetime_comes_from_expires_in_not_a_hard_coded_30_minutes(platform, fake):
    _tokens(platform, ("short", 120), ("next", 120))
    platform.post(f"{API}/users", json={"userId": "u"}, status=201)
    client = volue_client(sleep=fake.sleep, clock=fake.clock)

    client.user_create(user_id="a")
    fake.now += 100
    client.user_create(user_id="b")

    assert _bearers(platform) == ["Bearer short", "Bearer next"]


def test_token_is_shared_by_every_client_through_the_cache(platform, fake):
    platform.post(f"{API}/users", json={"userId": "u"}, status=201)

    volue_client(sleep=fake.sleep, clock=fake.clock).user_create(user_id="a")
    volue_client(sleep=fake.sleep, clock=fake.clock).user_create(user_id="b")

    assert len([c for c in platform.calls if c.request.url == AUTH]) == 1


def test_401_refreshes_the_token_and_retries_once(platform, fake):
    _tokens(platform, ("revoked", 1800), ("fresh", 1800))
    platform.post(f"{API}/users", status=401)
    platform.post(f"{API}/users", json={"userId": "u"}, status=201)
    client = volue_client(sleep=fake.sleep, clock=fake.clock)

    assert client.user_create(user_id="u") == "u"
    assert _bearers(platform) == ["Bearer revoked", "Bearer fresh"]


def test_second_401_is_a_permanent_error_not_a_loop(platform, fake):
    from apps.core.http import PermanentError

    platform.post(f"{API}/users", status=401)
    client = volue_client(sleep=fake.sleep, clock=fake.clock)

    with pytest.raises(PermanentError):
        client.user_create(user_id="u")
    assert len(calls(platform, "POST", "/users")) == 2
