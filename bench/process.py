"""closeloop as a child process, measured: wall time, CPU time and peak RSS (``VmHWM``, or ``wait4``'s)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from bench import ROOT

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, kw_only=True)
class Finished:
    returncode: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float
    output: str


def closeloop(config: Path, command: str) -> list[str]:
    """The real command line: ``python -m daemon --config CONFIG COMMAND``."""
    return [sys.executable, "-m", "daemon", "--config", str(config), command]


class Child:
    """A Python process started from the repository, its stderr (the log) appended to ``log``."""

    def __init__(self, argv: list[str], *, log: Path) -> None:
        self.started = time.perf_counter()
        with log.open("ab") as stderr:
            self.process = subprocess.Popen(
                argv,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def cpu_seconds(self) -> float:
        """User + system time of every thread so far (``/proc/PID/stat``)."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def peak_rss_mb(self) -> float:
        """The peak resident set size so far (``VmHWM``)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmHWM for {self.pid}")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 120.0) -> Finished:
        """SIGTERM (the daemon finishes its step and exits 0), then collect it."""
        self.process.send_signal(signal.SIGTERM)
        return self.finish(timeout)

    def finish(self, timeout: float = 3600.0) -> Finished:
        """Wait for the exit; killed after ``timeout`` seconds. Peak RSS and CPU come from ``wait4``."""
        watchdog = threading.Timer(timeout, self.process.kill)
        watchdog.start()
        try:
            assert self.process.stdout is not None
            output = self.process.stdout.read().decode(errors="replace")
            _, status, usage = os.wait4(self.pid, 0)
        finally:
            watchdog.cancel()
        seconds = time.perf_counter() - self.started
        self.process.returncode = os.waitstatus_to_exitcode(status)
        self.process.stdout.close()
        return Finished(
            returncode=self.process.returncode,
            seconds=seconds,
            cpu_seconds=usage.ru_utime + usage.ru_stime,
            peak_rss_mb=usage.ru_maxrss / 1024,
            output=output,
        )


def once(config: Path, *, log: Path, timeout: float = 3600.0) -> Finished:
    """``closeloop once``, start to exit.

    :raises RuntimeError: when it does not exit 0.
    """
    finished = Child(closeloop(config, "once"), log=log).finish(timeout)
    if finished.returncode != 0:
        raise RuntimeError(f"closeloop once exited {finished.returncode}: {finished.output}; see {log}")
    return finished
