"""Fixtures shared by all tests. The real servers behind them live in ``tests/servers``."""

from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.dovecot import RESTRICTED_CAPABILITIES, DovecotServer, ImapAccount
from servers.postgres import postgres_database
from servers.smtp import Mode, SmtpSink, SmtpSinkFactory
from servers.tls import TlsFiles, make_tls_files


@pytest.fixture(scope="session")
def tls_ca(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A test CA and a server certificate for localhost, 127.0.0.1 and ::1."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def dovecot(tls_ca: TlsFiles) -> Iterator[DovecotServer]:
    """One Dovecot for the session: plain IMAP with STARTTLS on ``port``, implicit TLS on ``tls_port``."""
    with DovecotServer(tls=tls_ca) as server:
        yield server


@pytest.fixture(scope="session")
def dovecot_restricted() -> Iterator[DovecotServer]:
    """A plain-text Dovecot that advertises neither MOVE nor CONDSTORE."""
    with DovecotServer(capabilities=RESTRICTED_CAPABILITIES) as server:
        yield server


@pytest.fixture
def imap_account(dovecot: DovecotServer) -> ImapAccount:
    """A new user with an empty mailbox on the session's Dovecot."""
    return dovecot.add_user()


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    """A plain SMTP sink, no TLS and no AUTH."""
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def smtp_sink_factory(tls_ca: TlsFiles) -> Iterator[SmtpSinkFactory]:
    """Starts sinks with TLS or AUTH (``mode``, ``require_starttls``, ``credentials``); stops them after."""
    sinks: list[SmtpSink] = []

    def start(
        *, mode: Mode = "plain", require_starttls: bool = False, credentials: tuple[str, str] | None = None
    ) -> SmtpSink:
        sink = SmtpSink(mode=mode, tls=tls_ca, require_starttls=require_starttls, credentials=credentials)
        sink.start()
        sinks.append(sink)
        return sink

    yield start
    for sink in sinks:
        sink.stop()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/closeloop.db"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A new, empty PostgreSQL database, dropped after the test; fails (never skips) if PostgreSQL is down."""
    with postgres_database() as url:
        yield url


@pytest.fixture(params=["sqlite_url", "postgres_url"], ids=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """The same test once on SQLite and once on PostgreSQL."""
    url: str = request.getfixturevalue(request.param)
    return url
