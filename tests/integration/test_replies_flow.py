"""What a customer's reply does to their loop, end to end: Dovecot in, aiosmtpd out, SQLite and PostgreSQL.

Each test opens a loop on Tuesday 24 November 2026 at 10:00 UTC (the customer writes from London, +0000), then
moves the test clock and lets the customer answer one of our mails.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from daemon.app import App
from daemon.store.tables import customers, loops, messages, touches

from servers.dovecot import ImapAccount
from servers.smtp import Received, SmtpSink
from support import mails
from support.clock import TUESDAY, MovableClock

pytestmark = pytest.mark.integration

JANE = "jane@example.com"
CUSTOMER_KINDS = ("acknowledgement", "thank-you", "outcome", "follow-through", "check-in", "closing")


class Story:
    """The customer's side of the conversation, and what the test reads back."""

    def __init__(self, app: App, imap: ImapAccount, sink: SmtpSink, clock: MovableClock) -> None:
        self.app, self.imap, self.sink, self.clock = app, imap, sink, clock
        self.seen = 0

    def writes(self, *, message_id: str, **kwargs: Any) -> None:
        self.imap.append(mails.mail(message_id=message_id, date=self.clock(), **kwargs))

    def replies(self, to: Received, body: str, *, message_id: str, **kwargs: Any) -> None:
        """A reply from the customer's mail client: threaded, with our mail quoted below."""
        quoted = "\n".join(f"> {line}" for line in text_of(to).splitlines()[:6])
        kwargs.setdefault("subject", f"Re: {to.message['Subject']}")
        self.writes(
            message_id=message_id,
            in_reply_to=msgid(to),
            references=f"{to.message['References'] or ''} <{msgid(to)}>".strip(),
            body=f"{body}\n\nOn {self.clock():%a, %d %b %Y}, Example Support wrote:\n{quoted}\n",
            **kwargs,
        )

    def run(self) -> list[Received]:
        """One daemon pass; the mail it sent."""
        self.app.once()
        fresh = self.sink.messages[self.seen :]
        self.seen += len(fresh)
        return fresh

    def rows(self, table: Any) -> list[dict[str, Any]]:
        with self.app.store.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(select(table).order_by(table.c.id))]

    def loop(self, ref: str) -> dict[str, Any]:
        return next(loop for loop in self.rows(loops) if loop["id"] == self.loop_id(ref))

    def loop_id(self, ref: str) -> int:
        with self.app.store.reading() as tx:
            return tx.loop_by_ref(ref).id or 0

    def refs(self) -> list[str]:
        return [str(loop["ref"]) for loop in self.app.service.loops()]

    def touches(self, ref: str | None = None) -> list[dict[str, Any]]:
        every = self.rows(touches)
        return every if ref is None else [t for t in every if t["loop_id"] == self.loop_id(ref)]

    def customer(self) -> dict[str, Any]:
        return next(c for c in self.rows(customers) if c["email"] == JANE)

    def mail_to_jane(self, since: int = 0) -> list[Received]:
        return [r for r in self.sink.messages[since:] if r.rcpt_tos == (JANE,)]

    def open_loop(self, *, message_id: str = "vat@mail.example.com", **kwargs: Any) -> tuple[str, Received]:
        """The customer writes; returns the new loop's reference and its acknowledgement."""
        before = set(self.refs())
        self.writes(message_id=message_id, **kwargs)
        sent = self.run()
        (ref,) = set(self.refs()) - before
        (ack,) = [r for r in sent if kind(r) == "acknowledgement"]
        return ref, ack

    def outcome_sent(self, ref: str, text: str = "We corrected the VAT number and sent a new invoice.") -> Received:
        self.app.service.record_outcome(ref, text, self.clock())
        (outcome,) = [r for r in self.run() if kind(r) == "outcome"]
        return outcome


@pytest.fixture
def story(app: App, imap_account: ImapAccount, smtp_sink: SmtpSink, clock: MovableClock) -> Story:
    return Story(app, imap_account, smtp_sink, clock)


def kind(received: Received) -> str:
    return str(received.message["X-Closeloop-Kind"])


def msgid(received: Received) -> str:
    return str(received.message["Message-ID"]).strip("<>")


def text_of(received: Received) -> str:
    return str(received.message.get_body(("plain",)).get_content())


def pending(touch_rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in touch_rows if t["state"] == "planned"]


def due_times(touch_rows: list[dict[str, Any]]) -> dict[tuple[str, int, str], datetime]:
    return {(t["kind"], t["sequence"], t["recipient"]): t["due_at"] for t in pending(touch_rows)}


# out of office -------------------------------------------------------------------------------------------------


