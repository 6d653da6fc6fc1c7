"""Behaviour of the HTTP client base every platform integration uses."""

from __future__ import annotations

import base64
import logging
import math
import pickle
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
import responses
from django.core.cache import cache
from urllib3.exceptions import MaxRetryError, NewConnectionError

from apps.core.http import (
    ApiClient,
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    ClientCredentialsAuth,
    OAuthToken,
    PasswordGrantAuth,
    PermanentError,
    RateLimitBudget,
    RetryPolicy,
    TransientError,
    backoff_delay,
    parse_retry_after,
    response_json,
)
from tests.fakes import FakeTime

BASE = "https://api.example.test/v1"
TOKEN_URL = "https://auth.example.test/oauth/token"
NOON = datetime(2024, 1, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def fake() -> FakeTime:
    return FakeTime(start=NOON.timestamp())


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as rsps:
        yield rsps


def make_client(fake: FakeTime, **kwargs: Any) -> ApiClient:
    """`ApiClient` on fake time; `max_retries=`, `max_wait=` … set its `RetryPolicy`."""
    kwargs.setdefault("name", "acme")
    fields = RetryPolicy.__dataclass_fields__
    retry = RetryPolicy(**{k: kwargs.pop(k) for k in list(kwargs) if k in fields})
    return ApiClient(BASE, sleep=fake.sleep, clock=fake.clock, rng=lambda: 0.5, retry=retry,
                     **kwargs)


def client_credentials(fake: FakeTime, **kwargs: Any) -> ClientCredentialsAuth:
    return ClientCredentialsAuth(
        TOKEN_URL, "cid", "csecret", sleep=fake.sleep, clock=fake.clock, **kwargs
    )


def token_reply(mocked: responses.RequestsMock, access: str, **extra: Any) -> None:
    mocked.post(TOKEN_URL, json={"access_token": access, "expires_in": 3600, **extra})


def form(call: Any) -> dict[str, list[str]]:
    return parse_qs(call.request.body)


def calls_to(mocked: responses.RequestsMock, url: str) -> list[Any]:
    return [c for c in mocked.calls if c.request.url.split("?")[0] == url]


# --- retries ----------------------------------------------------------------------------------


def test_503_is_retried_with_exponential_backoff_until_success(fake, mocked):
    mocked.get(f"{BASE}/meters", status=503)
    mocked.get(f"{BASE}/meters", status=503)
    mocked.get(f"{BASE}/meters", json=[{"id": 1}])

    response = make_client(fake).get("/meters")

    assert response.json() == [{"id": 1}]
    assert fake.sleeps == [0.25, 0.5]  # rng 0.5 x base 0.5 x 2**attempt
    assert len(mocked.calls) == 3


def test_retries_are_counted(fake, mocked):
    mocked.get(f"{BASE}/meters", status=502)
    mocked.get(f"{BASE}/meters", status=200)
    client = make_client(fake)

    client.get("/meters")

    assert client.counters == {"retries": 1, "rate_limited": 0}


def test_429_with_retry_after_seconds_waits_that_many_seconds(fake, mocked):
    mocked.get(f"{BASE}/meters", status=429, headers={"Retry-After": "7"})
    mocked.get(f"{BASE}/meters", status=200)
    client = make_client(fake)

    client.get("/meters")

    assert fake.sleeps == [7.0]
    assert client.counters["rate_limited"] == 1


def test_429_with_retry_after_http_date_waits_until_that_date(fake, mocked):
    mocked.get(
        f"{BASE}/meters", status=429, headers={"Retry-After": "Mon, 01 Jan 2024 12:00:42 GMT"}
    )
    mocked.get(f"{BASE}/meters", status=200)

    make_client(fake).get("/meters")

    assert fake.sleeps == [42.0]


def test_retry_after_beyond_max_wait_raises_transient_error_instead_of_sleeping(fake, mocked):
    mocked.get(f"{BASE}/meters", status=429, headers={"Retry-After": "3600"})

    with pytest.raises(TransientError) as excinfo:
        make_client(fake, max_wait=60).get("/meters")

    assert excinfo.value.retry_after == 3600
    assert excinfo.value.status_code == 429
    assert fake.sleeps == []


def test_exhausted_retries_raise_transient_error(fake, mocked):
    for _ in range(3):
        mocked.get(f"{BASE}/meters", status=503, body="maintenance")

    with pytest.raises(TransientError) as excinfo:
        make_client(fake, max_retries=2).get("/meters")

    assert excinfo.value.status_code == 503
    assert excinfo.value.body == "maintenance"
    assert "gave up after 3 attempts" in str(excinfo.value)
    assert len(mocked.calls) == 3
    assert len(fake.sleeps) == 2


def test_400_raises_permanent_error_without_retrying(fake, mocked):
    mocked.get(f"{BASE}/meters", status=400, body="unknown field 'foo'")

    with pytest.raises(PermanentError) as excinfo:
        make_client(fake).get("/meters")

    assert excinfo.value.status_code == 400
    assert "unknown field 'foo'" in str(excinfo.value)
    assert len(mocked.calls) == 1
    assert fake.sleeps == []


def test_403_message_names_the_request_and_says_what_to_do(fake, mocked):
    mocked.post(f"{BASE}/readings", status=403, body="forbidden")

    with pytest.raises(PermanentError) as excinfo:
        make_client(fake).post("/readings", json={})

    assert str(excinfo.value) == (
        f"POST {BASE}/readings answered 403: forbidden; check the credentials of this link"
    )
    assert excinfo.value.url == f"{BASE}/readings"


def test_error_message_quotes_at_most_300_characters_of_the_body(fake, mocked):
    mocked.get(f"{BASE}/meters", status=422, body="x" * 1000)

    with pytest.raises(PermanentError) as excinfo:
        make_client(fake).get("/meters")

    assert "x" * 300 in str(excinfo.value)
    assert "x" * 301 not in str(excinfo.value)


def test_connection_error_is_retried(fake, mocked):
    mocked.get(f"{BASE}/meters", body=requests.ConnectionError("connection refused"))
    mocked.get(f"{BASE}/meters", status=200)

    assert make_client(fake).get("/meters").status_code == 200
    assert fake.sleeps == [0.25]


def test_timeouts_exhausting_retries_raise_transient_error(fake, mocked):
    for _ in range(2):
        mocked.get(f"{BASE}/meters", body=requests.ReadTimeout("read timed out"))

    with pytest.raises(TransientError) as excinfo:
        make_client(fake, max_retries=1).get("/meters")

    assert excinfo.value.status_code is None
    assert "ReadTimeout" in str(excinfo.value)


# --- what the retry policy lets be repeated ----------------------------------------------------

CAREFUL = {"repeat_unanswered": False, "repeat_server_errors": False}


def refused() -> requests.ConnectionError:
    """What requests raises when nothing listens: urllib3's NewConnectionError inside."""
    reason = NewConnectionError(None, "Failed to establish a new connection: refused")
    return requests.ConnectionError(MaxRetryError(None, f"{BASE}/packets", reason))


def test_a_post_whose_answer_was_lost_is_raised_unrepeated_when_it_may_have_arrived(
        fake, mocked):
    mocked.post(f"{BASE}/packets", body=requests.ReadTimeout("read timed out"))

    with pytest.raises(TransientError) as excinfo:
        make_client(fake, **CAREFUL).post("/packets", json={})

    assert excinfo.value.may_have_arrived and excinfo.value.attempts == 1
    assert len(mocked.calls) == 1 and fake.sleeps == []


def test_a_5xx_to_a_post_is_raised_unrepeated_when_it_may_have_arrived(fake, mocked):
    mocked.post(f"{BASE}/packets", status=503)

    with pytest.raises(TransientError) as excinfo:
        make_client(fake, **CAREFUL).post("/packets", json={})

    assert excinfo.value.may_have_arrived and len(mocked.calls) == 1


def test_a_5xx_to_a_get_is_repeated_whatever_the_policy_says_of_posts(fake, mocked):
    mocked.get(f"{BASE}/meters", status=503)
    mocked.get(f"{BASE}/meters", status=200)

    assert make_client(fake, **CAREFUL).get("/meters").status_code == 200


def test_a_connection_that_never_opened_is_repeated_even_for_a_careful_post(fake, mocked):
    mocked.post(f"{BASE}/packets", body=refused())
    mocked.post(f"{BASE}/packets", body=requests.ConnectTimeout("connect timed out"))
    mocked.post(f"{BASE}/packets", status=201)

    assert make_client(fake, **CAREFUL).post("/packets", json={}).status_code == 201
    assert fake.sleeps == [0.25, 0.5]


def test_a_request_sent_again_after_a_check_waits_retry_after_and_counts_on(fake, mocked):
    mocked.post(f"{BASE}/packets", status=503, headers={"Retry-After": "7"})
    mocked.post(f"{BASE}/packets", status=503)
    client = make_client(fake, max_retries=2, **CAREFUL)

    with pytest.raises(TransientError) as first:
        client.post("/packets", json={})
    with pytest.raises(TransientError) as second:
        client.post("/packets", json={}, after=first.value)  # the caller saw it did not arrive

    assert fake.sleeps == [7.0]  # Retry-After exactly, not a backoff
    assert second.value.attempts == 2 and second.value.may_have_arrived
    mocked.post(f"{BASE}/packets", status=503)
    with pytest.raises(TransientError) as third:
        client.post("/packets", json={}, after=second.value)
    with pytest.raises(TransientError, match="gave up after 3 attempts"):
        client.post("/packets", json={}, after=third.value)
    assert len(mocked.calls) == 3


def test_statuses_the_policy_names_transient_are_retried_and_others_are_not(fake, mocked):
    mocked.get(f"{BASE}/meters", status=408)
    mocked.get(f"{BASE}/meters", status=501)
    client = make_client(fake, transient_statuses=frozenset({408}))

    with pytest.raises(PermanentError) as excinfo:
        client.get("/meters")

    assert excinfo.value.status_code == 501 and len(mocked.calls) == 2


def test_every_request_is_sent_with_the_configured_timeout(fake, mocked):
    mocked.get(f"{BASE}/meters", status=200)

    make_client(fake, timeout=(3, 10)).get("/meters")

    assert mocked.calls[0].request.req_kwargs["timeout"] == (3, 10)


def test_retry_log_names_the_client_and_hides_query_secrets(fake, mocked, caplog):
    mocked.get(f"{BASE}/meters", status=503)
    mocked.get(f"{BASE}/meters", status=200)

    with caplog.at_level(logging.WARNING, logger="apps.core.http"):
        make_client(fake).get("/meters?api_key=SECRET&from=2024")

    assert "acme: GET" in caplog.text
    assert "api_key=***" in caplog.text
    assert "from=2024" in caplog.text
    assert "503" in caplog.text
    assert "SECRET" not in caplog.text


def test_malformed_json_body_is_permanent_error(fake, mocked):
    mocked.get(f"{BASE}/meters", body="<html>oops</html>")
    response = make_client(fake).get("/meters")

    with pytest.raises(PermanentError, match="malformed JSON"):
        response_json(response)


@pytest.mark.parametrize("body, content_type, expected", [
    ('{"data": [{"v": 1.5}], "n": 2}', "application/json", {"data": [{"v": 1.5}], "n": 2}),
    # A record's NaN is the record's problem (quarantined alone), not a broken page; an
    # integer beyond 64 bits (an id) stays exact (orjson, tried here, reads it as a float).
    ('{"data": [{"v": NaN}, {"v": 2.0}]}', "application/json", None),
    ('{"n": 123456789012345678901234567890}', "application/json",
     {"n": 123456789012345678901234567890}),
    # A body in another declared charset is decoded in that charset.
    ('{"name": "Caf\u00e9"}'.encode().decode("unicode_escape").encode("latin-1"),
     "application/json; charset=latin-1", {"name": "Caf\u00e9".encode().decode("unicode_escape")}),
])
def test_json_bodies_decode_as_the_standard_parser_would(fake, mocked, body, content_type,
                                                         expected):
    mocked.get(f"{BASE}/meters", body=body, content_type=content_type)
    response = make_client(fake).get("/meters")

    decoded = response_json(response)

    if expected is None:  # NaN: compare what can be compared
        assert math.isnan(decoded["data"][0]["v"]) and decoded["data"][1]["v"] == 2.0
    else:
        assert decoded == expected


# --- OAuth2 -----------------------------------------------------------------------------------


def test_401_refreshes_the_token_and_repeats_the_request_once(fake, mocked):
    token_reply(mocked, "first")
    token_reply(mocked, "second")
    mocked.get(f"{BASE}/meters", status=401)
    mocked.get(f"{BASE}/meters", status=200)

    make_client(fake, auth=client_credentials(fake)).get("/meters")

    assert len(calls_to(mocked, TOKEN_URL)) == 2
    api_calls = calls_to(mocked, f"{BASE}/meters")
    assert [c.request.headers["Authorization"] for c in api_calls] == [
        "Bearer first",
        "Bearer second",
    ]


def test_second_401_after_refreshing_is_permanent_error(fake, mocked):
    token_reply(mocked, "first")
    token_reply(mocked, "second")
    mocked.get(f"{BASE}/meters", status=401)
    mocked.get(f"{BASE}/meters", status=401)

    with pytest.raises(PermanentError, match="check the credentials"):
        make_client(fake, auth=client_credentials(fake)).get("/meters")

    assert len(calls_to(mocked, f"{BASE}/meters")) == 2


def test_401_with_a_static_credential_is_permanent_error_without_retry(fake, mocked):
    mocked.get(f"{BASE}/meters", status=401)

    with pytest.raises(PermanentError):
        make_client(fake, auth=BearerAuth("static")).get("/meters")

    assert len(mocked.calls) == 1


def test_oauth_token_is_shared_by_two_clients_through_the_cache(fake, mocked):
    token_reply(mocked, "shared")
    mocked.get(f"{BASE}/meters", status=200)

    make_client(fake, auth=client_credentials(fake)).get("/meters")
    make_client(fake, auth=client_credentials(fake)).get("/meters")

    assert len(calls_to(mocked, TOKEN_URL)) == 1
    assert all(
        c.request.headers["Authorization"] == "Bearer shared"
        for c in calls_to(mocked, f"{BASE}/meters")
    )


def test_oauth_token_is_reused_while_more_than_a_tenth_of_its_lifetime_remains(fake, mocked):
    token_reply(mocked, "first")
    auth = client_credentials(fake)

    auth.access_token()
    fake.now += 3600 - 400
    assert auth.access_token() == "first"

    assert len(calls_to(mocked, TOKEN_URL)) == 1


def test_oauth_token_is_refreshed_before_it_expires(fake, mocked):
    token_reply(mocked, "first")
    token_reply(mocked, "second")
    auth = client_credentials(fake)

    auth.access_token()
    fake.now += 3600 - 300  # 300 s left < 10% of 3600 s
    assert auth.access_token() == "second"


def test_refresh_margin_is_at_least_thirty_seconds(fake, mocked):
    mocked.post(TOKEN_URL, json={"access_token": "first", "expires_in": 100})
    mocked.post(TOKEN_URL, json={"access_token": "second", "expires_in": 100})
    auth = client_credentials(fake)

    auth.access_token()
    fake.now += 100 - 31
    assert auth.access_token() == "first"
    fake.now += 2
    assert auth.access_token() == "second"


def test_very_short_lived_token_is_reused_for_half_its_lifetime(fake, mocked):
    mocked.post(TOKEN_URL, json={"access_token": "brief", "expires_in": 20})
    auth = client_credentials(fake)

    auth.access_token()
    fake.now += 9
    assert auth.access_token() == "brief"
    assert len(mocked.calls) == 1


def test_client_credentials_grant_posts_a_form(fake, mocked):
    token_reply(mocked, "tok")

    client_credentials(fake, scope="read").access_token()

    request = mocked.calls[0].request
    assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert form(mocked.calls[0]) == {
        "grant_type": ["client_credentials"],
        "client_id": ["cid"],
        "client_secret": ["csecret"],
        "scope": ["read"],
    }


def test_client_secret_can_be_sent_with_basic_auth(fake, mocked):
    token_reply(mocked, "tok")

    client_credentials(fake, client_auth="basic").access_token()

    request = mocked.calls[0].request
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"cid:csecret").decode()
    assert "client_secret" not in form(mocked.calls[0])


