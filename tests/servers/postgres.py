"""Throwaway databases on the machine's PostgreSQL (127.0.0.1:5432, user postgres, trust auth)."""

import contextlib
import secrets
from collections.abc import Iterator

import psycopg
from psycopg import sql

HOST, PORT, USER = "127.0.0.1", 5432, "postgres"
START_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


def admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection to the ``postgres`` database, for CREATE and DROP DATABASE.

    :raises RuntimeError: saying how to start PostgreSQL when it does not answer.
    """
    try:
        return psycopg.connect(host=HOST, port=PORT, user=USER, dbname="postgres", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL is not reachable on {HOST}:{PORT} as {USER} ({exc}).\nStart it with: {START_HINT}"
        ) from exc


@contextlib.contextmanager
def postgres_database() -> Iterator[str]:
    """Create ``closeloop_test_<random>``, yield its SQLAlchemy URL, and drop it afterwards.

    The drop uses ``WITH (FORCE)``, which terminates connections a test left open.
    """
    name = f"closeloop_test_{secrets.token_hex(6)}"
    with admin_connection() as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"postgresql+psycopg://{USER}@{HOST}:{PORT}/{name}"
    finally:
        with admin_connection() as admin:
            admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
