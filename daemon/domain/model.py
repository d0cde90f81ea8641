"""The records the domain works with: plain, frozen, keyword-only values.

Nothing here does I/O. The store turns rows into these records and back; the mail adapters turn bytes into
:class:`InboundMessage`. Transitions return new values (``dataclasses.replace``) instead of mutating.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Classification(StrEnum):
    """What an inbound message is. Only ``customer`` mail is ever answered."""

    CUSTOMER = "customer"
    STAFF = "staff"
    AUTO_REPLY = "auto-reply"
    BOUNCE = "bounce"
    LIST = "list"
    SYSTEM = "system"
    UNSUBSCRIBE = "unsubscribe"
    QUARANTINED = "quarantined"


class LoopState(StrEnum):
    RECEIVED = "received"
    ACKNOWLEDGED = "acknowledged"
    OUTCOME_SENT = "outcome_sent"
    CHECKED_IN = "checked_in"
    CLOSED = "closed"


class TouchKind(StrEnum):
    """The planned emails of a loop; the value is what ``X-Closeloop-Kind`` carries."""

    ACKNOWLEDGEMENT = "acknowledgement"
    THANK_YOU = "thank-you"
    OUTCOME = "outcome"
    FOLLOW_THROUGH = "follow-through"
    CHECK_IN = "check-in"
    CLOSING = "closing"
    STAFF_NOTIFICATION = "staff-notification"
    STAFF_REMINDER = "staff-reminder"

    @property
    def to_staff(self) -> bool:
        return self in (TouchKind.STAFF_NOTIFICATION, TouchKind.STAFF_REMINDER)


class TouchState(StrEnum):
    PLANNED = "planned"
    SENT = "sent"
    CANCELLED = "cancelled"
    FAILED = "failed"
    HELD = "held"


class Consent(StrEnum):
    """Whether a customer agreed to be contacted again after the outcome (check-ins)."""

    UNKNOWN = "unknown"
    GRANTED = "granted"
    REFUSED = "refused"


@dataclass(frozen=True, kw_only=True)
class Address:
    """A mailbox: ``email`` is normalised (lower-case, stripped); ``name`` is the display name or ``""``."""

    email: str
    name: str = ""


@dataclass(frozen=True, kw_only=True)
class InboundMessage:
    """One received email, reduced to what closeloop needs. Built by ``daemon.mail.parse``.

    Message-IDs everywhere are stored without angle brackets (``abc@example.org``).
    ``headers`` keeps every top-level header as ``(lower-case name, decoded value)`` in order, for
    classification. ``return_path`` is ``None`` when the header is absent and ``""`` for the null
    reverse-path ``<>``. ``parts`` lists the MIME content types of the tree depth-first (bounded);
    ``report_types`` the ``report-type`` parameters of every multipart/report found anywhere in it.
    For delivery reports and auto-replies, ``cited_ids`` are the Message-IDs of the original message they are
    about (from an attached message or its headers, and from the report's own In-Reply-To/References),
    ``delivery_action`` the worst RFC 3464 ``Action`` found (``failed`` > ``delayed`` > ``delivered`` /
    ``relayed`` / ``expanded``; ``failed`` also for classic non-DSN bounces), and ``failed_recipients`` the
    addresses that failed (``Final-Recipient``/``Original-Recipient``, ``X-Failed-Recipients``).
    """

    fingerprint: str
    message_id: str | None
    in_reply_to: tuple[str, ...] = ()
    references: tuple[str, ...] = ()
    sender: Address | None = None
    reply_to: Address | None = None
    recipients: tuple[str, ...] = ()
    subject: str = ""
    date: datetime | None = None
    text: str = ""
    headers: tuple[tuple[str, str], ...] = ()
    return_path: str | None = None
    parts: tuple[str, ...] = ()
    report_types: tuple[str, ...] = ()
    language: str | None = None
    size: int = 0
    cited_ids: tuple[str, ...] = ()
    delivery_action: str | None = None
    failed_recipients: tuple[str, ...] = ()

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (any case), or ``None``."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)

    def header_values(self, name: str) -> tuple[str, ...]:
        wanted = name.lower()
        return tuple(value for key, value in self.headers if key == wanted)

    @property
    def tz_offset_minutes(self) -> int | None:
        """The UTC offset the sender's own clock wrote in ``Date:``, a hint to their timezone."""
        if self.date is None or self.date.utcoffset() is None:
            return None
        offset = self.date.utcoffset()
        assert offset is not None
        return int(offset.total_seconds() // 60)

    @property
    def thread_ids(self) -> tuple[str, ...]:
        """Message-IDs this message answers, most specific first: In-Reply-To, then References newest first."""
        seen: dict[str, None] = dict.fromkeys(self.in_reply_to)
        seen.update(dict.fromkeys(reversed(self.references)))
        return tuple(seen)


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """The classification of an inbound message and, when it is not answered, why."""

    classification: Classification
    reason: str = ""

    @property
    def answerable(self) -> bool:
        return self.classification is Classification.CUSTOMER


@dataclass(frozen=True, kw_only=True)
class Customer:
    id: int | None
    email: str
    name: str = ""
    first_name: str = ""
    language: str | None = None
    tz_offset_minutes: int | None = None
    consent: Consent = Consent.UNKNOWN
    consent_at: datetime | None = None
    consent_via: str = ""
    opted_out_at: datetime | None = None
    undeliverable_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class Loop:
    id: int | None
    ref: str
    inbox: str
    customer_id: int
    state: LoopState
    owner: str
    subject: str
    opened_at: datetime
    promised_by: datetime | None = None
    acknowledged_at: datetime | None = None
    outcome: str | None = None
    outcome_at: datetime | None = None
    outcome_sent_at: datetime | None = None
    checked_in_at: datetime | None = None
    closed_at: datetime | None = None
    close_reason: str = ""
    follow_throughs: int = 0
    paused_until: datetime | None = None
    closes_at: datetime | None = None
    parent_id: int | None = None
    language: str | None = None

    @property
    def is_open(self) -> bool:
        return self.state is not LoopState.CLOSED


@dataclass(frozen=True, kw_only=True)
class Touch:
    """One planned email of a loop: the outbox row."""

    id: int | None
    loop_id: int
    kind: TouchKind
    state: TouchState
    due_at: datetime
    recipient: str
    message_id: str
    sequence: int = 0
    attempts: int = 0
    note: str = ""
    answers: str | None = None
    sent_at: datetime | None = None
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class Staff:
    name: str
    email: str

    @property
    def first_name(self) -> str:
        return self.name.split()[0] if self.name.split() else ""


__all__ = [
    "Address",
    "Classification",
    "Consent",
    "Customer",
    "InboundMessage",
    "Loop",
    "LoopState",
    "Staff",
    "Touch",
    "TouchKind",
    "TouchState",
    "Verdict",
]
