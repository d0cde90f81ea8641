"""A loop's life, pure: every row of the cadence, with explicit times (months run in milliseconds)."""

from __future__ import annotations

from dataclasses import dataclass, replace
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


# What each kind of reply does, from its words to the loop's change ---------------------------------------------

from daemon.domain.replies import Intent, read_reply  # noqa: E402


def outcome_sent_loop() -> Loop:
    loop = replace(opened().loop, state=LoopState.ACKNOWLEDGED, outcome="We fixed the VAT number.")
    return loops.touch_sent(loop, touch(TouchKind.OUTCOME), may_check_in=True, timing=TIMING, now=TUESDAY_10).loop


def checked_in_loop() -> Loop:
    later = TUESDAY_10 + timedelta(days=90)
    return loops.touch_sent(outcome_sent_loop(), touch(TouchKind.CHECK_IN), may_check_in=True, timing=TIMING,
                            now=later).loop  # fmt: skip


@pytest.mark.parametrize(
    ("answering", "words", "intent"),
    [
        (TouchKind.CHECK_IN, "All good now, thanks!", Intent.ALL_GOOD),
        (TouchKind.CHECK_IN, "The invoice is wrong again: the VAT number changed back. Can you help?",
         Intent.NEW_PROBLEM),
        (TouchKind.OUTCOME, "No thanks.", Intent.DECLINE_CHECK_IN),
        (TouchKind.OUTCOME, "Yes, feel free.", Intent.ALLOW_CHECK_IN),
        (TouchKind.THANK_YOU, "Please stop emailing me.", Intent.STOP),
        (TouchKind.ACKNOWLEDGEMENT, "One more thing: the invoice number is 2026-118.", Intent.UNSURE),
    ],
)  # fmt: skip
def test_each_kind_of_reply_is_read_for_what_it_means(answering: TouchKind, words: str, intent: Intent) -> None:
    assert read_reply(words, answering=answering) is intent


def test_an_all_good_reply_to_the_check_in_plans_the_closing_which_closes_the_loop() -> None:
    loop = checked_in_loop()
    now = (loop.checked_in_at or TUESDAY_10) + timedelta(days=2)
    change = loops.all_good(loop, answers="fine@example.com", timing=TIMING, now=now)
    (closing,) = change.plan
    assert closing.kind is TouchKind.CLOSING and closing.due_at == now and closing.answers == "fine@example.com"
    assert change.cancel == frozenset(TouchKind) - {TouchKind.CLOSING}
    assert change.loop.closes_at is None  # no quiet close while the closing is on its way
    final = loops.touch_sent(change.loop, touch(TouchKind.CLOSING, note=closing.note), may_check_in=True,
                             timing=TIMING, now=now).loop  # fmt: skip
    assert final.state is LoopState.CLOSED and final.closed_at == now


def test_a_new_problem_after_the_check_in_opens_a_linked_loop_with_its_own_acknowledgement() -> None:
    old = checked_in_loop()
    now = (old.checked_in_at or TUESDAY_10) + timedelta(days=1)
    child = replace(new_loop(), id=8, ref="CL-CHLD", parent_id=old.id, opened_at=now)
    opened_child = loops.open_loop(child, answers="again@example.com", timing=TIMING, now=now)
    closed_old = loops.close(old, reason="continued in CL-CHLD", now=now)

    assert opened_child.loop.parent_id == old.id and opened_child.loop.state is LoopState.RECEIVED
    (ack,) = planned(opened_child, TouchKind.ACKNOWLEDGEMENT)
    assert ack.answers == "again@example.com" and ack.due_at == now
    assert opened_child.loop.promised_by is not None and opened_child.loop.promised_by > now
    assert closed_old.loop.state is LoopState.CLOSED and closed_old.loop.close_reason == "continued in CL-CHLD"
    assert closed_old.cancel == frozenset(TouchKind)


