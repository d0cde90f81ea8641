"""Dispatch at scale: a database filled directly (SQLAlchemy Core bulk inserts) with due acknowledgements and
a long history, then one ``closeloop once`` pass over them, and the claim query timed and explained."""

from __future__ import annotations

import hashlib
import math
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, event, func, insert, select

from bench import crowd
from bench.process import once
from bench.world import STAFF, Servers, write_config
from daemon.store.repository import Store, Transaction
from daemon.store.tables import customers, loops, messages, touches

CHUNK = 5_000
CUSTOMERS = 100_000  # loops are spread over at most this many customers: most history is returning customers
CLAIMS = 200  # timed claims per measurement


class Filler:
    """Writes rows with explicit ids (so they can refer to each other) in chunks, then moves the sequences."""

    def __init__(self, url: str, now: datetime) -> None:
        self.store = Store(url)
        self.store.migrate()
        self.now = now

    def close(self) -> None:
        self.store.close()

    def next_id(self, table: Table) -> int:
        with self.store.engine.connect() as db:
            return int(db.execute(select(func.coalesce(func.max(table.c.id), 0))).scalar_one()) + 1

    def customers(self, count: int) -> None:
        """Customers up to id ``count``."""
        first = self.next_id(customers)
        self._insert(customers, (self._customer(n) for n in range(first, count + 1)))

    def due_acknowledgements(self, count: int) -> range:
        """``count`` new loops whose acknowledgement is due now, each with its opening message; their ids."""
        first = self.next_id(loops)
        ids = range(first, first + count)
        self._loops(ids, state="received", age=timedelta(minutes=1))
        self._insert(touches, (self._touch(i, "acknowledgement", "planned") for i in ids))
        return ids

    def history(self, count: int) -> None:
        """``count`` closed loops, each with its message, a sent acknowledgement and a sent outcome."""
        first = self.next_id(loops)
        ids = range(first, first + count)
        self._loops(ids, state="closed", age=timedelta(days=200))
        self._insert(touches, (self._touch(i, kind, "sent") for i in ids for kind in ("acknowledgement", "outcome")))

    def _loops(self, ids: range, *, state: str, age: timedelta) -> None:
        self.customers(min(ids.stop - 1, CUSTOMERS))
        self._insert(loops, (self._loop(i, state, age) for i in ids))
        self._insert(messages, (self._message(i, age) for i in ids))

    def _customer(self, n: int) -> dict[str, Any]:
        return {
            "id": n,
            "email": crowd.address(n),
            "name": crowd.name(n),
            "first_name": crowd.name(n).split()[0],
            "language": "en",
            "tz_offset_minutes": 60,
            "created_at": self.now - timedelta(days=400),
        }

    def _loop(self, i: int, state: str, age: timedelta) -> dict[str, Any]:
        opened = self.now - age
        closed = state == "closed"
        return {
            "id": i,
            "inbox": "support",
            "customer_id": _customer_of(i),
            "state": state,
            "owner": STAFF[i % len(STAFF)][1],
            "subject": f"Question {i}: my order arrived damaged",
            "language": "en",
            "opened_at": opened,
            "promised_by": opened + timedelta(days=3),
            "acknowledged_at": opened if closed else None,
            "outcome": "We sent a replacement." if closed else None,
            "closed_at": opened + timedelta(days=5) if closed else None,
        }

    def _message(self, i: int, age: timedelta) -> dict[str, Any]:
        n = _customer_of(i)
        return {
            "direction": "in",
            "inbox": "support",
            "folder": "INBOX",
            "uidvalidity": 1,
            "uid": i,
            "fingerprint": hashlib.sha256(str(i).encode()).hexdigest(),
            "message_id": _message_id(i),
            "from_email": crowd.address(n),
            "from_name": crowd.name(n),
            "recipients": crowd.SUPPORT,
            "subject": f"Question {i}: my order arrived damaged",
            "sent_at": self.now - age,
            "received_at": self.now - age,
            "text_body": f"Hello,\n\norder #{i} arrived with a cracked lid. What can you do?\n\n{crowd.name(n)}\n",
            "classification": "customer",
            "loop_id": i,
        }

    def _touch(self, i: int, kind: str, state: str) -> dict[str, Any]:
        sent = state == "sent"
        due = self.now - (timedelta(days=199) if sent else timedelta(minutes=1))
        return {
            "loop_id": i,
            "kind": kind,
            "state": state,
            "due_at": due,
            "recipient": crowd.address(_customer_of(i)),
            "message_id": f"closeloop.bench{i}.{kind}@example.org",
            "answers": _message_id(i) if kind == "acknowledgement" else None,
            "created_at": due,
            "sent_at": due if sent else None,
            "subject": f"[CL-{i}] Re: Question {i}" if sent else None,
            "body_text": "Thank you for writing." if sent else None,
        }

    def _insert(self, table: Table, rows: Iterator[dict[str, Any]]) -> None:
        with self.store.transaction() as tx:
            chunk: list[dict[str, Any]] = []
            for row in rows:
                chunk.append(row)
                if len(chunk) == CHUNK:
                    tx.db.execute(insert(table), chunk)
                    chunk = []
            if chunk:
                tx.db.execute(insert(table), chunk)
            if not self.store.is_sqlite:
                sequence = func.pg_get_serial_sequence(table.name, "id")
                tx.db.execute(select(func.setval(sequence, select(func.max(table.c.id)).scalar_subquery())))


