"""Business days, business hours and the customer's local time.

All moments in and out are aware datetimes; results are in UTC. Wall-clock arithmetic happens in the zone it is
about (the customer's, or the team's), so DST transitions neither shift nor duplicate a touch: "09:00 local" stays
09:00 local on both sides of a transition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from functools import cache
from zoneinfo import ZoneInfo

# Populous zones tried, in order, when a customer's Date header shows only a UTC offset. The first whose offset
# at that moment matches is taken, so its DST rules apply to later touches. Unmatched offsets stay fixed.
LIKELY_ZONES = (
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Phoenix",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "America/Halifax",
    "America/Sao_Paulo",
    "America/Mexico_City",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Helsinki",
    "Europe/Moscow",
    "Africa/Lagos",
    "Africa/Johannesburg",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Kolkata",
    "Asia/Bangkok",
    "Asia/Shanghai",
    "Asia/Tokyo",
    "Australia/Brisbane",
    "Australia/Sydney",
    "Pacific/Auckland",
)

MAX_SEARCH_DAYS = 400


@dataclass(frozen=True, kw_only=True)
class BusinessCalendar:
    """When the team works: weekdays (0 = Monday), opening hours, and holidays, applied in a given zone."""

    zone: tzinfo
    opens: time = time(9)
    closes: time = time(17)
    weekdays: frozenset[int] = frozenset(range(5))
    holidays: frozenset[date] = frozenset()

    def is_business_day(self, day: date) -> bool:
        return day.weekday() in self.weekdays and day not in self.holidays

    def open_at(self, moment: datetime, zone: tzinfo | None = None) -> datetime:
        """The earliest moment at or after ``moment`` within business hours in ``zone`` (default: the team's)."""
        zone = zone or self.zone
        local = moment.astimezone(zone)
        day = local.date()
        for _ in range(MAX_SEARCH_DAYS):
            if self.is_business_day(day):
                start, end = _at(day, self.opens, zone), _at(day, self.closes, zone)
                if moment < end:
                    return max(moment, start).astimezone(UTC)
            day += timedelta(days=1)
        raise ValueError("the business calendar has no working day in the next year")

    def add_business_days(self, moment: datetime, days: int, zone: tzinfo | None = None) -> datetime:
        """Closing time on the ``days``-th business day after ``moment``'s local date: a promise's deadline."""
        zone = zone or self.zone
        day = moment.astimezone(zone).date()
        counted = 0
        for _ in range(MAX_SEARCH_DAYS * 2):
            if counted == days:
                return _at(day, self.closes, zone).astimezone(UTC)
            day += timedelta(days=1)
            counted += self.is_business_day(day)
        raise ValueError("the business calendar has no working day in the next year")


def customer_zone(offset_minutes: int | None, team_zone: tzinfo, at: datetime) -> tzinfo:
    """The customer's likely timezone, from the UTC offset their own mail client wrote at ``at``.

    The team's zone wins when it matches (same region, most likely); then the first of :data:`LIKELY_ZONES`
    with that offset at that moment; otherwise the fixed offset. No offset known: the team's zone.
    """
    if offset_minutes is None:
        return team_zone
    offset = timedelta(minutes=offset_minutes)
    for zone in (team_zone, *_likely_zones()):
        if at.astimezone(zone).utcoffset() == offset:
            return zone
    return timezone(offset)


@cache
def _likely_zones() -> tuple[ZoneInfo, ...]:
    """:data:`LIKELY_ZONES`, loaded once: ``ZoneInfo`` keeps only the last 8 zones it loaded, so looking them
    up one by one would read the zone files again for every customer."""
    return tuple(map(ZoneInfo, LIKELY_ZONES))


def _at(day: date, clock: time, zone: tzinfo) -> datetime:
    """``day`` at wall-clock ``clock`` in ``zone``. A time inside a DST gap reads with the offset before the
    gap (PEP 495, ``fold=0``), which lands the same distance after it; an ambiguous time takes its first
    occurrence."""
    return datetime.combine(day, clock, tzinfo=zone)
