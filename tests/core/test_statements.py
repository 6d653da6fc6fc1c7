"""Statements planned once per connection (apps.core.statements)."""

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.core.statements import reused_plan_cursor

pytestmark = pytest.mark.django_db

SQL = "SELECT count(*) FROM core_parameter WHERE key = ANY(%s) AND id > %s"


def _prepared() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return [row[0] for row in cursor.fetchall()]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plan cache")
def test_a_statement_run_again_is_prepared_and_gives_what_client_binding_gives():
    with connection.cursor() as cursor:
        cursor.execute(SQL, [["active_energy", "nope"], 0])
        expected = cursor.fetchone()
    assert not any("core_parameter" in s for s in _prepared())  # the ORM's cursors: never
    for _ in range(3):
        with reused_plan_cursor() as cursor:
            cursor.execute(SQL, [["active_energy", "nope"], 0])
            assert cursor.fetchone() == expected == (1,)
    # With DB_PREPARED_STATEMENTS off (a pooler that cannot keep them) the values are still
    # bound server-side, and nothing is prepared.
    assert [s for s in _prepared() if "core_parameter" in s] == (
        ["SELECT count(*) FROM core_parameter WHERE key = ANY($1) AND id > $2"]
        if settings.DB_PREPARED_STATEMENTS else [])


def test_the_query_log_shows_the_values_not_placeholders():
    with CaptureQueriesContext(connection) as queries, reused_plan_cursor() as cursor:
        cursor.execute(SQL, [["active_energy"], 7])
    assert len(queries.captured_queries) == 1
    sql = queries.captured_queries[0]["sql"]
    assert "ANY('{active_energy}')" in sql and "id > 7" in sql
    assert "$1" not in sql and "%s" not in sql