def test_password_grant_sends_username_and_password(fake, mocked):
    token_reply(mocked, "tok")
    auth = PasswordGrantAuth(
        TOKEN_URL, "cid", "csecret", "alice", "s3cret", clock=fake.clock, sleep=fake.sleep
    )

    assert auth.access_token() == "tok"
    sent = form(mocked.calls[0])
    assert sent["grant_type"] == ["password"]
    assert sent["username"] == ["alice"]
    assert sent["password"] == ["s3cret"]


def test_password_grant_tokens_are_cached_per_username(fake, mocked):
    token_reply(mocked, "alice-token")
    token_reply(mocked, "bob-token")

    def grant(user: str) -> PasswordGrantAuth:
        return PasswordGrantAuth(TOKEN_URL, "cid", "cs", user, "pw", clock=fake.clock)

    assert grant("alice").access_token() == "alice-token"
    assert grant("bob").access_token() == "bob-token"


def test_refresh_token_grant_is_used_and_on_token_gets_the_rotated_token(fake, mocked):
    token_reply(mocked, "a1", refresh_token="r1")
    token_reply(mocked, "a2", refresh_token="r2")
    seen: list[OAuthToken] = []
    auth = PasswordGrantAuth(
        TOKEN_URL, "cid", "cs", "alice", "pw", on_token=seen.append, clock=fake.clock
    )

    auth.access_token()
    fake.now += 3500
    assert auth.access_token() == "a2"

    sent = form(mocked.calls[1])
    assert sent["grant_type"] == ["refresh_token"]
    assert sent["refresh_token"] == ["r1"]
    assert "password" not in sent
    assert [t.refresh_token for t in seen] == ["r1", "r2"]


