"""The machine, the versions, and the one table a benchmark run prints."""

from __future__ import annotations

import os
import platform
import sqlite3
import subprocess
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import ROOT

from servers.postgres import admin_connection

PACKAGES = ("sqlalchemy", "psycopg", "imapclient", "aiosmtpd", "jinja2", "apscheduler", "pydantic")


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")), "")
    meminfo = Path("/proc/meminfo").read_text().split()
    return {
        "cpu": model or platform.processor(),
        "cores": os.cpu_count(),
        "memory_gb": round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 1024 / 1024, 1),
        "system": platform.platform(),
    }


def versions() -> dict[str, str]:
    found = {"python": platform.python_version(), "closeloop": _git("describe", "--always", "--dirty")}
    found |= {name: metadata.version(name) for name in PACKAGES}
    found["sqlite"] = sqlite3.sqlite_version
    with admin_connection() as db:
        row = db.execute("SHOW server_version").fetchone()
    found["postgresql"] = str(row[0]) if row else "?"
    found["dovecot"] = _output(["dovecot", "--version"])
    return found


def _git(*args: str) -> str:
    return _output(["git", "-C", str(ROOT), *args])


def _output(argv: list[str]) -> str:
    try:
        return subprocess.run(argv, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "?"


# the table ---------------------------------------------------------------------------------------------------


def heading(results: dict[str, Any]) -> str:
    m, v, load = results["machine"], results["versions"], results["load_average"]
    loads = " → ".join(f"{values[0]:.1f}" for values in load.values())
    return (
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; load average {loads}\n"
        f"closeloop {v['closeloop']}, Python {v['python']}, SQLAlchemy {v['sqlalchemy']}, "
        f"SQLite {v['sqlite']}, PostgreSQL {v['postgresql']}, Dovecot {v['dovecot'].split()[0]}\n"
    )


Cell = Callable[[dict[str, Any]], str]


def table(results: dict[str, Any]) -> str:
    """One table: a row per measure, a column per database, and the target."""
    backends = results["parameters"]["backends"]
    rows = [("measure", *backends, "target")]
    for label, section, cell, target in _rows(results):
        if section == "floor":
            values = [cell(results["floor"]) if "floor" in results else "-", *[""] * (len(backends) - 1)]
        else:
            values = [cell(results[section][b]) if b in results.get(section, {}) else "-" for b in backends]
        rows.append((label, *values, target))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths, strict=True)) for row in rows]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _rows(results: dict[str, Any]) -> list[tuple[str, str, Cell, str]]:
    p = results["parameters"]
    n, rate, touches, loops = p["n"], p["rate"], p["touches"], p["loops"]
    return [
        (f"floor: fetch + send {n:,} (whole process)", "floor", lambda r: f"{r['per_s']:,.0f} msg/s", ""),
        ("floor: fetch only / send only", "floor", lambda r: f"{r['fetch_per_s']:,.0f} / {r['send_per_s']:,.0f}/s", ""),
        ("startup: once, empty inbox", "startup", lambda r: f"{r['seconds']:.2f} s", ""),
        (f"once: {n:,} messages to acknowledgements", "once", lambda r: f"{r['per_s']:,.0f} msg/s", ""),
        ("once: ratio to the floor", "once", lambda r: f"{r['ratio']:.2f}×", "≥ 0.60×"),
        ("once: peak RSS", "once", _rss, "< 150 MB"),
        (f"run: latency p50 / p99 at {rate:g}/s", "latency", _latency, "p99 ≤ 2 s"),
        ("run: idle CPU", "latency", lambda r: f"{r['idle_cpu_percent']:.2f} %", "≈ 0"),
        ("run: peak RSS", "latency", _rss, "< 150 MB"),
        (f"dispatch: {touches:,} due touches", "dispatch", lambda r: f"{r['pass']['per_s']:,.0f}/s", ""),
        ("dispatch: ratio to the SMTP floor", "dispatch", lambda r: f"{r['ratio']:.2f}×", "≥ 0.60×"),
        ("dispatch: peak RSS", "dispatch", lambda r: _rss(r["pass"]), "< 150 MB"),
        (f"claim query at {touches:,} / {loops:,} loops", "dispatch", _claims, "flat"),
        (f"dispatch: {p['due']:,} due among {loops:,} loops", "dispatch", _large_pass, ""),
        (f"run: {p['big']:,} messages", "memory", lambda r: f"{r['per_s']:,.0f} msg/s", ""),
        ("run: acknowledged while reading them", "memory", _acks_in_import, ""),
        (f"run: peak RSS after {p['big']:,} messages", "memory", _rss, "< 150 MB"),
    ]


def _rss(r: dict[str, Any]) -> str:
    return f"{r['peak_rss_mb']:.0f} MB"


def _acks_in_import(r: dict[str, Any]) -> str:
    during, first = r.get("acks_while_reading"), r.get("first_ack_s")
    if during is None or first is None:
        return "—"
    return f"{during:,} (first after {first:.1f} s)"


def _latency(r: dict[str, Any]) -> str:
    return f"{r['p50_s']:.2f} / {r['p99_s']:.2f} s"


def _large_pass(r: dict[str, Any]) -> str:
    return f"{r['pass_large']['per_s']:,.0f}/s"


def _claims(r: dict[str, Any]) -> str:
    return f"{r['claim']['median_ms']:.2f} / {r['claim_large']['median_ms']:.2f} ms"
