"""A loop's life: its states, the legal moves between them, and the touches the cadence plans.

Every function here is pure and takes ``now``. Each returns a :class:`Change`: the loop's new value, the touches
to plan, and the kinds of pending touches to cancel. The service applies a change in one transaction.

The cadence (defaults; see :class:`Cadence`):

==================  ===========================================================================================
acknowledgement     at once
staff-notification  at once, to the owner
thank-you           a day after the acknowledgement, in business hours; skipped once the outcome is recorded or
                    the promised date has passed (the follow-through speaks then)
outcome             as soon as staff record it, in business hours
follow-through      when the promised date (3 business days) passes with no outcome, then every 3 business
                    days, at most 3 times; each with a staff-reminder to the owner, the last one to all staff
check-in            90 days after the outcome went out, unless the customer refused
closing             when the customer answers that all is well; the loop closes when it has gone out
quiet close         14 days after a check-in (or after an outcome with no check-in to come) with no reply
==================  ===========================================================================================
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, tzinfo
from enum import StrEnum

from daemon.domain.calendar import BusinessCalendar
from daemon.domain.model import Loop, LoopState, Touch, TouchKind

CUSTOMER_KINDS = frozenset(kind for kind in TouchKind if not kind.to_staff)
PROMISE_KINDS = frozenset({TouchKind.FOLLOW_THROUGH, TouchKind.STAFF_REMINDER})


class IllegalTransition(Exception):
    """A loop was asked to make a move its state does not allow."""

    def __init__(self, ref: str, state: LoopState, event: str) -> None:
        self.ref, self.state, self.event = ref, state, event
        super().__init__(f"loop {ref} is {state}; it cannot take {event!r}")


class Event(StrEnum):
    ACKNOWLEDGED = "acknowledged"
    OUTCOME_SENT = "outcome sent"
    CHECKED_IN = "checked in"
    CLOSED = "closed"


_OPEN = (LoopState.RECEIVED, LoopState.ACKNOWLEDGED, LoopState.OUTCOME_SENT, LoopState.CHECKED_IN)

TRANSITIONS: dict[tuple[LoopState, Event], LoopState] = {
    (LoopState.RECEIVED, Event.ACKNOWLEDGED): LoopState.ACKNOWLEDGED,
    (LoopState.RECEIVED, Event.OUTCOME_SENT): LoopState.OUTCOME_SENT,
    (LoopState.ACKNOWLEDGED, Event.OUTCOME_SENT): LoopState.OUTCOME_SENT,
    (LoopState.OUTCOME_SENT, Event.OUTCOME_SENT): LoopState.OUTCOME_SENT,
    (LoopState.CHECKED_IN, Event.OUTCOME_SENT): LoopState.OUTCOME_SENT,
    (LoopState.OUTCOME_SENT, Event.CHECKED_IN): LoopState.CHECKED_IN,
    **{(state, Event.CLOSED): LoopState.CLOSED for state in _OPEN},
}


def move(loop: Loop, event: Event) -> LoopState:
    """The state ``loop`` reaches by ``event``.

    :raises IllegalTransition: when the transition table has no such move.
    """
    try:
        return TRANSITIONS[(loop.state, event)]
    except KeyError:
        raise IllegalTransition(loop.ref, loop.state, event) from None


class Audience(StrEnum):
    CUSTOMER = "customer"
    OWNER = "owner"
    TEAM = "team"


@dataclass(frozen=True, kw_only=True)
class Cadence:
    promise_business_days: int = 3
    thank_you_after: timedelta = timedelta(hours=24)
    follow_through_every_business_days: int = 3
    follow_through_max: int = 3
    check_in_after: timedelta = timedelta(days=90)
    check_in_close_after: timedelta = timedelta(days=14)
    out_of_office_pause: timedelta = timedelta(days=5)


@dataclass(frozen=True, kw_only=True)
class Timing:
    """When things happen for one customer: the team's calendar read in the customer's zone."""

    calendar: BusinessCalendar
    zone: tzinfo
    cadence: Cadence

    def humane(self, moment: datetime) -> datetime:
        """``moment``, or the next opening of business hours in the customer's local time."""
        return self.calendar.open_at(moment, self.zone)

    def business_days_after(self, moment: datetime, days: int) -> datetime:
        return self.calendar.add_business_days(moment, days, self.zone)

    def later(self, moment: datetime, delta: timedelta) -> datetime:
        """``moment`` plus ``delta`` on the customer's wall clock: a DST change in between keeps the hour."""
        return (moment.astimezone(self.zone) + delta).astimezone(UTC)


