"""Weekly figures for ``closeloop stats`` and the live figures for /metrics, on SQLite and PostgreSQL alike.

Rows are written straight into the tables with SQLAlchemy Core, so each figure's definition is tested on its own.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, insert

from daemon.store.repository import Store
from daemon.store.stats import WeekFigures, current_figures, format_duration, format_table, to_json, weekly_stats
from daemon.store.tables import customers, loops, messages, touches

pytestmark = pytest.mark.integration

# Wednesday of ISO week 2026-W48; W46 starts on Monday 9 November, W47 on the 16th, W48 on the 23rd.
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
_ids = itertools.count(1)


def at(day: int, hour: int = 10, minute: int = 0) -> datetime:
    """A moment in November 2026, UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC)


@pytest.fixture
def db(database_url: str) -> Iterator[Connection]:
    store = Store(database_url)
    store.migrate()
    with store.engine.begin() as connection:
        yield connection
    store.close()


def customer(db: Connection, *, opted_out_at: datetime | None = None) -> int:
    n = next(_ids)
    values = {"email": f"c{n}@example.com", "opted_out_at": opted_out_at, "created_at": at(1)}
    return int(db.execute(insert(customers).values(**values)).inserted_primary_key[0])


def loop(db: Connection, opened_at: datetime, **columns: Any) -> int:
    values = {
        "inbox": "support",
        "customer_id": customer(db),
        "state": "acknowledged",
        "owner": "sam@example.org",
        "subject": "help",
        "opened_at": opened_at,
        **columns,
    }
    return int(db.execute(insert(loops).values(**values)).inserted_primary_key[0])


def touch(db: Connection, loop_id: int, kind: str, sent_at: datetime | None, **columns: Any) -> None:
    values = {
        "loop_id": loop_id,
        "kind": kind,
        "state": "sent" if sent_at else "planned",
        "due_at": sent_at or NOW,
        "sent_at": sent_at,
        "recipient": "c@example.com",
        "message_id": f"t{next(_ids)}@example.org",
        "created_at": at(1),
        **columns,
    }
    db.execute(insert(touches).values(**values))


def inbound(db: Connection, loop_id: int, received_at: datetime, classification: str = "customer") -> None:
    values = {
        "direction": "in",
        "inbox": "support",
        "classification": classification,
        "received_at": received_at,
        "loop_id": loop_id,
    }
    db.execute(insert(messages).values(**values))


def by_week(figures: list[WeekFigures]) -> dict[str, WeekFigures]:
    return {f.week: f for f in figures}


def test_weeks_are_iso_weeks_in_utc_oldest_first_with_this_week_incomplete(db: Connection) -> None:
    weeks = weekly_stats(db, weeks=3, now=NOW)

    assert [w.week for w in weeks] == ["2026-W46", "2026-W47", "2026-W48"]
    assert [w.starts.isoformat() for w in weeks] == ["2026-11-09", "2026-11-16", "2026-11-23"]
    assert [w.complete for w in weeks] == [True, True, False]
    assert weeks[0] == WeekFigures(week="2026-W46", starts=weeks[0].starts, complete=True)


def test_loops_opened_and_closed_count_in_the_week_they_happened(db: Connection) -> None:
    loop(db, at(9, 0, 0))  # the first moment of W46
    loop(db, at(15, 23, 59), closed_at=at(16, 0, 0), state="closed")  # Sunday of W46, closed on Monday of W47
    loop(db, at(8, 23, 59), closed_at=at(23))  # opened before the range, closed in W48
    loop(db, at(25, 12, 30))  # after now, still this week

    weeks = by_week(weekly_stats(db, weeks=3, now=NOW))

    assert [weeks[w].opened for w in ("2026-W46", "2026-W47", "2026-W48")] == [2, 0, 1]
    assert [weeks[w].closed for w in ("2026-W46", "2026-W47", "2026-W48")] == [0, 1, 1]


