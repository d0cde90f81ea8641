"""Poison input on a real Dovecot, aiosmtpd, SQLite and PostgreSQL: hostile messages never block the mail behind
them, are recorded (raw when they cannot be parsed, quarantined with the reason), and cost bounded time and
memory each. Missing and duplicate Message-IDs neither lose nor wrongly merge messages.

``PYTHONPATH=tests python tests/integration/test_poison.py`` prints the time and peak memory of parsing each
hostile input (the figures in ``docs/reliability.md``).
"""

from __future__ import annotations

import base64
import contextlib
import os
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import update

from daemon.app import App
from daemon.config import Inbox
from daemon.intake import Intake, IntakeReport, Parsed
from daemon.mail.parse import UnparseableMessage, parse_message
from daemon.store.tables import loops, messages, touches

from servers.dovecot import ImapAccount
from servers.smtp import Received, SmtpSink
from support import mails
from support.db import rows
from support.settings import settings_for

pytestmark = pytest.mark.integration

MB = 1024 * 1024


# hostile inputs ----------------------------------------------------------------------------------------------


def _head(sender: str, subject: str, content_type: str, extra: str = "") -> str:
    return (
        f"Return-Path: <{sender}>\r\nFrom: Mallory <{sender}>\r\nTo: support@example.org\r\n"
        f"Subject: {subject}\r\nDate: Tue, 24 Nov 2026 09:30:00 +0000\r\n"
        f"Message-ID: <{subject.replace(' ', '-')}.{os.urandom(4).hex()}@hostile.example.net>\r\n"
        f"MIME-Version: 1.0\r\n{extra}Content-Type: {content_type}\r\n\r\n"
    )


def broken_mime() -> bytes:
    """A multipart whose boundary never closes, a part with invalid base64, a multipart with no boundary."""
    return (
        _head("broken@hostile.example.net", "broken mime", 'multipart/mixed; boundary="OPEN"')
        + "--OPEN\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease help, my order is broken.\r\n"
        + "--OPEN\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + "%%%not*base64!!!QUJD\r\n"
        + "--OPEN\r\nContent-Type: multipart/alternative\r\n\r\nno boundary here\r\n"
        + "--OPEN\r\nContent-Type: text/html; charset=\r\n\r\n<p>unterminated <b><i>\r\n"
    ).encode()


def unknown_charset() -> bytes:
    return (
        _head(
            "charset@hostile.example.net",
            "=?x-klingon-42?Q?unknown=E9charset?= and =?utf-8?B?!!!?=",
            'text/plain; charset="x-klingon-42"',
        ).encode()
        + "Bonjour, ma commande est arrivée cassée. ".encode("latin-1") * 3
        + b"\xff\xfe\x80\x81\r\n"
    )


def deep_nesting(depth: int = 1_000) -> bytes:
    """``depth`` multiparts, each inside the previous one."""
    opening = "".join(f'--B{n}\r\nContent-Type: multipart/mixed; boundary="B{n + 1}"\r\n\r\n' for n in range(depth))
    inner = f"--B{depth}\r\nContent-Type: text/plain\r\n\r\nat the bottom\r\n--B{depth}--\r\n"
    closing = "".join(f"--B{n}--\r\n" for n in reversed(range(depth)))
    return (
        _head("deep@hostile.example.net", "deep nesting", 'multipart/mixed; boundary="B0"') + opening + inner + closing
    ).encode()


def many_parts(parts: int = 10_000) -> bytes:
    body = "".join(f"--P\r\nContent-Type: text/plain\r\n\r\npart {n}\r\n" for n in range(parts))
    return (
        _head("parts@hostile.example.net", "many parts", 'multipart/mixed; boundary="P"') + body + "--P--\r\n"
    ).encode()


