"""IMAP faults on a real Dovecot: a recreated mailbox, \\Seen mail, dead and silent connections, a server that
never answers, a server without MOVE or CONDSTORE. SQLite and PostgreSQL where the database matters.

Connection faults are staged with :class:`servers.relay.TcpRelay` between closeloop and Dovecot: ``cut()``
resets the connection (a server restart), ``freeze()`` makes it silent without closing it (a NAT or firewall
that forgot the flow: only a timeout can notice), ``go_down()`` refuses new connections for a while.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from daemon.app import App
from daemon.config import ConfigError, Imap, Settings
from daemon.mail.imap import ImapMailbox, MailboxError
from daemon.store.tables import loops, messages

from servers import free_port
from servers.dovecot import DovecotServer, ImapAccount
from servers.relay import TcpRelay
from servers.smtp import Received, SmtpSink
from support import mails
from support.db import rows
from support.settings import settings_for

pytestmark = pytest.mark.integration


def acks(sink: SmtpSink) -> list[Received]:
    return [r for r in sink.messages if r.message["X-Closeloop-Kind"] == "acknowledgement"]


def ack_for(sink: SmtpSink, address: str, timeout: float) -> Received:
    """Wait for the acknowledgement to ``address``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [r for r in acks(sink) if r.rcpt_tos == (address,)]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no acknowledgement to {address} within {timeout}s; got {[r.rcpt_tos for r in acks(sink)]}")


def imap_of(account: ImapAccount, **overrides: object) -> Imap:
    values: dict[str, object] = {
        "host": account.host,
        "port": account.port,
        "security": "none",
        "username": account.username,
        "password": account.password,
        "timeout_seconds": 2,
        "idle_renew_minutes": 1,
    }
    return Imap.model_validate({**values, **overrides})


# a recreated mailbox ------------------------------------------------------------------------------------------


def uidvalidity(account: ImapAccount, folder: str) -> int:
    with account.client() as client:
        return int(client.select_folder(folder, readonly=True)[b"UIDVALIDITY"])