def test_medians_count_in_the_week_of_the_acknowledgement_and_of_the_outcome(db: Connection) -> None:
    loop(db, at(9), acknowledged_at=at(9, 10, 2))  # 2 minutes
    loop(db, at(10), acknowledged_at=at(10, 10, 4))  # 4 minutes
    loop(db, at(11), acknowledged_at=at(11, 10, 30))  # 30 minutes: the median of three is 4 minutes
    loop(db, at(2), acknowledged_at=at(2, 10, 1), outcome_sent_at=at(10))  # acknowledged before the range
    loop(db, at(13), acknowledged_at=at(16, 9), outcome_sent_at=at(17))

    weeks = by_week(weekly_stats(db, weeks=3, now=NOW))

    assert weeks["2026-W46"].median_acknowledgement == timedelta(minutes=4)
    assert weeks["2026-W46"].median_outcome == timedelta(days=8)
    assert weeks["2026-W47"].median_acknowledgement == timedelta(days=2, hours=23)
    assert weeks["2026-W47"].median_outcome == timedelta(days=4)
    assert weeks["2026-W48"].median_acknowledgement is None
    assert weeks["2026-W48"].median_outcome is None


def test_an_even_number_of_durations_takes_the_middle_of_the_two(db: Connection) -> None:
    loop(db, at(23), acknowledged_at=at(23, 10, 1))
    loop(db, at(23), acknowledged_at=at(23, 10, 3))

    (week,) = weekly_stats(db, weeks=1, now=NOW)

    assert week.median_acknowledgement == timedelta(minutes=2)


def test_promises_kept_and_missed(db: Connection) -> None:
    # W46: outcome before the promise: kept. Outcome exactly at the promise: kept.
    loop(db, at(9), promised_by=at(12, 17), outcome_sent_at=at(11))
    loop(db, at(9), promised_by=at(12, 17), outcome_sent_at=at(12, 17))
    # Outcome late, no follow-through sent: missed in the outcome's week (W47).
    loop(db, at(10), promised_by=at(13, 17), outcome_sent_at=at(16))
    # The promise slipped: the first follow-through (W47) is the miss; the outcome later (W48) counts no more.
    slipped = loop(db, at(11), promised_by=at(20, 17), follow_throughs=2, outcome_sent_at=at(23))
    touch(db, slipped, "follow-through", at(16, 17), sequence=1)
    touch(db, slipped, "follow-through", at(19, 17), sequence=2)
    # Still open, or no outcome at all: neither kept nor missed.
    loop(db, at(20), promised_by=at(27, 17))
    loop(db, at(9), promised_by=at(12, 17), closed_at=at(10), state="closed")
    # A follow-through planned but not sent is no miss yet.
    pending = loop(db, at(18), promised_by=at(24, 17))
    touch(db, pending, "follow-through", None, sequence=1)

    weeks = by_week(weekly_stats(db, weeks=3, now=NOW))

    assert [(weeks[w].promises_kept, weeks[w].promises_missed) for w in ("2026-W46", "2026-W47", "2026-W48")] == [
        (2, 0),
        (0, 2),
        (0, 0),
    ]


def test_check_in_replies_are_customer_mail_in_the_same_loop_after_the_check_in(db: Connection) -> None:
    answered = loop(db, at(1), state="checked_in")
    touch(db, answered, "check-in", at(16))
    inbound(db, answered, at(17))
    inbound(db, answered, at(18))  # a second reply is still one replied check-in

    early = loop(db, at(1), state="checked_in")
    touch(db, early, "check-in", at(16))
    inbound(db, early, at(5))  # before the check-in: not a reply to it

    machine = loop(db, at(1), state="checked_in")
    touch(db, machine, "check-in", at(17))
    inbound(db, machine, at(17, 11), classification="auto-reply")  # out of office: no reply

    elsewhere = loop(db, at(1), state="checked_in")
    touch(db, elsewhere, "check-in", at(24))
    inbound(db, loop(db, at(24)), at(24, 12))  # same day, another loop

    planned = loop(db, at(1), state="outcome_sent")
    touch(db, planned, "check-in", None)  # not sent: not counted

    weeks = by_week(weekly_stats(db, weeks=3, now=NOW))

    assert (weeks["2026-W47"].check_ins, weeks["2026-W47"].check_in_replies) == (3, 1)
    assert weeks["2026-W47"].check_in_reply_rate == pytest.approx(1 / 3)
    assert (weeks["2026-W48"].check_ins, weeks["2026-W48"].check_in_replies) == (1, 0)
    assert weeks["2026-W46"].check_in_reply_rate is None