def test_an_out_of_office_reply_moves_the_customers_touches_to_business_hours_after_the_return() -> None:
    change = loops.pause(opened().loop, until=datetime(2026, 12, 5, tzinfo=BERLIN), timing=TIMING, now=TUESDAY_10)
    # back on Saturday 5 December: nothing goes until Monday 09:00
    assert change.defer_until == datetime(2026, 12, 7, 9, 0, tzinfo=BERLIN)
    assert change.plan == () and change.cancel == frozenset()


def test_a_return_date_already_past_pauses_the_default_few_days() -> None:
    stale = TUESDAY_10 - timedelta(days=3)
    change = loops.pause(opened().loop, until=stale, timing=TIMING, now=TUESDAY_10)
    assert change.defer_until == loops.pause(opened().loop, until=None, timing=TIMING, now=TUESDAY_10).defer_until


def test_a_reply_before_the_outcome_changes_nothing_but_tells_the_owner() -> None:
    loop = replace(opened().loop, state=LoopState.ACKNOWLEDGED)
    change = loops.hand_to_owner(loop, answers="more@example.com", note="over to you", now=TUESDAY_10)
    assert replace(change.loop, closes_at=loop.closes_at) == loop
    assert change.loop.promised_by == loop.promised_by and change.loop.follow_throughs == 0
    assert change.cancel == frozenset() and change.defer_until is None


def test_declining_the_check_in_cancels_only_the_check_in_and_lets_the_loop_close_quietly() -> None:
    loop = outcome_sent_loop()
    change = loops.check_in_declined(loop, timing=TIMING, now=TUESDAY_10 + timedelta(hours=3))
    assert change.cancel == {TouchKind.CHECK_IN} and change.plan == ()
    assert change.loop.closes_at == TUESDAY_10 + timedelta(hours=3, days=14)
    assert loops.due_for_quiet_close(change.loop, TUESDAY_10 + timedelta(hours=3, days=14))


def test_without_consent_the_outcome_plans_no_check_in_ever() -> None:
    loop = replace(opened().loop, state=LoopState.ACKNOWLEDGED, outcome="Done.")
    change = loops.touch_sent(loop, touch(TouchKind.OUTCOME), may_check_in=False, timing=TIMING, now=TUESDAY_10)
    assert all(p.kind is not TouchKind.CHECK_IN for p in change.plan)


def test_an_opt_out_closes_every_open_loop_with_all_touches_cancelled_and_nothing_goes_after() -> None:
    for loop in (opened().loop, outcome_sent_loop(), checked_in_loop()):
        change = loops.close(loop, reason="opted out (reply in CL-TEST)", now=TUESDAY_10)
        assert change.loop.state is LoopState.CLOSED and change.cancel == frozenset(TouchKind)
        assert change.loop.closes_at is None
        assert all(loops.stale_reason(touch(kind), change.loop, TUESDAY_10) for kind in TouchKind)


# Downtime: a pure stand-in for the dispatcher, run once after the daemon was away --------------------------------


@dataclass(kw_only=True)
class Queue:
    """Planned touches as the touches table holds them, and what one dispatch pass did to them."""

    loop: Loop
    planned: list[loops.PlannedTouch]
    sent: list[tuple[TouchKind, int, datetime]]
    skipped: list[tuple[TouchKind, str]]

    def apply(self, change: Change) -> None:
        self.loop = change.loop
        self.planned = [p for p in self.planned if p.kind not in change.cancel] + list(change.plan)

    def dispatch(self, now: datetime) -> None:
        """Everything due at ``now``, in due order, once; stale touches skipped with their reason."""
        while due := sorted((p for p in self.planned if p.due_at <= now), key=lambda p: p.due_at):
            planned_touch = due[0]
            self.planned.remove(planned_touch)
            sent = replace(touch(planned_touch.kind, planned_touch.sequence), due_at=planned_touch.due_at)
            reason = loops.stale_reason(sent, self.loop, now)
            if reason is not None:
                self.skipped.append((planned_touch.kind, reason))
                continue
            self.sent.append((planned_touch.kind, planned_touch.sequence, planned_touch.due_at))
            self.apply(loops.touch_sent(self.loop, sent, may_check_in=True, timing=TIMING, now=now))


