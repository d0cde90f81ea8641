"""Alembic environment: runs on the connection closeloop hands it (see ``daemon.store.migrate``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from daemon.store.tables import metadata

config = context.config
connection = config.attributes.get("connection")


def run(connection_: Connection) -> None:
    context.configure(
        connection=connection_,
        target_metadata=metadata,
        render_as_batch=True,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    run(connection)
else:  # the alembic command line, for writing new revisions: `alembic -x url=sqlite:///x.db revision …`
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///alembic-dev.db")
    with create_engine(url).begin() as own:
        run(own)
