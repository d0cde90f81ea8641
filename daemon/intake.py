"""Intake: parse → classify → thread → record, one transaction per batch.

A batch is the messages fetched from one mailbox in one go. Its rows (messages, customers, loops, planned
touches) and the mailbox's high-water mark commit together, so a crash replays at most the uncommitted batch,
and the unique keys on (mailbox, UIDVALIDITY, UID) and on the message fingerprint absorb the replay.
"""

from __future__ import annotations

import hashlib
import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from daemon.config import Inbox, Settings
from daemon.domain import loop as loops
from daemon.domain.classify import ClassificationPolicy, classify, plus_tag
from daemon.domain.model import (
    Classification,
    Consent,
    Customer,
    InboundMessage,
    Loop,
    LoopState,
    TouchKind,
    Verdict,
)
from daemon.domain.replies import Intent, out_of_office_until, read_reply
from daemon.domain.threading import LoopSummary, find_loop, thread_clues
from daemon.mail.imap import Fetched
from daemon.mail.parse import UnparseableMessage, first_name_of, parse_message
from daemon.mail.quotes import latest_reply, without_sign_off
from daemon.outbox import Outbox
from daemon.store.repository import (
    Clash,
    DuplicateDelivery,
    RecordedMessage,
    Store,
    StoreUnavailable,
    Transaction,
)

log = logging.getLogger(__name__)


MAX_ATTEMPTS = 3
BOUNCED = "the customer's address bounced"


@dataclass(kw_only=True)
class IntakeReport:
    """What one batch did."""

    recorded: int = 0
    duplicates: int = 0
    opened: list[str] = field(default_factory=list)
    classes: Counter[str] = field(default_factory=Counter)
    last_uid: int = 0
    uids: list[int] = field(default_factory=list)

    def merge(self, other: IntakeReport) -> None:
        self.recorded += other.recorded
        self.duplicates += other.duplicates
        self.opened += other.opened
        self.classes += other.classes
        self.last_uid = max(self.last_uid, other.last_uid)
        self.uids += other.uids


@dataclass(frozen=True, kw_only=True)
class Parsed:
    uid: int
    raw: bytes
    message: InboundMessage | None
    problem: str = ""

    @property
    def fingerprint(self) -> str:
        if self.message is not None:
            return self.message.fingerprint
        return hashlib.sha256(self.raw).hexdigest()


def _quarantine(reason: str) -> Verdict:
    return Verdict(classification=Classification.QUARANTINED, reason=reason)


def _given_up(item: Fetched, attempts: int) -> Parsed:
    """A message intake failed on ``attempts`` times: kept raw, never parsed again."""
    reason = f"gave up after {attempts} attempts: intake stopped on this message each time"
    return Parsed(uid=item.uid, raw=item.raw, message=None, problem=reason)


def parse_all(fetched: Sequence[Fetched]) -> list[Parsed]:
    """Parse outside the transaction; a message that cannot be parsed is kept raw with the reason."""
    parsed = []
    for item in fetched:
        try:
            parsed.append(Parsed(uid=item.uid, raw=item.raw, message=parse_message(item.raw)))
        except UnparseableMessage as exc:
            parsed.append(Parsed(uid=item.uid, raw=item.raw, message=None, problem=exc.reason))
    return parsed