def test_refused_refresh_token_falls_back_to_the_full_grant(fake, mocked):
    token_reply(mocked, "a1", refresh_token="r1")
    mocked.post(TOKEN_URL, status=400, json={"error": "invalid_grant"})
    token_reply(mocked, "a2")
    auth = client_credentials(fake)

    auth.access_token()
    fake.now += 3500
    assert auth.access_token() == "a2"

    assert form(mocked.calls[2])["grant_type"] == ["client_credentials"]


def test_a_stored_refresh_token_can_seed_the_first_fetch(fake, mocked):
    token_reply(mocked, "a1")

    client_credentials(fake, refresh_token="persisted").access_token()

    assert form(mocked.calls[0])["refresh_token"] == ["persisted"]


def test_token_endpoint_refusal_is_permanent_error(fake, mocked):
    mocked.post(TOKEN_URL, status=401, json={"error": "invalid_client"})

    with pytest.raises(PermanentError, match="token endpoint refused the credentials"):
        client_credentials(fake).access_token()


def test_token_endpoint_5xx_is_transient_error(fake, mocked):
    mocked.post(TOKEN_URL, status=502)

    with pytest.raises(TransientError):
        client_credentials(fake).access_token()


def test_unreachable_token_endpoint_is_transient_error(fake, mocked):
    mocked.post(TOKEN_URL, body=requests.ConnectionError("no route"))

    with pytest.raises(TransientError, match="unreachable"):
        client_credentials(fake).access_token()