@dataclass(frozen=True, kw_only=True)
class PlannedTouch:
    kind: TouchKind
    due_at: datetime
    audience: Audience
    sequence: int = 0
    note: str = ""
    answers: str | None = None


@dataclass(frozen=True, kw_only=True)
class Change:
    """What a decision asks of the store: the loop's new value, touches to plan, pending kinds to cancel."""

    loop: Loop
    plan: tuple[PlannedTouch, ...] = ()
    cancel: frozenset[TouchKind] = frozenset()
    reason: str = ""
    defer_until: datetime | None = None


def open_loop(loop: Loop, *, answers: str | None, timing: Timing, now: datetime) -> Change:
    """A new loop: promise an outcome date and plan the first touches."""
    cadence = timing.cadence
    promised = timing.business_days_after(now, cadence.promise_business_days)
    plan = [
        PlannedTouch(kind=TouchKind.ACKNOWLEDGEMENT, due_at=now, audience=Audience.CUSTOMER, answers=answers),
        PlannedTouch(kind=TouchKind.STAFF_NOTIFICATION, due_at=now, audience=Audience.OWNER, answers=answers),
        PlannedTouch(
            kind=TouchKind.THANK_YOU,
            due_at=timing.humane(now + cadence.thank_you_after),
            audience=Audience.CUSTOMER,
        ),
    ]
    plan += _follow_through(1, promised, timing)
    return Change(loop=replace(loop, state=LoopState.RECEIVED, promised_by=promised), plan=tuple(plan))


def _follow_through(sequence: int, promised: datetime, timing: Timing) -> list[PlannedTouch]:
    """Follow-through number ``sequence`` and its staff reminder, due when ``promised`` passes."""
    if sequence > timing.cadence.follow_through_max:
        return []
    due = timing.humane(promised)
    last = sequence == timing.cadence.follow_through_max
    reminder = PlannedTouch(
        kind=TouchKind.STAFF_REMINDER,
        due_at=due,
        audience=Audience.TEAM if last else Audience.OWNER,
        sequence=sequence,
        note="escalated to the whole team: this was the last planned update" if last else "",
    )
    update = PlannedTouch(kind=TouchKind.FOLLOW_THROUGH, due_at=due, audience=Audience.CUSTOMER, sequence=sequence)
    return [update, reminder]


def next_promise(now: datetime, timing: Timing) -> datetime:
    """The new date a follow-through sent at ``now`` promises."""
    return timing.business_days_after(now, timing.cadence.follow_through_every_business_days)


def touch_sent(loop: Loop, touch: Touch, *, may_check_in: bool, timing: Timing, now: datetime) -> Change:
    """What follows from ``touch`` having gone out at ``now``."""
    cadence = timing.cadence
    match touch.kind:
        case TouchKind.ACKNOWLEDGEMENT if loop.state is LoopState.RECEIVED:
            return Change(loop=replace(loop, state=move(loop, Event.ACKNOWLEDGED), acknowledged_at=now))
        case TouchKind.OUTCOME:
            sent = replace(loop, state=move(loop, Event.OUTCOME_SENT), outcome_sent_at=now)
            if not may_check_in:
                return Change(loop=replace(sent, closes_at=now + cadence.check_in_close_after))
            check_in = PlannedTouch(
                kind=TouchKind.CHECK_IN,
                due_at=timing.humane(timing.later(now, cadence.check_in_after)),
                audience=Audience.CUSTOMER,
            )
            return Change(loop=replace(sent, closes_at=None), plan=(check_in,))
        case TouchKind.FOLLOW_THROUGH:
            promised = next_promise(now, timing)
            kept = replace(loop, follow_throughs=touch.sequence, promised_by=promised)
            return Change(loop=kept, plan=tuple(_follow_through(touch.sequence + 1, promised, timing)))
        case TouchKind.CHECK_IN:
            checked = replace(loop, state=move(loop, Event.CHECKED_IN), checked_in_at=now)
            return Change(loop=replace(checked, closes_at=now + cadence.check_in_close_after))
        case TouchKind.CLOSING:
            return close(loop, reason=touch.note or "the customer says all is well", now=now)
        case _:
            return Change(loop=loop)


