"""A loop's life, pure: every row of the cadence, with explicit times (months run in milliseconds)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from daemon.domain import loop as loops
from daemon.domain.calendar import BusinessCalendar
from daemon.domain.loop import Audience, Cadence, Change, IllegalTransition, Timing
from daemon.domain.model import Loop, LoopState, Touch, TouchKind, TouchState

BERLIN = ZoneInfo("Europe/Berlin")
TUESDAY_10 = datetime(2026, 11, 24, 10, 0, tzinfo=BERLIN)
TIMING = Timing(calendar=BusinessCalendar(zone=BERLIN), zone=BERLIN, cadence=Cadence())


def new_loop() -> Loop:
    return Loop(
        id=7, ref="CL-TEST", inbox="support", customer_id=1, state=LoopState.RECEIVED, owner="sam@example.org",
        subject="Invoice shows the wrong VAT number", opened_at=TUESDAY_10,
    )  # fmt: skip


def touch(kind: TouchKind, sequence: int = 0, note: str = "") -> Touch:
    return Touch(
        id=1, loop_id=7, kind=kind, state=TouchState.PLANNED, due_at=TUESDAY_10, recipient="jane@example.com",
        message_id="m@x", sequence=sequence, note=note,
    )  # fmt: skip


def planned(change: Change, kind: TouchKind) -> list[loops.PlannedTouch]:
    return [p for p in change.plan if p.kind is kind]


def local(moment: datetime) -> datetime:
    return moment.astimezone(BERLIN)


def opened() -> Change:
    return loops.open_loop(new_loop(), answers="first@example.com", timing=TIMING, now=TUESDAY_10)


def test_opening_promises_an_outcome_in_three_business_days() -> None:
    change = opened()
    assert change.loop.state is LoopState.RECEIVED
    assert local(change.loop.promised_by or TUESDAY_10) == datetime(2026, 11, 27, 17, 0, tzinfo=BERLIN)


def test_acknowledgement_and_staff_notification_go_at_once() -> None:
    change = opened()
    (ack,) = planned(change, TouchKind.ACKNOWLEDGEMENT)
    (notification,) = planned(change, TouchKind.STAFF_NOTIFICATION)
    assert ack.due_at == TUESDAY_10 and ack.audience is Audience.CUSTOMER and ack.answers == "first@example.com"
    assert notification.due_at == TUESDAY_10 and notification.audience is Audience.OWNER


def test_thank_you_a_day_later_in_business_hours() -> None:
    (thanks,) = planned(opened(), TouchKind.THANK_YOU)
    assert local(thanks.due_at) == datetime(2026, 11, 25, 10, 0, tzinfo=BERLIN)


def test_thank_you_after_a_late_acknowledgement_waits_for_the_morning() -> None:
    evening = datetime(2026, 11, 24, 22, 0, tzinfo=BERLIN)
    change = loops.open_loop(new_loop(), answers=None, timing=TIMING, now=evening)
    (thanks,) = planned(change, TouchKind.THANK_YOU)
    assert local(thanks.due_at) == datetime(2026, 11, 26, 9, 0, tzinfo=BERLIN)


def test_first_follow_through_and_reminder_when_the_promise_passes() -> None:
    change = opened()
    (update,) = planned(change, TouchKind.FOLLOW_THROUGH)
    (reminder,) = planned(change, TouchKind.STAFF_REMINDER)
    # promised by Friday 17:00, so the honest update goes on Monday morning
    assert local(update.due_at) == datetime(2026, 11, 30, 9, 0, tzinfo=BERLIN)
    assert update.sequence == 1 and reminder.sequence == 1
    assert reminder.due_at == update.due_at and reminder.audience is Audience.OWNER


def test_acknowledgement_sent_moves_to_acknowledged() -> None:
    change = loops.touch_sent(opened().loop, touch(TouchKind.ACKNOWLEDGEMENT), may_check_in=True, timing=TIMING,
                              now=TUESDAY_10)  # fmt: skip
    assert change.loop.state is LoopState.ACKNOWLEDGED
    assert change.loop.acknowledged_at == TUESDAY_10


def follow_through_sent(loop: Loop, sequence: int, now: datetime) -> Change:
    return loops.touch_sent(loop, touch(TouchKind.FOLLOW_THROUGH, sequence), may_check_in=True, timing=TIMING, now=now)


def test_each_follow_through_promises_a_new_date_and_plans_the_next() -> None:
    monday = datetime(2026, 11, 30, 9, 0, tzinfo=BERLIN)
    change = follow_through_sent(replace(opened().loop, state=LoopState.ACKNOWLEDGED), 1, monday)
    assert change.loop.follow_throughs == 1
    assert local(change.loop.promised_by or monday) == datetime(2026, 12, 3, 17, 0, tzinfo=BERLIN)
    (update,) = planned(change, TouchKind.FOLLOW_THROUGH)
    assert update.sequence == 2 and local(update.due_at) == datetime(2026, 12, 4, 9, 0, tzinfo=BERLIN)


def test_at_most_three_follow_throughs_and_the_last_reminder_goes_to_the_team() -> None:
    loop = replace(opened().loop, state=LoopState.ACKNOWLEDGED)
    second = follow_through_sent(loop, 2, datetime(2026, 12, 4, 9, tzinfo=BERLIN))
    (reminder,) = planned(second, TouchKind.STAFF_REMINDER)
    assert reminder.sequence == 3 and reminder.audience is Audience.TEAM and "whole team" in reminder.note
    third = follow_through_sent(second.loop, 3, datetime(2026, 12, 10, 9, tzinfo=BERLIN))
    assert third.plan == ()
    assert third.loop.follow_throughs == 3


def test_outcome_recorded_cancels_thank_you_and_follow_through() -> None:
    change = loops.record_outcome(opened().loop, "We fixed the VAT number.", timing=TIMING, now=TUESDAY_10)
    assert change.loop.outcome == "We fixed the VAT number."
    assert {TouchKind.THANK_YOU, TouchKind.FOLLOW_THROUGH, TouchKind.STAFF_REMINDER} <= change.cancel
    (outcome,) = planned(change, TouchKind.OUTCOME)
    assert outcome.due_at == TUESDAY_10 and outcome.audience is Audience.CUSTOMER


def test_outcome_recorded_at_night_goes_out_in_the_morning() -> None:
    night = datetime(2026, 11, 24, 23, 30, tzinfo=BERLIN)
    change = loops.record_outcome(opened().loop, "Done.", timing=TIMING, now=night)
    assert local(planned(change, TouchKind.OUTCOME)[0].due_at) == datetime(2026, 11, 25, 9, 0, tzinfo=BERLIN)


def test_outcome_sent_plans_a_check_in_ninety_days_later() -> None:
    loop = replace(opened().loop, state=LoopState.ACKNOWLEDGED, outcome="Done.")
    change = loops.touch_sent(loop, touch(TouchKind.OUTCOME), may_check_in=True, timing=TIMING, now=TUESDAY_10)
    assert change.loop.state is LoopState.OUTCOME_SENT
    (check_in,) = planned(change, TouchKind.CHECK_IN)
    # 90 days after Tuesday 24 November 10:00 is Monday 22 February, in business hours
    assert local(check_in.due_at) == datetime(2027, 2, 22, 10, 0, tzinfo=BERLIN)


def test_no_check_in_when_the_customer_refused_and_the_loop_closes_quietly_later() -> None:
    loop = replace(opened().loop, state=LoopState.ACKNOWLEDGED, outcome="Done.")
    change = loops.touch_sent(loop, touch(TouchKind.OUTCOME), may_check_in=False, timing=TIMING, now=TUESDAY_10)
    assert planned(change, TouchKind.CHECK_IN) == []
    assert change.loop.closes_at == TUESDAY_10 + timedelta(days=14)


def test_check_in_sent_and_unanswered_closes_quietly_after_fourteen_days() -> None:
    loop = replace(opened().loop, state=LoopState.OUTCOME_SENT, outcome="Done.")
    change = loops.touch_sent(loop, touch(TouchKind.CHECK_IN), may_check_in=True, timing=TIMING, now=TUESDAY_10)
    assert change.loop.state is LoopState.CHECKED_IN
    assert not loops.due_for_quiet_close(change.loop, TUESDAY_10 + timedelta(days=13))
    assert loops.due_for_quiet_close(change.loop, TUESDAY_10 + timedelta(days=14))


def test_all_good_plans_the_closing_and_the_closing_closes_the_loop() -> None:
    loop = replace(opened().loop, state=LoopState.CHECKED_IN, outcome="Done.", closes_at=TUESDAY_10)
    change = loops.all_good(loop, answers="reply@example.com", timing=TIMING, now=TUESDAY_10)
    (closing,) = planned(change, TouchKind.CLOSING)
    assert closing.answers == "reply@example.com"
    assert change.loop.closes_at is None and TouchKind.CLOSING not in change.cancel
    sent = loops.touch_sent(change.loop, touch(TouchKind.CLOSING, note=closing.note), may_check_in=True,
                            timing=TIMING, now=TUESDAY_10)  # fmt: skip
    assert sent.loop.state is LoopState.CLOSED and sent.cancel == frozenset(TouchKind)


def test_closing_cancels_everything_pending() -> None:
    change = loops.close(opened().loop, reason="duplicate", now=TUESDAY_10)
    assert change.loop.state is LoopState.CLOSED and change.loop.close_reason == "duplicate"
    assert change.cancel == frozenset(TouchKind)


def test_closing_twice_is_an_illegal_transition() -> None:
    closed = loops.close(opened().loop, reason="done", now=TUESDAY_10).loop
    with pytest.raises(IllegalTransition, match="CL-TEST is closed"):
        loops.close(closed, reason="again", now=TUESDAY_10)


def test_outcome_on_a_closed_loop_is_refused() -> None:
    closed = loops.close(opened().loop, reason="done", now=TUESDAY_10).loop
    with pytest.raises(IllegalTransition):
        loops.record_outcome(closed, "late words", timing=TIMING, now=TUESDAY_10)


def test_check_in_cannot_happen_before_the_outcome() -> None:
    with pytest.raises(IllegalTransition):
        loops.touch_sent(opened().loop, touch(TouchKind.CHECK_IN), may_check_in=True, timing=TIMING, now=TUESDAY_10)


def test_thank_you_is_stale_once_the_outcome_is_recorded() -> None:
    loop = replace(opened().loop, outcome="Done.")
    assert loops.stale_reason(touch(TouchKind.THANK_YOU), loop, TUESDAY_10) == "the outcome is already recorded"


def test_thank_you_is_stale_once_the_promise_passed() -> None:
    """After three days of downtime the follow-through speaks, not a belated thank-you."""
    loop = opened().loop
    later = (loop.promised_by or TUESDAY_10) + timedelta(hours=1)
    assert loops.stale_reason(touch(TouchKind.THANK_YOU), loop, later) is not None
    assert loops.stale_reason(touch(TouchKind.FOLLOW_THROUGH, 1), loop, later) is None


def test_follow_through_is_stale_once_the_outcome_is_recorded() -> None:
    loop = replace(opened().loop, outcome="Done.")
    assert loops.stale_reason(touch(TouchKind.FOLLOW_THROUGH, 1), loop, TUESDAY_10) is not None
    assert loops.stale_reason(touch(TouchKind.STAFF_REMINDER, 1), loop, TUESDAY_10) is not None


def test_nothing_goes_out_for_a_closed_loop() -> None:
    closed = loops.close(opened().loop, reason="done", now=TUESDAY_10).loop
    for kind in TouchKind:
        assert loops.stale_reason(touch(kind), closed, TUESDAY_10) == "the loop is closed"


def test_out_of_office_pauses_until_the_stated_return() -> None:
    """Back on Tuesday 8 December: the touches resume when business opens that day, not at its midnight."""
    back = datetime(2026, 12, 8, tzinfo=BERLIN)
    change = loops.pause(opened().loop, until=back, timing=TIMING, now=TUESDAY_10)
    resume = datetime(2026, 12, 8, 9, 0, tzinfo=BERLIN)
    assert change.defer_until == resume and change.loop.paused_until == resume


def test_out_of_office_without_a_date_pauses_a_few_days() -> None:
    """Five days after Tuesday 10:00 is a Sunday: the touches resume on Monday morning."""
    change = loops.pause(opened().loop, until=None, timing=TIMING, now=TUESDAY_10)
    assert change.defer_until == datetime(2026, 11, 30, 9, 0, tzinfo=BERLIN)


def test_out_of_office_after_a_check_in_postpones_the_quiet_close() -> None:
    loop = replace(opened().loop, state=LoopState.CHECKED_IN, closes_at=TUESDAY_10 + timedelta(days=14))
    back = TUESDAY_10 + timedelta(days=20)
    change = loops.pause(loop, until=back, timing=TIMING, now=TUESDAY_10)
    assert change.loop.closes_at == back + timedelta(days=14)


def test_a_reply_handed_to_the_owner_does_not_restart_the_cadence() -> None:
    change = loops.hand_to_owner(opened().loop, answers="r@x", note="over to you", now=TUESDAY_10)
    assert [p.kind for p in change.plan] == [TouchKind.STAFF_NOTIFICATION]
    assert change.plan[0].audience is Audience.OWNER and change.cancel == frozenset()


def test_declining_a_check_in_cancels_it() -> None:
    loop = replace(opened().loop, state=LoopState.OUTCOME_SENT)
    change = loops.check_in_declined(loop, timing=TIMING, now=TUESDAY_10)
    assert change.cancel == {TouchKind.CHECK_IN}
    assert change.loop.closes_at == TUESDAY_10 + timedelta(days=14)


def test_six_months_of_a_loop_in_order() -> None:
    """Open, acknowledge, outcome, check-in, all good, closed: the whole story with explicit times."""
    now = TUESDAY_10
    loop = opened().loop
    loop = loops.touch_sent(loop, touch(TouchKind.ACKNOWLEDGEMENT), may_check_in=True, timing=TIMING, now=now).loop
    now += timedelta(days=2)
    change = loops.record_outcome(loop, "We corrected the VAT number and reissued the invoice.", timing=TIMING, now=now)
    outcome_due = planned(change, TouchKind.OUTCOME)[0].due_at
    change = loops.touch_sent(change.loop, touch(TouchKind.OUTCOME), may_check_in=True, timing=TIMING, now=outcome_due)
    check_in_due = planned(change, TouchKind.CHECK_IN)[0].due_at
    loop = loops.touch_sent(change.loop, touch(TouchKind.CHECK_IN), may_check_in=True, timing=TIMING,
                            now=check_in_due).loop  # fmt: skip
    assert loop.state is LoopState.CHECKED_IN
    change = loops.all_good(loop, answers="r@x", timing=TIMING, now=check_in_due + timedelta(days=1))
    closing = planned(change, TouchKind.CLOSING)[0]
    final = loops.touch_sent(change.loop, touch(TouchKind.CLOSING), may_check_in=True, timing=TIMING,
                             now=closing.due_at).loop  # fmt: skip
    assert final.state is LoopState.CLOSED
    assert final.closed_at is not None and final.closed_at - TUESDAY_10 > timedelta(days=90)


def test_transition_table_has_no_way_out_of_closed() -> None:
    assert all(state is not LoopState.CLOSED for state, _ in loops.TRANSITIONS)


def test_times_are_kept_aware() -> None:
    change = opened()
    assert all(p.due_at.tzinfo is not None for p in change.plan)
    assert change.loop.promised_by is not None and change.loop.promised_by.tzinfo is UTC
