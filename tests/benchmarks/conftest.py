import pytest


@pytest.fixture(autouse=True)
def _clear_cache():
    """Benchmarks never use the cache: leave the shared Redis alone (overrides tests/conftest)."""
    yield