def queue_after_the_acknowledgement() -> Queue:
    change = opened()
    queue = Queue(loop=change.loop, planned=list(change.plan), sent=[], skipped=[])
    queue.dispatch(TUESDAY_10)
    assert [kind for kind, _, _ in queue.sent] == [TouchKind.ACKNOWLEDGEMENT, TouchKind.STAFF_NOTIFICATION]
    queue.sent.clear()
    return queue


def test_back_after_three_days_with_an_outcome_recorded_meanwhile_sends_only_the_outcome() -> None:
    queue = queue_after_the_acknowledgement()
    thursday = datetime(2026, 11, 26, 12, 0, tzinfo=BERLIN)
    queue.apply(loops.record_outcome(queue.loop, "We fixed it.", timing=TIMING, now=thursday))

    queue.dispatch(datetime(2026, 11, 27, 11, 0, tzinfo=BERLIN))

    assert [(kind, due) for kind, _, due in queue.sent] == [(TouchKind.OUTCOME, thursday)]
    assert queue.skipped == []  # the thank-you was cancelled with the outcome, not left to go stale
    assert [p.kind for p in queue.planned] == [TouchKind.CHECK_IN]


def test_back_after_three_days_without_an_outcome_skips_the_stale_thank_you_and_sends_one_update() -> None:
    queue = queue_after_the_acknowledgement()
    monday = datetime(2026, 11, 30, 11, 0, tzinfo=BERLIN)  # down since Tuesday; the promise passed on Friday

    queue.dispatch(monday)
    queue.dispatch(monday)  # a second pass at the same moment sends nothing more

    assert queue.skipped == [(TouchKind.THANK_YOU, "the promised date has passed; the follow-through speaks instead")]
    assert [(kind, seq) for kind, seq, _ in queue.sent] == [
        (TouchKind.FOLLOW_THROUGH, 1),
        (TouchKind.STAFF_REMINDER, 1),
    ]
    assert local(queue.loop.promised_by or monday) == datetime(2026, 12, 3, 17, 0, tzinfo=BERLIN)
    assert all(p.due_at > monday for p in queue.planned)


def test_back_after_weeks_away_sends_one_update_not_a_burst_of_three() -> None:
    queue = queue_after_the_acknowledgement()
    back = datetime(2026, 12, 21, 10, 0, tzinfo=BERLIN)

    queue.dispatch(back)

    assert [kind for kind, _, _ in queue.sent].count(TouchKind.FOLLOW_THROUGH) == 1
    assert queue.loop.follow_throughs == 1
    (update,) = [p for p in queue.planned if p.kind is TouchKind.FOLLOW_THROUGH]
    assert update.sequence == 2 and local(update.due_at) == datetime(2026, 12, 25, 9, 0, tzinfo=BERLIN)


# DST, as it flows through planning, in three zones ---------------------------------------------------------------

NEW_YORK = ZoneInfo("America/New_York")
SYDNEY = ZoneInfo("Australia/Sydney")


def timing_in(zone: ZoneInfo) -> Timing:
    """The team in Berlin; the customer (whose hours count) in ``zone``."""
    return Timing(calendar=BusinessCalendar(zone=BERLIN), zone=zone, cadence=Cadence())


def wall(moment: datetime | None, zone: ZoneInfo) -> tuple[int, int, int, int, int]:
    assert moment is not None
    at = moment.astimezone(zone)
    return at.year, at.month, at.day, at.hour, at.minute