def test_opt_outs_count_in_their_week(db: Connection) -> None:
    customer(db, opted_out_at=at(17))
    customer(db, opted_out_at=at(18))
    customer(db, opted_out_at=at(2))  # before the range
    customer(db)

    weeks = by_week(weekly_stats(db, weeks=3, now=NOW))

    assert [weeks[w].opt_outs for w in ("2026-W46", "2026-W47", "2026-W48")] == [0, 2, 0]


def test_bad_arguments_are_refused(db: Connection) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        weekly_stats(db, weeks=0, now=NOW)
    with pytest.raises(ValueError, match="aware"):
        weekly_stats(db, weeks=1, now=NOW.replace(tzinfo=None))


def test_current_figures_count_due_overdue_open_and_closed(db: Connection) -> None:
    a = loop(db, at(20))
    loop(db, at(20), state="closed", closed_at=at(21))
    loop(db, at(20), state="outcome_sent")
    touch(db, a, "thank-you", None, due_at=NOW - timedelta(hours=1))  # overdue
    touch(db, a, "outcome", None, due_at=NOW - timedelta(minutes=1))  # due, not overdue
    touch(db, a, "check-in", None, due_at=NOW + timedelta(days=90))  # not yet due
    touch(db, a, "acknowledgement", at(20))  # sent

    assert current_figures(db, now=NOW) == {
        "touches_due": 2.0,
        "touches_overdue": 1.0,
        "loops_open": 2.0,
        "loops_closed": 1.0,
    }


def test_the_table_and_the_json_shape(db: Connection) -> None:
    loop(db, at(16), acknowledged_at=at(16, 10, 5), promised_by=at(19), outcome_sent_at=at(18, 17))
    answered = loop(db, at(1), state="checked_in")
    touch(db, answered, "check-in", at(17))
    inbound(db, answered, at(18))
    weeks = weekly_stats(db, weeks=2, now=NOW)

    table = format_table(weeks)
    data = to_json(weeks)

    lines = table.splitlines()
    assert lines[0].split()[:3] == ["week", "opened", "closed"]
    assert lines[1].split() == ["2026-W47", "1", "0", "5m", "2.3d", "1", "0", "1/1", "(100%)", "0"]
    assert lines[2].split() == ["2026-W48*", "0", "0", "-", "-", "0", "0", "-", "0"]
    assert lines[-1] == "* this week so far"
    assert json.loads(json.dumps(data)) == data
    assert data[0] == {
        "week": "2026-W47",
        "starts": "2026-11-16",
        "complete": True,
        "opened": 1,
        "closed": 0,
        "median_acknowledgement_seconds": 300.0,
        "median_outcome_seconds": 2 * 86400 + 7 * 3600.0,
        "promises_kept": 1,
        "promises_missed": 0,
        "check_ins": 1,
        "check_in_replies": 1,
        "check_in_reply_rate": 1.0,
        "opt_outs": 0,
    }


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (4, "4s"), (59, "59s"), (60, "1m"), (3599, "60m"), (5400, "1.5h"), (86400 * 2.5, "2.5d")],
)
def test_durations_read_at_a_glance(seconds: float | None, shown: str) -> None:
    assert format_duration(None if seconds is None else timedelta(seconds=seconds)) == shown
