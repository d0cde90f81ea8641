"""closeloop end to end through its real command: ``once`` over a full inbox, ``run`` under steady arrivals,
and ``run`` through a large inbox (its memory). Every run starts from an empty database."""

from __future__ import annotations

import math
import statistics
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import crowd
from bench.process import Child, closeloop, once
from bench.world import Servers, database, fill, imap_client, write_config

from servers.dovecot import ImapAccount
from servers.smtp import Arrival

ACK = "acknowledgement"


def acknowledged(arrivals: Sequence[Arrival], numbers: Sequence[int]) -> list[str]:
    """What is wrong with the acknowledgements: a customer acknowledged never or twice, or a stranger."""
    acks = Counter(rcpt for a in arrivals if a.kind == ACK for rcpt in a.rcpt_tos)
    expected = {crowd.address(n) for n in numbers}
    problems = [f"{n} customers never acknowledged" for n in [len(expected - set(acks))] if n]
    problems += [f"{n} customers acknowledged more than once" for n in [sum(1 for c in acks.values() if c > 1)] if n]
    problems += [f"{n} acknowledgements to strangers" for n in [len(set(acks) - expected)] if n]
    return problems


def once_section(servers: Servers, account: ImapAccount, numbers: Sequence[int], backend: str, work: Path) -> Any:
    """``closeloop once`` from an empty database to an acknowledgement for every message in the inbox."""
    with database(backend, work / "once.db") as url:
        config = write_config(work / f"once-{backend}.toml", account=account, sink=servers.sink, url=url)
        servers.sink.clear()
        finished = once(config, log=work / f"once-{backend}.log")
    arrivals = servers.sink.arrivals
    kinds = Counter(a.kind for a in arrivals)
    return {
        "messages": len(numbers),
        "seconds": finished.seconds,
        "per_s": len(numbers) / finished.seconds,
        "cpu_s": finished.cpu_seconds,
        "peak_rss_mb": finished.peak_rss_mb,
        "sent": dict(kinds),
        "output": finished.output.strip(),
        "problems": acknowledged(arrivals, numbers),
    }


def startup_section(servers: Servers, backend: str, work: Path) -> Any:
    """The fixed cost: ``closeloop once`` over an empty inbox and an empty database."""
    account = servers.dovecot.add_user()
    with database(backend, work / "startup.db") as url:
        config = write_config(work / f"startup-{backend}.toml", account=account, sink=servers.sink, url=url)
        finished = once(config, log=work / f"startup-{backend}.log")
    return {"seconds": finished.seconds, "peak_rss_mb": finished.peak_rss_mb}


def latency_section(servers: Servers, backend: str, work: Path, *, rate: float, seconds: float, idle: float) -> Any:
    """``closeloop run`` while customers arrive ``rate`` a second: APPEND to acknowledgement, then idle CPU."""
    account = servers.dovecot.add_user()
    count = max(1, round(rate * seconds))
    numbers = range(1, count + 1)
    raws = {n: crowd.mail(n) for n in numbers}
    with database(backend, work / "latency.db") as url:
        config = write_config(work / f"latency-{backend}.toml", account=account, sink=servers.sink, url=url)
        servers.sink.clear()
        child = Child(closeloop(config, "run"), log=work / f"latency-{backend}.log")
        try:
            account.append(crowd.mail(0))  # warm-up: the daemon is watching once this is acknowledged
            wait_for_acks(servers, child, 1, timeout=60)
            appended = arrive(account, raws, rate)
            arrivals = wait_for_acks(servers, child, count + 1, timeout=60 + seconds)
            time.sleep(min(2.0, idle))
            cpu_before = child.cpu_seconds()
            time.sleep(idle)
            idle_cpu = child.cpu_seconds() - cpu_before
            peak = child.peak_rss_mb()
        finally:
            finished = child.stop()
    acks = [a for a in arrivals if a.kind == ACK and a.rcpt_tos[0] in appended]
    delays = sorted(a.arrived - appended[a.rcpt_tos[0]] for a in acks)
    return {
        "rate_per_s": rate,
        "messages": count,
        "p50_s": percentile(delays, 50),
        "p99_s": percentile(delays, 99),
        "max_s": delays[-1] if delays else None,
        "mean_s": statistics.fmean(delays) if delays else None,
        "idle_seconds": idle,
        "idle_cpu_percent": 100 * idle_cpu / idle,
        "peak_rss_mb": peak,
        "exit_code": finished.returncode,
        "problems": acknowledged(arrivals, [0, *numbers]) + exit_problem(finished.returncode),
    }


def memory_section(servers: Servers, backend: str, work: Path, *, count: int) -> Any:
    """``closeloop run`` through an inbox of ``count`` messages: its throughput and its peak RSS."""
    account = servers.dovecot.add_user()
    numbers = range(count)
    fill(account, numbers)
    with database(backend, work / "memory.db") as url:
        config = write_config(work / f"memory-{backend}.toml", account=account, sink=servers.sink, url=url)
        servers.sink.clear()
        started = time.monotonic()
        child = Child(closeloop(config, "run"), log=work / f"memory-{backend}.log")
        try:
            arrivals = wait_for_acks(servers, child, count, timeout=max(120, count / 5))
            took = time.perf_counter() - child.started
            peak = child.peak_rss_mb()
        finally:
            finished = child.stop()
    acks = sorted(a.arrived - started for a in arrivals if a.kind == ACK)
    return {
        "messages": count,
        "seconds": took,
        "per_s": count / took,
        # whether customers are answered while a large inbox is still being read, or only after it
        "first_ack_s": acks[0] if acks else None,
        "acks_while_reading": acks_while_reading(work / f"memory-{backend}.log"),
        "peak_rss_mb": peak,
        "exit_code": finished.returncode,
        "problems": acknowledged(arrivals, numbers) + exit_problem(finished.returncode),
    }


def acks_while_reading(log: Path) -> int | None:
    """Acknowledgements the daemon logged as sent before its first pass over the inbox logged that it was done;
    ``None`` when that pass was one batch (no progress lines then)."""
    sent = 0
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if "%), done in" in line:
            return sent
        if '"message": "sent"' in line and '"kind": "acknowledgement"' in line:
            sent += 1
    return None


def arrive(account: ImapAccount, raws: dict[int, bytes], rate: float) -> dict[str, float]:
    """APPEND each message at its time on the schedule; returns when each customer's message went in."""
    appended = {}
    with imap_client(account) as client:
        start = time.monotonic()
        for i, (n, raw) in enumerate(raws.items()):
            time.sleep(max(0.0, start + i / rate - time.monotonic()))
            appended[crowd.address(n)] = time.monotonic()
            client.append("INBOX", raw)
    return appended


def wait_for_acks(servers: Servers, child: Child, count: int, *, timeout: float) -> list[Arrival]:
    """The sink's arrivals once ``count`` acknowledgements are in.

    :raises RuntimeError: when the daemon exits or ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while child.alive():
        try:
            return servers.sink.wait_for_arrivals(count, timeout=1.0, kind=ACK)
        except AssertionError:
            if time.monotonic() > deadline:
                sent = Counter(a.kind for a in servers.sink.arrivals)
                raise RuntimeError(f"fewer than {count} acknowledgements within {timeout:.0f}s: {sent}") from None
    raise RuntimeError(f"closeloop exited with {child.process.poll()} before {count} acknowledgements")


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile of sorted ``values``."""
    if not values:
        return None
    rank = max(1, math.ceil(p / 100 * len(values)))
    return values[rank - 1]


def exit_problem(code: int) -> list[str]:
    return [] if code == 0 else [f"closeloop exited {code}"]
