"""Test doubles shared across the suite."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

# 2024-01-01 12:00 UTC, where a clock starts unless a test says otherwise.
NOON_TIMESTAMP = 1_704_110_400.0


class FakeTime:
    """A clock that moves only when the code under test sleeps: hand `sleep` and `clock` to
    a client. `sleeps` lists every wait asked for (pass a list to share it); `observe`, if
    set, is called at each sleep and its answers kept in `observed`."""

    def __init__(self, start: float = NOON_TIMESTAMP, sleeps: list[float] | None = None) -> None:
        self.now = start
        self.sleeps: list[float] = [] if sleeps is None else sleeps
        self.observe: Callable[[], Any] | None = None
        self.observed: list[Any] = []

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        if self.observe is not None:
            self.observed.append(self.observe())
        self.now += seconds

    def clock(self) -> float:
        return self.now
