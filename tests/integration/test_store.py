"""The schema: Alembic's migrations create exactly the tables the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from daemon.store.migrate import alembic_config
from daemon.store.repository import Store
from daemon.store.tables import metadata

pytestmark = pytest.mark.integration


def test_migrations_create_exactly_the_declared_schema(database_url: str) -> None:
    store = Store(database_url)
    try:
        store.migrate()
        store.migrate()  # a second start changes nothing
        with store.engine.connect() as connection:
            assert compare_metadata(MigrationContext.configure(connection), metadata) == []
    finally:
        store.close()


def test_migrations_go_down_and_up_again(database_url: str) -> None:
    store = Store(database_url)
    try:
        store.migrate()
        with store.engine.begin() as connection:
            command.downgrade(alembic_config(connection), "base")
        assert set(inspect(store.engine).get_table_names()) <= {"alembic_version"}
        store.migrate()
        assert {"customers", "loops", "touches", "messages", "mailboxes"} <= set(
            inspect(store.engine).get_table_names()
        )
    finally:
        store.close()
