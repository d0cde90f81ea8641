"""The outbox: turning a domain :class:`~daemon.domain.loop.Change` into rows, in the caller's transaction.

A planned touch gets its recipient (the customer, the owner, or each member of the team) and its Message-ID
here, once; a resend after a crash reuses that Message-ID.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from daemon.config import Inbox, Settings
from daemon.domain.calendar import BusinessCalendar, customer_zone
from daemon.domain.loop import Audience, Cadence, Change, PlannedTouch, Timing
from daemon.domain.model import Customer, Loop, TouchKind
from daemon.store.repository import NewTouch, Transaction


@dataclass(frozen=True, kw_only=True)
class Outbox:
    settings: Settings

    def timing(self, customer: Customer | None, now: datetime) -> Timing:
        """The cadence and calendar as they apply to ``customer`` (their zone, or the team's)."""
        team = self.settings.team
        opens, closes = team.hours
        calendar = BusinessCalendar(
            zone=team.zone, opens=opens, closes=closes, weekdays=team.weekdays, holidays=frozenset(team.holidays)
        )
        offset = customer.tz_offset_minutes if customer else None
        return Timing(calendar=calendar, zone=customer_zone(offset, team.zone, now), cadence=self.cadence)

    @property
    def cadence(self) -> Cadence:
        c = self.settings.cadence
        return Cadence(
            promise_business_days=c.promise_business_days,
            thank_you_after=timedelta(hours=c.thank_you_after_hours),
            follow_through_every_business_days=c.follow_through_every_business_days,
            follow_through_max=c.follow_through_max,
            check_in_after=timedelta(days=c.check_in_after_days),
            check_in_close_after=timedelta(days=c.check_in_close_after_days),
            out_of_office_pause=timedelta(days=c.out_of_office_pause_days),
        )

    def apply(self, tx: Transaction, change: Change, customer: Customer, now: datetime) -> Loop:
        """Write ``change``: the loop, cancellations, deferrals, then the planned touches."""
        loop = change.loop
        assert loop.id is not None
        tx.save_loop(loop)
        if change.cancel:
            tx.cancel_touches(loop.id, change.cancel, change.reason)
        if change.defer_until is not None:
            tx.defer_touches(loop.id, change.defer_until)
        tx.add_touches(self.rows(loop, change.plan, customer), now)
        return loop

    def rows(self, loop: Loop, plan: tuple[PlannedTouch, ...], customer: Customer) -> list[NewTouch]:
        inbox = self.settings.inbox(loop.inbox)
        rows = []
        for planned in plan:
            for recipient in self._recipients(planned.audience, loop, customer):
                rows.append(
                    NewTouch(
                        loop_id=loop.id or 0,
                        kind=planned.kind,
                        due_at=planned.due_at,
                        recipient=recipient,
                        message_id=message_id_for(loop, planned.kind, inbox),
                        sequence=planned.sequence,
                        note=planned.note,
                        answers=planned.answers,
                    )
                )
        return rows

    def _recipients(self, audience: Audience, loop: Loop, customer: Customer) -> list[str]:
        if audience is Audience.CUSTOMER:
            return [] if customer.opted_out_at else [customer.email]
        if audience is Audience.OWNER:
            return [loop.owner]
        return [member.email for member in self.settings.staff]


def message_id_for(loop: Loop, kind: TouchKind, inbox: Inbox) -> str:
    """A Message-ID that names its loop and kind, unguessable, in our own domain (without angle brackets)."""
    return f"closeloop.{loop.ref.lower()}.{kind}.{secrets.token_hex(6)}@{inbox.id_domain}"
