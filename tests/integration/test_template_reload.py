"""Templates staff edit while the daemon runs: hot reload, the last good version, alerts, held mail released.

The daemon runs for real (``App.run(stop)`` in a thread: IMAP watcher, APScheduler dispatch) against Dovecot and
aiosmtpd, with a copy of the shipped templates that each test edits the way staff would, in an editor.

The first customer writes before the daemon starts: mail that lands while the inbox watcher is between its first
UID SEARCH and IDLE is announced (``* 1 EXISTS``) during the SEARCH, not in IDLE, and waits for the IDLE renewal.
Later mail is appended after an acknowledgement arrived, when the watcher is back in IDLE.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from email import message_from_bytes
from email.utils import parseaddr
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from daemon.app import App
from daemon.config import Settings
from daemon.domain.model import Customer, Loop, LoopState, TouchKind, TouchState
from daemon.store.repository import NewTouch, Store, Transaction
from daemon.store.tables import touches
from daemon.templates_watch import HELD_PREFIX, RELEASED

from servers.dovecot import ImapAccount
from servers.smtp import Received, SmtpSink
from support import mails
from support.settings import STAFF, TEMPLATES, settings_for

pytestmark = pytest.mark.integration

ACK = "en/acknowledgement.txt"
ORIGINAL = "Thank you for taking the time to write to us"
EDITED = "Many thanks for writing to us"
MENDED = "Thanks a lot for writing to us"
LEAKS = ("{{", "}}", "{%", "Undefined", "undefined", "Traceback", "custmer")
STAFF_EMAILS = sorted(member["email"] for member in STAFF)


@pytest.fixture
def templates(tmp_path: Path) -> Path:
    return Path(shutil.copytree(TEMPLATES, tmp_path / "templates"))


@pytest.fixture
def settings(
    imap_account: ImapAccount, smtp_sink: SmtpSink, database_url: str, tmp_path: Path, templates: Path
) -> Settings:
    return settings_for(imap_account, smtp_sink, database_url, tmp_path, templates={"dir": str(templates)})


@contextmanager
def running(settings: Settings) -> Iterator[App]:
    """The daemon, as ``closeloop run`` runs it, until the block ends."""
    app = App(settings)
    stop = threading.Event()
    thread = threading.Thread(target=app.run, args=(stop,), name="closeloop-daemon")
    thread.start()
    try:
        yield app
    finally:
        stop.set()
        thread.join(timeout=60)
        app.close()
    assert not thread.is_alive()


def edit(templates: Path, old: str, new: str) -> None:
    """Change the acknowledgement's text as an editor saves it."""
    path = templates / ACK
    text = path.read_text(encoding="utf-8")
    assert old in text
    path.write_text(text.replace(old, new), encoding="utf-8")


def line_of(templates: Path, needle: str) -> int:
    lines = (templates / ACK).read_text(encoding="utf-8").splitlines()
    return next(number for number, line in enumerate(lines, 1) if needle in line)


def wait_until(what: str, condition: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"waited {timeout}s for {what}")


def kind(sink: SmtpSink, name: str) -> list[Received]:
    return [m for m in sink.messages if m.message["X-Closeloop-Kind"] == name]


def ack_to(sink: SmtpSink, address: str) -> Received:
    def found() -> Received | None:
        return next((m for m in kind(sink, "acknowledgement") if m.rcpt_tos == (address,)), None)

    received: Received = wait_until(f"the acknowledgement to {address}", found)
    return received


def text_of(received: Received) -> str:
    part = received.message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())


def html_of(received: Received) -> str:
    part = received.message.get_body(preferencelist=("html",))
    return "" if part is None else str(part.get_content())


def staff_alerts(sink: SmtpSink, count: int) -> list[Received]:
    """Waits until ``count`` staff alerts arrived; returns them all."""

    def arrived() -> list[Received]:
        found = kind(sink, "staff-alert")
        return found if len(found) >= count else []

    alerts: list[Received] = wait_until(f"{count} staff alerts", arrived)
    return alerts


def sent_acks(app: App, count: int) -> list[dict[str, Any]]:
    """Waits until ``count`` acknowledgements are recorded as sent (a moment after the server's 250)."""

    def recorded() -> list[dict[str, Any]]:
        with app.store.engine.connect() as db:
            query = select(touches).where(touches.c.kind == "acknowledgement").order_by(touches.c.id)
            rows = [dict(row._mapping) for row in db.execute(query)]
        return rows if sum(row["state"] == "sent" for row in rows) >= count else []

    rows: list[dict[str, Any]] = wait_until(f"{count} sent acknowledgements", recorded)
    return rows