def test_token_reply_without_access_token_is_permanent_error(fake, mocked):
    mocked.post(TOKEN_URL, json={"error": "nope"})

    with pytest.raises(PermanentError, match="without an access_token"):
        client_credentials(fake).access_token()


def test_invalidate_drops_the_cached_token(fake, mocked):
    token_reply(mocked, "first")
    token_reply(mocked, "second")
    auth = client_credentials(fake)

    auth.access_token()
    auth.invalidate()

    assert auth.access_token() == "second"


def test_while_another_worker_refreshes_a_still_valid_token_is_used(fake, mocked):
    token_reply(mocked, "first")
    auth = client_credentials(fake)
    auth.access_token()
    fake.now += 3500  # due for refresh but not expired
    cache.add(auth.cache_key + ":lock", "1")  # another worker holds the refresh lock

    assert auth.access_token() == "first"
    assert len(mocked.calls) == 1


def test_without_a_valid_token_a_worker_waits_for_the_refreshing_one(fake, mocked):
    auth = client_credentials(fake)
    cache.add(auth.cache_key + ":lock", "1")
    other = client_credentials(fake)

    def other_worker_finishes() -> None:
        cache.set(
            other.cache_key,
            {"access_token": "theirs", "expires_at": fake.now + 3600, "lifetime": 3600},
        )

    fake.observe = other_worker_finishes

    assert auth.access_token() == "theirs"
    assert fake.sleeps == [0.25]
    assert len(mocked.calls) == 0


