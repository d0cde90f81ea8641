"""SMTP faults on a real aiosmtpd sink, SQLite and PostgreSQL, with a clock the test moves.

4xx answers and dropped connections are retried with bounded exponential backoff and nothing is lost; a 5xx
fails the touch visibly (state, reason, the owner told), and so does a 4xx that lasts ``max_attempts``; a
server that is down for hours only delays the mail.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from daemon.app import App
from daemon.store.tables import touches

from servers.dovecot import ImapAccount
from servers.relay import TcpRelay
from servers.smtp import Received, SmtpSink
from support import mails
from support.clock import TUESDAY, MovableClock
from support.settings import settings_for

pytestmark = pytest.mark.integration

RETRY = {"first_delay_seconds": 60, "max_delay_seconds": 90, "max_attempts": 8}


def make_app(
    account: ImapAccount,
    sink: SmtpSink | TcpRelay,
    database_url: str,
    tmp_path: Path,
    clock: MovableClock,
    **retry: Any,
) -> App:
    """closeloop wired to ``sink`` (an SMTP sink, or a relay in front of one), with the test's retry settings."""
    settings = settings_for(account, sink, database_url, tmp_path, smtp={"retry": {**RETRY, **retry}})  # type: ignore[arg-type]
    return App(settings, clock=clock)


@pytest.fixture
def app(
    imap_account: ImapAccount, smtp_sink: SmtpSink, database_url: str, tmp_path: Path, clock: MovableClock
) -> Iterator[App]:
    application = make_app(imap_account, smtp_sink, database_url, tmp_path, clock)
    yield application
    application.close()


def touch_rows(app: App, kind: str | None = None) -> list[dict[str, Any]]:
    with app.store.engine.connect() as db:
        found = [dict(r._mapping) for r in db.execute(select(touches).order_by(touches.c.id))]
    return [t for t in found if kind is None or t["kind"] == kind]


def kinds(received: list[Received]) -> list[str]:
    return sorted(str(r.message["X-Closeloop-Kind"]) for r in received)


def acks(sink: SmtpSink) -> list[Received]:
    return [r for r in sink.messages if r.message["X-Closeloop-Kind"] == "acknowledgement"]


def text_of(received: Received) -> str:
    return str(received.message.get_body(("plain",)).get_content())


def test_a_451_is_retried_with_bounded_backoff_and_sent_once(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink, clock: MovableClock
) -> None:
    imap_account.append(mails.customer(1))
    smtp_sink.fail_next(1, code=451)  # the acknowledgement is claimed first
    app.once()
    (ack,) = touch_rows(app, "acknowledgement")
    assert (ack["state"], ack["attempts"]) == ("planned", 1)
    assert ack["due_at"] == TUESDAY + timedelta(seconds=60)
    assert "will retry" in ack["reason"] and "451" in ack["reason"]
    assert kinds(smtp_sink.messages) == ["staff-notification"]

    clock.advance(seconds=60)
    smtp_sink.fail_next(1, code=451)
    app.once()
    (ack,) = touch_rows(app, "acknowledgement")
    assert ack["attempts"] == 2
    assert ack["due_at"] == clock() + timedelta(seconds=90)  # 60 * 2 = 120, bounded by max_delay_seconds = 90

    clock.advance(seconds=60)
    app.once()
    assert acks(smtp_sink) == []  # not due yet: the backoff is kept

    clock.advance(seconds=30)
    app.once()
    (sent,) = acks(smtp_sink)
    (ack,) = touch_rows(app, "acknowledgement")
    assert (ack["state"], ack["attempts"], ack["reason"]) == ("sent", 3, "")
    assert sent.message["Message-ID"] == f"<{ack['message_id']}>"
    assert smtp_sink.attempts == 4  # three DATA for the acknowledgement, one for the owner's notification


def test_a_dropped_connection_is_retried_and_the_mail_sent_once(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink, clock: MovableClock
) -> None:
    imap_account.append(mails.customer(1))
    smtp_sink.drop_next(1)
    report = app.once()
    assert report.dispatched[-1].smtp_down  # the dispatcher stops for this pass instead of hammering
    assert smtp_sink.messages == []
    (ack,) = touch_rows(app, "acknowledgement")
    assert (ack["state"], ack["attempts"]) == ("planned", 1)
    assert ack["due_at"] == TUESDAY + timedelta(seconds=60)

    clock.advance(seconds=60)
    app.once()
    assert kinds(smtp_sink.messages) == ["acknowledgement", "staff-notification"]
    (ack,) = touch_rows(app, "acknowledgement")
    assert ack["state"] == "sent"
    assert acks(smtp_sink)[0].message["Message-ID"] == f"<{ack['message_id']}>"


