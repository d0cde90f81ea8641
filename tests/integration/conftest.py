"""Fixtures for the integration tests: closeloop wired to the session's real servers, with a clock to move."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from daemon.app import App

from servers.dovecot import ImapAccount
from servers.smtp import SmtpSink
from support.clock import TUESDAY, MovableClock
from support.settings import settings_for


@pytest.fixture
def clock() -> MovableClock:
    """Tuesday 24 November 2026, 10:00 UTC, moved by the test."""
    return MovableClock(TUESDAY)


@pytest.fixture
def app(
    imap_account: ImapAccount, smtp_sink: SmtpSink, database_url: str, tmp_path: Path, clock: MovableClock
) -> Iterator[App]:
    """closeloop on the test's mailbox, sink and database (SQLite and PostgreSQL), on the test's clock."""
    application = App(settings_for(imap_account, smtp_sink, database_url, tmp_path), clock=clock)
    yield application
    application.close()
