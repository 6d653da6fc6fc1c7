"""Log context: the deployment, link, run and task behind every log line.

Code that starts a unit of work binds what it knows (``run_logged`` binds the run and its
deployment, the outbox dispatcher the link and batch, a Celery task its id and name, the
partner API the deployment of the request), and :class:`ContextFilter` copies the bound
values onto every record the console handler emits, whichever logger wrote it. Unknown
values are null in JSON and left out of plain lines.

This module is loaded while logging is configured, before Django's apps: it must not
import models.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from pythonjsonlogger.json import JsonFormatter as _JsonFormatter

from apps.core.redact import redact

if TYPE_CHECKING:
    from django.http import HttpRequest, HttpResponse

# On every line, null when unknown; other bound keys (platform, batch, task) appear when set.
FIELDS = ("deployment", "link", "run", "task_id")

_context: ContextVar[dict[str, Any]] = ContextVar("hub_log_context", default={})  # noqa: B039


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind ``fields`` for the duration of the block; None values keep what is bound."""
    token = _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})
    try:
        yield
    finally:
        _context.reset(token)


def log_context_bind(**fields: Any) -> None:
    """Bind ``fields`` until the current request or task ends (the caller cannot unbind)."""
    _context.set({**_context.get(), **{k: v for k, v in fields.items() if v is not None}})


def log_context_replace(**fields: Any) -> None:
    """Start afresh with only ``fields`` bound: a new task in a reused worker process."""
    _context.set({k: v for k, v in fields.items() if v is not None})


class ContextFilter(logging.Filter):
    """Copies the bound context onto each record; explicit ``extra=`` values win."""

    def filter(self, record: logging.LogRecord) -> bool:
        bound = _context.get()
        for key in FIELDS:
            if not hasattr(record, key):
                setattr(record, key, bound.get(key))
        for key, value in bound.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


def _redact_record(record: logging.LogRecord, formatter: logging.Formatter) -> None:
    """Mask secrets in what the record will show: its message (arguments merged in), its
    traceback and its string extras. DEXMA's tokens ride in query strings, which gunicorn's
    access line, Django's request warnings and errors quoting a URL all repeat."""
    message = record.getMessage()
    record.msg, record.args = redact(message), ()
    if record.exc_info:
        if not record.exc_text:
            record.exc_text = formatter.formatException(record.exc_info)
        # The formatters fall back on exc_text: the raw exc_info would be formatted afresh.
        record.exc_info = None
    if record.exc_text:
        record.exc_text = redact(record.exc_text)
    if record.stack_info:
        record.stack_info = redact(record.stack_info)
    for key, value in list(record.__dict__.items()):
        if isinstance(value, str) and key not in _PLAIN_ATTRIBUTES:
            record.__dict__[key] = redact(value)


_PLAIN_ATTRIBUTES = {"msg", "exc_text", "stack_info", "levelname", "name", "pathname",
                     "filename", "module", "funcName", "processName", "threadName",
                     "taskName"}


class JsonFormatter(_JsonFormatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, context."""

    def __init__(self, **kwargs: Any) -> None:
        fields = " ".join(f"%({name})s" for name in ("levelname", "name", "message", *FIELDS))
        kwargs.setdefault("rename_fields", {"levelname": "level", "name": "logger"})
        super().__init__(fields, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        _redact_record(record, self)
        return redact(super().format(record))

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord,
                   message_dict: dict[str, Any]) -> None:
        log_data["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(
            timespec="milliseconds"
        )
        super().add_fields(log_data, record, message_dict)
        # Django's request logs carry the request object: keep its method and path only
        # (its repr would include the query string, which may hold a key).
        request = record.__dict__.get("request")
        if request is not None and hasattr(request, "path"):
            log_data["request"] = f"{getattr(request, 'method', '')} {request.path}"


class PlainFormatter(logging.Formatter):
    """Human-readable lines with the known context in brackets, for the demo and laptops."""

    def __init__(self, fmt: str | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(fmt or "%(asctime)s %(levelname)s %(name)s %(context)s%(message)s",
                         *args, **kwargs)

    def format(self, record: logging.LogRecord) -> str:
        known = [
            f"{key}={getattr(record, key)}" for key in (*FIELDS, "platform", "batch")
            if getattr(record, key, None) is not None
        ]
        record.context = f"[{' '.join(known)}] " if known else ""
        _redact_record(record, self)
        return redact(super().format(record))


class LogContextMiddleware:
    """Each request starts with an empty context, so nothing leaks from the thread's last one.

    What the request binds stays bound after it returns, so Django's own line for a 4xx or
    5xx answer (written once the middleware chain is done) still names the deployment.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        log_context_replace()
        return self.get_response(request)