# A Thursday before each zone's transition Sunday: the promise and the first update fall after it.
TRANSITION_WEEKS = [
    pytest.param(NEW_YORK, (2026, 3, 5), (2026, 3, 6), (2026, 3, 10), (2026, 3, 11), id="new-york-spring"),
    pytest.param(NEW_YORK, (2026, 10, 29), (2026, 10, 30), (2026, 11, 3), (2026, 11, 4), id="new-york-autumn"),
    pytest.param(BERLIN, (2026, 3, 26), (2026, 3, 27), (2026, 3, 31), (2026, 4, 1), id="berlin-spring"),
    pytest.param(BERLIN, (2026, 10, 22), (2026, 10, 23), (2026, 10, 27), (2026, 10, 28), id="berlin-autumn"),
    pytest.param(SYDNEY, (2026, 4, 2), (2026, 4, 3), (2026, 4, 7), (2026, 4, 8), id="sydney-autumn"),
    pytest.param(SYDNEY, (2026, 10, 1), (2026, 10, 2), (2026, 10, 6), (2026, 10, 7), id="sydney-spring"),
]


@pytest.mark.parametrize(("zone", "written", "thanks", "promised", "update"), TRANSITION_WEEKS)
def test_dst_does_not_shift_the_thank_you_promise_or_updates(
    zone: ZoneInfo,
    written: tuple[int, int, int],
    thanks: tuple[int, int, int],
    promised: tuple[int, int, int],
    update: tuple[int, int, int],
) -> None:
    timing = timing_in(zone)
    now = datetime(*written, 10, 0, tzinfo=zone)
    change = loops.open_loop(new_loop(), answers=None, timing=timing, now=now)

    (thank_you,) = planned(change, TouchKind.THANK_YOU)
    assert wall(thank_you.due_at, zone) == (*thanks, 10, 0)
    assert wall(change.loop.promised_by, zone) == (*promised, 17, 0)
    first = planned(change, TouchKind.FOLLOW_THROUGH)[0]
    assert wall(first.due_at, zone) == (*update, 9, 0)
    assert [p.due_at for p in planned(change, TouchKind.STAFF_REMINDER)] == [first.due_at]

    # The update sent at 09:00 promises three business days on, closing time, still on the local clock.
    sent = loops.touch_sent(change.loop, touch(TouchKind.FOLLOW_THROUGH, 1), may_check_in=True, timing=timing,
                            now=first.due_at)  # fmt: skip
    assert wall(sent.loop.promised_by, zone)[3:] == (17, 0)
    (second,) = planned(sent, TouchKind.FOLLOW_THROUGH)
    assert wall(second.due_at, zone)[3:] == (9, 0)
    assert len({p.due_at for p in change.plan if p.kind is TouchKind.FOLLOW_THROUGH}) == 1  # planned once


# An outcome sent at 16:30 local about ninety days before a transition: the check-in keeps its hour.
CHECK_IN_ACROSS = [
    pytest.param(NEW_YORK, (2026, 12, 16), (2027, 3, 16), id="new-york-spring"),
    pytest.param(NEW_YORK, (2026, 8, 5), (2026, 11, 3), id="new-york-autumn"),
    pytest.param(BERLIN, (2026, 1, 7), (2026, 4, 7), id="berlin-spring"),
    pytest.param(BERLIN, (2026, 7, 29), (2026, 10, 27), id="berlin-autumn"),
    pytest.param(SYDNEY, (2026, 1, 7), (2026, 4, 7), id="sydney-autumn"),
    pytest.param(SYDNEY, (2026, 7, 8), (2026, 10, 6), id="sydney-spring"),
]


@pytest.mark.parametrize(("zone", "sent_on", "check_in_on"), CHECK_IN_ACROSS)
def test_dst_does_not_shift_the_check_in_ninety_days_later(
    zone: ZoneInfo, sent_on: tuple[int, int, int], check_in_on: tuple[int, int, int]
) -> None:
    sent_at = datetime(*sent_on, 16, 30, tzinfo=zone)
    loop = replace(opened().loop, state=LoopState.ACKNOWLEDGED, outcome="Done.")
    change = loops.touch_sent(loop, touch(TouchKind.OUTCOME), may_check_in=True, timing=timing_in(zone),
                              now=sent_at.astimezone(UTC))  # fmt: skip
    (check_in,) = planned(change, TouchKind.CHECK_IN)
    assert wall(check_in.due_at, zone) == (*check_in_on, 16, 30)
