"""Crash safety, with closeloop as a real child process (``python -m daemon --config FILE run``) on a real Dovecot,
aiosmtpd, SQLite and PostgreSQL.

* ``kill -9`` at random moments, over and over, while the daemon works through hundreds of messages: every
  message is recorded exactly once, every customer has one loop, and each customer's acknowledgement was
  received once, or more than once only with the same Message-ID (a crash between the server's 250 and our
  commit resends the same bytes).
* ``SIGTERM``: the step in progress finishes, the daemon exits 0, and nothing it sent is unrecorded.
* Two daemons pointed at the same mailbox and database by mistake: no duplicate loops, no duplicate mail.

The seed of the random kill offsets is printed; set ``CLOSELOOP_CRASH_SEED`` to replay a run.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, inspect, select

from daemon.app import App
from daemon.config import Inbox, Settings
from daemon.intake import Intake, IntakeReport, Parsed
from daemon.store.repository import Store
from daemon.store.tables import customers, loops, messages, touches

from servers.dovecot import ImapAccount
from servers.smtp import Received, SmtpSink
from support import mails
from support.settings import STAFF, TEMPLATES, settings_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
READY = b'"closeloop running"'


# the daemon as a child process -----------------------------------------------------------------------------------


def toml(data: dict[str, Any], prefix: str = "") -> str:
    """Just enough TOML for a closeloop config: scalars, lists of scalars, tables and arrays of tables."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict) or (isinstance(value, list) and value and isinstance(value[0], dict)):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    text = "".join(f"{line}\n" for line in lines)
    for key, value in tables:
        name = f"{prefix}{key}"
        for table in [value] if isinstance(value, dict) else value:
            text += f"\n[{'[' if isinstance(value, list) else ''}{name}]{']' if isinstance(value, list) else ''}\n"
            text += toml(table, f"{name}.")
    return text


def write_config(path: Path, account: ImapAccount, sink: SmtpSink, database_url: str) -> Path:
    config = {
        "database": {"url": database_url},
        "templates": {"dir": str(TEMPLATES)},
        "team": {"timezone": "Europe/Berlin"},
        "daemon": {"tick_seconds": 1},
        "logging": {"level": "INFO", "format": "json"},
        "inboxes": [
            {
                "name": "support",
                "address": "support@example.org",
                "display_name": "Example Support",
                "imap": {
                    "host": account.host,
                    "port": account.port,
                    "security": "none",
                    "username": account.username,
                    "password": account.password,
                    "batch_size": 20,
                    "timeout_seconds": 10,
                    "idle_renew_minutes": 1,
                    "poll_seconds": 1,
                },
            }
        ],
        "smtp": {
            "host": sink.host,
            "port": sink.port,
            "security": "none",
            "timeout_seconds": 10,
            "retry": {"first_delay_seconds": 1, "max_delay_seconds": 4},
        },
        "staff": STAFF,
    }
    path.write_text(toml(config), encoding="utf-8")
    return path