# --- static credentials -----------------------------------------------------------------------


def test_api_key_in_header(fake, mocked):
    mocked.get(f"{BASE}/meters", status=200)

    make_client(fake, auth=ApiKeyAuth("x-dexcell-token", "k3y")).get("/meters")

    assert mocked.calls[0].request.headers["x-dexcell-token"] == "k3y"


def test_api_key_in_query_keeps_the_other_parameters(fake, mocked):
    mocked.get(f"{BASE}/meters", status=200)

    auth = ApiKeyAuth("apikey", "k3y", location="query")
    make_client(fake, auth=auth).get("/meters", params={"page": 2})

    query = parse_qs(urlsplit(mocked.calls[0].request.url).query)
    assert query == {"apikey": ["k3y"], "page": ["2"]}


def test_caller_headers_are_not_mutated_by_auth(fake, mocked):
    mocked.get(f"{BASE}/meters", status=200)
    headers = {"Accept": "text/csv"}

    make_client(fake, auth=ApiKeyAuth("X-Key", "k3y")).get("/meters", headers=headers)

    assert headers == {"Accept": "text/csv"}
    assert mocked.calls[0].request.headers["Accept"] == "text/csv"


def test_basic_auth_header(fake, mocked):
    mocked.get(f"{BASE}/meters", status=200)

    make_client(fake, auth=BasicAuth("user", "pä:ss")).get("/meters")

    expected = base64.b64encode("user:pä:ss".encode()).decode()
    assert mocked.calls[0].request.headers["Authorization"] == f"Basic {expected}"


