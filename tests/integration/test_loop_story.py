"""A loop's whole life through real Dovecot and aiosmtpd, with the clock moved forward: the cadence, email by email.

The customer writes on Tuesday 24 November 2026 at 10:00 UTC from London (their Date header says +0000), so
their business hours are 09:00–17:00 UTC and the promised date (three business days) is Friday 17:00.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from daemon.app import App
from daemon.store.tables import customers, loops, messages, touches

from servers.dovecot import ImapAccount
from servers.smtp import Received, SmtpSink
from support import mails
from support.clock import MovableClock
from support.db import rows
from support.settings import STAFF

pytestmark = pytest.mark.integration

JANE = "jane@example.com"
EVERYONE = sorted(member["email"] for member in STAFF)


# what the test reads back ------------------------------------------------------------------------------------


def the_loop(app: App) -> dict[str, Any]:
    (loop,) = rows(app, loops)
    return loop


def the_ref(app: App) -> str:
    (loop,) = app.service.loops()
    return str(loop["ref"])


def touch_rows(app: App, kind: str) -> list[dict[str, Any]]:
    return [t for t in rows(app, touches) if t["kind"] == kind]


def kind(received: Received) -> str:
    return str(received.message["X-Closeloop-Kind"])


def summary(received: list[Received]) -> list[tuple[str, tuple[str, ...]]]:
    """What went out, in order: (kind, recipients)."""
    return [(kind(r), r.rcpt_tos) for r in received]


class Outbox:
    """The sink's messages, read in slices: what a step of the story sent."""

    def __init__(self, sink: SmtpSink) -> None:
        self.sink, self.seen = sink, 0

    def new(self) -> list[Received]:
        fresh = self.sink.messages[self.seen :]
        self.seen += len(fresh)
        return fresh


@pytest.fixture
def outbox(smtp_sink: SmtpSink) -> Outbox:
    return Outbox(smtp_sink)


def text_of(received: Received) -> str:
    return str(received.message.get_body(("plain",)).get_content())


def message_id(received: Received) -> str:
    return str(received.message["Message-ID"]).strip("<>")


def customer_writes(imap_account: ImapAccount, clock: MovableClock, **kwargs: Any) -> None:
    kwargs.setdefault("message_id", "vat@mail.example.com")
    imap_account.append(mails.mail(date=clock() - timedelta(minutes=2), **kwargs))


def open_the_loop(app: App, imap_account: ImapAccount, clock: MovableClock, outbox: Outbox) -> list[Received]:
    customer_writes(imap_account, clock)
    app.once()
    first = outbox.new()
    assert sorted(kind(r) for r in first) == ["acknowledgement", "staff-notification"]
    return first


def cited(received: Received) -> set[str]:
    """The Message-IDs a mail's In-Reply-To and References name."""
    text = f"{received.message['In-Reply-To'] or ''} {received.message['References'] or ''}"
    return {word.strip("<>") for word in text.split()}


def threads_to_the_customer(
    received: Received, sink: SmtpSink, theirs: tuple[str, ...] = ("vat@mail.example.com",)
) -> None:
    """Replies to the customer's first message; a mail to the customer cites only mail the customer has seen
    (theirs and ours to them), never a staff notification or a colleague's internal reply."""
    assert received.message["In-Reply-To"] is not None
    assert f"<{theirs[0]}>" in str(received.message["References"])
    if received.rcpt_tos == (JANE,):
        seen = {*theirs, *(message_id(r) for r in sink.messages if r.rcpt_tos == (JANE,))}
        assert cited(received) <= seen, f"{kind(received)} cites mail the customer never saw"


# the whole story ---------------------------------------------------------------------------------------------


