"""A clock for tests: it stands still until the test moves it. Pass it as ``App(settings, clock=clock)``."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

TUESDAY = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # where the integration tests' clocks start


class MovableClock:
    """``clock()`` is the current test time, an aware UTC datetime; ``advance`` and ``set`` move it."""

    def __init__(self, start: datetime) -> None:
        if start.tzinfo is None:
            raise ValueError("the test clock needs an aware start time")
        self._now = start
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self._now

    def advance(self, delta: timedelta | None = None, **parts: float) -> datetime:
        """Move forward by ``delta`` or by ``timedelta(**parts)``; returns the new time."""
        step = delta if delta is not None else timedelta(**parts)
        if step < timedelta(0):
            raise ValueError("time does not run backwards, even in tests")
        with self._lock:
            self._now += step
            return self._now

    def set(self, moment: datetime) -> datetime:
        """Jump to ``moment`` (not earlier than now)."""
        return self.advance(moment - self())