def test_bearer_template_and_header(fake, mocked):
    mocked.get(f"{BASE}/meters", status=200)

    auth = BearerAuth("t0k", header="X-Auth", template="Token token={token}")
    make_client(fake, auth=auth).get("/meters")

    assert mocked.calls[0].request.headers["X-Auth"] == "Token token=t0k"


# --- rate-limit budget ------------------------------------------------------------------------


def test_exhausted_hourly_budget_waits_for_the_reset_before_the_next_request(fake, mocked):
    mocked.get(
        f"{BASE}/meters",
        headers={"X-Ratelimit-Hour-Remaining": "0", "X-Ratelimit-Hour-Reset": "30"},
    )
    mocked.get(f"{BASE}/meters", status=200)
    client = make_client(fake)
    fake.observe = lambda: len(mocked.calls)

    client.get("/meters")
    client.get("/meters")

    assert fake.sleeps == [30.0]
    assert fake.observed == [1]  # slept before the second request went out
    assert client.counters["rate_limited"] == 1


def test_budget_wait_beyond_max_wait_raises_transient_error_with_retry_after(fake, mocked):
    mocked.get(
        f"{BASE}/meters",
        headers={"X-Ratelimit-Day-Remaining": "0", "X-Ratelimit-Day-Reset": "7200"},
    )
    client = make_client(fake, max_wait=60)
    client.get("/meters")

    with pytest.raises(TransientError) as excinfo:
        client.get("/meters")

    assert excinfo.value.retry_after == 7200
    assert len(mocked.calls) == 1
    assert fake.sleeps == []


def test_remaining_budget_above_the_reserve_does_not_wait(fake, mocked):
    mocked.get(
        f"{BASE}/meters",
        headers={"X-Ratelimit-Hour-Remaining": "2", "X-Ratelimit-Hour-Reset": "30"},
    )
    mocked.get(f"{BASE}/meters", status=200)
    client = make_client(fake, reserve=1)

    client.get("/meters")
    client.get("/meters")

    assert fake.sleeps == []


def test_remaining_budget_at_the_reserve_waits(fake, mocked):
    mocked.get(
        f"{BASE}/meters",
        headers={"X-Ratelimit-Hour-Remaining": "1", "X-Ratelimit-Hour-Reset": "30"},
    )
    mocked.get(f"{BASE}/meters", status=200)
    client = make_client(fake, reserve=1)

    client.get("/meters")
    client.get("/meters")

    assert fake.sleeps == [30.0]