def test_the_whole_story_from_first_mail_to_closed(
    app: App, imap_account: ImapAccount, clock: MovableClock, outbox: Outbox
) -> None:
    # Tuesday 10:00: the customer writes; the acknowledgement and the owner's notification go at once.
    first = open_the_loop(app, imap_account, clock, outbox)
    loop = the_loop(app)
    owner = loop["owner"]
    ack = next(r for r in first if kind(r) == "acknowledgement")
    notification = next(r for r in first if kind(r) == "staff-notification")
    assert ack.rcpt_tos == (JANE,) and notification.rcpt_tos == (owner,)
    assert ack.message["Auto-Submitted"] == "auto-replied"
    assert loop["state"] == "acknowledged"

    # Wednesday 10:00: the thank-you, and nothing else.
    clock.advance(days=1)
    app.once()
    (thanks,) = outbox.new()
    assert (kind(thanks), thanks.rcpt_tos) == ("thank-you", (JANE,))
    assert thanks.message["Auto-Submitted"] == "auto-generated"

    # Wednesday 11:00: the owner answers the notification by email with the outcome, above a signature and quote.
    clock.advance(hours=1)
    new_words = "We corrected the VAT number on invoice 2026-118 and sent you a new copy."
    notification_text = text_of(notification)
    quoted = "\n".join(f"> {line}" if line else ">" for line in notification_text.splitlines())
    imap_account.append(
        mails.mail(
            sender=f"{next(m['name'] for m in STAFF if m['email'] == owner)} <{owner}>",
            subject=f"Re: {notification.message['Subject']}",
            body=f"{new_words}\n\nBest,\nAlex\n-- \nExample Support | example.org\n\n"
            f"On Tue, 24 Nov 2026 at 10:00, Example Support <support@example.org> wrote:\n{quoted}\n",
            message_id="outcome-by-mail@staff.example.org",
            in_reply_to=message_id(notification),
            references=f"<vat@mail.example.com> <{message_id(notification)}>",
            date=clock(),
            return_path=owner,
        )
    )
    app.once()
    (outcome,) = outbox.new()  # the outcome to the customer; the staff reply itself is never answered
    assert (kind(outcome), outcome.rcpt_tos) == ("outcome", (JANE,))
    assert new_words in text_of(outcome)
    assert "Example Support | example.org" not in text_of(outcome)
    assert "A new message came in" not in text_of(outcome)
    assert outcome.message["Auto-Submitted"] == "auto-generated"
    threads_to_the_customer(outcome, outbox.sink)
    loop = the_loop(app)
    assert loop["outcome"] == new_words
    assert loop["state"] == "outcome_sent"
    staff_mail = next(m for m in rows(app, messages) if m["message_id"] == "outcome-by-mail@staff.example.org")
    assert staff_mail["classification"] == "staff" and staff_mail["loop_id"] == loop["id"]
    assert len(rows(app, loops)) == 1

    # 89 days later nothing is due; on the 90th the check-in goes.
    clock.advance(days=89)
    app.once()
    assert outbox.new() == []
    clock.advance(days=1)
    app.once()
    (check_in,) = outbox.new()
    assert (kind(check_in), check_in.rcpt_tos) == ("check-in", (JANE,))
    assert check_in.message["Auto-Submitted"] == "auto-generated"
    assert the_loop(app)["state"] == "checked_in"

    # Two hours later the customer answers that all is well: the closing thanks them and closes the loop.
    clock.advance(hours=2)
    imap_account.append(
        mails.mail(
            subject=f"Re: {check_in.message['Subject']}",
            body=f"All good now, thanks!\n\nJane\n\nOn {clock():%d %b %Y}, Example Support wrote:\n> How are things?\n",
            message_id="all-good@mail.example.com",
            in_reply_to=message_id(check_in),
            references=f"<vat@mail.example.com> <{message_id(check_in)}>",
            date=clock(),
        )
    )
    app.once()
    (closing,) = outbox.new()
    assert (kind(closing), closing.rcpt_tos) == ("closing", (JANE,))
    assert closing.message["Auto-Submitted"] == "auto-replied"
    assert closing.message["In-Reply-To"] == "<all-good@mail.example.com>"
    loop = the_loop(app)
    assert loop["state"] == "closed" and loop["closed_at"] == clock()

    # A year on, nothing more is ever sent, and nothing is left planned.
    clock.advance(days=365)
    app.once()
    assert outbox.new() == []
    assert [t for t in rows(app, touches) if t["state"] == "planned"] == []
    sent = [(t["kind"], t["recipient"]) for t in rows(app, touches) if t["state"] == "sent"]
    assert sorted(sent) == sorted(
        [("acknowledgement", JANE), ("staff-notification", owner), ("thank-you", JANE), ("outcome", JANE),
         ("check-in", JANE), ("closing", JANE)]
    )  # fmt: skip


