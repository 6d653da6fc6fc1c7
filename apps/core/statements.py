"""Cursors for the statements the hub runs over and over with new values.

Django binds every value into the SQL text on the client, so PostgreSQL parses and plans
each statement anew. For a partner API usage page that planning is a sixth of the
statement's time (its joins span every monthly partition of the readings table). A cursor
from `reused_plan_cursor` binds the values on the server instead: psycopg prepares the
statement on its second run on a connection and PostgreSQL reuses the plan. With
`DB_PREPARED_STATEMENTS` off the values are still bound server-side and nothing is
prepared; on SQLite it is Django's own cursor.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from django.db import connection
from django.db.backends.utils import CursorDebugWrapper


class _Logged(CursorDebugWrapper):
    """Django's query log (DEBUG, tests) shows the statement with its values, as it does for
    the ORM's client-side bound ones, not PostgreSQL's $1, $2 placeholders."""

    def execute(self, sql, params=None):
        with self.debug_sql(self.db.ops.compose_sql(sql, params)):
            return self._execute_with_wrappers(sql, params, many=False, executor=self._execute)


@contextmanager
def reused_plan_cursor() -> Iterator:
    """A Django cursor (query logging and execute wrappers kept) with server-side binding."""
    if connection.vendor != "postgresql":
        with connection.cursor() as cursor:
            yield cursor
        return
    connection.ensure_connection()
    connection.validate_no_broken_transaction()
    raw = psycopg.Cursor(connection.connection)
    cursor = (_Logged(raw, connection) if connection.queries_logged
              else connection.make_cursor(raw))
    with cursor:
        yield cursor