def stale_reason(touch: Touch, loop: Loop, now: datetime) -> str | None:
    """Why a due touch no longer makes sense and should be skipped, or ``None`` when it should go."""
    if not loop.is_open:
        return "the loop is closed"
    if touch.kind is TouchKind.THANK_YOU:
        if loop.outcome is not None:
            return "the outcome is already recorded"
        if loop.promised_by is not None and now >= loop.promised_by:
            return "the promised date has passed; the follow-through speaks instead"
    if touch.kind in PROMISE_KINDS and loop.outcome is not None:
        return "the outcome is recorded"
    return None


def record_outcome(loop: Loop, text: str, *, timing: Timing, now: datetime) -> Change:
    """Staff recorded what came of the loop: tell the customer, stop the promise-keeping touches.

    :raises IllegalTransition: when the loop is closed.
    """
    if not loop.is_open:
        raise IllegalTransition(loop.ref, loop.state, "record outcome")
    recorded = replace(loop, outcome=text, outcome_at=now, closes_at=None)
    outcome = PlannedTouch(kind=TouchKind.OUTCOME, due_at=timing.humane(now), audience=Audience.CUSTOMER)
    cancel = frozenset({TouchKind.THANK_YOU, TouchKind.OUTCOME, TouchKind.CHECK_IN, *PROMISE_KINDS})
    return Change(loop=recorded, plan=(outcome,), cancel=cancel, reason="the outcome was recorded")


def close(loop: Loop, *, reason: str, now: datetime) -> Change:
    """Close the loop; every pending touch is cancelled with it.

    :raises IllegalTransition: when the loop is already closed.
    """
    closed = replace(loop, state=move(loop, Event.CLOSED), closed_at=now, close_reason=reason, closes_at=None)
    return Change(loop=closed, cancel=frozenset(TouchKind), reason=f"loop closed: {reason}")


def all_good(loop: Loop, *, answers: str | None, timing: Timing, now: datetime) -> Change:
    """The customer says nothing is left to do: thank them with the closing touch, which closes the loop."""
    closing = PlannedTouch(
        kind=TouchKind.CLOSING,
        due_at=timing.humane(now),
        audience=Audience.CUSTOMER,
        answers=answers,
        note="the customer says all is well",
    )
    others = frozenset(TouchKind) - {TouchKind.CLOSING}
    return Change(loop=replace(loop, closes_at=None), plan=(closing,), cancel=others, reason="the customer is happy")


def hand_to_owner(loop: Loop, *, answers: str | None, note: str, now: datetime) -> Change:
    """A reply the rules do not settle: forward it to the owner; the cadence carries on as it was."""
    forward = PlannedTouch(
        kind=TouchKind.STAFF_NOTIFICATION, due_at=now, audience=Audience.OWNER, answers=answers, note=note
    )
    return Change(loop=replace(loop, closes_at=None), plan=(forward,))


def check_in_declined(loop: Loop, *, timing: Timing, now: datetime) -> Change:
    """The customer does not want a check-in: cancel it; the loop closes quietly when nothing is left."""
    closes = now + timing.cadence.check_in_close_after if loop.state is LoopState.OUTCOME_SENT else loop.closes_at
    return Change(
        loop=replace(loop, closes_at=closes),
        cancel=frozenset({TouchKind.CHECK_IN}),
        reason="the customer declined a check-in",
    )


def pause(loop: Loop, *, until: datetime | None, timing: Timing, now: datetime) -> Change:
    """An out-of-office reply: hold the customer's touches until they are back (or a few days), then resume at
    the next opening of business hours in their zone (a return date means the day, not its midnight)."""
    until = until if until is not None and until > now else now + timing.cadence.out_of_office_pause
    until = timing.humane(until)
    closes = None if loop.closes_at is None else max(loop.closes_at, until + timing.cadence.check_in_close_after)
    return Change(loop=replace(loop, paused_until=until, closes_at=closes), defer_until=until)


def quiet_close_reason(loop: Loop) -> str:
    if loop.state is LoopState.CHECKED_IN:
        return "no reply to the check-in; closed quietly"
    return "nothing left to do after the outcome; closed quietly"


def due_for_quiet_close(loop: Loop, now: datetime) -> bool:
    return loop.is_open and loop.closes_at is not None and loop.closes_at <= now