def test_a_550_fails_the_touch_visibly_and_tells_the_owner(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    imap_account.append(mails.customer(1))
    smtp_sink.reject("ravi.1@example.com", 550, "5.1.1 No such user here")
    app.once()

    (ack,) = touch_rows(app, "acknowledgement")
    assert ack["state"] == "failed"
    assert ack["attempts"] == 1
    assert "refused by the SMTP server" in ack["reason"] and "550" in ack["reason"]
    assert "No such user here" in ack["reason"]
    assert all(r.rcpt_tos != ("ravi.1@example.com",) for r in smtp_sink.messages)
    owner = app.service.loops()[0]["owner"]
    told = [r for r in smtp_sink.messages if r.rcpt_tos == (owner,) and "was refused" in text_of(r)]
    assert len(told) == 1
    assert "ravi.1@example.com" in text_of(told[0]) and "550" in text_of(told[0])


def test_a_4xx_that_lasts_max_attempts_fails_visibly_and_tells_the_owner(
    imap_account: ImapAccount, smtp_sink: SmtpSink, database_url: str, tmp_path: Path, clock: MovableClock
) -> None:
    app = make_app(imap_account, smtp_sink, database_url, tmp_path, clock, max_attempts=3)
    try:
        imap_account.append(mails.customer(1))
        for _ in range(3):
            smtp_sink.fail_next(1, code=452, text="4.2.2 Mailbox full")
            app.once()
            clock.advance(seconds=90)
        (ack,) = touch_rows(app, "acknowledgement")
        assert (ack["state"], ack["attempts"]) == ("failed", 3)
        assert "gave up after 3 deferrals" in ack["reason"] and "Mailbox full" in ack["reason"]
        app.once()
        assert acks(smtp_sink) == []
        owner = app.service.loops()[0]["owner"]
        told = [r for r in smtp_sink.messages if r.rcpt_tos == (owner,) and "Mailbox full" in text_of(r)]
        assert len(told) == 1
    finally:
        app.close()


def test_the_server_down_for_hours_only_delays_the_mail(
    imap_account: ImapAccount, smtp_sink: SmtpSink, database_url: str, tmp_path: Path, clock: MovableClock
) -> None:
    with TcpRelay(smtp_sink.host, smtp_sink.port) as relay:
        # max_attempts is low on purpose: an unreachable server is not the message's fault and never fails it.
        app = make_app(imap_account, relay, database_url, tmp_path, clock, max_attempts=2, max_delay_seconds=3600)
        try:
            imap_account.append(mails.customer(0))
            app.once()
            assert kinds(smtp_sink.messages) == ["acknowledgement", "staff-notification"]

            relay.go_down()
            for n in range(1, 4):
                imap_account.append(mails.customer(n))
            assert app.once().dispatched[-1].smtp_down
            for _ in range(15):  # five hours, a dispatch every twenty minutes
                clock.advance(minutes=20)
                assert app.dispatch_all()[-1].smtp_down
            assert len(smtp_sink.messages) == 2
            assert {t["state"] for t in touch_rows(app)} <= {"planned", "sent"}
            first = {"acknowledgement", "staff-notification"}
            waiting = [t for t in touch_rows(app) if t["kind"] in first and t["state"] == "planned"]
            assert len(waiting) == 6  # three acknowledgements and three notifications, deferred but not failed
            assert max(t["attempts"] for t in waiting) >= 3  # more tries than max_attempts, still planned

            relay.come_up()
            clock.advance(hours=1)
            app.once()
        finally:
            app.close()
    sent = [r for r in smtp_sink.messages if r.message["X-Closeloop-Kind"] == "acknowledgement"]
    assert sorted(r.rcpt_tos[0] for r in sent) == [
        "ana.2@example.com",
        "jane.0@example.com",
        "ravi.1@example.com",
        "tom.3@example.com",
    ]
    assert len(smtp_sink.messages) == 8
    assert len({r.message["Message-ID"] for r in smtp_sink.messages}) == 8
