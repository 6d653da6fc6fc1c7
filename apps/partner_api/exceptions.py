"""The partner API's refusal: what parameter parsing, selectors and services raise.

A plain exception with no web framework in it; `errors.py`, the HTTP layer, turns it into
the error body. Its status is the answer the refusal calls for (400 unless said otherwise).
"""

from __future__ import annotations


class ApiError(Exception):
    """A request the partner API refuses, with its code and the fields to fix."""

    def __init__(self, message: str, *, code: str = "invalid", status_code: int = 400,
                 fields: dict | None = None):
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.code = code
        self.fields = fields

    def __str__(self) -> str:
        return self.message