def test_an_out_of_office_reply_pauses_the_loop_until_the_stated_return_and_is_never_answered(
    story: Story, clock: MovableClock
) -> None:
    ref, ack = story.open_loop()
    clock.advance(minutes=5)
    story.imap.append(
        mails.out_of_office(
            in_reply_to=msgid(ack),
            body="I am out of the office until 8 December 2026 with limited access to email.",
        )
    )

    assert story.run() == []  # never answered, not even forwarded

    (auto_reply,) = [m for m in story.rows(messages) if m["classification"] == "auto-reply"]
    assert auto_reply["loop_id"] == story.loop_id(ref)
    back = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)  # the first business hour of the day she is back (London)
    assert story.loop(ref)["paused_until"] == back
    customer_touches = [t for t in pending(story.touches(ref)) if t["kind"] in CUSTOMER_KINDS]
    assert {t["kind"] for t in customer_touches} == {"thank-you", "follow-through"}
    assert all(t["due_at"] >= back for t in customer_touches)

    # Day by day until she is back: nothing reaches her (the owner still hears that the promise slipped).
    while clock() < back - timedelta(minutes=1):
        clock.set(min(clock() + timedelta(hours=12), back - timedelta(minutes=1)))
        assert [(clock(), kind(r)) for r in story.run() if r.rcpt_tos == (JANE,)] == []
    clock.set(back)
    returned = story.run()
    assert [kind(r) for r in returned if r.rcpt_tos == (JANE,)] == ["follow-through"]
    assert [r.rcpt_tos for r in story.sink.messages if kind(r) == "acknowledgement"] == [(JANE,)]
    (thanks,) = [t for t in story.touches(ref) if t["kind"] == "thank-you"]
    assert thanks["state"] == "cancelled"  # the promised date passed while she was away


def test_an_out_of_office_reply_without_a_date_pauses_a_few_days(story: Story, clock: MovableClock) -> None:
    ref, ack = story.open_loop()
    story.imap.append(mails.out_of_office(in_reply_to=msgid(ack), body="I am away with limited access to email."))

    assert story.run() == []

    paused = story.loop(ref)["paused_until"]
    assert timedelta(days=5) <= paused - TUESDAY < timedelta(days=6)
    (thanks,) = [t for t in story.touches(ref) if t["kind"] == "thank-you"]
    assert thanks["due_at"] >= paused


# before the outcome --------------------------------------------------------------------------------------------


def test_a_reply_before_the_outcome_is_forwarded_to_the_owner_and_the_cadence_carries_on(
    story: Story, clock: MovableClock
) -> None:
    ref, ack = story.open_loop()
    owner = story.loop(ref)["owner"]
    planned_before = due_times(story.touches(ref))
    promised_before = story.loop(ref)["promised_by"]
    clock.advance(hours=4)

    story.replies(ack, "One more thing: the invoice number is 2026-118.", message_id="more@mail.example.com")
    (forwarded,) = story.run()

    assert (kind(forwarded), forwarded.rcpt_tos) == ("staff-notification", (owner,))
    assert "2026-118" in text_of(forwarded)
    assert forwarded.message["In-Reply-To"] == "<more@mail.example.com>"
    assert due_times(story.touches(ref)) == planned_before
    assert story.loop(ref)["promised_by"] == promised_before
    assert story.loop(ref)["state"] == "acknowledged"
    assert len(story.refs()) == 1

    clock.set(TUESDAY + timedelta(days=1))
    assert [(kind(r), r.rcpt_tos) for r in story.run()] == [("thank-you", (JANE,))]


# consent -------------------------------------------------------------------------------------------------------


def test_no_to_the_outcomes_question_refuses_check_ins_on_the_customer_for_good(
    story: Story, clock: MovableClock
) -> None:
    ref, _ack = story.open_loop()
    clock.advance(days=1, hours=1)
    story.run()
    outcome = story.outcome_sent(ref)
    assert "May we check back" in text_of(outcome)
    clock.advance(hours=3)
    answered_at = clock()

    story.replies(outcome, "No thanks.", message_id="no-thanks@mail.example.com")
    assert story.run() == []

    customer = story.customer()
    assert customer["consent"] == "refused"
    assert customer["consent_at"] == answered_at
    assert customer["consent_via"] == f"reply to the outcome of {ref}"
    (check_in,) = [t for t in story.touches(ref) if t["kind"] == "check-in"]
    assert check_in["state"] == "cancelled"

    # The loop closes quietly two weeks later; a year on, no check-in has gone out.
    clock.advance(days=14)
    assert story.run() == []
    assert story.loop(ref)["state"] == "closed"
    clock.advance(days=365)
    assert story.run() == []

    # A later loop of the same customer is never checked in on either.
    second, _ = story.open_loop(message_id="again@mail.example.com", subject="Another question")
    clock.advance(hours=1)
    story.outcome_sent(second, "Answered.")
    clock.advance(days=120)
    assert [kind(r) for r in story.run()] == []
    assert [t for t in story.touches(second) if t["kind"] == "check-in"] == []