def test_budget_is_shared_by_clients_with_the_same_name_and_budget_key(fake, mocked):
    mocked.get(
        f"{BASE}/meters",
        headers={"X-Ratelimit-Hour-Remaining": "0", "X-Ratelimit-Hour-Reset": "30"},
    )
    mocked.get(f"{BASE}/meters", status=200)

    make_client(fake, name="dexma", budget_key="k1").get("/meters")
    make_client(fake, name="dexma", budget_key="k1").get("/meters")

    assert fake.sleeps == [30.0]


def test_budget_is_not_shared_across_budget_keys(fake, mocked):
    mocked.get(
        f"{BASE}/meters",
        headers={"X-Ratelimit-Hour-Remaining": "0", "X-Ratelimit-Hour-Reset": "30"},
    )
    mocked.get(f"{BASE}/meters", status=200)

    make_client(fake, name="dexma", budget_key="k1").get("/meters")
    make_client(fake, name="dexma", budget_key="k2").get("/meters")

    assert fake.sleeps == []


@pytest.mark.parametrize(
    ("remaining_header", "reset_header"),
    [
        ("X-RateLimit-Remaining", "X-RateLimit-Reset"),
        ("ratelimit-remaining", "ratelimit-reset"),
    ],
)
def test_common_and_ietf_rate_limit_headers_are_honoured(
    fake, mocked, remaining_header, reset_header
):
    mocked.get(f"{BASE}/meters", headers={remaining_header: "0", reset_header: "12"})
    mocked.get(f"{BASE}/meters", status=200)
    client = make_client(fake)

    client.get("/meters")
    client.get("/meters")

    assert fake.sleeps == [12.0]


def test_reset_given_as_unix_timestamp_is_converted_to_a_delay(fake, mocked):
    reset_at = int(fake.now) + 20
    mocked.get(
        f"{BASE}/meters",
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(reset_at)},
    )
    mocked.get(f"{BASE}/meters", status=200)
    client = make_client(fake)

    client.get("/meters")
    client.get("/meters")

    assert fake.sleeps == [20.0]


def test_budget_cache_key_never_contains_the_budget_key():
    budget = RateLimitBudget("dexma", "raw-token-value")

    assert "raw-token-value" not in budget.cache_key


def test_budget_fails_open_while_the_cache_is_down(cache_down, caplog):
    """Redis returns empty after an outage anyway; meanwhile requests go on, and a platform
    that is overrun still answers 429 with Retry-After, which the client honours."""
    budget = RateLimitBudget("dexma", "token")

    budget.record({"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "60"})

    assert budget.wait_needed() == 0.0
    assert "rate-limit budget not recorded, the cache is unavailable" in caplog.text
    assert "rate-limit budget unknown, the cache is unavailable" in caplog.text


# --- helpers ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("Mon, 01 Jan 2024 12:01:00 GMT", 60.0),
        ("Mon, 01 Jan 2024 11:59:00 GMT", 0.0),
        ("-5", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_retry_after(value, expected):
    assert parse_retry_after(value, now=NOON) == expected


def test_backoff_grows_exponentially_up_to_the_cap():
    def full(attempt: int) -> float:
        return backoff_delay(attempt, base=0.5, cap=60, rng=lambda: 1.0)

    assert [full(a) for a in range(4)] == [0.5, 1.0, 2.0, 4.0]
    assert full(50) == 60


def test_backoff_jitter_spans_zero_to_the_exponential_delay():
    assert backoff_delay(3, base=1, cap=60, rng=lambda: 0.0) == 0.0
    assert backoff_delay(3, base=1, cap=60, rng=lambda: 0.25) == 2.0


def test_429_without_retry_after_waits_once_for_the_advertised_reset(fake, mocked):
    mocked.get(
        f"{BASE}/meters",
        status=429,
        headers={"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "5"},
    )
    mocked.get(f"{BASE}/meters", status=200)

    make_client(fake).get("/meters")

    assert fake.sleeps == [5.0]


def test_errors_keep_their_details_through_pickling():
    error = TransientError("retry later", status_code=503, body="down", retry_after=9, url="u")

    copy = pickle.loads(pickle.dumps(error))  # noqa: S301

    assert (str(copy), copy.status_code, copy.body, copy.retry_after, copy.url) == (
        "retry later",
        503,
        "down",
        9,
        "u",
    )