def test_a_staff_mail_naming_the_loop_reference_records_the_outcome_and_staff_mail_is_never_answered(
    app: App, imap_account: ImapAccount, clock: MovableClock, outbox: Outbox
) -> None:
    open_the_loop(app, imap_account, clock, outbox)
    ref = the_ref(app)
    clock.advance(hours=2)
    # Sam is not the owner and writes afresh (no In-Reply-To), naming the loop in the subject.
    imap_account.append(
        mails.mail(
            sender="Sam Rivera <sam@example.org>",
            subject=f"Outcome for [{ref}]",
            body="Refund of 12.50 EUR issued today.\n\nThanks,\nSam\n",
            date=clock(),
            return_path="sam@example.org",
        )
    )
    # And Alex writes to the support address about something else entirely.
    imap_account.append(
        mails.mail(
            sender="Alex Kim <alex@example.org>",
            subject="Lunch on Friday?",
            body="Anyone up for lunch on Friday?",
            date=clock(),
            return_path="alex@example.org",
        )
    )
    app.once()

    assert summary(outbox.new()) == [("outcome", (JANE,))]
    assert the_loop(app)["outcome"] == "Refund of 12.50 EUR issued today."
    staff_mail = [m for m in rows(app, messages) if m["classification"] == "staff"]
    assert len(staff_mail) == 2
    assert len(rows(app, loops)) == 1
    assert {t["recipient"] for t in rows(app, touches)} == {JANE, the_loop(app)["owner"]}


@pytest.mark.parametrize("signoff", ["Sam", "Cheers\nSam Rivera"])
def test_an_emailed_outcome_loses_any_sign_off(
    app: App, imap_account: ImapAccount, clock: MovableClock, outbox: Outbox, signoff: str
) -> None:
    open_the_loop(app, imap_account, clock, outbox)
    imap_account.append(
        mails.mail(
            sender="Sam Rivera <sam@example.org>",
            subject=f"Outcome for [{the_ref(app)}]",
            body=f"Refund of 12.50 EUR issued today.\n\n{signoff}\n",
            date=clock(),
            return_path="sam@example.org",
        )
    )
    app.once()
    assert the_loop(app)["outcome"] == "Refund of 12.50 EUR issued today."


# follow-through ----------------------------------------------------------------------------------------------


def test_a_slipping_promise_gets_three_honest_updates_and_reminders_then_nothing(
    app: App, imap_account: ImapAccount, clock: MovableClock, outbox: Outbox
) -> None:
    open_the_loop(app, imap_account, clock, outbox)
    owner = the_loop(app)["owner"]
    clock.advance(days=1)
    app.once()
    assert summary(outbox.new()) == [("thank-you", (JANE,))]

    # Promised by Friday 17:00: a minute before, nothing; the first update goes on Monday at 09:00.
    clock.set(datetime(2026, 11, 27, 16, 59, tzinfo=UTC))
    app.once()
    assert outbox.new() == []
    clock.set(datetime(2026, 11, 30, 9, 0, tzinfo=UTC))
    app.once()
    first = outbox.new()
    assert sorted(summary(first)) == [("follow-through", (JANE,)), ("staff-reminder", (owner,))]
    assert the_loop(app)["follow_throughs"] == 1
    # The update names a new date: three business days on, Thursday 3 December.
    assert the_loop(app)["promised_by"] == datetime(2026, 12, 3, 17, 0, tzinfo=UTC)

    # The new promise passes Thursday 17:00: the second update on Friday morning, still only to the owner.
    clock.set(datetime(2026, 12, 3, 17, 30, tzinfo=UTC))
    app.once()
    assert outbox.new() == []
    clock.set(datetime(2026, 12, 4, 9, 0, tzinfo=UTC))
    app.once()
    second = outbox.new()
    assert sorted(summary(second)) == [("follow-through", (JANE,)), ("staff-reminder", (owner,))]

    # The third and last: the reminder goes to every member of the team.
    clock.set(datetime(2026, 12, 10, 9, 0, tzinfo=UTC))
    app.once()
    third = outbox.new()
    assert sorted(summary(third)) == [("follow-through", (JANE,))] + [
        ("staff-reminder", (member,)) for member in EVERYONE
    ]
    assert all("Escalated" in str(r.message["Subject"]) for r in third if kind(r) == "staff-reminder")

    # Then nothing more, however long it stays open.
    for days in (3, 10, 60):
        clock.advance(days=days)
        app.once()
        assert outbox.new() == []
    updates = touch_rows(app, "follow-through")
    assert [(t["sequence"], t["state"]) for t in updates] == [(1, "sent"), (2, "sent"), (3, "sent")]

    for update in (first, second, third):
        for received in update:
            assert received.message["Auto-Submitted"] == "auto-generated"
            threads_to_the_customer(received, outbox.sink)
        customer_update = next(r for r in update if kind(r) == "follow-through")
        assert customer_update.message["List-Unsubscribe"] is not None
        assert "I'll write to you again by" in text_of(customer_update)


