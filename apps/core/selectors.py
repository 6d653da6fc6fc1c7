"""Reads: health probes, overview figures."""

from dataclasses import dataclass

from django.db import connection

from config.celery import app as celery_app


@dataclass(frozen=True, slots=True)
class Check:
    ok: bool
    detail: str


def database_check() -> Check:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as exc:  # any driver error means "not ready"
        return Check(False, f"{type(exc).__name__}: {exc}".strip()[:300])
    return Check(True, connection.vendor)


def broker_check(timeout: float = 2.0) -> Check:
    try:
        with celery_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=timeout)
            transport = conn.transport_cls
    except Exception as exc:  # kombu raises many kinds; all mean "not ready"
        return Check(False, f"{type(exc).__name__}: {exc}".strip()[:300])
    return Check(True, str(transport))