def huge_header(size: int = MB) -> bytes:
    """One folded header line of ``size`` bytes."""
    folded = "\r\n ".join("x" * 76 for _ in range(size // 79))
    return (
        _head("header@hostile.example.net", "huge header", "text/plain", extra=f"X-Junk: {folded}\r\n") + "hi\r\n"
    ).encode()


def huge_attachment(size: int = 20 * MB) -> bytes:
    encoded = base64.encodebytes(os.urandom(size * 3 // 4)).replace(b"\n", b"\r\n")
    return (
        _head("attachment@hostile.example.net", "huge attachment", 'multipart/mixed; boundary="A"').encode()
        + b"--A\r\nContent-Type: text/plain\r\n\r\nThe log file you asked for is attached.\r\n"
        + b'--A\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="log.bin"\r\n'
        + b"Content-Transfer-Encoding: base64\r\n\r\n"
        + encoded
        + b"\r\n--A--\r\n"
    )


def nul_bytes() -> bytes:
    return (
        b"Return-Path: <nul@hostile.example.net>\r\nFrom: Nu\x00ll <nul@hostile.example.net>\r\n"
        b"To: support@example.org\r\nSubject: nul\x00 in the subject\r\nDate: Tue, 24 Nov 2026 09:30:00 +0000\r\n"
        b"Message-ID: <nul.1@hostile.example.net>\r\n\r\nbody with \x00 NUL \x00 bytes\r\n"
    )


def no_headers() -> bytes:
    return b"hello there\r\nthis message has no header fields at all, just text\r\n"


HOSTILE: dict[str, Callable[[], bytes]] = {
    "broken MIME": broken_mime,
    "unknown charset": unknown_charset,
    "1,000-deep nesting": deep_nesting,
    "10,000 parts": many_parts,
    "1 MB header": huge_header,
    "20 MB attachment": huge_attachment,
    "NUL bytes": nul_bytes,
    "no headers": no_headers,
}
UNPARSEABLE = {"1 MB header": "header block larger than", "no headers": "no header fields"}


# the end-to-end pass -----------------------------------------------------------------------------------------


def acks(sink: SmtpSink) -> list[Received]:
    return [r for r in sink.messages if r.message["X-Closeloop-Kind"] == "acknowledgement"]


@pytest.fixture
def app(imap_account: ImapAccount, smtp_sink: SmtpSink, database_url: str, tmp_path: Path) -> Iterator[App]:
    application = App(settings_for(imap_account, smtp_sink, database_url, tmp_path))
    yield application
    application.close()


def test_hostile_messages_are_recorded_and_never_block_the_customers_behind_them(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    uids: dict[str, int] = {}
    raws: dict[str, bytes] = {}
    for n, (name, build) in enumerate(HOSTILE.items()):
        imap_account.append(mails.customer(n))
        raws[name] = build()
        uids[name] = imap_account.append(raws[name])
    imap_account.append(mails.customer(len(HOSTILE)))

    started = time.monotonic()
    report = app.once()
    elapsed = time.monotonic() - started

    customers = {f"{mails.customer(n).split(b'<')[2].split(b'>')[0].decode()}" for n in range(len(HOSTILE) + 1)}
    assert customers <= {r.rcpt_tos[0] for r in acks(smtp_sink)}  # every customer answered in this one pass
    assert report.passes[0].recorded == 2 * len(HOSTILE) + 1
    assert elapsed < 60
    print(f"one pass over {2 * len(HOSTILE) + 1} messages, {len(HOSTILE)} of them hostile: {elapsed:.2f}s")
    stored = {m["uid"]: m for m in rows(app, messages) if m["direction"] == "in"}
    for name, uid in uids.items():
        row = stored[uid]
        if name in UNPARSEABLE:
            assert row["classification"] == "quarantined", name
            assert UNPARSEABLE[name] in row["reason"], name
            assert row["raw"] == imap_account.messages()[sorted(stored).index(uid)], name
        else:
            assert row["classification"] == "customer", (name, row["reason"])
            assert row["raw"] is None, name
            assert "\x00" not in row["subject"] + row["from_name"] + row["text_body"], name
    assert stored[uids["20 MB attachment"]]["size"] > 20 * MB
    assert stored[uids["10,000 parts"]]["text_body"].startswith("part 0")


@pytest.mark.parametrize("name", list(HOSTILE))
def test_each_hostile_input_parses_in_bounded_time_and_memory(name: str) -> None:
    raw = HOSTILE[name]()
    seconds, peak = measure(raw)
    assert seconds < 3.0, f"{name}: {seconds:.2f} s"
    assert peak < 2 * len(raw) + 32 * MB, f"{name}: peak {peak / MB:.1f} MB for {len(raw) / MB:.1f} MB of input"


def measure(raw: bytes) -> tuple[float, int]:
    """Seconds to parse ``raw`` (or to refuse it), and the peak memory the parse allocated (tracemalloc)."""
    started = time.perf_counter()
    _parse_or_refuse(raw)
    seconds = time.perf_counter() - started
    tracemalloc.start()
    try:
        _parse_or_refuse(raw)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return seconds, peak


def _parse_or_refuse(raw: bytes) -> None:
    with contextlib.suppress(UnparseableMessage):
        parse_message(raw)


# a message that kills the process every time -----------------------------------------------------------------


class ProcessDied(BaseException):
    """Stands for the process dying: nothing in closeloop catches it, as nothing survives a SIGKILL or an OOM."""


class DyingIntake(Intake):
    """Test-only: recording a message that carries ``X-Test-Poison`` kills "the process", every time.

    Monkeypatching is not needed: the test wires this intake into the app, as ``app.py`` wires the real one.
    A message intake has given up on (kept raw, never parsed again) no longer kills anything.
    """

    def _record(self, inbox: Inbox, folder: str, uidvalidity: int, parsed: list[Parsed], now: datetime) -> IntakeReport:
        if any(p.message is not None and p.message.header("x-test-poison") for p in parsed):
            raise ProcessDied
        return super()._record(inbox, folder, uidvalidity, parsed, now)


def test_a_message_that_kills_intake_every_time_is_quarantined_after_three_attempts(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    app.service.intake = DyingIntake(app.settings, app.store)
    imap_account.append(mails.customer(0))
    poison = imap_account.append(mails.customer(1, headers={"X-Test-Poison": "yes"}))
    imap_account.append(mails.customer(2))
    imap_account.append(mails.customer(3))

    deaths = 0
    for _ in range(10):
        try:
            app.once()
            break
        except ProcessDied:
            deaths += 1

    assert deaths == 3  # the whole batch, then the poison alone in two one-message replays
    stored = {m["uid"]: m for m in rows(app, messages) if m["direction"] == "in"}
    assert len(stored) == 4
    assert stored[poison]["classification"] == "quarantined"
    assert stored[poison]["reason"].startswith("gave up after 3 attempts")
    assert b"X-Test-Poison: yes" in stored[poison]["raw"]
    answered = sorted(r.rcpt_tos[0] for r in acks(smtp_sink))
    assert answered == ["ana.2@example.com", "jane.0@example.com", "tom.3@example.com"]
    app.once()
    assert len(acks(smtp_sink)) == 3  # nothing is replayed once settled


# values that cannot go back out in a header -------------------------------------------------------------------


def test_a_message_id_that_would_decode_into_a_header_break_is_not_cited_and_blocks_nothing(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    """A customer's Message-ID goes back out in our In-Reply-To and References; Python's email package decodes
    encoded words there (into a CR LF, or into text it cannot encode). Such an id is left out of the headers."""
    injection = "=?utf-8?Q?a=0D=0ABcc=3A_evil=40example.net?=@hostile.example.net"
    unknown = "=?x-klingon-42?Q?unknown=E9charset?=@hostile.example.net"
    imap_account.append(mails.customer(0))
    imap_account.append(mails.mail(sender="Eve <eve@hostile.example.net>", message_id=injection))
    imap_account.append(mails.mail(sender="Kim <kim@hostile.example.net>", message_id=unknown))
    imap_account.append(mails.customer(1))

    app.once()

    answered = sorted(r.rcpt_tos[0] for r in acks(smtp_sink))
    assert answered == [
        "eve@hostile.example.net",
        "jane.0@example.com",
        "kim@hostile.example.net",
        "ravi.1@example.com",
    ]
    assert len(smtp_sink.messages) == 8  # and the four notifications to the owners
    for received in smtp_sink.messages:
        assert received.message["Bcc"] is None
        assert all("evil" not in rcpt for rcpt in received.rcpt_tos)
        assert "=?" not in str(received.message["In-Reply-To"] or "") + str(received.message["References"] or "")
    assert {t["state"] for t in rows(app, touches) if t["kind"] == "acknowledgement"} == {"sent"}


def test_a_touch_whose_email_cannot_be_written_is_held_and_the_others_go(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    """Defence in depth: if a value compose refuses ever reaches a touch (here a quoted local part, which the
    classifier never answers), that touch is held with the reason instead of failing every dispatch round."""
    imap_account.append(mails.customer(0))
    imap_account.append(mails.customer(1))
    app.read(app.settings.inboxes[0])
    with app.store.transaction() as tx:
        tx.db.execute(
            update(touches)
            .where(touches.c.recipient == "jane.0@example.com")
            .values(recipient='"jane doe"@example.com')
        )

    app.once()

    assert [r.rcpt_tos[0] for r in acks(smtp_sink)] == ["ravi.1@example.com"]
    held = [t for t in rows(app, touches) if t["recipient"] == '"jane doe"@example.com' and t["state"] == "held"]
    assert [t["kind"] for t in held] == ["acknowledgement"]
    assert "cannot be written safely" in held[0]["reason"]


# Message-IDs --------------------------------------------------------------------------------------------------


def without_message_id(raw: bytes) -> bytes:
    head, _, body = raw.partition(b"\r\n\r\n")
    return (
        b"\r\n".join(line for line in head.split(b"\r\n") if not line.startswith(b"Message-ID:")) + b"\r\n\r\n" + body
    )


def test_two_different_messages_without_a_message_id_are_two_messages(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    for subject in ("My parcel is late", "My invoice is wrong"):
        imap_account.append(without_message_id(mails.mail(subject=subject, body=f"{subject}. Please help.")))
    app.once()
    inbound = [m for m in rows(app, messages) if m["direction"] == "in"]
    assert [m["message_id"] for m in inbound] == [None, None]
    assert len({m["fingerprint"] for m in inbound}) == 2
    assert len(rows(app, loops)) == 2
    assert len(acks(smtp_sink)) == 2


def test_a_message_id_reused_for_different_content_does_not_merge_the_messages(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    for n in (1, 2):
        imap_account.append(mails.customer(n, message_id="same-id@broken-client.example.com"))
    app.once()
    inbound = [m for m in rows(app, messages) if m["direction"] == "in"]
    assert [m["message_id"] for m in inbound] == ["same-id@broken-client.example.com"] * 2
    assert len({m["loop_id"] for m in inbound}) == 2
    assert sorted(r.rcpt_tos[0] for r in acks(smtp_sink)) == ["ana.2@example.com", "ravi.1@example.com"]


def test_the_same_message_delivered_twice_is_recorded_once(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    raw = mails.customer(1, message_id="once@mail.example.com")
    imap_account.append(raw)
    imap_account.append(b"Received: from mx2.example.org by mx.example.org; Tue, 24 Nov 2026 09:31:00 +0000\r\n" + raw)
    app.once()
    imap_account.append(raw)  # and once more, in a later pass
    report = app.once()
    inbound = [m for m in rows(app, messages) if m["direction"] == "in"]
    assert len(inbound) == 1
    assert report.passes[0].batches[0].duplicates == 1
    assert len(rows(app, loops)) == 1
    assert len(acks(smtp_sink)) == 1


def _figures(names: Sequence[str]) -> None:
    print(f"{'input':<20} {'size':>9} {'parse':>9} {'peak memory':>12}")
    for name in names:
        raw = HOSTILE[name]()
        seconds, peak = measure(raw)
        print(f"{name:<20} {len(raw) / MB:>7.2f}MB {seconds * 1000:>7.1f}ms {peak / MB:>10.1f}MB")


if __name__ == "__main__":
    _figures(list(HOSTILE))
