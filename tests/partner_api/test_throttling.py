import pytest

pytestmark = pytest.mark.django_db


def test_every_answer_carries_rate_limit_headers(deployment, make_key, client_for):
    _, raw = make_key(deployment, rate=5)
    response = client_for(raw).get("/api/v1/assets/")
    assert response.headers["X-RateLimit-Limit"] == "5"
    assert response.headers["X-RateLimit-Remaining"] == "4"
    assert 0 < int(response.headers["X-RateLimit-Reset"]) <= 60


def test_over_the_limit_answers_429_with_retry_after(deployment, make_key, client_for):
    _, raw = make_key(deployment, rate=3)
    client = client_for(raw)
    statuses = [client.get("/api/v1/assets/").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    response = client.get("/api/v1/assets/")
    assert response.status_code == 429
    assert response.json()["error"]["code"] == "throttled"
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert response.headers["X-RateLimit-Remaining"] == "0"


def test_the_limit_is_per_key(deployment, make_key, client_for):
    _, first = make_key(deployment, rate=1)
    _, second = make_key(deployment, rate=1)
    assert client_for(first).get("/api/v1/assets/").status_code == 200
    assert client_for(first).get("/api/v1/assets/").status_code == 429
    assert client_for(second).get("/api/v1/assets/").status_code == 200
