"""The closeloop benchmark, in one run on the same messages (see docs/performance.md).

    python -m bench.run --json bench/results/latest.json

It starts a private Dovecot and an SMTP sink on loopback, fills an inbox with N customer messages and measures:
the floor (imapclient fetch + smtplib send, nothing else); ``closeloop once`` from an empty database to N
acknowledgements; ``closeloop run`` latency from APPEND to the sink's 250 under steady arrivals, and its idle
CPU; one dispatch pass over many due touches and the claim query with a million loops in the table; and the
peak RSS of each run and of a daemon that has processed a large inbox — on SQLite and on PostgreSQL.
It prints one table and writes JSON; it exits 1 when closeloop got anything wrong (never for being slow).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import dispatch, intake, report
from bench.process import Child
from bench.world import Servers, database, fill, servers

SECTIONS = ("floor", "once", "latency", "dispatch", "memory")


def arguments(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="messages in the inbox for the floor and once")
    parser.add_argument("--rate", type=float, default=20.0, help="arrivals a second for the latency run")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long customers arrive in the latency run")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds the daemon idles while its CPU is read")
    parser.add_argument("--touches", type=int, default=100_000, help="due touches for the dispatch pass")
    parser.add_argument("--loops", type=int, default=1_000_000, help="loops in the table for the claim query")
    parser.add_argument("--due", type=int, default=1000, help="due touches among those loops, dispatched again")
    parser.add_argument("--big", type=int, default=100_000, help="messages the memory run processes")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (configs, databases, logs)")
    args = parser.parse_args(argv)
    args.backends = [b for b in args.backends.split(",") if b]
    args.only = [s for s in args.only.split(",") if s]
    if unknown := set(args.backends) - {"sqlite", "postgresql"} | set(args.only) - set(SECTIONS):
        parser.error(f"unknown: {', '.join(sorted(unknown))}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = arguments(argv)
    parameters = {k: v for k, v in vars(args).items() if k not in ("json", "keep")}
    results: dict[str, Any] = {
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
        "parameters": parameters,
        "machine": report.machine(),
        "versions": report.versions(),
        "load_average": {"start": os.getloadavg()},
    }
    work = Path(tempfile.mkdtemp(prefix="closeloop-bench-"))
    try:
        with servers() as world:
            measure(world, args, work, results)
    finally:
        if args.keep:
            print(f"work folder kept: {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    results["load_average"]["end"] = os.getloadavg()
    results["problems"] = problems(results)
    print(report.heading(results))
    print(report.table(results))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2) + "\n")
        print(f"\nwritten: {args.json}")
    for problem in results["problems"]:
        print(f"WRONG: {problem}", file=sys.stderr)
    return 1 if results["problems"] else 0


def measure(world: Servers, args: argparse.Namespace, work: Path, results: dict[str, Any]) -> None:
    account = world.dovecot.add_user()
    if "floor" in args.only or "once" in args.only:
        step(f"filling an inbox with {args.n:,} messages", fill, account, range(args.n))
        results["floor"] = step("floor", floor_section, world, account, args.n, work)
    for backend in args.backends:
        if "once" in args.only:
            section(results, "startup", backend, intake.startup_section, world, backend, work)
            done = section(results, "once", backend, intake.once_section, world, account, range(args.n), backend, work)
            done["ratio"] = done["per_s"] / results["floor"]["per_s"]
        if "latency" in args.only:
            timing = {"rate": args.rate, "seconds": args.seconds, "idle": args.idle}
            section(results, "latency", backend, intake.latency_section, world, backend, work, **timing)
        if "dispatch" in args.only:
            done = section(results, "dispatch", backend, dispatch_section, world, backend, work, args)
            if "floor" in results:
                done["ratio"] = done["pass"]["per_s"] / results["floor"]["send_per_s"]
        if "memory" in args.only:
            section(results, "memory", backend, intake.memory_section, world, backend, work, count=args.big)


def floor_section(world: Servers, account: Any, n: int, work: Path) -> dict[str, Any]:
    """``python -m bench.floor`` as its own process, whole process timed."""
    world.sink.clear()
    argv = [
        sys.executable,
        "-m",
        "bench.floor",
        f"--imap={account.host}:{account.port}",
        f"--user={account.username}",
        f"--password={account.password}",
        f"--smtp={world.sink.host}:{world.sink.port}",
    ]
    finished = Child(argv, log=work / "floor.log").finish(600)
    inner = json.loads(finished.output)
    sent = len(world.sink.arrivals)
    return {
        "messages": n,
        "seconds": finished.seconds,
        "per_s": n / finished.seconds,
        "fetch_s": inner["fetch_s"],
        "send_s": inner["send_s"],
        "fetch_per_s": n / inner["fetch_s"],
        "send_per_s": n / inner["send_s"],
        "peak_rss_mb": finished.peak_rss_mb,
        "problems": [] if sent == n and finished.returncode == 0 else [f"floor sent {sent} of {n}"],
    }


def dispatch_section(world: Servers, backend: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    now = dispatch.now_utc()
    found: dict[str, Any] = {}
    with database(backend, work / "dispatch.db") as url:
        filler = dispatch.Filler(url, now)
        try:
            step(f"  filling {args.touches:,} due touches", filler.due_acknowledgements, args.touches)
            found["claim"] = dispatch.claim_timing(url, claim, now)
            name = f"dispatch-{backend}"
            found["pass"] = step(
                "  dispatch pass", dispatch.dispatch_pass, world, url, work, name=name, expected=args.touches
            )
            history = max(0, args.loops - args.touches - args.due)
            step(f"  filling {history:,} closed loops", filler.history, history)
            filler.due_acknowledgements(args.due)
            found["claim_large"] = dispatch.claim_timing(url, claim, dispatch.now_utc())
            name = f"dispatch-large-{backend}"
            found["pass_large"] = dispatch.dispatch_pass(world, url, work, name=name, expected=args.due)
        finally:
            filler.close()
    found["problems"] = found["pass"]["problems"] + found["pass_large"]["problems"]
    return found


def claim(tx: Any, now: datetime) -> object:
    """The dispatch query: what the dispatcher runs to claim due touches."""
    return tx.claim_due(now)


def section(results: dict[str, Any], name: str, backend: str, run: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Run one section on one backend and file its results under ``results[name][backend]``."""
    done = step(f"{name} on {backend}", run, *args, **kw)
    results.setdefault(name, {})[backend] = done
    return done


def step(what: str, run: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    print(f"{what} …", file=sys.stderr, flush=True)
    started = time.perf_counter()
    done = run(*args, **kw)
    print(f"{what}: {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
    return done


def problems(results: dict[str, Any]) -> list[str]:
    """Everything a section found wrong, named by section and backend."""
    found = [f"floor: {p}" for p in results.get("floor", {}).get("problems", [])]
    for name in ("once", "latency", "dispatch", "memory"):
        for backend, section_results in results.get(name, {}).items():
            found += [f"{name} on {backend}: {p}" for p in section_results.get("problems", [])]
    return found


if __name__ == "__main__":
    sys.exit(main())
