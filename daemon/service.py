"""Use cases: read an inbox, dispatch what is due, and what staff do to loops (outcome, close, opt-out).

Every use case takes ``now``; only the composition root (``app.py``) reads the clock.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from daemon.config import Inbox, Settings
from daemon.context import touch_context
from daemon.dispatch import Dispatch, DispatchReport, Sender
from daemon.domain import loop as loops
from daemon.domain.model import Loop, LoopState, Touch, TouchKind, TouchState
from daemon.intake import Intake, IntakeReport
from daemon.mail.imap import Fetched
from daemon.observe import Metrics
from daemon.progress import Progress
from daemon.render import RenderedTouch, Renderer, TemplateProblem, sample_context
from daemon.store.repository import LoopNotFound, Store, Transaction

log = logging.getLogger(__name__)

__all__ = ["Closeloop", "LoopNotFound", "MailSource"]


class MailSource(Protocol):
    """A folder of an inbox that intake reads (IMAP, or a Maildir on the mail host)."""

    folder: str
    uidvalidity: int

    def uids_after(self, last_uid: int) -> list[int]: ...
    def fetch(self, uids: Sequence[int]) -> list[Fetched]: ...
    def mark_processed(self, uids: Sequence[int]) -> None: ...


@dataclass(kw_only=True)
class PassReport:
    inbox: str
    batches: list[IntakeReport] = field(default_factory=list)
    resynced: bool = False

    @property
    def recorded(self) -> int:
        return sum(b.recorded for b in self.batches)

    @property
    def opened(self) -> list[str]:
        return [ref for b in self.batches for ref in b.opened]


class Closeloop:
    """The application: intake, dispatch and staff commands over one store."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        renderer: Renderer,
        *,
        metrics: Metrics | None = None,
        progress: Callable[[str, int], Progress] = Progress,
    ) -> None:
        self.settings, self.store, self.renderer = settings, store, renderer
        self.progress = progress
        self.intake = Intake(settings, store)
        self.dispatch = Dispatch(settings, store, renderer, metrics=metrics)

    # intake ----------------------------------------------------------------------------------------------

    def read_inbox(
        self,
        inbox: Inbox,
        source: MailSource,
        clock: Callable[[], datetime],
        on_batch: Callable[[IntakeReport], None] = lambda _: None,
        stop: Callable[[], bool] = lambda: False,
    ) -> PassReport:
        """One pass over a mailbox: every message above the high-water mark, in batches, then flag them.

        ``stop()`` is asked between batches: a shutdown waits for the batch in progress, not for the whole pass.
        """
        report = PassReport(inbox=inbox.name)
        last_uid = self._last_uid(inbox, source, report)
        uids = source.uids_after(last_uid)
        size = inbox.batch_size
        long_pass = len(uids) > size  # the first import of a large mailbox, or a catch-up: show progress
        with self.progress(f"reading {inbox.name}", len(uids)) if long_pass else nullcontext() as bar:
            for start in range(0, len(uids), size):
                if stop():
                    break
                batch = uids[start : start + size]
                fetched = source.fetch(batch)
                result = self.intake.record_batch(inbox, source.folder, source.uidvalidity, fetched, clock())
                source.mark_processed(batch)
                report.batches.append(result)
                on_batch(result)
                if bar is not None:
                    bar.advance(len(batch))
        return report

    def _last_uid(self, inbox: Inbox, source: MailSource, report: PassReport) -> int:
        with self.store.reading() as tx:
            position = tx.mailbox_position(inbox.name, source.folder)
        if position is None:
            return 0
        uidvalidity, last_uid = position
        if uidvalidity != source.uidvalidity:
            log.warning(
                "UIDVALIDITY changed: the mailbox was recreated; re-reading it, known messages are matched by "
                "fingerprint and not recorded twice",
                extra={
                    "inbox": inbox.name,
                    "folder": source.folder,
                    "was": uidvalidity,
                    "now": source.uidvalidity,
                },
            )
            report.resynced = True
            return 0
        return last_uid

    # dispatch --------------------------------------------------------------------------------------------

    def dispatch_due(
        self, sender: Sender, now: datetime, *, limit: int | None = None, stop: Callable[[], bool] = lambda: False
    ) -> DispatchReport:
        return self.dispatch.dispatch_due(sender, now, limit=limit, stop=stop)

    def housekeeping(self, now: datetime) -> list[str]:
        """Close loops whose quiet-close time has come (a check-in nobody answered)."""
        closed = []
        with self.store.transaction() as tx:
            for loop in tx.loops_to_close_quietly(now):
                if loops.due_for_quiet_close(loop, now):
                    self._apply(tx, loops.close(loop, reason=loops.quiet_close_reason(loop), now=now), now)
                    closed.append(loop.ref)
        for ref in closed:
            log.info("loop closed quietly", extra={"loop": ref})
        return closed

    # staff -----------------------------------------------------------------------------------------------

    def record_outcome(self, ref: str, text: str, now: datetime) -> Loop:
        """Record the team's outcome for a loop; the outcome email goes out in business hours.

        :raises LoopNotFound: no such loop.
        :raises IllegalTransition: the loop is closed.
        """
        text = text.strip()
        if not text:
            raise ValueError("the outcome is empty; write what was done or learned")
        with self.store.transaction() as tx:
            loop = tx.loop_by_ref(ref, lock=True)
            customer = tx.customer(loop.customer_id)
            timing = self.intake.outbox.timing(customer, now)
            return self._apply(tx, loops.record_outcome(loop, text, timing=timing, now=now), now)

    def close(self, ref: str, reason: str, now: datetime) -> Loop:
        """Close a loop and cancel its pending touches, in one transaction.

        A close that had to wait for an email of the loop in flight takes effect after it, and is stamped so:
        no touch of a closed loop is ever recorded as sent after the close.

        :raises LoopNotFound: no such loop.
        :raises IllegalTransition: it is already closed.
        """
        with self.store.transaction() as tx:
            loop = tx.loop_by_ref(ref, lock=True)
            now = max(now, tx.last_sent_at(loop.id or 0) or now)
            closed = self._apply(tx, loops.close(loop, reason=reason, now=now), now)
        log.info("loop closed by staff", extra={"loop": ref, "reason": reason})
        return closed

    def opt_out(self, email: str, now: datetime, *, via: str) -> bool:
        with self.store.transaction() as tx:
            return self.intake.opt_out(tx, email.strip().lower(), now, via=via)

    def _apply(self, tx: Transaction, change: loops.Change, now: datetime) -> Loop:
        customer = tx.customer(change.loop.customer_id)
        return self.intake.outbox.apply(tx, change, customer, now)

    # templates -------------------------------------------------------------------------------------------

    def check_templates(self, now: datetime, *, loops_to_try: int = 50) -> list[TemplateProblem]:
        """Every template against the sample contexts and against the newest real loops, for every kind."""
        with self.store.reading() as tx:
            recent = tx.recent_loops(loops_to_try)
            contexts = [(str(kind), self._context(tx, loop, kind, now)) for loop in recent for kind in TouchKind]
        return self.renderer.check(contexts)

    def preview(
        self, kind: str, now: datetime, *, ref: str | None = None, language: str | None = None
    ) -> RenderedTouch:
        """A touch rendered as it would go out: for a real loop, or with sample data.

        :raises LoopNotFound: no such loop.
        :raises TemplateError: the template fails.
        """
        if ref is None:
            return self.renderer.render(kind, sample_context(kind), language=language)
        with self.store.reading() as tx:
            loop = tx.loop_by_ref(ref)
            context = self._context(tx, loop, TouchKind(kind), now)
            customer = tx.customer(loop.customer_id)
        chosen = language or loop.language or customer.language
        return self.renderer.render(kind, context, language=chosen, inbox=loop.inbox)

    def _context(self, tx: Transaction, loop: Loop, kind: TouchKind, now: datetime) -> dict[str, Any]:
        """The context a touch of ``kind`` would get for ``loop`` now (a touch that is not stored)."""
        customer = tx.customer(loop.customer_id)
        draft = Touch(
            id=None,
            loop_id=loop.id or 0,
            kind=kind,
            state=TouchState.PLANNED,
            due_at=now,
            recipient=loop.owner if kind.to_staff else customer.email,
            message_id="preview@closeloop.invalid",
            sequence=max(loop.follow_throughs, 1)
            if kind in (TouchKind.FOLLOW_THROUGH, TouchKind.STAFF_REMINDER)
            else 0,
        )
        timing = self.intake.outbox.timing(customer, now)
        return touch_context(tx, self.settings, draft, loop, customer, timing, now)

    # views -----------------------------------------------------------------------------------------------

    def loops(self, state: LoopState | None = None) -> list[dict[str, Any]]:
        """Loops as plain data (the ``closeloop loops --json`` shape)."""
        with self.store.reading() as tx:
            found = tx.loops(state=state)
            touches = tx.touches_for([loop.id or 0 for loop in found])
            customers = {c: tx.customer(c) for c in {loop.customer_id for loop in found}}
        return [
            {
                "ref": loop.ref,
                "state": str(loop.state),
                "subject": loop.subject,
                "owner": loop.owner,
                "opened_at": _iso(loop.opened_at),
                "promised_by": _iso(loop.promised_by),
                "customer": {
                    "email": customers[loop.customer_id].email,
                    "name": customers[loop.customer_id].name,
                },
                "touches": [
                    {
                        "kind": str(t.kind),
                        "state": str(t.state),
                        "due_at": _iso(t.due_at),
                        "sent_at": _iso(t.sent_at),
                    }
                    for t in touches[loop.id or 0]
                ],
            }
            for loop in found
        ]

    def timeline(self, ref: str) -> dict[str, Any]:
        """One loop with every message and touch, in time order (``closeloop show``).

        :raises LoopNotFound: no such loop.
        """
        with self.store.reading() as tx:
            loop = tx.loop_by_ref(ref)
            customer = tx.customer(loop.customer_id)
            messages = tx.messages_of(loop.id or 0)
            touches = tx.touches_of(loop.id or 0)
        events = [
            {
                "at": _iso(m.received_at),
                "what": "received" if m.direction == "in" else "sent",
                "classification": m.classification,
                "from": m.from_email,
                "subject": m.subject,
                "message_id": m.message_id,
                "reason": m.reason,
            }
            for m in messages
            if m.direction == "in"
        ]
        events += [
            {
                "at": _iso(t.sent_at or t.due_at),
                "what": f"touch {t.state}",
                "kind": str(t.kind),
                "to": t.recipient,
                "due_at": _iso(t.due_at),
                "sent_at": _iso(t.sent_at),
                "message_id": t.message_id,
                "reason": t.reason,
            }
            for t in touches
        ]
        events.sort(key=lambda e: str(e["at"]))
        return {
            "ref": loop.ref,
            "state": str(loop.state),
            "subject": loop.subject,
            "owner": loop.owner,
            "customer": {"email": customer.email, "name": customer.name},
            "opened_at": _iso(loop.opened_at),
            "promised_by": _iso(loop.promised_by),
            "outcome": loop.outcome,
            "closed_at": _iso(loop.closed_at),
            "close_reason": loop.close_reason,
            "events": events,
        }


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()
