"""Reading back what closeloop stored, for assertions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from daemon.app import App


def rows(app: App, table: Any) -> list[dict[str, Any]]:
    """Every row of ``table``, in insertion order, as plain dicts."""
    with app.store.engine.connect() as db:
        return [dict(r._mapping) for r in db.execute(select(table).order_by(table.c.id))]