def test_a_recreated_mailbox_is_resynced_without_duplicates_and_the_log_says_so(
    imap_account: ImapAccount,
    smtp_sink: SmtpSink,
    database_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    imap_account.create_folder("Support")
    settings = settings_for(imap_account, smtp_sink, database_url, tmp_path, inbox={"imap": {"folder": "Support"}})
    app = App(settings)
    try:
        old = [mails.customer(n) for n in range(3)]
        for raw in old:
            imap_account.append(raw, "Support")
        app.once()
        assert len(acks(smtp_sink)) == 3
        before = uidvalidity(imap_account, "Support")

        # Someone deletes and recreates the folder, restoring the same messages (a new UIDVALIDITY, new UIDs),
        # and one new message arrives.
        imap_account.delete_folder("Support")
        imap_account.create_folder("Support")
        for raw in [*old, mails.customer(3)]:
            imap_account.append(raw, "Support")
        assert uidvalidity(imap_account, "Support") != before

        with caplog.at_level(logging.WARNING, logger="daemon"):
            report = app.once()
        inbound = [m for m in rows(app, messages) if m["direction"] == "in"]
        opened = rows(app, loops)
    finally:
        app.close()

    assert report.passes[0].resynced
    (warning,) = [r for r in caplog.records if "UIDVALIDITY changed" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert (warning.was, warning.now) == (before, uidvalidity(imap_account, "Support"))  # type: ignore[attr-defined]
    assert report.passes[0].recorded == 1
    assert sorted(r.rcpt_tos[0] for r in acks(smtp_sink)) == [
        "ana.2@example.com",
        "jane.0@example.com",
        "ravi.1@example.com",
        "tom.3@example.com",
    ]
    assert len(inbound) == 4
    assert len(opened) == 4


def test_messages_already_seen_by_a_mail_client_are_processed(
    imap_account: ImapAccount, smtp_sink: SmtpSink, database_url: str, tmp_path: Path
) -> None:
    imap_account.append(mails.customer(1), flags=["\\Seen"])
    imap_account.append(mails.customer(2), flags=["\\Seen", "\\Answered", "\\Flagged"])
    app = App(settings_for(imap_account, smtp_sink, database_url, tmp_path))
    try:
        report = app.once()
    finally:
        app.close()
    assert report.passes[0].recorded == 2
    assert sorted(r.rcpt_tos[0] for r in acks(smtp_sink)) == ["ana.2@example.com", "ravi.1@example.com"]
    assert all("$Closeloop" in flags for flags in imap_account.fetch_flags().values())


# the daemon's connection ------------------------------------------------------------------------------------


@pytest.fixture
def relay(imap_account: ImapAccount) -> Iterator[TcpRelay]:
    with TcpRelay(imap_account.host, imap_account.port) as started:
        yield started


def running(app: App) -> Callable[[], None]:
    """Start ``app.run`` in a thread; returns the function that stops it and waits."""
    stop = threading.Event()
    thread = threading.Thread(target=app.run, args=(stop,), name="closeloop-under-test")
    thread.start()

    def finish() -> None:
        stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive(), "the daemon did not stop"

    return finish


def test_the_daemon_notices_a_dead_connection_reconnects_with_backoff_and_reads_what_arrived(
    imap_account: ImapAccount,
    smtp_sink: SmtpSink,
    relay: TcpRelay,
    sqlite_url: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    imap = {"port": relay.port, "timeout_seconds": 2, "idle_renew_minutes": 0.05}  # renew IDLE every 3 s
    app = App(settings_for(imap_account, smtp_sink, sqlite_url, tmp_path, inbox={"imap": imap}))
    caplog.set_level(logging.INFO, logger="daemon")
    stop = running(app)
    try:
        imap_account.append(mails.customer(0))
        ack_for(smtp_sink, "jane.0@example.com", timeout=15)

        # 1. The server resets the connection (a restart); mail arrives before the daemon is back.
        relay.cut()
        imap_account.append(mails.customer(1))
        ack_for(smtp_sink, "ravi.1@example.com", timeout=15)

        # 2. The connection goes silent without closing (a NAT forgot it): the IDLE renewal's read times out.
        relay.freeze()
        started = time.monotonic()
        imap_account.append(mails.customer(2))
        ack_for(smtp_sink, "ana.2@example.com", timeout=20)
        noticed_silence_in = time.monotonic() - started

        # 3. The server is unreachable for a while: reconnects back off, and mail that arrived is read after.
        relay.go_down()
        imap_account.append(mails.customer(3))
        time.sleep(3)
        assert [r for r in acks(smtp_sink) if r.rcpt_tos == ("tom.3@example.com",)] == []
        relay.come_up()
        ack_for(smtp_sink, "tom.3@example.com", timeout=20)
        inbound = [m for m in rows(app, messages) if m["direction"] == "in"]
    finally:
        stop()
        app.close()

    lost = [r for r in caplog.records if r.getMessage() == "inbox connection lost; reconnecting"]
    assert len(lost) >= 4  # reset, silence, and at least two refused reconnects
    delays = [r.retry_in_s for r in lost]  # type: ignore[attr-defined]
    assert delays[:2] == [2.0, 2.0]  # each fault after a good connection starts the backoff afresh
    assert 4.0 in delays  # then it doubles
    assert noticed_silence_in < 3 + 2 + 2 + 5  # renewal + read timeout + first backoff, and room for a busy CI
    print(f"a silent connection: mail that arrived read {noticed_silence_in:.1f}s later; reconnect delays {delays}")
    assert len(acks(smtp_sink)) == 4
    assert len(inbound) == 4


def test_idle_is_left_and_renewed_within_the_configured_interval(imap_account: ImapAccount) -> None:
    mailbox = ImapMailbox("support", imap_of(imap_account, idle_renew_minutes=0.05))
    mailbox.open()
    try:
        assert mailbox.has("IDLE")
        started = time.monotonic()
        assert mailbox.wait(600, threading.Event()) is False
        waited = time.monotonic() - started
        mailbox.noop()  # the connection is still good after leaving IDLE
    finally:
        mailbox.close()
    assert 2.5 < waited < 6


@pytest.mark.parametrize("minutes", [0, 28.5, 29, 60])
def test_an_idle_renewal_interval_of_29_minutes_or_more_is_refused(minutes: float, tmp_path: Path) -> None:
    data = {
        "inboxes": [
            {
                "name": "support",
                "address": "support@example.org",
                "imap": {"host": "imap.example.org", "username": "u", "password": "p", "idle_renew_minutes": minutes},
            }
        ],
        "smtp": {"host": "smtp.example.org"},
        "staff": [{"name": "Sam", "email": "sam@example.org"}],
    }
    with pytest.raises(ConfigError, match=r"inboxes\[0\]\.imap\.idle_renew_minutes"):
        Settings.from_mapping(data, {}, base=tmp_path)


def test_the_default_idle_renewal_is_well_within_29_minutes() -> None:
    imap = Imap.model_validate({"host": "imap.example.org", "username": "u", "password": "p"})
    assert imap.idle_renew_minutes <= 10
    assert imap.timeout_seconds <= 60


# reads have timeouts ----------------------------------------------------------------------------------------


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP server that accepts connections and never says a word."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", free_port()))
    listener.listen(8)
    accepted: list[socket.socket] = []
    closing = threading.Event()

    def accept() -> None:
        while not closing.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                return

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    closing.set()
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    for sock in accepted:
        sock.close()
    thread.join(timeout=5)


def test_a_server_that_never_answers_is_a_mailbox_error_within_the_timeout(
    imap_account: ImapAccount, silent_server: int
) -> None:
    mailbox = ImapMailbox("support", imap_of(imap_account, port=silent_server, timeout_seconds=1.5))
    started = time.monotonic()
    with pytest.raises(MailboxError, match="inbox support"):
        mailbox.open()
    assert 1.0 < time.monotonic() - started < 5


def test_a_connection_that_goes_silent_mid_session_is_a_mailbox_error_within_the_timeout(
    imap_account: ImapAccount, relay: TcpRelay
) -> None:
    for n in range(3):
        imap_account.append(mails.customer(n))
    mailbox = ImapMailbox("support", imap_of(imap_account, port=relay.port, timeout_seconds=1.5))
    mailbox.open()
    try:
        uids = mailbox.uids_after(0)
        relay.freeze()
        started = time.monotonic()
        with pytest.raises(MailboxError):
            mailbox.fetch(uids)
        assert 1.0 < time.monotonic() - started < 5
        assert not mailbox.connected  # a broken connection is dropped, the next pass opens a new one
    finally:
        mailbox.close()


# a server without MOVE or CONDSTORE -------------------------------------------------------------------------


def test_a_server_without_move_or_condstore_runs_a_whole_intake_and_moves_the_mail(
    dovecot_restricted: DovecotServer, smtp_sink: SmtpSink, database_url: str, tmp_path: Path
) -> None:
    account = dovecot_restricted.add_user()
    account.create_folder("Processed")
    for n in range(3):
        account.append(mails.customer(n))
    account.append(mails.customer(3), flags=["\\Seen"])
    account.append(mails.newsletter())
    app = App(settings_for(account, smtp_sink, database_url, tmp_path, inbox={"imap": {"move_to": "Processed"}}))
    try:
        with account.client() as client:
            capabilities = {c.decode().upper() for c in client.capabilities()}
        assert not {"MOVE", "CONDSTORE", "QRESYNC"} & capabilities
        first = app.once()
        account.append(mails.customer(4))
        second = app.once()
        third = app.once()
    finally:
        app.close()
    assert (first.passes[0].recorded, second.passes[0].recorded, third.passes[0].recorded) == (5, 1, 0)
    assert first.failures == second.failures == []
    assert account.uids() == []
    assert len(account.messages("Processed")) == 6
    assert len(acks(smtp_sink)) == 5
    assert len({r.rcpt_tos for r in acks(smtp_sink)}) == 5
