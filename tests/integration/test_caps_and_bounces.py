"""Caps on automated mail and bounces of our own mail, end to end on Dovecot, aiosmtpd, SQLite and PostgreSQL.

At most ``[limits] per_recipient`` automated mails go to one address per ``window_hours`` (3 per 24 hours),
across all its loops: a robot that answers every acknowledgement with a new unmarked message gets three and
then nothing, and staff are told once. A delivery report that cites our acknowledgement's Message-ID and says
``Action: failed`` marks the address undeliverable, holds its touches and tells the owner; it is never answered.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy.exc import IntegrityError

from daemon.app import App
from daemon.dispatch import CAP_REASON
from daemon.domain.model import TouchKind
from daemon.intake import BOUNCED
from daemon.store.repository import NewTouch
from daemon.store.tables import customers, loops, messages, touches

from servers.dovecot import ImapAccount
from servers.smtp import Received, SmtpSink
from support import mails
from support.clock import MovableClock
from support.db import rows

pytestmark = pytest.mark.integration

JANE = "jane@example.com"
ROBOT = "helpdesk@robot.example.net"
ROBOT_NOTE = "probably a robot answering everything"


def kind(received: Received) -> str:
    return str(received.message["X-Closeloop-Kind"])


def to(sink: SmtpSink, address: str, kind_: str | None = None) -> list[Received]:
    return [r for r in sink.messages if r.rcpt_tos == (address,) and (kind_ is None or kind(r) == kind_)]


def text_of(received: Received) -> str:
    return str(received.message.get_body(("plain",)).get_content())


def alerts(sink: SmtpSink) -> list[Received]:
    """Staff mail about a robot over the cap."""
    return [r for r in sink.messages if kind(r) == "staff-notification" and ROBOT_NOTE in text_of(r)]


def writes(account: ImapAccount, clock: MovableClock, n: int, sender: str = f"Jane Doe <{JANE}>") -> None:
    """A new conversation: its own subject, no threading headers."""
    account.append(
        mails.mail(
            sender=sender,
            subject=f"Problem number {n}",
            body=f"Hello,\n\nthis is a new problem, number {n}, unrelated to the others.\n\nJane\n",
            date=clock(),
            return_path=sender.partition("<")[2].rstrip(">"),
        )
    )


def dsn(cited_message_id: str, recipient: str, action: str = "failed", status: str = "5.1.1") -> bytes:
    """A Postfix delivery status notification about our message ``cited_message_id``, with the original attached."""
    return (
        "Return-Path: <>\r\n"
        "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n"
        f"To: {mails.SUPPORT}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Date: Tue, 24 Nov 2026 10:10:00 +0000\r\n"
        "Message-ID: <20261124101000.4F2A81@mx.example.com>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="DSN-B"\r\n'
        "\r\n--DSN-B\r\nContent-Type: text/plain\r\n\r\n"
        "This is the mail system at host mx.example.com.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n"
        f"<{recipient}>: host mx.example.com said: 550 5.1.1 User unknown\r\n"
        "\r\n--DSN-B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\nArrival-Date: Tue, 24 Nov 2026 10:00:02 +0000\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\nDiagnostic-Code: smtp; 550 5.1.1 User unknown\r\n"
        "\r\n--DSN-B\r\nContent-Type: message/rfc822\r\n\r\n"
        f"From: Example Support <support@example.org>\r\nTo: {recipient}\r\n"
        f"Subject: We got your message\r\nMessage-ID: <{cited_message_id}>\r\n"
        "Auto-Submitted: auto-replied\r\n\r\nHello, we got your message.\r\n"
        "\r\n--DSN-B--\r\n"
    ).encode()


def sent_within_any_window(app: App, recipient: str, window: timedelta = timedelta(hours=24)) -> int:
    """The most automated mails ``recipient`` got in any window of ``window`` (what the cap bounds)."""
    times = sorted(t["sent_at"] for t in rows(app, touches) if t["recipient"] == recipient and t["state"] == "sent")
    return max((len([s for s in times if t - window < s <= t]) for t in times), default=0)


# caps --------------------------------------------------------------------------------------------------------


def test_four_new_conversations_in_a_day_get_three_acknowledgements_and_one_alert(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink, clock: MovableClock
) -> None:
    for n in range(1, 6):
        writes(imap_account, clock, n)
        app.once()
        clock.advance(hours=2)

    assert len(rows(app, loops)) == 5  # every message is recorded and gets its loop
    assert len(to(smtp_sink, JANE, "acknowledgement")) == 3
    acknowledgements = sorted(
        (t["id"], t["state"], t["reason"]) for t in rows(app, touches) if t["kind"] == "acknowledgement"
    )
    assert [state for _, state, _ in acknowledgements] == ["sent", "sent", "sent", "held", "held"]
    assert all(reason.startswith(CAP_REASON) for _, state, reason in acknowledgements if state == "held")
    (alert,) = alerts(smtp_sink)  # told once, not once per held acknowledgement
    owner = rows(app, loops)[0]["owner"]
    assert alert.rcpt_tos == (owner,)
    assert JANE in text_of(alert)


def test_a_robot_that_answers_everything_gets_three_mails_and_staff_are_told(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink, clock: MovableClock
) -> None:
    """The robot opens a new ticket for every mail it gets, without Auto-Submitted or threading headers."""
    tickets = 0
    answered = 0
    imap_account.append(mails.mail(sender=f"Helpdesk <{ROBOT}>", subject="Ticket 1 opened", return_path=ROBOT))
    for _ in range(10):
        app.once()
        clock.advance(minutes=1)
        received = to(smtp_sink, ROBOT)
        for mail in received[answered:]:
            tickets += 1
            imap_account.append(
                mails.mail(
                    sender=f"Helpdesk <{ROBOT}>",
                    subject=f"Ticket {tickets + 1} opened: {mail.message['Subject']}".replace("[", "(").replace(
                        "]", ")"
                    ),
                    body=f"Thank you for contacting us. Your ticket number is {tickets + 1}.",
                    return_path=ROBOT,
                    date=clock(),
                )
            )
        answered = len(received)

    assert len(to(smtp_sink, ROBOT)) == 3  # the ping-pong stopped at the cap
    assert tickets == 3
    assert len([m for m in rows(app, messages) if m["from_email"] == ROBOT]) == 4  # every message recorded
    assert len(alerts(smtp_sink)) == 1
    assert sent_within_any_window(app, ROBOT) == 3


def test_a_scheduled_touch_over_the_cap_waits_for_the_window(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink, clock: MovableClock
) -> None:
    for n in range(1, 4):
        writes(imap_account, clock, n)
        app.once()
        clock.advance(minutes=1)
    assert len(to(smtp_sink, JANE, "acknowledgement")) == 3
    first_ack = min(t["sent_at"] for t in rows(app, touches) if t["recipient"] == JANE and t["sent_at"])
    ref = app.service.loops()[0]["ref"]

    clock.advance(hours=1)
    app.service.record_outcome(ref, "We corrected the invoice and sent you a new copy.", clock())
    app.once()
    (outcome,) = [t for t in rows(app, touches) if t["kind"] == "outcome"]
    assert outcome["state"] == "planned"
    assert outcome["reason"] == CAP_REASON
    assert outcome["due_at"] == first_ack + timedelta(hours=24)
    assert to(smtp_sink, JANE, "outcome") == []

    clock.set(first_ack + timedelta(hours=24) - timedelta(minutes=1))
    app.once()
    assert to(smtp_sink, JANE, "outcome") == []
    clock.advance(minutes=1)
    app.once()
    assert len(to(smtp_sink, JANE, "outcome")) == 1
    assert sent_within_any_window(app, JANE) == 3
    assert alerts(smtp_sink) == []  # a scheduled touch waiting is not a robot


def test_the_database_refuses_a_second_acknowledgement_for_a_loop(
    app: App, imap_account: ImapAccount, clock: MovableClock
) -> None:
    imap_account.append(mails.customer(1))
    app.once()
    (loop,) = rows(app, loops)
    again = NewTouch(
        loop_id=loop["id"], kind=TouchKind.ACKNOWLEDGEMENT, due_at=clock(), recipient="ravi.1@example.com",
        message_id="second-ack@example.org",
    )  # fmt: skip
    with pytest.raises(IntegrityError), app.store.transaction() as tx:
        tx.add_touches([again], clock())
    assert len([t for t in rows(app, touches) if t["kind"] == "acknowledgement"]) == 1


# bounces -----------------------------------------------------------------------------------------------------


def test_a_hard_bounce_marks_the_address_holds_its_touches_and_tells_the_owner(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink, clock: MovableClock
) -> None:
    writes(imap_account, clock, 1)
    app.once()
    (ack,) = to(smtp_sink, JANE, "acknowledgement")
    ack_id = str(ack.message["Message-ID"]).strip("<>")
    owner = rows(app, loops)[0]["owner"]
    before = len(smtp_sink.messages)

    clock.advance(minutes=10)
    imap_account.append(dsn(ack_id, JANE))
    app.once()

    (customer,) = rows(app, customers)
    assert customer["undeliverable_at"] == clock()
    (report,) = [m for m in rows(app, messages) if m["from_email"] == "mailer-daemon@mx.example.com"]
    assert report["classification"] == "bounce"
    assert report["loop_id"] == rows(app, loops)[0]["id"]
    pending = [t for t in rows(app, touches) if t["recipient"] == JANE and t["state"] not in ("sent",)]
    assert pending and all((t["state"], t["reason"]) == ("held", BOUNCED) for t in pending)
    (told,) = smtp_sink.messages[before:]
    assert told.rcpt_tos == (owner,) and kind(told) == "staff-notification"
    assert "bounced" in text_of(told) and JANE in text_of(told)

    clock.advance(days=2)  # the thank-you's time comes and goes: held, not sent
    app.once()
    assert len(smtp_sink.messages) == before + 1
    everyone = {rcpt for r in smtp_sink.messages for rcpt in r.rcpt_tos}
    assert not any("mailer-daemon" in address.lower() for address in everyone)
    assert not any(t["recipient"].lower().startswith("mailer-daemon") for t in rows(app, touches))

    # Jane writes again from the address: it works, and her held touches go back to the plan.
    imap_account.append(
        mails.mail(
            sender=f"Jane Doe <{JANE}>", subject="Re: Problem number 1", body="Did you get my message?",
            in_reply_to=ack_id, date=clock(), return_path=JANE,
        )
    )  # fmt: skip
    app.once()
    (customer,) = rows(app, customers)
    assert customer["undeliverable_at"] is None
    assert not [t for t in rows(app, touches) if t["state"] == "held"]
    assert len(to(smtp_sink, JANE, "thank-you")) == 1  # overdue while held, so it goes now


def test_a_delay_report_or_a_bounce_for_someone_else_holds_nothing(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink, clock: MovableClock
) -> None:
    writes(imap_account, clock, 1)
    app.once()
    ack_id = str(to(smtp_sink, JANE, "acknowledgement")[0].message["Message-ID"]).strip("<>")
    before = len(smtp_sink.messages)

    imap_account.append(dsn(ack_id, JANE, action="delayed", status="4.4.1"))
    imap_account.append(dsn(ack_id, "someone.else@example.com"))
    app.once()

    (customer,) = rows(app, customers)
    assert customer["undeliverable_at"] is None
    assert not [t for t in rows(app, touches) if t["state"] == "held"]
    assert [m["classification"] for m in rows(app, messages) if m["from_email"].startswith("mailer-daemon")] == [
        "bounce",
        "bounce",
    ]
    assert len(smtp_sink.messages) == before  # reports are never answered