def customer_writes(imap: ImapAccount, n: int) -> str:
    """The n-th customer writes in; returns their address."""
    raw = mails.customer(n)
    imap.append(raw)
    return parseaddr(str(message_from_bytes(raw)["From"]))[1]


def held_acks(app: App) -> list[dict[str, Any]]:
    with app.store.engine.connect() as db:
        query = select(touches).where(touches.c.kind == "acknowledgement", touches.c.state == "held")
        return [dict(row._mapping) for row in db.execute(query)]


def assert_no_leaks(sink: SmtpSink) -> None:
    for received in sink.messages:
        if received.message["X-Closeloop-Kind"] in ("staff-alert", "staff-notification", "staff-reminder"):
            continue
        body = text_of(received) + html_of(received) + str(received.message["Subject"])
        assert not [leak for leak in LEAKS if leak in body], body


def test_edits_take_effect_without_a_restart_and_a_broken_edit_never_reaches_a_customer(
    settings: Settings,
    templates: Path,
    imap_account: ImapAccount,
    smtp_sink: SmtpSink,
    caplog: pytest.LogCaptureFixture,
) -> None:
    jane = customer_writes(imap_account, 1)  # before the start: see the module docstring
    with running(settings) as app:
        first = ack_to(smtp_sink, jane)
        assert ORIGINAL in text_of(first)

        edit(templates, ORIGINAL, EDITED)
        second = ack_to(smtp_sink, customer_writes(imap_account, 2))
        assert EDITED in text_of(second) and ORIGINAL not in text_of(second)

        edit(templates, EDITED, "{{ custmer.first_name }}, " + EDITED)
        line = line_of(templates, "custmer")
        told = staff_alerts(smtp_sink, len(STAFF))
        third = ack_to(smtp_sink, customer_writes(imap_account, 3))
        assert EDITED in text_of(third) and "custmer" not in text_of(third)  # the last version that passed

        assert sorted(a.rcpt_tos[0] for a in told) == STAFF_EMAILS
        alert = told[0]
        assert alert.message["Subject"] == "[closeloop] templates: 1 problem"
        assert alert.message["Auto-Submitted"] == "auto-generated"
        assert f"{ACK}:{line}: undefined: 'custmer' is undefined" in text_of(alert)
        assert "last version of the templates that passed" in text_of(alert)

        edit(templates, "{{ custmer.first_name }}, " + EDITED, MENDED)
        fourth = ack_to(smtp_sink, customer_writes(imap_account, 4))
        assert MENDED in text_of(fourth)
        cleared = staff_alerts(smtp_sink, 2 * len(STAFF))
        rows = sent_acks(app, 4)

    assert kind(smtp_sink, "staff-alert") == cleared  # one alert per change, not one per touch or per tick
    assert {a.message["Subject"] for a in cleared[len(STAFF) :]} == {"[closeloop] templates: all problems fixed"}
    assert [r.getMessage() for r in caplog.records if r.levelname == "ERROR"] == ["templates fail the check"]
    versions = [row["template_version"] for row in rows]
    assert len(versions) == 4
    assert versions[2] == versions[1] != versions[0]  # the third went out with the version that passed
    assert versions[3] not in versions[:3]
    assert_no_leaks(smtp_sink)


def test_a_daemon_started_with_a_broken_template_holds_that_mail_until_it_is_mended(
    settings: Settings, templates: Path, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    edit(templates, ORIGINAL, "{{ custmer.first_name }}, " + ORIGINAL)
    line = line_of(templates, "custmer")

    customer = customer_writes(imap_account, 1)  # before the start: see the module docstring
    with running(settings) as app:
        told = staff_alerts(smtp_sink, len(STAFF))
        wait_until("the staff notification", lambda: kind(smtp_sink, "staff-notification"))  # its template works
        held = wait_until("the held acknowledgement", lambda: held_acks(app))
        assert not kind(smtp_sink, "acknowledgement")

        edit(templates, "{{ custmer.first_name }}, " + ORIGINAL, MENDED)
        mended = ack_to(smtp_sink, customer)
        cleared = staff_alerts(smtp_sink, 2 * len(STAFF))
        sent_acks(app, 1)

    assert kind(smtp_sink, "staff-alert") == cleared
    assert held[0]["reason"].startswith(f"template problem: {ACK}:{line}: undefined: 'custmer' is undefined")
    assert f"{ACK}:{line}: undefined" in text_of(told[0])
    assert "held instead of sent" in text_of(told[0])
    assert MENDED in text_of(mended)
    assert "1 email held because of a template problem goes out now" in text_of(cleared[-1])
    assert_no_leaks(smtp_sink)


# -- closeloop templates check -------------------------------------------------------------------------------------


def config_file(tmp_path: Path, templates: Path) -> Path:
    path = tmp_path / "closeloop.toml"
    path.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path}/cli.db"

