"""schemathesis over the partner API's whole OpenAPI schema, reads and writes, with data that
fits the schema and data that breaks it. `tests/partner_api/test_schema.py` validates the
answers against the schema; this adds the hostile half: never a 5xx, every refusal in the
API's error shape, and a refused write leaves the database as it was.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

from tests.partner_api.test_schema import api_schema  # noqa: F401 (the fixture)

from .conftest import changed_tables, database_fingerprint

MAX_EXAMPLES = 12
WRITES = {"PUT", "POST", "PATCH", "DELETE"}


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["fitting", "breaking"])
def test_no_operation_answers_5xx_and_every_refusal_is_clear(api_schema, world, mode):  # noqa: F811
    operations = [result.ok() for result in api_schema.get_all_operations()]
    methods = {op.method.upper() for op in operations}
    assert len(operations) == 9 and {"GET", "PUT", "POST"} <= methods  # reads and writes
    headers = {"X-API-Key": world.acme.api_key}
    seen: dict[int, int] = {}
    for operation in operations:

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            write = case.method.upper() in WRITES
            before = database_fingerprint() if write else None
            response = case.call(headers={**(case.headers or {}), **headers})
            status = response.status_code
            seen[status // 100] = seen.get(status // 100, 0) + 1
            where = f"{case.method} {case.formatted_path} -> {status}"
            assert status < 500, where + " " + response.text[:300]
            if status >= 400:
                error = response.json()["error"]
                assert error["status"] == status and error["message"].strip(), where
                if write:
                    assert changed_tables(before, database_fingerprint()) == [], where

        check()
    # Both kinds of answer were exercised, so both kinds of assertion ran.
    assert seen.get(2) and seen.get(4), seen
