"""Dispatch: claim a due touch, decide whether it still makes sense, render, send, record — per touch.

Each touch is handled in its own transaction that holds the touch (and its loop) locked while the email goes
out: a touch is committed before it is sent, sent after that commit, and marked sent after the server's 250.
A staff close that races a send waits for it (PostgreSQL row locks, SQLite's write lock), so nothing is sent
after its loop closed. A crash between the 250 and the commit resends the same bytes with the same Message-ID.
On PostgreSQL these transactions commit without waiting for the disk (one fsync less per email): a crash of the
database server may forget the last moments' "sent" marks, with that same outcome.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from daemon.config import Settings
from daemon.context import staff_member, touch_context, unsubscribe_address, unsubscribe_mailto
from daemon.domain import loop as loops
from daemon.domain.model import Classification, Consent, TouchKind, TouchState
from daemon.intake import BOUNCED
from daemon.mail.compose import HeaderInjection, Mailbox, Outgoing, compose
from daemon.mail.smtp import PermanentSendError, TransientSendError
from daemon.observe import Metrics
from daemon.outbox import Outbox
from daemon.render import RenderedTouch, Renderer, TemplateError
from daemon.store.repository import DueTouch, RecordedMessage, Sent, Store, Transaction

log = logging.getLogger(__name__)

CAP_REASON = "over the cap of automated mail to this address"
# How long the dispatcher keeps SQLite's write turn, sending one email per transaction, before the inbox watcher
# (whose turn is a whole batch of messages) gets it back: without it, a large import acknowledged one message per
# batch recorded.
TURN_SECONDS = 0.5


class Sender(Protocol):
    def send(self, message: bytes, sender: str, recipients: list[str]) -> None: ...


@dataclass(kw_only=True)
class DispatchReport:
    results: Counter[str] = field(default_factory=Counter)
    smtp_down: str | None = None

    @property
    def sent(self) -> int:
        return self.results["sent"]


class Dispatch:
    def __init__(self, settings: Settings, store: Store, renderer: Renderer, *, metrics: Metrics | None = None) -> None:
        self.settings, self.store, self.renderer = settings, store, renderer
        self.outbox = Outbox(settings=settings)
        self.metrics = metrics or Metrics(process=False)

    def dispatch_due(
        self, sender: Sender, now: datetime, *, limit: int | None = None, stop: Callable[[], bool] = lambda: False
    ) -> DispatchReport:
        """Send what is due at ``now``, oldest first, up to ``limit`` touches; stop early if SMTP is down or
        ``stop()`` (asked between touches: a shutdown waits for one email, not for the whole batch)."""
        report = DispatchReport()
        left = limit or self.settings.daemon.dispatch_batch
        more = True
        while more and left > 0 and not report.smtp_down and not stop():
            with self.store.write_turn():
                handled, more = self._turn(sender, now, left, stop, report)
            left -= handled
        return report

    def _turn(
        self, sender: Sender, now: datetime, limit: int, stop: Callable[[], bool], report: DispatchReport
    ) -> tuple[int, bool]:
        """Touches for up to :data:`TURN_SECONDS`, each in its own transaction; how many, and whether more are due."""
        handled, ends = 0, time.monotonic() + TURN_SECONDS
        while handled < limit and not report.smtp_down and time.monotonic() < ends and not stop():
            with self.store.transaction(wait_for_disk=False) as tx:
                due = tx.claim_due(now)
                if due is None:
                    return handled, False
                result = self._one(tx, due, sender, now, report)
            report.results[result] += 1
            handled += 1
        return handled, True

    def _one(self, tx: Transaction, due: DueTouch, sender: Sender, now: datetime, report: DispatchReport) -> str:
        touch = due.touch
        assert touch.id is not None
        why = self._why_not(due, now)
        if why is not None:
            state, reason = why
            tx.settle(touch.id, state, reason)
            log.info(
                "touch not sent",
                extra={"loop": due.loop.ref, "kind": str(touch.kind), "state": str(state), "reason": reason},
            )
            return str(state)
        later = self._not_yet(tx, due, now)
        if later is not None:
            return later
        timing = self.outbox.timing(due.customer, now)
        try:
            rendered = self._render(tx, due, timing, now)
        except TemplateError as exc:
            tx.settle(touch.id, TouchState.HELD, f"template problem: {exc}")
            self.metrics.send_failed(str(touch.kind), "template")
            log.error(
                "touch held: its template fails",
                extra={"loop": due.loop.ref, "kind": str(touch.kind), "problem": str(exc)},
            )
            return "held"
        raw = self._composed(tx, due, rendered, now)
        if raw is None:
            return "held"
        try:
            sender.send(raw, self._envelope_sender(due), [touch.recipient])
        except TransientSendError as exc:
            return self._deferred(tx, due, exc, now, report)
        except PermanentSendError as exc:
            tx.settle(touch.id, TouchState.FAILED, f"refused by the SMTP server: {exc}", attempt=True)
            self.metrics.send_failed(str(touch.kind), "permanent")
            log.error(
                "touch failed for good",
                extra={"loop": due.loop.ref, "kind": str(touch.kind), "smtp": str(exc)},
            )
            if not touch.kind.to_staff:
                self._tell_owner(tx, due, now, f"our {touch.kind} to {touch.recipient} was refused: {exc}")
            return "failed"
        self._record_sent(tx, due, rendered, now)
        return "sent"

    def _composed(self, tx: Transaction, due: DueTouch, rendered: RenderedTouch, now: datetime) -> bytes | None:
        """The email's bytes, or ``None`` when it cannot be written safely: the touch is then held with the reason,
        so one hostile value (a customer's Message-ID, a name) never stops the touches behind it."""
        touch = due.touch
        assert touch.id is not None
        try:
            return compose(self._outgoing(tx, due, rendered, now))
        except (HeaderInjection, UnicodeError) as exc:
            tx.settle(touch.id, TouchState.HELD, f"the email cannot be written safely: {exc}")
            self.metrics.send_failed(str(touch.kind), "other")
            log.error(
                "touch held: its email cannot be written safely",
                extra={"loop": due.loop.ref, "kind": str(touch.kind), "problem": str(exc)},
            )
            return None

    def _why_not(self, due: DueTouch, now: datetime) -> tuple[TouchState, str] | None:
        touch, loop, customer = due.touch, due.loop, due.customer
        stale = loops.stale_reason(touch, loop, now)
        if stale is not None:
            return TouchState.CANCELLED, stale
        if touch.kind.to_staff:
            return None
        if customer.opted_out_at is not None:
            return TouchState.CANCELLED, "the customer opted out"
        if customer.undeliverable_at is not None:
            return TouchState.HELD, BOUNCED
        if touch.kind is TouchKind.CHECK_IN and customer.consent is Consent.REFUSED:
            return TouchState.CANCELLED, "the customer declined check-ins"
        return None

    def _not_yet(self, tx: Transaction, due: DueTouch, now: datetime) -> str | None:
        """Defer or hold a customer touch while the customer is away or has had their share of mail.

        At most ``[limits] per_recipient`` automated mails go to one address per window, across all its loops.
        A scheduled touch waits for the window to free up. An acknowledgement over the cap means new loops keep
        arriving from that address — most likely a robot answering everything without marking itself — so it
        is held (the ping-pong stops at once) and the owner is told, once per window.
        """
        touch, loop = due.touch, due.loop
        assert touch.id is not None
        if touch.kind.to_staff:
            return None
        if loop.paused_until is not None and loop.paused_until > now:
            tx.defer(touch.id, loop.paused_until, "paused: the customer is away")
            return "deferred"
        limits = self.settings.limits
        since = now - timedelta(hours=limits.window_hours)
        if tx.sent_to_since(touch.recipient, since) < limits.per_recipient:
            return None
        if touch.kind is not TouchKind.ACKNOWLEDGEMENT:
            first = tx.first_sent_to_since(touch.recipient, since) or now
            free = first + timedelta(hours=limits.window_hours)
            tx.defer(touch.id, self.outbox.timing(due.customer, now).humane(free), CAP_REASON)
            return "deferred"
        if tx.held_to_since(touch.recipient, CAP_REASON, since) == 0:
            note = (
                f"{touch.recipient} already got {limits.per_recipient} automated emails in the last "
                f"{limits.window_hours:g} hours and keeps opening new conversations: probably a robot answering "
                "everything. Its acknowledgements are held; release or close them by hand."
            )
            self._tell_owner(tx, due, now, note)
        tx.settle(touch.id, TouchState.HELD, f"{CAP_REASON}; a mail loop with a robot?")
        log.warning("acknowledgement held: recipient over the cap", extra={"loop": loop.ref})
        return "held"

    def _tell_owner(self, tx: Transaction, due: DueTouch, now: datetime, note: str) -> None:
        """A staff-notification to the loop's owner explaining what went wrong."""
        change = loops.hand_to_owner(due.loop, answers=None, note=note, now=now)
        tx.add_touches(self.outbox.rows(due.loop, change.plan, due.customer), now)

    def _render(self, tx: Transaction, due: DueTouch, timing: loops.Timing, now: datetime) -> RenderedTouch:
        context = touch_context(tx, self.settings, due.touch, due.loop, due.customer, timing, now)
        language = due.loop.language or due.customer.language
        return self.renderer.render(str(due.touch.kind), context, language=language, inbox=due.loop.inbox)

    def _outgoing(self, tx: Transaction, due: DueTouch, rendered: RenderedTouch, now: datetime) -> Outgoing:
        touch, loop, customer = due.touch, due.loop, due.customer
        inbox = self.settings.inbox(loop.inbox)
        to_customer = not touch.kind.to_staff
        thread = tx.thread_of(loop.id or 0, customer_visible=to_customer)
        if to_customer:
            recipient = Mailbox(email=touch.recipient, name=customer.name)
        else:
            recipient = Mailbox(email=touch.recipient, name=staff_member(self.settings, touch.recipient).name)
        return Outgoing(
            kind=str(touch.kind),
            loop_ref=loop.ref,
            sender=Mailbox(email=inbox.address, name=inbox.display_name),
            recipient=recipient,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=touch.message_id,
            date=now,
            answers=to_customer and touch.answers is not None,
            in_reply_to=touch.answers or (thread[-1] if thread else None),
            references=thread,
            list_unsubscribe=unsubscribe_mailto(inbox) if to_customer else None,
        )

    def _envelope_sender(self, due: DueTouch) -> str:
        return self.settings.inbox(due.loop.inbox).address

    def _deferred(
        self, tx: Transaction, due: DueTouch, exc: TransientSendError, now: datetime, report: DispatchReport
    ) -> str:
        touch = due.touch
        assert touch.id is not None
        retry = self.settings.smtp.retry
        if exc.code is None:
            report.smtp_down = str(exc)
        elif touch.attempts + 1 >= retry.max_attempts:
            reason = f"gave up after {touch.attempts + 1} deferrals: {exc}"
            tx.settle(touch.id, TouchState.FAILED, reason, attempt=True)
            self.metrics.send_failed(str(touch.kind), "gave-up")
            log.error("touch failed for good", extra={"loop": due.loop.ref, "kind": str(touch.kind), "smtp": reason})
            if not touch.kind.to_staff:
                self._tell_owner(tx, due, now, f"our {touch.kind} to {touch.recipient} was not delivered: {reason}")
            return "failed"
        delay = min(retry.first_delay_seconds * 2**touch.attempts, retry.max_delay_seconds)
        tx.retry_later(touch.id, now + timedelta(seconds=delay), f"will retry: {exc}")
        log.warning("send deferred", extra={"kind": str(touch.kind), "retry_in_s": delay, "smtp": str(exc)})
        return "retry"

    def _record_sent(self, tx: Transaction, due: DueTouch, rendered: RenderedTouch, now: datetime) -> None:
        touch, loop, customer = due.touch, due.loop, due.customer
        assert touch.id is not None
        sent = Sent(
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            template=rendered.template,
            template_version=rendered.version,
        )
        tx.mark_sent(touch.id, sent, now)
        self.metrics.sent(str(touch.kind), (now - loop.opened_at).total_seconds())
        inbox = self.settings.inbox(loop.inbox)
        tx.record_message(
            RecordedMessage(
                direction="out",
                inbox=loop.inbox,
                classification=str(Classification.SYSTEM),
                reason=f"our {touch.kind}",
                received_at=now,
                sent_at=now,
                message_id=touch.message_id,
                in_reply_to=(touch.answers,) if touch.answers else (),
                from_email=inbox.address,
                from_name=inbox.display_name,
                recipients=(touch.recipient,),
                subject=rendered.subject,
                text_body=rendered.text,
                loop_id=loop.id,
                touch_id=touch.id,
            )
        )
        may_check_in = customer.consent is not Consent.REFUSED and customer.opted_out_at is None
        timing = self.outbox.timing(customer, now)
        change = loops.touch_sent(loop, touch, may_check_in=may_check_in, timing=timing, now=now)
        self.outbox.apply(tx, change, customer, now)
        log.info("sent", extra={"loop": loop.ref, "kind": str(touch.kind), "message_id": touch.message_id})


__all__ = ["Dispatch", "DispatchReport", "Sender", "unsubscribe_address"]