[templates]
dir = "{templates}"

[[inboxes]]
name = "support"
address = "support@example.org"
imap = {{ host = "127.0.0.1", username = "support", password = "secret" }}

[smtp]
host = "127.0.0.1"

[[staff]]
name = "Sam Rivera"
email = "sam@example.org"
""",
        encoding="utf-8",
    )
    return path


def templates_check(config: Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "daemon", "--config", str(config), "templates", "check"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)


def test_templates_check_prints_file_line_message_and_exits_1_on_problems(tmp_path: Path, templates: Path) -> None:
    config = config_file(tmp_path, templates)
    clean = templates_check(config)
    edit(templates, ORIGINAL, "{{ custmer.first_name }}, " + ORIGINAL)
    (templates / "en/thank-you.txt").write_text("{% if %}\n", encoding="utf-8")

    broken = templates_check(config)

    assert (clean.returncode, clean.stdout) == (0, "")
    assert broken.returncode == 1
    assert broken.stdout.splitlines() == [
        f"{ACK}:{line_of(templates, 'custmer')}: undefined: 'custmer' is undefined",
        "en/thank-you.txt:1: syntax error: Expected an expression, got 'end of statement block'",
    ]


# -- the repository: held touches ----------------------------------------------------------------------------------


def test_release_held_plans_again_only_touches_held_for_a_template_problem(database_url: str) -> None:
    now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    reasons = {
        TouchKind.ACKNOWLEDGEMENT: "template problem: en/acknowledgement.txt:3: undefined: 'custmer' is undefined",
        TouchKind.THANK_YOU: "template problem: en/thank-you.txt: missing",
        TouchKind.OUTCOME: "the customer's address bounced",
        TouchKind.CLOSING: "template_problem% lookalike",  # LIKE wildcards in the prefix must not match this
    }
    store = Store(database_url)
    store.migrate()
    try:
        with store.transaction() as tx:
            loop_id = held_touches(tx, reasons, now)
        with store.transaction() as tx:
            counted, released = tx.count_held(HELD_PREFIX), tx.release_held(HELD_PREFIX, RELEASED)
        with store.reading() as tx:
            after = {t.kind: t for t in tx.touches_of(loop_id)}
            left = tx.count_held(HELD_PREFIX)
    finally:
        store.close()

    assert (counted, released, left) == (2, 2, 0)
    assert {kind: t.state for kind, t in after.items()} == {
        TouchKind.ACKNOWLEDGEMENT: TouchState.PLANNED,
        TouchKind.THANK_YOU: TouchState.PLANNED,
        TouchKind.OUTCOME: TouchState.HELD,
        TouchKind.CLOSING: TouchState.HELD,
    }
    assert after[TouchKind.ACKNOWLEDGEMENT].reason == RELEASED
    assert after[TouchKind.ACKNOWLEDGEMENT].due_at.replace(tzinfo=UTC) == now  # as it was: the next pass sends it


def held_touches(tx: Transaction, reasons: dict[TouchKind, str], now: datetime) -> int:
    """A loop with one touch of each kind in ``reasons``, held for that reason; returns the loop's id."""
    customer = tx.add_customer(Customer(id=None, email="jane@example.com"), now)
    loop = tx.add_loop(
        Loop(
            id=None,
            ref="",
            inbox="support",
            customer_id=customer.id or 0,
            state=LoopState.RECEIVED,
            owner="sam@example.org",
            subject="VAT",
            opened_at=now,
        )
    )
    loop_id = loop.id or 0
    new = [
        NewTouch(loop_id=loop_id, kind=kind, due_at=now, recipient=customer.email, message_id=f"{kind}@example.org")
        for kind in reasons
    ]
    tx.add_touches(new, now)
    for touch in tx.touches_of(loop_id):
        tx.settle(touch.id or 0, TouchState.HELD, reasons[touch.kind])
    return loop_id