def _customer_of(loop_id: int) -> int:
    return (loop_id - 1) % CUSTOMERS + 1


def _message_id(loop_id: int) -> str:
    return f"bench.loop{loop_id}@mail.example.com"


# measuring ---------------------------------------------------------------------------------------------------


def claim_timing(url: str, claim: Callable[[Transaction, datetime], object], now: datetime) -> dict[str, Any]:
    """The claim's median and p99 time over :data:`CLAIMS` transactions, and the plans of its queries.

    Nothing is sent, so the claimed touches stay planned and every claim finds the same ones.
    """
    store = Store(url)
    statements: list[tuple[str, Any]] = []

    def capture(_conn: Connection, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        statements.append((statement, parameters))

    timings = []
    try:
        event.listen(store.engine, "before_cursor_execute", capture)
        with store.transaction() as tx:
            claim(tx, now)
        event.remove(store.engine, "before_cursor_execute", capture)
        for _ in range(CLAIMS):
            with store.transaction() as tx:
                started = time.perf_counter()
                claim(tx, now)
                timings.append(time.perf_counter() - started)
        plans = [_explain(store, sql, parameters) for sql, parameters in statements if _is_select(sql)]
    finally:
        store.close()
    timings.sort()
    return {
        "median_ms": 1000 * statistics.median(timings),
        "p99_ms": 1000 * timings[math.ceil(0.99 * len(timings)) - 1],
        "plans": plans,
    }


def _is_select(statement: str) -> bool:
    return statement.lstrip().upper().startswith("SELECT")


def _explain(store: Store, statement: str, parameters: Any) -> dict[str, Any]:
    prefix = "EXPLAIN QUERY PLAN " if store.is_sqlite else "EXPLAIN "
    with store.engine.connect() as db:
        rows = db.exec_driver_sql(prefix + statement, parameters).all()
    plan = [str(row[-1]) for row in rows]
    return {"statement": " ".join(statement.split()), "plan": plan}


def now_utc() -> datetime:
    return datetime.now(UTC)


def dispatch_pass(servers: Servers, url: str, work: Path, *, name: str, expected: int) -> dict[str, Any]:
    """``closeloop once`` with an empty inbox: one dispatch pass over what is due."""
    account = servers.dovecot.add_user()
    config = write_config(work / f"{name}.toml", account=account, sink=servers.sink, url=url)
    servers.sink.clear()
    finished = once(config, log=work / f"{name}.log")
    arrivals = servers.sink.arrivals
    recipients = {a.rcpt_tos[0] for a in arrivals if a.kind == "acknowledgement"}
    problems = [] if len(arrivals) == expected else [f"{len(arrivals)} sent, {expected} due"]
    return {
        "touches": expected,
        "seconds": finished.seconds,
        "per_s": expected / finished.seconds,
        "peak_rss_mb": finished.peak_rss_mb,
        "distinct_recipients": len(recipients),
        "problems": problems,
    }