class Intake:
    """Records inbound mail and decides what each message does to its loop."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings, self.store = settings, store
        self.outbox = Outbox(settings=settings)
        self.policies = {inbox.name: _policy(settings, inbox) for inbox in settings.inboxes}

    def record_batch(
        self, inbox: Inbox, folder: str, uidvalidity: int, fetched: Sequence[Fetched], now: datetime
    ) -> IntakeReport:
        """Record a batch and advance the mailbox's high-water mark, in one transaction.

        Every message first counts an intake attempt, committed on its own. A batch whose messages were tried
        before (the process died on it) is recorded one message per transaction, so one poison message cannot
        hold back the others, and a message tried :data:`MAX_ATTEMPTS` times is quarantined raw without being
        parsed again.
        """
        uids = [item.uid for item in fetched]
        with self.store.transaction() as tx:
            tried = tx.attempts(inbox.name, folder, uidvalidity, uids)
            if not tried:
                tx.count_attempt(inbox.name, folder, uidvalidity, uids, now)
        if not tried:
            return self._record(inbox, folder, uidvalidity, parse_all(fetched), now)
        log.warning("replaying a batch that failed before, one message at a time", extra={"inbox": inbox.name})
        report = IntakeReport()
        for item in fetched:
            with self.store.transaction() as tx:
                attempts = tx.count_attempt(inbox.name, folder, uidvalidity, [item.uid], now)[item.uid]
            parsed = parse_all([item]) if attempts <= MAX_ATTEMPTS else [_given_up(item, attempts - 1)]
            report.merge(self._record(inbox, folder, uidvalidity, parsed, now))
        return report

    def _record(self, inbox: Inbox, folder: str, uidvalidity: int, parsed: list[Parsed], now: datetime) -> IntakeReport:
        report = IntakeReport(uids=[p.uid for p in parsed])
        with self.store.transaction() as tx:
            known = tx.known_uids(inbox.name, folder, uidvalidity, report.uids)
            seen = tx.known_fingerprints(p.fingerprint for p in parsed)
            position = tx.mailbox_position(inbox.name, folder)
            report.last_uid = position[1] if position and position[0] == uidvalidity else 0
            for item in parsed:
                report.last_uid = max(report.last_uid, item.uid)
                if item.uid in known or item.fingerprint in seen:
                    report.duplicates += 1
                    continue
                seen.add(item.fingerprint)
                where = Position(inbox=inbox, folder=folder, uidvalidity=uidvalidity, uid=item.uid)
                self._isolated(tx, where, item, now, report)
            tx.set_mailbox_position(inbox.name, folder, uidvalidity, report.last_uid, now)
            tx.forget_attempts(inbox.name, folder, uidvalidity, report.uids)
        return report

    def _isolated(self, tx: Transaction, where: Position, item: Parsed, now: datetime, report: IntakeReport) -> None:
        """Record one message in a savepoint: a failure quarantines this message and the batch goes on.

        A unique-key clash (a second daemon recorded the same customer or message a moment ago) is retried
        once, when the other writer's rows are visible; then this message is a duplicate.
        """
        for attempt in (1, 2):
            opened: list[str] = []
            try:
                with tx.savepoint():
                    classification = self._one(tx, where, item, now, opened)
            except DuplicateDelivery:
                report.duplicates += 1
                return
            except Clash:
                if attempt == 2:
                    raise
                continue
            except StoreUnavailable:
                raise
            except Exception as exc:
                log.exception("quarantined a message that intake could not handle", extra=where.extra)
                with tx.savepoint():
                    tx.record_message(where.row(item, _quarantine(f"intake failed: {type(exc).__name__}: {exc}"), now))
                classification = str(Classification.QUARANTINED)
            report.opened += opened
            report.classes[classification] += 1
            report.recorded += 1
            return

    def _one(self, tx: Transaction, where: Position, item: Parsed, now: datetime, opened: list[str]) -> str:
        if item.message is None:
            log.warning("quarantined unparseable message", extra={**where.extra, "reason": item.problem})
            tx.record_message(where.row(item, _quarantine(item.problem), now))
            return str(Classification.QUARANTINED)
        message = item.message
        verdict = classify(message, self.policies[where.inbox.name])
        loop = self._thread(tx, where.inbox, message)
        loop_id = self._act(tx, where.inbox, message, verdict, loop, now, opened)
        tx.record_message(replace(where.row(item, verdict, now), loop_id=loop_id))
        return str(verdict.classification)

    def _thread(self, tx: Transaction, inbox: Inbox, message: InboundMessage) -> LoopSummary | None:
        tag = self._plus_tag(inbox, message)
        ids, refs = thread_clues(message, tag)
        if not ids and not refs:
            return None
        return find_loop(
            message,
            plus_tag=tag,
            by_message_id=tx.loops_by_message_ids(ids) if ids else {},
            by_ref=tx.loops_by_refs(refs) if refs else {},
            staff=self.settings.staff_addresses,
        )

    def _plus_tag(self, inbox: Inbox, message: InboundMessage) -> str | None:
        return next((t for r in message.recipients if (t := plus_tag(r, inbox.own_addresses))), None)

    # what a message does -----------------------------------------------------------------------------------

    def _act(
        self,
        tx: Transaction,
        inbox: Inbox,
        message: InboundMessage,
        verdict: Verdict,
        found: LoopSummary | None,
        now: datetime,
        opened: list[str],
    ) -> int | None:
        """Apply what the message means; returns the loop it belongs to."""
        kind = verdict.classification
        if kind is Classification.CUSTOMER:
            return self._from_customer(tx, inbox, message, found, now, opened)
        if kind is Classification.BOUNCE:
            return self._bounced(tx, message, now) or (found.id if found else None)
        if kind is Classification.UNSUBSCRIBE and message.sender:
            self.opt_out(tx, message.sender.email, now, via="unsubscribe email")
        elif found is None:
            pass
        elif kind is Classification.STAFF:
            self._from_staff(tx, message, found, now)
        elif kind is Classification.AUTO_REPLY and found.state is not LoopState.CLOSED:
            self._out_of_office(tx, message, found, now)
        return found.id if found else None

    def _from_customer(
        self,
        tx: Transaction,
        inbox: Inbox,
        message: InboundMessage,
        found: LoopSummary | None,
        now: datetime,
        opened: list[str],
    ) -> int:
        customer = self._customer(tx, message, now)
        if found is None or found.state is LoopState.CLOSED:
            loop = self.open_loop(tx, inbox, customer, message, now, parent=found.id if found else None)
            opened.append(loop.ref)
            return loop.id or 0
        loop = tx.loop(found.id)
        self._reply(tx, inbox, customer, loop, message, now, opened)
        return loop.id or 0

    def open_loop(
        self,
        tx: Transaction,
        inbox: Inbox,
        customer: Customer,
        message: InboundMessage,
        now: datetime,
        *,
        parent: int | None,
    ) -> Loop:
        draft = Loop(
            id=None,
            ref="",
            inbox=inbox.name,
            customer_id=customer.id or 0,
            state=LoopState.RECEIVED,
            owner=self._owner(tx, inbox, customer),
            subject=_subject(message.subject),
            opened_at=now,
            parent_id=parent,
            language=message.language or customer.language,
        )
        loop = tx.add_loop(draft)
        change = loops.open_loop(loop, answers=message.message_id, timing=self.outbox.timing(customer, now), now=now)
        loop = self.outbox.apply(tx, change, customer, now)
        log.info("loop opened", extra={"loop": loop.ref, "message_id": message.message_id})
        return loop

    def _reply(
        self,
        tx: Transaction,
        inbox: Inbox,
        customer: Customer,
        loop: Loop,
        message: InboundMessage,
        now: datetime,
        opened: list[str],
    ) -> None:
        answering = self._answering(tx, message)
        intent = read_reply(latest_reply(message.text), answering=answering)
        log.info("customer replied", extra={"loop": loop.ref, "intent": str(intent), "answering": str(answering)})
        timing = self.outbox.timing(customer, now)
        if intent is Intent.STOP:
            self.opt_out(tx, customer.email, now, via=f"reply in {loop.ref}")
        elif intent is Intent.ALL_GOOD and loop.state in (LoopState.OUTCOME_SENT, LoopState.CHECKED_IN):
            self.outbox.apply(
                tx, loops.all_good(loop, answers=message.message_id, timing=timing, now=now), customer, now
            )
        elif intent is Intent.NEW_PROBLEM and loop.state in (LoopState.OUTCOME_SENT, LoopState.CHECKED_IN):
            new = self.open_loop(tx, inbox, customer, message, now, parent=loop.id)
            opened.append(new.ref)
            self.outbox.apply(tx, loops.close(loop, reason=f"continued in {new.ref}", now=now), customer, now)
        elif intent in (Intent.DECLINE_CHECK_IN, Intent.ALLOW_CHECK_IN):
            granted = intent is Intent.ALLOW_CHECK_IN
            tx.save_customer(_consent(customer, granted, now, via=f"reply to the outcome of {loop.ref}"))
            if not granted:
                self.outbox.apply(tx, loops.check_in_declined(loop, timing=timing, now=now), customer, now)
        else:
            note = f"{customer.name or customer.email} replied; the rules could not tell what they want, over to you"
            change = loops.hand_to_owner(loop, answers=message.message_id, note=note, now=now)
            self.outbox.apply(tx, change, customer, now)

    def _answering(self, tx: Transaction, message: InboundMessage) -> TouchKind | None:
        for message_id in message.in_reply_to:
            kind = tx.touch_kind(message_id)
            if kind is not None:
                return kind
        return None

    def _from_staff(self, tx: Transaction, message: InboundMessage, found: LoopSummary, now: datetime) -> None:
        """A staff reply threaded to a loop: its new words are the outcome."""
        loop = tx.loop(found.id)
        member = next((m for m in self.settings.staff if message.sender and m.email == message.sender.email), None)
        names = [member.name, *member.name.split()[:1]] if member else []
        text = without_sign_off(latest_reply(message.text), names).strip()
        if not text or not loop.is_open:
            log.info("staff mail recorded without an outcome", extra={"loop": loop.ref})
            return
        customer = tx.customer(loop.customer_id)
        change = loops.record_outcome(loop, text, timing=self.outbox.timing(customer, now), now=now)
        self.outbox.apply(tx, change, customer, now)
        log.info(
            "outcome recorded by email",
            extra={"loop": loop.ref, "staff": message.sender and message.sender.email},
        )

    def _bounced(self, tx: Transaction, message: InboundMessage, now: datetime) -> int | None:
        """A delivery report about one of our emails: a hard failure marks the address undeliverable.

        The customer's pending touches are held (not cancelled: they go out if the address works again) and
        the owner is told. Nothing is ever sent to the report's sender. Returns the loop the report is about.
        """
        ours = next((t for mid in message.cited_ids if (t := tx.touch_by_message_id(mid)) is not None), None)
        if ours is None:
            return None
        loop = tx.loop(ours.loop_id)
        named = not message.failed_recipients or ours.recipient in message.failed_recipients
        if message.delivery_action != "failed" or ours.kind.to_staff or not named:
            log.info("delivery report recorded", extra={"loop": loop.ref, "action": message.delivery_action})
            return loop.id
        customer = tx.customer(loop.customer_id)
        if customer.undeliverable_at is None:
            tx.save_customer(replace(customer, undeliverable_at=now))
            held = tx.hold_customer_touches(customer.id or 0, BOUNCED)
            note = (
                f"Our {ours.kind} to {customer.email} bounced ({message.subject or 'delivery failed'}). "
                f"The address is marked undeliverable and {held} planned emails to it are held until they "
                "write again from a working address."
            )
            self.outbox.apply(tx, loops.hand_to_owner(loop, answers=None, note=note, now=now), customer, now)
            log.warning("address bounced; touches held", extra={"loop": loop.ref, "held": held})
        return loop.id

    def _out_of_office(self, tx: Transaction, message: InboundMessage, found: LoopSummary, now: datetime) -> None:
        loop = tx.loop(found.id)
        customer = tx.customer(loop.customer_id)
        until = out_of_office_until(message.text, message.subject, received=message.date or now)
        change = loops.pause(loop, until=until, timing=self.outbox.timing(customer, now), now=now)
        self.outbox.apply(tx, change, customer, now)
        log.info(
            "loop paused for an out-of-office reply",
            extra={"loop": loop.ref, "until": str(change.defer_until)},
        )

    def opt_out(self, tx: Transaction, email: str, now: datetime, *, via: str) -> bool:
        """Record an opt-out: cancel every pending touch to the customer and close their open loops."""
        customer = tx.customer_by_email(email)
        if customer is None:
            return False
        if customer.opted_out_at is None:
            customer = replace(customer, opted_out_at=now, consent=Consent.REFUSED, consent_at=now, consent_via=via)
            tx.save_customer(customer)
        tx.cancel_customer_touches(customer.id or 0, reason=f"opted out ({via})")
        for loop in tx.open_loops_of(customer.id or 0):
            self.outbox.apply(tx, loops.close(loop, reason=f"opted out ({via})", now=now), customer, now)
        log.info("customer opted out", extra={"via": via})
        return True

    # customers and owners ----------------------------------------------------------------------------------

    def _customer(self, tx: Transaction, message: InboundMessage, now: datetime) -> Customer:
        assert message.sender is not None
        sender = message.sender
        customer = tx.customer_by_email(sender.email)
        if customer is None:
            return tx.add_customer(
                Customer(
                    id=None,
                    email=sender.email,
                    name=sender.name,
                    first_name=first_name_of(sender.name),
                    language=message.language,
                    tz_offset_minutes=message.tz_offset_minutes,
                ),
                now,
            )
        if customer.undeliverable_at is not None:  # they wrote from it: the address works again
            customer = replace(customer, undeliverable_at=None)
            tx.save_customer(customer)
            tx.release_customer_touches(customer.id or 0, BOUNCED)
        updated = replace(
            customer,
            name=sender.name or customer.name,
            first_name=first_name_of(sender.name) or customer.first_name,
            tz_offset_minutes=message.tz_offset_minutes
            if message.tz_offset_minutes is not None
            else customer.tz_offset_minutes,
            language=message.language or customer.language,
        )
        if updated != customer:
            tx.save_customer(updated)
        return updated

    def _owner(self, tx: Transaction, inbox: Inbox, customer: Customer) -> str:
        """The inbox's owner if set; else whoever looked after this customer last; else a fair rotation."""
        staff = [member.email for member in self.settings.staff]
        if inbox.owner:
            return inbox.owner
        previous = tx.last_owner(customer.id or 0)
        if previous in staff:
            return previous
        return staff[(customer.id or 0) % len(staff)]