def test_every_email_names_its_kind_threads_and_says_whether_it_answers(
    app: App, imap_account: ImapAccount, clock: MovableClock, outbox: Outbox
) -> None:
    """The acknowledgement and closing answer a message (auto-replied); everything scheduled is auto-generated."""
    first = open_the_loop(app, imap_account, clock, outbox)
    clock.advance(days=1)
    app.once()
    app.service.record_outcome(the_ref(app), "Fixed.", clock())
    app.once()
    clock.advance(days=90)
    app.once()
    check_in = next(r for r in outbox.new() if kind(r) == "check-in")
    imap_account.append(
        mails.mail(
            body="All good, thanks!",
            message_id="fine@mail.example.com",
            in_reply_to=message_id(check_in),
            date=clock(),
        )
    )
    app.once()
    everything = outbox.sink.messages
    assert everything[:2] == first
    assert [kind(r) for r in everything] == [
        "acknowledgement",
        "staff-notification",
        "thank-you",
        "outcome",
        "check-in",
        "closing",
    ]
    expected = {
        "acknowledgement": "auto-replied",
        "staff-notification": "auto-generated",
        "thank-you": "auto-generated",
        "outcome": "auto-generated",
        "check-in": "auto-generated",
        "closing": "auto-replied",
    }
    ref = the_ref(app)
    for received in everything:
        assert received.message["Auto-Submitted"] == expected[kind(received)], kind(received)
        assert received.message["X-Closeloop-Loop"] == ref
        threads_to_the_customer(received, outbox.sink, theirs=("vat@mail.example.com", "fine@mail.example.com"))
        to_customer = received.rcpt_tos == (JANE,)
        assert (received.message["List-Unsubscribe"] is not None) == to_customer
    assert everything[0].message["In-Reply-To"] == "<vat@mail.example.com>"
    assert everything[-1].message["In-Reply-To"] == "<fine@mail.example.com>"


# downtime ----------------------------------------------------------------------------------------------------


def test_after_three_days_down_each_overdue_touch_goes_once_in_order_and_the_stale_thank_you_is_skipped(
    app: App, imap_account: ImapAccount, clock: MovableClock, outbox: Outbox
) -> None:
    customer_writes(imap_account, clock)  # Jane, 10:00
    clock.advance(hours=1)
    customer_writes(
        imap_account, clock, sender="Ravi Patel <ravi@example.com>", subject="Refund for order 1188",
        body="Hi,\n\nI returned order 1188 two weeks ago and have not been refunded yet.\n\nRavi\n",
        message_id="refund@mail.example.com", return_path="ravi@example.com",
    )  # fmt: skip
    app.once()
    assert len(outbox.new()) == 4
    jane_ref = next(loop["ref"] for loop in app.service.loops() if loop["customer"]["email"] == JANE)

    # The daemon goes down at 11:00 on Tuesday. On Thursday the owner records Jane's outcome from the command line.
    clock.set(datetime(2026, 11, 26, 12, 0, tzinfo=UTC))
    app.service.record_outcome(jane_ref, "We corrected the VAT number.", clock())

    # Friday 11:00, three days later, it comes back and runs once.
    clock.set(datetime(2026, 11, 27, 11, 0, tzinfo=UTC))
    app.once()
    back = outbox.new()
    # Ravi's thank-you was due Wednesday 11:00, Jane's outcome Thursday 12:00: in that order, once each.
    assert summary(back) == [("thank-you", ("ravi@example.com",)), ("outcome", (JANE,))]
    jane_thanks = next(t for t in touch_rows(app, "thank-you") if t["recipient"] == JANE)
    assert jane_thanks["state"] == "cancelled" and jane_thanks["sent_at"] is None
    assert "outcome" in jane_thanks["reason"]

    app.once()
    clock.advance(minutes=5)
    app.once()
    assert outbox.new() == []


