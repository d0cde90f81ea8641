"""Figures for ``closeloop stats`` (per ISO week) and for ``/metrics`` (right now), read from the tables.

Every query is a plain range or count over indexed time columns, so it runs the same on SQLite and PostgreSQL;
each reads only the rows of the requested weeks, and medians are taken in Python (SQLite has no percentiles).
Weeks are ISO weeks in UTC, Monday 00:00 to Monday 00:00.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, and_, exists, func, select

from daemon.domain.model import Classification, LoopState, TouchKind, TouchState
from daemon.store.tables import customers, loops, messages, touches

WEEK = timedelta(days=7)
OVERDUE_AFTER = timedelta(minutes=15)


@dataclass(frozen=True, kw_only=True)
class WeekFigures:
    """One ISO week of loops.

    Each figure counts in the week its event happened: ``opened`` by ``opened_at``, ``closed`` by ``closed_at``,
    the acknowledgement median over loops acknowledged that week (``acknowledged_at - opened_at``), the outcome
    median over outcomes sent that week (``outcome_sent_at - opened_at``), ``opt_outs`` by
    ``customers.opted_out_at``.

    Promises: the acknowledgement promises an outcome by ``loops.promised_by``. Each follow-through moves that
    date, so the first promise is only still on record while ``loops.follow_throughs`` is 0. A promise is
    *kept* when the outcome was sent at or before ``promised_by`` with no follow-through sent; counted in the
    week the outcome went out. It is *missed* when the first follow-through was sent (the touch of kind
    ``follow-through`` with sequence 1, which is what makes ``follow_throughs > 0``), counted in that touch's
    week; or, with no follow-through sent, when the outcome went out after ``promised_by``, counted in the
    outcome's week. A promise still open, or a loop closed without an outcome, counts as neither.

    Check-ins: ``check_ins`` were sent that week; ``check_in_replies`` of them got a reply, that is an inbound
    message classified ``customer`` in the same loop received after the check-in's ``sent_at`` (at any time
    up to now, so recent weeks' rates still grow).
    """

    week: str
    starts: date
    complete: bool
    opened: int = 0
    closed: int = 0
    median_acknowledgement: timedelta | None = None
    median_outcome: timedelta | None = None
    promises_kept: int = 0
    promises_missed: int = 0
    check_ins: int = 0
    check_in_replies: int = 0
    opt_outs: int = 0

    @property
    def check_in_reply_rate(self) -> float | None:
        return self.check_in_replies / self.check_ins if self.check_ins else None


def weekly_stats(connection: Connection, *, weeks: int, now: datetime) -> list[WeekFigures]:
    """The last ``weeks`` ISO weeks up to the one holding ``now`` (which is incomplete), oldest first.

    :raises ValueError: when ``weeks`` is not positive or ``now`` is naive.
    """
    if weeks < 1:
        raise ValueError(f"weeks must be at least 1 (got {weeks})")
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    first = _week_start(now) - (weeks - 1) * WEEK
    buckets = _Buckets(first, weeks)
    _count(connection, buckets, "opened", loops.c.opened_at)
    _count(connection, buckets, "closed", loops.c.closed_at)
    _count(connection, buckets, "opt_outs", customers.c.opted_out_at)
    _acknowledgements(connection, buckets)
    _outcomes(connection, buckets)
    _follow_throughs(connection, buckets)
    _check_ins(connection, buckets)
    return buckets.figures(now)


def current_figures(
    connection: Connection, *, now: datetime, overdue_after: timedelta = OVERDUE_AFTER
) -> dict[str, float]:
    """The gauges ``/metrics`` reads at each scrape (keys as :data:`daemon.observe.FIGURES`).

    ``touches_due`` are planned touches due at ``now``; ``touches_overdue`` those due ``overdue_after`` ago or
    longer, which the dispatch tick should long have sent (SMTP down, a stuck daemon).
    """
    planned = touches.c.state == TouchState.PLANNED
    closed = loops.c.state == LoopState.CLOSED

    def count(table: Any, *where: ColumnElement[bool]) -> float:
        return float(connection.execute(select(func.count()).select_from(table).where(*where)).scalar_one())

    return {
        "touches_due": count(touches, planned, touches.c.due_at <= now),
        "touches_overdue": count(touches, planned, touches.c.due_at <= now - overdue_after),
        "loops_open": count(loops, ~closed),
        "loops_closed": count(loops, closed),
    }


# the queries -----------------------------------------------------------------------------------------------


class _Buckets:
    """Per-week tallies: counts, and durations whose medians become the figures."""

    def __init__(self, first: datetime, weeks: int) -> None:
        self.first, self.weeks = first, weeks
        self.end = first + weeks * WEEK
        self.counts: list[dict[str, int]] = [{} for _ in range(weeks)]
        self.durations: list[dict[str, list[float]]] = [{} for _ in range(weeks)]

    def within(self, column: Any) -> ColumnElement[bool]:
        return and_(column >= self.first, column < self.end)

    def index(self, moment: datetime) -> int:
        return (moment - self.first) // WEEK

    def add(self, moment: datetime, figure: str) -> None:
        counts = self.counts[self.index(moment)]
        counts[figure] = counts.get(figure, 0) + 1

    def add_duration(self, moment: datetime, figure: str, duration: timedelta) -> None:
        self.durations[self.index(moment)].setdefault(figure, []).append(duration.total_seconds())

    def figures(self, now: datetime) -> list[WeekFigures]:
        return [self._week(n, now) for n in range(self.weeks)]

    def _week(self, n: int, now: datetime) -> WeekFigures:
        starts = self.first + n * WEEK
        year, week, _ = starts.isocalendar()
        return WeekFigures(
            week=f"{year}-W{week:02d}",
            starts=starts.date(),
            complete=starts + WEEK <= now,
            median_acknowledgement=_median(self.durations[n].get("acknowledgement", [])),
            median_outcome=_median(self.durations[n].get("outcome", [])),
            **self.counts[n],
        )


def _count(connection: Connection, buckets: _Buckets, figure: str, column: Any) -> None:
    for (moment,) in connection.execute(select(column).where(buckets.within(column))):
        buckets.add(moment, figure)


def _acknowledgements(connection: Connection, buckets: _Buckets) -> None:
    query = select(loops.c.opened_at, loops.c.acknowledged_at).where(buckets.within(loops.c.acknowledged_at))
    for opened_at, acknowledged_at in connection.execute(query):
        buckets.add_duration(acknowledged_at, "acknowledgement", acknowledged_at - opened_at)


def _outcomes(connection: Connection, buckets: _Buckets) -> None:
    query = select(loops.c.opened_at, loops.c.outcome_sent_at, loops.c.promised_by, loops.c.follow_throughs).where(
        buckets.within(loops.c.outcome_sent_at)
    )
    for opened_at, sent_at, promised_by, follow_throughs in connection.execute(query):
        buckets.add_duration(sent_at, "outcome", sent_at - opened_at)
        if promised_by is not None and follow_throughs == 0:
            buckets.add(sent_at, "promises_kept" if sent_at <= promised_by else "promises_missed")


def _follow_throughs(connection: Connection, buckets: _Buckets) -> None:
    query = select(touches.c.sent_at).where(
        touches.c.kind == TouchKind.FOLLOW_THROUGH,
        touches.c.state == TouchState.SENT,
        touches.c.sequence == 1,
        buckets.within(touches.c.sent_at),
    )
    for (sent_at,) in connection.execute(query):
        buckets.add(sent_at, "promises_missed")


def _check_ins(connection: Connection, buckets: _Buckets) -> None:
    replied = exists().where(
        messages.c.loop_id == touches.c.loop_id,
        messages.c.direction == "in",
        messages.c.classification == Classification.CUSTOMER,
        messages.c.received_at > touches.c.sent_at,
    )
    query = select(touches.c.sent_at, replied).where(
        touches.c.kind == TouchKind.CHECK_IN,
        touches.c.state == TouchState.SENT,
        buckets.within(touches.c.sent_at),
    )
    for sent_at, answered in connection.execute(query):
        buckets.add(sent_at, "check_ins")
        if answered:
            buckets.add(sent_at, "check_in_replies")


def _week_start(moment: datetime) -> datetime:
    day = moment.astimezone(UTC).date()
    return datetime.combine(day - timedelta(days=day.weekday()), time(), tzinfo=UTC)


def _median(seconds: list[float]) -> timedelta | None:
    return timedelta(seconds=statistics.median(seconds)) if seconds else None


# output ----------------------------------------------------------------------------------------------------


def to_json(weeks: Iterable[WeekFigures]) -> list[dict[str, Any]]:
    """The ``closeloop stats --json`` shape: durations in seconds, the reply rate as a fraction (or null)."""
    return [
        {
            "week": w.week,
            "starts": w.starts.isoformat(),
            "complete": w.complete,
            "opened": w.opened,
            "closed": w.closed,
            "median_acknowledgement_seconds": _seconds(w.median_acknowledgement),
            "median_outcome_seconds": _seconds(w.median_outcome),
            "promises_kept": w.promises_kept,
            "promises_missed": w.promises_missed,
            "check_ins": w.check_ins,
            "check_in_replies": w.check_in_replies,
            "check_in_reply_rate": w.check_in_reply_rate,
            "opt_outs": w.opt_outs,
        }
        for w in weeks
    ]


COLUMNS = (
    "week",
    "opened",
    "closed",
    "ack median",
    "outcome median",
    "promises kept",
    "missed",
    "check-in replies",
    "opt-outs",
)


def format_table(weeks: list[WeekFigures]) -> str:
    """A fixed-width table for the terminal, oldest week first; the week in progress is marked ``*``."""
    rows = [COLUMNS, *(_row(w) for w in weeks)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(COLUMNS))]
    lines = [_line(row, widths) for row in rows]
    if any(not w.complete for w in weeks):
        lines.append("* this week so far")
    return "\n".join(lines) + "\n"


def _line(row: tuple[str, ...], widths: list[int]) -> str:
    """The week left-aligned, the numbers right-aligned."""
    cells = [row[0].ljust(widths[0])] + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
    return "  ".join(cells).rstrip()


def _row(w: WeekFigures) -> tuple[str, ...]:
    replies = "-" if not w.check_ins else f"{w.check_in_replies}/{w.check_ins} ({w.check_in_reply_rate:.0%})"
    return (
        w.week + ("" if w.complete else "*"),
        str(w.opened),
        str(w.closed),
        format_duration(w.median_acknowledgement),
        format_duration(w.median_outcome),
        str(w.promises_kept),
        str(w.promises_missed),
        replies,
        str(w.opt_outs),
    )


def format_duration(duration: timedelta | None) -> str:
    """``45s``, ``12m``, ``3.5h``, ``2.1d``; ``-`` when there is nothing to measure."""
    if duration is None:
        return "-"
    seconds = duration.total_seconds()
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def _seconds(duration: timedelta | None) -> float | None:
    return None if duration is None else duration.total_seconds()
