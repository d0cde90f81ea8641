"""The dispatcher's claim reads planned touches in index order, however many are due at the same moment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, event, insert, inspect

from daemon.store.repository import Store
from daemon.store.tables import customers, loops, touches

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


def claim_statement(store: Store) -> tuple[str, Any]:
    """The SQL and parameters of the claim's first statement."""
    seen: list[tuple[str, Any]] = []

    def capture(_conn: Connection, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        seen.append((statement, parameters))

    event.listen(store.engine, "before_cursor_execute", capture)
    with store.transaction() as tx:
        assert tx.claim_due(NOW + timedelta(minutes=1)) is not None
    event.remove(store.engine, "before_cursor_execute", capture)
    return next((s, p) for s, p in seen if "FROM touches" in s)


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
    statement, parameters = claim_statement(store)
    with store.engine.connect() as db:
        if store.is_sqlite:
            plan = [str(row[-1]) for row in db.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)]
        else:
            db.exec_driver_sql("SET enable_seqscan = off")  # a tiny table: make the planner show the index path
            plan = [str(row[0]) for row in db.exec_driver_sql(f"EXPLAIN {statement}", parameters)]
    store.close()
    assert any("ix_touches_planned_due" in line for line in plan), plan
    assert not any("Sort" in line or "TEMP B-TREE" in line for line in plan), plan