class Daemon:
    """One ``closeloop run`` child; its log (stderr, JSON lines) is appended to ``log``."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        self.offset = log.stat().st_size if log.exists() else 0
        self.started = time.monotonic()
        with log.open("ab") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "daemon", "--config", str(config), "run"],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )

    def said(self, text: bytes) -> bool:
        with self.log.open("rb") as handle:
            handle.seek(self.offset)
            return text in handle.read()

    def wait_until_running(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not self.said(READY):
            assert self.process.poll() is None, f"the daemon exited with {self.process.returncode}:\n{tail(self.log)}"
            assert time.monotonic() < deadline, f"the daemon did not start in {timeout}s:\n{tail(self.log)}"
            time.sleep(0.01)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self, timeout: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def ensure_gone(self) -> None:
        if self.process.poll() is None:
            self.kill()


def tail(log: Path, lines: int = 40) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:]) if log.exists() else "(no log)"


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[[Path], Daemon]]:
    """Starts ``closeloop run`` children; any still alive at the end are killed."""
    started: list[Daemon] = []

    def start(config: Path) -> Daemon:
        daemon = Daemon(config, tmp_path / "daemon.log")
        started.append(daemon)
        return daemon

    yield start
    for daemon in started:
        daemon.ensure_gone()


# what the test reads back -------------------------------------------------------------------------------------


def append_customers(account: ImapAccount, count: int) -> list[str]:
    """``count`` distinct customers write, one message each; returns their addresses."""
    with account.client() as client:
        for n in range(count):
            client.append("INBOX", mails.customer(n))
    return [f"{mails.customer(n).split(b'Return-Path: <')[1].split(b'>')[0].decode()}" for n in range(count)]


@dataclass(frozen=True, kw_only=True)
class Progress:
    inbound: int
    acknowledged: int
    due: int


def progress(store: Store) -> Progress:
    if not inspect(store.engine).has_table("touches"):  # killed before its first migration finished
        return Progress(inbound=0, acknowledged=0, due=0)
    with store.reading() as tx:
        db = tx.db
        inbound = db.execute(select(func.count()).where(messages.c.direction == "in")).scalar_one()
        acked = db.execute(
            select(func.count()).where(touches.c.kind == "acknowledgement", touches.c.state == "sent")
        ).scalar_one()
        first = touches.c.kind.in_(["acknowledgement", "staff-notification"])
        due = db.execute(select(func.count()).where(first, touches.c.state == "planned")).scalar_one()
    return Progress(inbound=inbound, acknowledged=acked, due=due)


def wait_until_done(store: Store, count: int, daemons: list[Daemon], timeout: float) -> None:
    """Until every message is recorded and every first touch (acknowledgement, notification) is settled."""
    deadline = time.monotonic() + timeout
    while True:
        now = progress(store)
        if now.inbound == count and now.due == 0:  # a message's touches commit with it
            return
        for daemon in daemons:
            assert daemon.process.poll() is None, f"a daemon died:\n{tail(daemon.log)}"
        if time.monotonic() > deadline:
            unsent = [t for t in rows(store, touches) if t["kind"] == "acknowledgement" and t["state"] != "sent"]
            raise AssertionError(f"not done after {timeout}s: {now}; unsent: {unsent}\n{tail(daemons[0].log)}")
        time.sleep(0.2)


def rows(store: Store, table: Any) -> list[dict[str, Any]]:
    with store.reading() as tx:
        return [dict(r._mapping) for r in tx.db.execute(select(table).order_by(table.c.id))]


def by_recipient(received: list[Received], kind: str) -> dict[str, list[str]]:
    """Message-IDs the sink received per recipient, for one kind of touch."""
    grouped: dict[str, list[str]] = defaultdict(list)
    for mail in received:
        if mail.message["X-Closeloop-Kind"] == kind:
            grouped[mail.rcpt_tos[0]].append(str(mail.message["Message-ID"]).strip("<>"))
    return grouped


def assert_exactly_once(store: Store, account: ImapAccount, sink: SmtpSink, addresses: list[str]) -> int:
    """Every message recorded once, one loop per customer, one acknowledgement per customer (a repeat only with
    the same Message-ID). Returns how many acknowledgements were received twice or more."""
    inbound = [m for m in rows(store, messages) if m["direction"] == "in"]
    assert sorted(m["uid"] for m in inbound) == account.uids()  # each UID once: none lost, none twice
    odd = [(m["uid"], m["classification"], m["reason"]) for m in inbound if m["classification"] != "customer"]
    assert odd == []  # none quarantined by the crashes
    recorded = rows(store, customers)
    assert sorted(c["email"] for c in recorded) == sorted(addresses)
    per_customer = defaultdict(list)
    for loop in rows(store, loops):
        per_customer[loop["customer_id"]].append(loop["id"])
    assert sorted(len(found) for found in per_customer.values()) == [1] * len(addresses)  # one loop each

    sent = {t["recipient"]: t["message_id"] for t in rows(store, touches) if t["kind"] == "acknowledgement"}
    received = by_recipient(sink.messages, "acknowledgement")
    assert sorted(received) == sorted(addresses)  # everyone got their acknowledgement
    for address, ids in received.items():
        assert set(ids) == {sent[address]}, f"{address} got different acknowledgements: {ids}"
    notified = [i for ids in by_recipient(sink.messages, "staff-notification").values() for i in ids]
    assert len(set(notified)) == len(addresses)  # one notification per loop, repeats only with the same id
    return sum(len(ids) > 1 for ids in received.values())


# kill -9, over and over ------------------------------------------------------------------------------------------

KILLS = 20
# SQLite records and sends several times faster than PostgreSQL here: more mail keeps its kills inside the work.
CUSTOMERS = {"sqlite": 600, "postgresql": 300}


def wait_for_intake_progress(store: Store, since: int, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while (now := progress(store).inbound) == since and now < count:
        assert time.monotonic() < deadline, f"intake made no progress in {timeout}s"
        time.sleep(0.005)


def killed_while_starting(daemon: Daemon, offset: float) -> bool:
    """Kill ``daemon`` ``offset`` seconds after its start if it is still starting (no inbox watched yet)."""
    while time.monotonic() < daemon.started + offset:
        if daemon.said(READY):
            return False
        time.sleep(0.005)
    if daemon.said(READY):
        return False
    daemon.kill()
    return True


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing_and_duplicates_no_loop(
    imap_account: ImapAccount,
    smtp_sink: SmtpSink,
    database_url: str,
    tmp_path: Path,
    daemons: Callable[[Path], Daemon],
) -> None:
    """Kills land at random: during start-up and migrations, in batch intake, in one-message replays, in dispatch
    (between a 250 and its commit, now and then). One rule keeps them within what intake promises: while intake
    is under way, a run records a message before it is killed. Three kills in a row while the same message is in
    flight would quarantine it (intake cannot tell that from a message that kills it every time): that is
    :func:`test_three_kills_while_the_same_message_is_in_flight_do_not_quarantine_it`."""
    seed = int(os.environ.get("CLOSELOOP_CRASH_SEED", time.time_ns() % 2**32))
    print(f"CLOSELOOP_CRASH_SEED={seed}")
    rng = random.Random(seed)
    count = CUSTOMERS[database_url.partition(":")[0].partition("+")[0]]
    addresses = append_customers(imap_account, count)
    config = write_config(tmp_path / "closeloop.toml", imap_account, smtp_sink, database_url)
    store = Store(database_url)
    try:
        seen: list[Progress] = []
        for kill in range(KILLS):
            before = progress(store).inbound
            if before == count and progress(store).due == 0:
                break  # all done: more kills would hit an idle daemon
            daemon = daemons(config)
            if kill % 5 == 0 and killed_while_starting(daemon, rng.uniform(0.05, 1.0)):
                seen.append(progress(store))
                continue
            daemon.wait_until_running()
            wait_for_intake_progress(store, before, count)
            time.sleep(rng.uniform(0.05, 0.5))
            daemon.kill()
            seen.append(progress(store))

        started = time.monotonic()
        last = daemons(config)
        last.wait_until_running()
        wait_until_done(store, count, [last], timeout=240)
        assert last.terminate() == 0, tail(last.log)
        finishing = time.monotonic() - started

        repeated = assert_exactly_once(store, imap_account, smtp_sink, addresses)
    finally:
        store.close()
    # The kills landed while there was work in flight, not before or after it.
    assert len([p for p in seen if 0 < p.inbound < count or 0 < p.acknowledged < count]) >= 6, seen
    after_each = [(p.inbound, p.acknowledged) for p in seen]
    print(
        f"seed {seed}: {len(seen)} kills, (recorded, acknowledged) after each: {after_each}; {repeated} "
        f"acknowledgements received twice (same Message-ID); the last run finished in {finishing:.1f}s"
    )


class Killed(BaseException):
    """Stands for SIGKILL: nothing in closeloop catches it."""


class KilledWhileRecording(Intake):
    """Test-only: the process is killed from outside (OOM killer, a crash in the dispatch thread, an operator)
    while this innocent message is being recorded, ``kills`` times in a row; after that, nothing happens."""

    def __init__(self, settings: Settings, store: Store, *, uid: int, kills: int) -> None:
        super().__init__(settings, store)
        self.uid, self.kills = uid, kills

    def _record(self, inbox: Inbox, folder: str, uidvalidity: int, parsed: list[Parsed], now: datetime) -> IntakeReport:
        if self.kills and any(p.uid == self.uid for p in parsed):
            self.kills -= 1
            raise Killed
        return super()._record(inbox, folder, uidvalidity, parsed, now)


@pytest.mark.xfail(
    strict=True,
    reason="design question: intake counts an attempt before each message and quarantines after 3, so three "
    "kills from outside while the same innocent message is in flight look like a message that kills intake "
    "every time; the customer is not answered automatically (the staff are told by the quarantine alert)",
)
def test_three_kills_while_the_same_message_is_in_flight_do_not_quarantine_it(
    imap_account: ImapAccount, smtp_sink: SmtpSink, database_url: str, tmp_path: Path
) -> None:
    imap_account.append(mails.customer(0))
    innocent = imap_account.append(mails.customer(1))
    app = App(settings_for(imap_account, smtp_sink, database_url, tmp_path))
    try:
        app.service.intake = KilledWhileRecording(app.settings, app.store, uid=innocent, kills=3)
        for _ in range(3):
            with pytest.raises(Killed):
                app.once()
        app.once()
        (recorded,) = [m for m in rows(app.store, messages) if m["uid"] == innocent]
    finally:
        app.close()
    assert (recorded["classification"], recorded["reason"]) == ("customer", "")
    assert {r.rcpt_tos[0] for r in smtp_sink.messages if r.message["X-Closeloop-Kind"] == "acknowledgement"} == {
        "jane.0@example.com",
        "ravi.1@example.com",
    }


# SIGTERM --------------------------------------------------------------------------------------------------------


def test_sigterm_finishes_the_step_in_progress_and_exits_0(
    imap_account: ImapAccount, smtp_sink: SmtpSink, sqlite_url: str, tmp_path: Path, daemons: Callable[[Path], Daemon]
) -> None:
    addresses = append_customers(imap_account, 60)
    config = write_config(tmp_path / "closeloop.toml", imap_account, smtp_sink, sqlite_url)
    store = Store(sqlite_url)
    try:
        daemon = daemons(config)
        smtp_sink.wait_for(10, timeout=60)  # in the middle of dispatching
        asked = time.monotonic()
        assert daemon.terminate(timeout=60) == 0, tail(daemon.log)
        stopped_in = time.monotonic() - asked
        assert daemon.said(b'"stopping: finishing the current step"') and daemon.said(b'"stopped"')

        # Everything the server accepted is recorded as sent: no step was cut off between the 250 and the commit.
        delivered = {str(m.message["Message-ID"]).strip("<>") for m in smtp_sink.messages}
        recorded = {t["message_id"] for t in rows(store, touches) if t["state"] == "sent"}
        assert delivered == recorded
        assert 10 <= len(delivered) < 2 * len(addresses)

        last = daemons(config)
        wait_until_done(store, len(addresses), [last], timeout=120)
        assert last.terminate() == 0
        repeated = assert_exactly_once(store, imap_account, smtp_sink, addresses)
    finally:
        store.close()
    assert repeated == 0  # a clean stop never resends
    assert stopped_in < 30
    print(f"SIGTERM after {len(delivered)} mails: exited 0 in {stopped_in:.2f}s")


# two daemons, one mailbox, one database ------------------------------------------------------------------------


def test_two_daemons_on_the_same_mailbox_and_database_send_each_mail_once(
    imap_account: ImapAccount,
    smtp_sink: SmtpSink,
    database_url: str,
    tmp_path: Path,
    daemons: Callable[[Path], Daemon],
) -> None:
    addresses = append_customers(imap_account, 80)
    config = write_config(tmp_path / "closeloop.toml", imap_account, smtp_sink, database_url)
    store = Store(database_url)
    try:
        store.migrate()  # both start on a ready schema, as they would in production
        first, second = daemons(config), daemons(config)
        wait_until_done(store, len(addresses), [first, second], timeout=180)
        time.sleep(2)  # room for a late duplicate to show
        assert first.terminate() == 0 and second.terminate() == 0, tail(first.log)
        repeated = assert_exactly_once(store, imap_account, smtp_sink, addresses)
        attempts = [t["attempts"] for t in rows(store, touches) if t["state"] == "sent"]
    finally:
        store.close()
    assert repeated == 0
    assert len(smtp_sink.messages) == 2 * len(addresses)  # an acknowledgement and a notification per customer
    assert set(attempts) == {1}