def test_yes_to_the_outcomes_question_records_consent_and_the_check_in_goes(story: Story, clock: MovableClock) -> None:
    ref, _ack = story.open_loop()
    clock.advance(hours=1)
    outcome = story.outcome_sent(ref)
    clock.advance(hours=1)

    story.replies(outcome, "Yes, feel free.", message_id="yes@mail.example.com")
    assert story.run() == []

    customer = story.customer()
    assert (customer["consent"], customer["consent_at"]) == ("granted", clock())
    assert customer["consent_via"] == f"reply to the outcome of {ref}"
    clock.advance(days=91)
    assert [kind(r) for r in story.run()] == ["check-in"]


# after the check-in --------------------------------------------------------------------------------------------


def test_a_new_problem_in_answer_to_the_check_in_opens_a_linked_loop_and_closes_the_old_one(
    story: Story, clock: MovableClock
) -> None:
    old, _ack = story.open_loop()
    clock.advance(hours=1)
    story.outcome_sent(old)
    clock.advance(days=91)
    (check_in,) = story.run()
    assert kind(check_in) == "check-in"
    clock.advance(hours=1)

    story.replies(
        check_in,
        "The invoice is wrong again: the VAT number changed back. Can you help?",
        message_id="again@mail.example.com",
    )
    sent = story.run()

    (new,) = set(story.refs()) - {old}
    assert story.loop(new)["parent_id"] == story.loop_id(old)
    assert story.loop(new)["state"] == "acknowledged"
    assert story.loop(old)["state"] == "closed"
    assert story.loop(old)["close_reason"] == f"continued in {new}"
    (ack,) = [r for r in sent if kind(r) == "acknowledgement"]
    assert ack.rcpt_tos == (JANE,)
    assert ack.message["X-Closeloop-Loop"] == new
    assert ack.message["In-Reply-To"] == "<again@mail.example.com>"
    assert "VAT number changed back" in text_of(ack)
    (notification,) = [r for r in sent if kind(r) == "staff-notification"]
    assert old in text_of(notification)  # the owner sees the earlier conversation
    assert sorted(kind(r) for r in sent) == ["acknowledgement", "staff-notification"]
    assert pending(story.touches(old)) == []


# opting out ----------------------------------------------------------------------------------------------------


def opted_out_everywhere(story: Story, refs: list[str], via: str, at: datetime) -> None:
    customer = story.customer()
    assert customer["opted_out_at"] == at
    assert (customer["consent"], customer["consent_at"], customer["consent_via"]) == ("refused", at, via)
    for ref in refs:
        assert pending(story.touches(ref)) == [], ref
        assert story.loop(ref)["state"] == "closed"
        cancelled = [t for t in story.touches(ref) if t["state"] == "cancelled" and t["kind"] in CUSTOMER_KINDS]
        assert {t["kind"] for t in cancelled} >= {"thank-you", "follow-through"}
        assert all("opted out" in t["reason"] for t in cancelled)


def two_open_loops(story: Story, clock: MovableClock) -> tuple[str, Received, str]:
    first, ack = story.open_loop()
    clock.advance(minutes=30)
    second, _ = story.open_loop(
        message_id="parcel@mail.example.com",
        subject="Parcel never arrived",
        body="Hello,\n\nmy parcel from order 2211 never arrived.\n\nJane\n",
    )
    clock.advance(minutes=30)
    return first, ack, second


def test_a_reply_that_asks_to_stop_opts_out_and_cancels_every_pending_touch_across_loops(
    story: Story, clock: MovableClock
) -> None:
    first, ack, second = two_open_loops(story, clock)
    asked_at = clock()

    story.replies(ack, "Please stop emailing me.", message_id="stop@mail.example.com")
    assert story.run() == []

    opted_out_everywhere(story, [first, second], f"reply in {first}", asked_at)
    mark = len(story.sink.messages)
    for days in (1, 7, 120):
        clock.advance(days=days)
        story.run()
    assert story.mail_to_jane(since=mark) == []


def test_mail_to_the_unsubscribe_address_opts_out_the_sender(story: Story, clock: MovableClock) -> None:
    first, ack, second = two_open_loops(story, clock)
    assert ack.message["List-Unsubscribe"] == "<mailto:support+unsubscribe@example.org?subject=unsubscribe>"
    asked_at = clock()

    story.writes(
        message_id="unsubscribe@mail.example.com",
        to="support+unsubscribe@example.org",
        subject="unsubscribe",
        body="This message was automatically generated by Gmail.",
    )
    assert story.run() == []

    opted_out_everywhere(story, [first, second], "unsubscribe email", asked_at)
    (request,) = [m for m in story.rows(messages) if m["message_id"] == "unsubscribe@mail.example.com"]
    assert request["classification"] == "unsubscribe"
    mark = len(story.sink.messages)
    clock.advance(days=200)
    story.run()
    assert story.mail_to_jane(since=mark) == []
