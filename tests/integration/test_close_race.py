"""Closing is final, even when a staff close races a dispatch that is sending the loop's mail.

The SMTP sink holds every DATA answer for a moment, so a send is in flight while another thread closes the loop.
Whatever the interleaving, each touch of the loop was either sent before the close committed (``sent_at <
closed_at``) or cancelled by it and never reached the server; nothing is sent after ``closed_at``. The rounds
start the close at different moments: before the dispatch, during the first send, between sends, during the
second, after both.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy import select

from daemon.app import App, utc_now
from daemon.store.tables import loops, touches

from servers.dovecot import ImapAccount
from servers.smtp import SmtpSink
from support import mails
from support.settings import settings_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]

DATA_DELAY = 0.15
ROUNDS = 27
CLOSE_AFTER = (-0.3, 0.3, 0.6, 0.9, 1.05, 1.3, 1.6, 1.9, 2.5)
"""When the close starts, in units of DATA_DELAY after the dispatch started (before it when negative); the
dispatch sends the loop's two touches, the acknowledgement and then the staff notification."""
TOGETHER_ROUNDS = 30
TOGETHER = (-0.02, -0.01, 0.0, 0.0, 0.01, 0.02)
"""Close and dispatch starting within a few milliseconds of each other, in units of DATA_DELAY."""


class SlowSink(SmtpSink):
    """An SMTP sink that answers each DATA only after ``delay`` seconds, the message already on the wire."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.sending = threading.Event()  # set when a DATA arrives, before it is answered

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.sending.set()
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def slow_sink() -> Iterator[SlowSink]:
    with SlowSink(DATA_DELAY) as sink:
        yield sink


@pytest.fixture
def app(imap_account: ImapAccount, slow_sink: SlowSink, database_url: str, tmp_path: Path) -> Iterator[App]:
    application = App(settings_for(imap_account, slow_sink, database_url, tmp_path))
    yield application
    application.close()


def in_thread(work: Callable[[], Any], failures: list[BaseException]) -> threading.Thread:
    def run() -> None:
        try:
            work()
        except BaseException as exc:  # reported by the test, not lost in the thread
            failures.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def loop_and_touches(app: App, ref: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with app.store.reading() as tx:
        loop_id = tx.loop_by_ref(ref).id
        loop = dict(tx.db.execute(select(loops).where(loops.c.id == loop_id)).one()._mapping)
        rows = [dict(r._mapping) for r in tx.db.execute(select(touches).where(touches.c.loop_id == loop_id))]
    return loop, rows


def race(app: App, ref: str, close_after: float) -> list[BaseException]:
    """Dispatch what is due while another thread closes ``ref`` ``close_after`` seconds later."""
    failures: list[BaseException] = []

    def close() -> None:
        time.sleep(max(close_after, 0))
        app.service.close(ref, "closed while its mail was going out", utc_now())

    def dispatch() -> None:
        time.sleep(max(-close_after, 0))
        app.dispatch_all()

    threads = [in_thread(dispatch, failures), in_thread(close, failures)]
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads), "the race never finished: a deadlock?"
    return failures


def open_loop(app: App, imap_account: ImapAccount, n: int) -> str:
    """A new customer's loop with its acknowledgement and staff notification due now (intake only)."""
    imap_account.append(mails.customer(n))
    (ref,) = app.read(app.settings.inboxes[0]).opened
    return ref


def settled(app: App, sink: SmtpSink, ref: str, where: str) -> tuple[datetime, list[dict[str, Any]]]:
    """The loop is closed and each of its touches was sent (and reached the server) or cancelled (and did not);
    returns when it closed and its touches."""
    loop, rows = loop_and_touches(app, ref)
    assert loop["state"] == "closed", where
    arrived = {str(r.message["Message-ID"]).strip("<>") for r in sink.messages}
    assert {t["kind"] for t in rows} >= {"acknowledgement", "staff-notification", "thank-you"}, where
    for touch in rows:
        what = f"{where}: {ref} {touch['kind']} ({touch['state']}, {touch['reason']!r})"
        assert touch["state"] in ("sent", "cancelled"), what
        assert (touch["message_id"] in arrived) == (touch["state"] == "sent"), what
    return loop["closed_at"], rows


def kinds_sent(rows: list[dict[str, Any]]) -> str:
    return " + ".join(sorted(t["kind"] for t in rows if t["state"] == "sent")) or "nothing sent"


def test_a_close_racing_a_dispatch_never_lets_a_touch_out_after_it(
    app: App, imap_account: ImapAccount, slow_sink: SlowSink
) -> None:
    jitter = random.Random(20261124)
    outcomes: set[str] = set()
    for n in range(ROUNDS):
        ref = open_loop(app, imap_account, n)
        close_after = CLOSE_AFTER[n % len(CLOSE_AFTER)] * DATA_DELAY * jitter.uniform(0.9, 1.1)
        where = f"round {n}, close {close_after * 1000:+.0f} ms after the dispatch started"

        assert race(app, ref, close_after) == [], where

        closed_at, rows = settled(app, slow_sink, ref, where)
        for touch in rows:
            if touch["state"] == "sent":
                assert touch["sent_at"] < closed_at, f"{where}: {touch['kind']} sent after the loop closed"
        outcomes.add(kinds_sent(rows))

    # The rounds covered the interleavings: closed first, closed after both sends, and (where lock waits queue,
    # as in PostgreSQL; SQLite's busy wait lets the dispatcher's next transaction in first) between the two.
    covered = {"nothing sent", "acknowledgement + staff-notification"}
    if not app.store.is_sqlite:
        covered.add("acknowledgement")
    assert outcomes >= covered, outcomes


def test_a_close_and_a_dispatch_starting_together_neither_fail_nor_leak_a_cancelled_touch(
    app: App, imap_account: ImapAccount, slow_sink: SlowSink
) -> None:
    """Within milliseconds of each other: no deadlock between the close (loop, then touches) and the dispatcher
    (touch, then loop), no error, and a touch that reached the server is the one recorded as sent."""
    for n in range(TOGETHER_ROUNDS):
        ref = open_loop(app, imap_account, n)
        close_after = TOGETHER[n % len(TOGETHER)] * DATA_DELAY
        where = f"round {n}, close {close_after * 1000:+.1f} ms after the dispatch started"

        assert race(app, ref, close_after) == [], where

        settled(app, slow_sink, ref, where)


def test_a_close_that_waited_for_a_send_in_flight_is_recorded_after_that_send(
    app: App, imap_account: ImapAccount, slow_sink: SlowSink
) -> None:
    ref = open_loop(app, imap_account, 0)
    asked = utc_now()  # `closeloop close` reads the clock, ...
    failures: list[BaseException] = []
    dispatch = in_thread(app.dispatch_all, failures)
    assert slow_sink.sending.wait(10)  # ... the dispatcher claims the acknowledgement and starts sending, ...
    app.service.close(ref, "closed while its mail was going out", asked)  # ... and the close waits for it.
    dispatch.join(timeout=60)

    assert failures == []
    closed_at, rows = settled(app, slow_sink, ref, "close waited for the send")
    (ack,) = [t for t in rows if t["kind"] == "acknowledgement"]
    assert ack["state"] == "sent"
    assert ack["sent_at"] <= closed_at
