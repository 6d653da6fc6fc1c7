"""Errors of the DEXMA Market App's writes; their messages are fit to show the user."""

from __future__ import annotations

from apps.core.http import HubHTTPError
from apps.dexma.client import describe_error


class DexmaError(Exception):
    """A lifecycle step failed; the message is fit to show the user."""


class InstallError(DexmaError):
    pass


class PlatformCallError(DexmaError):
    """The platform refused or failed a call; nothing was kept locally.

    Carries the failed call's `transient` and `retry_after` (see `HubHTTPError`).
    """

    def __init__(self, message: str, *, transient: bool = False,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.transient, self.retry_after = transient, retry_after

    @classmethod
    def of(cls, exc: HubHTTPError, message: str | None = None) -> PlatformCallError:
        return cls(describe_error(exc) if message is None else message,
                   transient=exc.transient, retry_after=exc.retry_after)


class TokenMissing(DexmaError):
    pass


class TokenInvalid(DexmaError):
    pass