@dataclass(frozen=True, kw_only=True)
class Position:
    """Where an inbound message sits: inbox, folder, UIDVALIDITY, UID."""

    inbox: Inbox
    folder: str
    uidvalidity: int
    uid: int

    @property
    def extra(self) -> dict[str, object]:
        return {"inbox": self.inbox.name, "folder": self.folder, "uid": self.uid}

    def row(self, item: Parsed, verdict: Verdict, now: datetime) -> RecordedMessage:
        message = item.message
        common = {
            "direction": "in",
            "inbox": self.inbox.name,
            "folder": self.folder,
            "uidvalidity": self.uidvalidity,
            "uid": self.uid,
            "fingerprint": item.fingerprint,
            "classification": str(verdict.classification),
            "reason": verdict.reason,
            "received_at": now,
            "size": len(item.raw),
        }
        if message is None:
            return RecordedMessage(**common, raw=item.raw)  # type: ignore[arg-type]
        return RecordedMessage(
            **common,  # type: ignore[arg-type]
            message_id=message.message_id,
            in_reply_to=message.in_reply_to,
            references=message.references,
            from_email=message.sender.email if message.sender else "",
            from_name=message.sender.name if message.sender else "",
            recipients=message.recipients,
            subject=message.subject,
            sent_at=message.date,
            text_body=message.text,
        )


def _policy(settings: Settings, inbox: Inbox) -> ClassificationPolicy:
    return ClassificationPolicy(
        own_addresses=frozenset(a for i in settings.inboxes for a in i.own_addresses),
        own_message_id_domains=frozenset(i.id_domain for i in settings.inboxes),
        staff_addresses=settings.staff_addresses,
        require_own_recipient=inbox.require_own_recipient,
    )


def _subject(subject: str) -> str:
    """The loop's subject: the customer's, without reply prefixes and our reference tokens."""
    from daemon.domain.reference import SUBJECT_REF

    text = SUBJECT_REF.sub("", subject)
    while True:
        stripped = text.strip()
        head, sep, rest = stripped.partition(":")
        if sep and head.strip().lower() in ("re", "fw", "fwd", "aw", "wg", "sv", "tr", "antw"):
            text = rest
            continue
        return " ".join(stripped.split())[:300] or "(no subject)"


def _consent(customer: Customer, granted: bool, now: datetime, *, via: str) -> Customer:
    return replace(customer, consent=Consent.GRANTED if granted else Consent.REFUSED, consent_at=now, consent_via=via)
