"""Query plans that must not grow with the tables: the dispatcher's claim reads planned touches in index order,
however many are due at the same moment, and the per-touch lookups never walk the primary key."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, event, insert, inspect

from daemon.store.repository import Store, Transaction
from daemon.store.tables import customers, loops, messages, touches

pytestmark = pytest.mark.integration

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def due_at_once(store: Store, count: int) -> None:
    """``count`` acknowledgements due at the same moment, as one intake batch plans them."""
    with store.transaction() as tx:
        tx.db.execute(insert(customers).values(id=1, email="jane@example.com", created_at=NOW))
        tx.db.execute(
            insert(loops),
            [
                {"id": i, "inbox": "support", "customer_id": 1, "state": "received", "owner": "sam@example.org",
                 "subject": "Question", "opened_at": NOW}
                for i in range(1, count + 1)
            ],
        )  # fmt: skip
        tx.db.execute(
            insert(touches),
            [
                {"loop_id": i, "kind": "acknowledgement", "state": "planned", "due_at": NOW,
                 "recipient": "jane@example.com", "message_id": f"m{i}@example.org", "created_at": NOW}
                for i in range(1, count + 1)
            ],
        )  # fmt: skip


def customer_messages(store: Store, loop_of: dict[str, int]) -> None:
    """A customer's message for each Message-ID, in its loop, in the order given."""
    with store.transaction() as tx:
        tx.db.execute(
            insert(messages),
            [
                {"direction": "in", "inbox": "support", "message_id": message_id, "received_at": NOW,
                 "classification": "customer", "loop_id": loop_id}
                for message_id, loop_id in loop_of.items()
            ],
        )  # fmt: skip


def statements(store: Store, run: Callable[[Transaction], object]) -> list[tuple[str, Any]]:
    """The SQL and parameters of every query ``run`` makes."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Connection, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    with store.transaction() as tx:
        event.listen(store.engine, "before_cursor_execute", capture)
        run(tx)
        event.remove(store.engine, "before_cursor_execute", capture)
    return [(statement, parameters) for statement, parameters in seen if statement.startswith("SELECT")]


def plan(store: Store, statement: str, parameters: Any) -> list[str]:
    with store.engine.connect() as db:
        if store.is_sqlite:
            return [str(row[-1]) for row in db.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
        db.exec_driver_sql("SET enable_seqscan = off")  # a small table: make the planner show its index path
        return [str(row[0]) for row in db.exec_driver_sql(f"EXPLAIN {statement}", parameters)]


def test_planned_touches_are_indexed_in_claim_order(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    indexes = {index["name"]: index["column_names"] for index in inspect(store.engine).get_indexes("touches")}
    store.close()
    assert indexes["ix_touches_planned_due"] == ["due_at", "id"]


def test_the_claim_never_sorts_the_touches_due(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    due_at_once(store, 300)
    seen = statements(store, lambda tx: tx.claim_due(NOW + timedelta(minutes=1)))
    found = plan(store, *next((s, p) for s, p in seen if "FROM touches" in s))
    store.close()
    assert any("ix_touches_planned_due" in line for line in found), found
    assert not any("Sort" in line or "TEMP B-TREE" in line for line in found), found


def test_a_message_is_found_by_its_message_id_index_oldest_first(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    due_at_once(store, 300)
    customer_messages(store, {f"c{i}@example.com": i for i in range(1, 301)})
    lookups = statements(store, lambda tx: (tx.message("c7@example.com"), tx.opening_message(7), tx.thread_of(7)))
    found = [plan(store, statement, parameters) for statement, parameters in lookups]
    store.close()
    assert any("ix_messages_message_id" in line for line in found[0]), found[0]
    assert any("ix_messages_loop_id" in line for line in found[1]), found[1]
    for lookup in found:
        assert not any("pk_messages" in line or "Sort" in line or "TEMP B-TREE" in line for line in lookup), lookup


def test_a_thread_is_its_opening_message_and_the_latest_ones_oldest_first(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    due_at_once(store, 2)
    customer_messages(store, {f"m{i}@example.com": 1 if i != 5 else 2 for i in range(1, 16)})
    with store.reading() as tx:
        long, short, empty = tx.thread_of(1, limit=4), tx.thread_of(2), tx.thread_of(99)
    store.close()
    assert long == ["m1@example.com", "m13@example.com", "m14@example.com", "m15@example.com"]
    assert short == ["m5@example.com"]
    assert empty == []


def test_unreported_quarantined_messages_are_found_by_their_partial_index(database_url: str) -> None:
    store = Store(database_url)
    store.migrate()
    with store.transaction() as tx:
        tx.db.execute(
            insert(messages),
            [
                {"direction": "in", "inbox": "support", "received_at": NOW, "uid": i,
                 "classification": "quarantined" if i % 100 == 0 else "customer"}
                for i in range(1, 301)
            ],
        )  # fmt: skip
    lookups = statements(store, lambda tx: tx.unreported_quarantine(50))
    found = plan(store, *lookups[0])
    with store.transaction() as tx:
        listed = [m.uid for m in tx.unreported_quarantine(50)]
    store.close()
    assert listed == [100, 200, 300]
    assert any("ix_messages_quarantine_unreported" in line for line in found), found
    assert not any("Sort" in line or "TEMP B-TREE" in line for line in found), found
