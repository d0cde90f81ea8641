"""Intake and the personal acknowledgement, end to end: real Dovecot, real aiosmtpd, SQLite and PostgreSQL."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.app import App
from daemon.store.tables import customers, loops, messages, touches

from servers.dovecot import ImapAccount
from servers.smtp import SmtpSink
from support import mails
from support.settings import STAFF, settings_for

pytestmark = pytest.mark.integration


@pytest.fixture
def app(imap_account: ImapAccount, smtp_sink: SmtpSink, database_url: str, tmp_path: Path) -> App:
    application = App(settings_for(imap_account, smtp_sink, database_url, tmp_path))
    yield application  # type: ignore[misc]
    application.close()


def rows(app: App, table: object) -> list[dict[str, object]]:
    with app.store.engine.connect() as db:
        return [dict(r._mapping) for r in db.execute(select(table))]  # type: ignore[call-overload]


def to(sink: SmtpSink, kind: str) -> list[object]:
    return [m for m in sink.messages if m.message["X-Closeloop-Kind"] == kind]


def test_each_customer_gets_one_personal_acknowledgement_and_machines_none(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    for n in range(3):
        imap_account.append(mails.customer(n))
    for machine in (mails.bounce(), mails.out_of_office(sender="Bob <bob@example.net>"), mails.newsletter(),
                    mails.noreply()):  # fmt: skip
        imap_account.append(machine)

    report = app.once()

    assert sum(p.recorded for p in report.passes) == 7
    acks = to(smtp_sink, "acknowledgement")
    assert sorted(a.rcpt_tos for a in acks) == [
        ("ana.2@example.com",),
        ("jane.0@example.com",),
        ("ravi.1@example.com",),
    ]
    assert len(to(smtp_sink, "staff-notification")) == 3
    assert len(smtp_sink.messages) == 6
    recorded = rows(app, messages)
    assert len([m for m in recorded if m["direction"] == "in"]) == 7
    classes = sorted(str(m["classification"]) for m in recorded if m["direction"] == "in")
    assert classes == ["auto-reply", "bounce", "customer", "customer", "customer", "list", "system"]
    assert all(m["reason"] for m in recorded if m["direction"] == "in" and m["classification"] != "customer")


def test_the_acknowledgement_is_personal_and_correctly_addressed(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    imap_account.append(mails.mail(message_id="first@mail.example.com"))
    app.once()

    (ack,) = to(smtp_sink, "acknowledgement")
    message = ack.message
    (loop,) = rows(app, loops)
    ref = app.service.loops()[0]["ref"]
    assert ref in message["Subject"] and "VAT" in message["Subject"]
    assert message["From"] == "Example Support <support@example.org>"
    assert message["To"] == "Jane Doe <jane@example.com>"
    assert message["In-Reply-To"] == "<first@mail.example.com>"
    assert "<first@mail.example.com>" in message["References"]
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["List-Unsubscribe"] == "<mailto:support+unsubscribe@example.org?subject=unsubscribe>"
    (sent_touch,) = [t for t in rows(app, touches) if t["kind"] == "acknowledgement"]
    assert message["Message-ID"] == f"<{sent_touch['message_id']}>"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    owner = next(member["name"] for member in STAFF if member["email"] == loop["owner"])
    assert "Jane" in text
    assert owner in text
    assert "VAT" in text
    assert "Jane" in html
    assert loop["state"] == "acknowledged"
    assert sent_touch["template"] and sent_touch["template_version"]


def test_a_second_pass_sends_nothing_and_the_mail_stays_on_the_server(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    for n in range(4):
        imap_account.append(mails.customer(n))
    app.once()
    sent = len(smtp_sink.messages)

    again = app.once()

    assert sum(p.recorded for p in again.passes) == 0
    assert len(smtp_sink.messages) == sent
    assert len(imap_account.uids()) == 4
    flags = imap_account.fetch_flags()
    assert all("$Closeloop" in f for f in flags.values())
    assert not any("\\Seen" in f for f in flags.values())
    assert len(rows(app, customers)) == 4


def test_a_reply_threads_into_its_loop(app: App, imap_account: ImapAccount, smtp_sink: SmtpSink) -> None:
    imap_account.append(mails.mail(message_id="first@mail.example.com"))
    app.once()
    (ack,) = to(smtp_sink, "acknowledgement")
    ack_id = ack.message["Message-ID"].strip("<>")
    imap_account.append(
        mails.mail(
            subject=f"Re: {ack.message['Subject']}",
            body="One more thing: the invoice number is 2026-118.\n\n> earlier text",
            in_reply_to=ack_id,
            references=f"<first@mail.example.com> <{ack_id}>",
        )
    )

    app.once()

    assert len(rows(app, loops)) == 1
    assert len(to(smtp_sink, "acknowledgement")) == 1
    (loop_id,) = {m["loop_id"] for m in rows(app, messages) if m["direction"] == "in"}
    assert loop_id is not None
    forwarded = [
        m for m in to(smtp_sink, "staff-notification") if "2026-118" in m.message.get_body(("plain",)).get_content()
    ]
    assert len(forwarded) == 1


def test_reply_threads_by_subject_reference_when_headers_are_missing(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    imap_account.append(mails.mail())
    app.once()
    ref = app.service.loops()[0]["ref"]
    imap_account.append(mails.mail(subject=f"Re: Invoice [{ref}]", body="Any news?"))

    app.once()

    assert len(rows(app, loops)) == 1
    assert len(to(smtp_sink, "acknowledgement")) == 1


def test_sent_mail_parses_back_to_the_intended_headers(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    imap_account.append(mails.mail(sender='"Jane\\r\\nBcc: evil@example.net" <jane@example.com>'))
    app.once()
    for received in smtp_sink.messages:
        parsed = message_from_bytes(received.raw, policy=default)
        assert parsed["Bcc"] is None
        assert received.rcpt_tos in (("jane@example.com",), ("sam@example.org",), ("alex@example.org",))


def test_a_long_first_import_shows_progress(
    imap_account: ImapAccount, smtp_sink: SmtpSink, sqlite_url: str, tmp_path: Path
) -> None:
    import io

    from daemon.progress import Progress

    stream = io.StringIO()
    settings = settings_for(imap_account, smtp_sink, sqlite_url, tmp_path, inbox={"imap": {"batch_size": 2}})
    application = App(settings)
    application.service.progress = lambda label, total: Progress(label, total, stream)
    for n in range(5):
        imap_account.append(mails.customer(n))
    try:
        application.once()
    finally:
        application.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "reading support: 0/5 (0%)"
    assert lines[-1].startswith("reading support: 5/5 (100%), done in")