def test_after_a_long_outage_one_follow_through_goes_not_a_burst(
    app: App, imap_account: ImapAccount, clock: MovableClock, outbox: Outbox
) -> None:
    open_the_loop(app, imap_account, clock, outbox)
    owner = the_loop(app)["owner"]

    # Down from Tuesday until Tuesday 15 December: the promise and what would have been three updates all passed.
    clock.set(datetime(2026, 12, 15, 10, 0, tzinfo=UTC))
    app.once()
    back = outbox.new()
    assert sorted(summary(back)) == [("follow-through", (JANE,)), ("staff-reminder", (owner,))]
    (thanks,) = touch_rows(app, "thank-you")
    assert thanks["state"] == "cancelled" and "promised date has passed" in thanks["reason"]
    # The update promises a fresh date from now, not one that already passed.
    assert the_loop(app)["promised_by"] == datetime(2026, 12, 18, 17, 0, tzinfo=UTC)

    app.once()
    assert outbox.new() == []
    clock.set(datetime(2026, 12, 21, 9, 0, tzinfo=UTC))
    app.once()
    assert sorted(summary(outbox.new())) == [("follow-through", (JANE,)), ("staff-reminder", (owner,))]
    assert [t["sequence"] for t in touch_rows(app, "follow-through") if t["state"] == "sent"] == [1, 2]


# humane timing -----------------------------------------------------------------------------------------------


def test_a_new_york_customer_gets_the_thank_you_in_new_york_business_hours(
    app: App, imap_account: ImapAccount, clock: MovableClock, outbox: Outbox
) -> None:
    """The team is in Berlin; the customer's Date header says -0500. 20:00 UTC is 15:00 in New York, 21:00 in
    Berlin: the staff notification goes at once, and the thank-you a day later at 15:00 New York time."""
    new_york = ZoneInfo("America/New_York")
    clock.set(datetime(2026, 11, 24, 20, 0, tzinfo=UTC))
    imap_account.append(
        mails.mail(
            sender="Jane Doe <jane@example.com>",
            date=datetime(2026, 11, 24, 14, 58, tzinfo=new_york),
            message_id="nyc@mail.example.com",
        )
    )
    app.once()
    assert sorted(summary(outbox.new())) == [
        ("acknowledgement", (JANE,)),
        ("staff-notification", (the_loop(app)["owner"],)),
    ]
    (customer,) = rows(app, customers)
    assert customer["tz_offset_minutes"] == -300

    arrivals: list[tuple[datetime, str]] = []
    while clock() < datetime(2026, 11, 27, 0, 0, tzinfo=UTC):
        clock.advance(minutes=30)
        app.dispatch_all()
        arrivals += [(clock(), kind(r)) for r in outbox.new()]
    (when, what), *_ = arrivals
    assert what == "thank-you"
    local = when.astimezone(new_york)
    assert local.weekday() < 5 and 9 <= local.hour < 17
    assert when == datetime(2026, 11, 25, 20, 0, tzinfo=UTC)  # 15:00 in New York; 21:00 in Berlin
    (thanks,) = touch_rows(app, "thank-you")
    assert thanks["sent_at"] == when


def test_a_thank_you_due_after_new_york_closes_waits_for_its_morning(
    app: App, imap_account: ImapAccount, clock: MovableClock, outbox: Outbox
) -> None:
    new_york = ZoneInfo("America/New_York")
    clock.set(datetime(2026, 11, 24, 23, 0, tzinfo=UTC))  # 18:00 in New York
    imap_account.append(
        mails.mail(date=datetime(2026, 11, 24, 17, 55, tzinfo=new_york), message_id="late@mail.example.com")
    )
    app.once()
    assert len(outbox.new()) == 2  # acknowledgement and notification at once, after hours or not
    (thanks,) = touch_rows(app, "thank-you")
    assert thanks["due_at"].astimezone(new_york) == datetime(2026, 11, 26, 9, 0, tzinfo=new_york)
