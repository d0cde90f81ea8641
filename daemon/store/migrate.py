"""Alembic, driven from code: ``upgrade(connection)`` brings a database to the newest schema."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def upgrade(connection: Connection) -> None:
    command.upgrade(alembic_config(connection), "head")


def pending(connection: Connection) -> list[str]:
    """Revisions not yet applied to the database behind ``connection``."""
    script = ScriptDirectory.from_config(alembic_config())
    current = set(MigrationContext.configure(connection).get_current_heads())
    return [
        rev.revision
        for rev in script.walk_revisions()
        if rev.revision not in current and not _applied(script, current, rev.revision)
    ]


def _applied(script: ScriptDirectory, heads: set[str], revision: str) -> bool:
    return any(revision in {r.revision for r in script.iterate_revisions(head, "base")} for head in heads)
