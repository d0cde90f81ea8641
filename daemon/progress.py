"""Progress of long work (the first import of a large mailbox, a migration, a bulk template check).

On a terminal it draws one bar that redraws in place; anywhere else (a log, a pipe, journald) it writes a plain
line now and then: at the start, after every tenth of the work or ten seconds, whichever comes first, and at the
end. The standard library is enough for that, so there is no dependency (tqdm or rich would bring far more than
one bar and a few lines). Progress never breaks the work: a stream that fails is given up on silently.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import TracebackType
from typing import TextIO

REDRAW_SECONDS = 0.1
LINE_SECONDS = 10.0
LINE_PERCENT = 10.0
BAR_WIDTH = 30


class Progress:
    """``with Progress("importing support", total=n) as p: p.advance(k)``.

    ``total`` may be ``None`` when the amount of work is unknown; only the count is shown then. ``clock`` is
    for tests (seconds, monotonic).
    """

    def __init__(
        self,
        label: str,
        total: int | None = None,
        stream: TextIO | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.label, self.total, self.clock = label, total, clock
        self.stream = sys.stderr if stream is None else stream
        self.done = 0
        self.terminal = _is_terminal(self.stream)
        self._started = self._shown_at = 0.0
        self._shown_percent = 0.0
        self._width = 0
        self._broken = False

    def __enter__(self) -> Progress:
        self._started = self._shown_at = self.clock()
        if self.terminal:
            self._draw()
        else:
            self._line(self._figures())
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        elapsed = _duration(self.clock() - self._started)
        if self.terminal:
            self._draw(suffix="" if kind is None else "  stopped")
            self._write("\n")
        elif kind is None:
            self._line(f"{self._figures()}, done in {elapsed}")
        else:
            self._line(f"stopped at {self._figures()} after {elapsed}")

    def advance(self, amount: int = 1) -> None:
        """Count ``amount`` more units of work done, and show it when it is time to."""
        self.done += amount
        now = self.clock()
        if self.terminal:
            if now - self._shown_at >= REDRAW_SECONDS or self.done == self.total:
                self._shown_at = now
                self._draw()
        elif self.done == self.total:
            return  # the closing line says so
        elif now - self._shown_at >= LINE_SECONDS or self._percent() - self._shown_percent >= LINE_PERCENT:
            self._shown_at, self._shown_percent = now, self._percent()
            self._line(self._figures())

    # what is shown -------------------------------------------------------------------------------------------

    def _percent(self) -> float:
        if not self.total:
            return 100.0 if self.total == 0 else 0.0
        return min(100.0, 100.0 * self.done / self.total)

    def _figures(self) -> str:
        if self.total is None:
            return str(self.done)
        return f"{self.done}/{self.total} ({self._percent():.0f}%)"

    def _draw(self, suffix: str = "") -> None:
        if self.total is None:
            text = f"{self.label}: {self.done}{suffix}"
        else:
            filled = round(BAR_WIDTH * self._percent() / 100)
            bar = "#" * filled + "-" * (BAR_WIDTH - filled)
            text = f"{self.label} [{bar}] {self.done}/{self.total} {self._percent():3.0f}%{self._eta()}{suffix}"
        self._write("\r" + text.ljust(self._width))
        self._width = len(text)

    def _eta(self) -> str:
        elapsed = self.clock() - self._started
        if not self.total or not self.done or self.done >= self.total or elapsed <= 0:
            return ""
        return f"  eta {_duration(elapsed * (self.total - self.done) / self.done)}"

    def _line(self, figures: str) -> None:
        self._write(f"{self.label}: {figures}\n")

    def _write(self, text: str) -> None:
        if self._broken:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            self._broken = True


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):
        return False


def _duration(seconds: float) -> str:
    """``4s``, ``2m05s``, ``1h03m``."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
