"""Business days, business hours and the customer's zone: pure, explicit times, three DST regimes."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from daemon.domain.calendar import BusinessCalendar, customer_zone

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
SYDNEY = ZoneInfo("Australia/Sydney")


def calendar(zone: ZoneInfo = BERLIN, **kwargs: object) -> BusinessCalendar:
    return BusinessCalendar(zone=zone, **kwargs)  # type: ignore[arg-type]


def local(zone: ZoneInfo, *args: int) -> datetime:
    return datetime(*args, tzinfo=zone)  # type: ignore[misc]


def test_a_moment_inside_business_hours_is_kept() -> None:
    moment = local(BERLIN, 2026, 11, 24, 10, 30)
    assert calendar().open_at(moment) == moment


def test_a_moment_before_opening_waits_for_nine() -> None:
    moment = local(BERLIN, 2026, 11, 24, 6, 0)
    assert calendar().open_at(moment) == local(BERLIN, 2026, 11, 24, 9, 0)


def test_after_closing_moves_to_the_next_morning() -> None:
    moment = local(BERLIN, 2026, 11, 24, 17, 0)
    assert calendar().open_at(moment) == local(BERLIN, 2026, 11, 25, 9, 0)


def test_friday_evening_moves_to_monday_morning() -> None:
    moment = local(BERLIN, 2026, 11, 27, 18, 0)
    assert calendar().open_at(moment) == local(BERLIN, 2026, 11, 30, 9, 0)


def test_holidays_are_skipped() -> None:
    christmas = calendar(holidays=frozenset({date(2026, 12, 24), date(2026, 12, 25)}))
    assert christmas.open_at(local(BERLIN, 2026, 12, 23, 18, 0)) == local(BERLIN, 2026, 12, 28, 9, 0)


def test_custom_hours_and_weekdays() -> None:
    six_days = calendar(opens=time(8), closes=time(12), weekdays=frozenset(range(6)))
    assert six_days.open_at(local(BERLIN, 2026, 11, 28, 13, 0)) == local(BERLIN, 2026, 11, 30, 8, 0)
    assert six_days.open_at(local(BERLIN, 2026, 11, 28, 7, 0)) == local(BERLIN, 2026, 11, 28, 8, 0)


def test_results_are_utc() -> None:
    assert calendar().open_at(local(BERLIN, 2026, 11, 24, 6, 0)).tzinfo is UTC


def test_open_at_reads_hours_in_the_given_zone() -> None:
    moment = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)  # 07:00 in New York
    assert calendar().open_at(moment, NEW_YORK) == local(NEW_YORK, 2026, 11, 24, 9, 0)


@pytest.mark.parametrize(
    ("start", "days", "deadline"),
    [
        ((2026, 11, 24, 10), 3, (2026, 11, 27, 17)),  # Tuesday → Friday
        ((2026, 11, 26, 10), 3, (2026, 12, 1, 17)),  # Thursday → Tuesday, over the weekend
        ((2026, 11, 28, 10), 1, (2026, 11, 30, 17)),  # Saturday → Monday
        ((2026, 11, 24, 23), 1, (2026, 11, 25, 17)),  # late evening counts from its own date
    ],
)
def test_business_days_after(start: tuple[int, ...], days: int, deadline: tuple[int, ...]) -> None:
    assert calendar().add_business_days(local(BERLIN, *start), days) == local(BERLIN, *deadline)


@pytest.mark.parametrize(
    ("zone", "before", "after"),
    [
        (BERLIN, (2026, 3, 27, 10), (2026, 3, 30)),  # spring forward on Sunday 29 March
        (BERLIN, (2026, 10, 23, 10), (2026, 10, 26)),  # fall back on Sunday 25 October
        (NEW_YORK, (2026, 3, 6, 10), (2026, 3, 9)),  # 8 March
        (NEW_YORK, (2026, 10, 30, 10), (2026, 11, 2)),  # 1 November
        (SYDNEY, (2026, 4, 3, 10), (2026, 4, 6)),  # 5 April
        (SYDNEY, (2026, 10, 2, 10), (2026, 10, 5)),  # 4 October
    ],
)
def test_dst_transitions_keep_wall_clock_opening_times(
    zone: ZoneInfo, before: tuple[int, ...], after: tuple[int, ...]
) -> None:
    friday_evening = local(zone, *before[:3], 18, 0)
    monday = calendar(zone).open_at(friday_evening)
    assert monday.astimezone(zone).replace(tzinfo=None) == datetime(*after, 9, 0)
    deadline = calendar(zone).add_business_days(local(zone, *before), 1)
    assert deadline.astimezone(zone).replace(tzinfo=None) == datetime(*after, 17, 0)


def test_dst_day_has_exactly_one_opening() -> None:
    """Over the autumn transition the hour 02:00-03:00 repeats; 09:00 exists once and is found once."""
    cal = calendar(BERLIN, weekdays=frozenset(range(7)))
    saturday_night = local(BERLIN, 2026, 10, 24, 20, 0)
    sunday_open = cal.open_at(saturday_night)
    assert sunday_open == local(BERLIN, 2026, 10, 25, 9, 0)
    assert sunday_open - saturday_night == timedelta(hours=14)  # 13 wall-clock hours plus the repeated one


def test_no_offset_means_the_team_zone() -> None:
    assert customer_zone(None, BERLIN, datetime(2026, 11, 24, tzinfo=UTC)) is BERLIN


def test_matching_offset_prefers_the_team_zone() -> None:
    assert customer_zone(60, BERLIN, datetime(2026, 11, 24, tzinfo=UTC)) is BERLIN


def test_offset_picks_a_zone_with_dst_rules() -> None:
    winter = customer_zone(-300, BERLIN, datetime(2026, 11, 24, tzinfo=UTC))
    summer = customer_zone(-240, BERLIN, datetime(2026, 7, 1, tzinfo=UTC))
    assert winter == NEW_YORK
    assert summer == NEW_YORK


def test_unusual_offset_stays_fixed() -> None:
    zone = customer_zone(345, BERLIN, datetime(2026, 11, 24, tzinfo=UTC))  # Nepal, +05:45
    assert zone == timezone(timedelta(minutes=345))
