"""The demo's story: three customers, two staff members and three months, told in compressed time.

The story only does what people do: mail arrives in the Maildir, staff answer a notification from their mail
client or run ``closeloop outcome``, customers reply. Everything else is closeloop's own work, run by
``App.once()`` (intake, quiet closes, dispatch) at the moments the product says something is due: the clock
jumps to the next planned touch or quiet close (both read from the store), never further than the story's next
scene. Who owns which loop, the references and every Message-ID replied to come from what closeloop recorded
and sent.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr
from typing import Any
from zoneinfo import ZoneInfo

from daemon.app import App
from daemon.demo.mailserver import Accepted, OutboxServer
from daemon.demo.timeline import Timeline
from daemon.demo.workspace import Maildir, seed_messages

TEAM_ZONE = ZoneInfo("Europe/Berlin")
START = datetime(2026, 11, 30, 9, 0, tzinfo=TEAM_ZONE)  # a Monday morning
MAX_STEPS = 500

JANE, RAVI, ANA = "jane@example.com", "ravi@example.net", "ana@example.com"
ZONES = {JANE: TEAM_ZONE, RAVI: ZoneInfo("America/New_York"), ANA: ZoneInfo("Europe/Lisbon")}

OUTCOME_BY_EMAIL = (
    "Your corrected invoice, INV-2026-1183-C, is in your account under Billing and shows the new VAT number, "
    "DE987654321. I've also updated your company details, so every invoice from now on carries it."
)
OUTCOME_BY_COMMAND = (
    "Dark mode is on our roadmap for the spring release, and I've added your vote. Until then, the "
    "high-contrast theme under Settings > Appearance is a little easier on the eyes in the evening."
)
OUTCOME_AFTER_REMINDER = (
    "Found it: since the update, exports over 10,000 rows ran out of memory on our side. Version 4.2.1, out "
    "today, streams the rows instead; your 48,000-row Orders 2026 report now exports in about 20 seconds. "
    "Sorry it took longer than promised."
)


class StoryError(Exception):
    """closeloop did not do what the story needs next (a touch stayed due, SMTP refused, an inbox failed)."""


class DemoClock:
    """The demo's clock: it stands still until the story moves it forward."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def set(self, moment: datetime) -> None:
        if moment < self.now:
            raise ValueError(f"the demo clock does not run backwards ({moment} < {self.now})")
        self.now = moment


def day(number: int, hour: int = 23, minute: int = 59) -> datetime:
    """The story's day ``number`` (1 is the first Monday), at a time of day in the team's zone."""
    date = START.date() + timedelta(days=number - 1)
    return datetime(date.year, date.month, date.day, hour, minute, tzinfo=TEAM_ZONE)


class Story:
    def __init__(self, app: App, clock: DemoClock, server: OutboxServer, timeline: Timeline, maildir: Maildir) -> None:
        self.app, self.clock, self.server, self.timeline, self.maildir = app, clock, server, timeline, maildir
        self._replies = itertools.count(1)

    def tell(self) -> None:
        for scene in self.scenes():
            scene()

    def scenes(self) -> list[Callable[[], None]]:
        return [
            self.monday,
            self.tuesday,
            self.wednesday,
            self.end_of_week,
            self.next_monday,
            self.weeks_later,
            self.months_later,
            self.after_the_check_ins,
        ]

    # scenes ----------------------------------------------------------------------------------------------

    def monday(self) -> None:
        self.timeline.heading("Day 1 · Monday 30 November 2026: the inbox fills up overnight")
        seeds = seed_messages()
        for raw in seeds:
            self.maildir.deliver(raw, START)
        self.step(START, delivered=[_message_id(raw) for raw in seeds])
        self.until(day(1))

    def tuesday(self) -> None:
        self.timeline.heading("Day 2 · Tuesday: thank-yous, and the team answers")
        jane = self.loop_of(JANE)
        self.until(day(2, 10, 30))
        self.staff_replies(jane, "staff-notification", OUTCOME_BY_EMAIL)
        self.until(day(2))

    def wednesday(self) -> None:
        self.timeline.heading("Day 3 · Wednesday: an outcome recorded on the command line, a reply about check-ins")
        ana = self.loop_of(ANA)
        self.until(day(3, 14, 0))
        owner = self.staff_name(ana["owner"])
        self.timeline.narrate(
            self.clock(), f'{owner} runs: closeloop outcome {ana["ref"]} --text "{OUTCOME_BY_COMMAND[:32]}…"'
        )
        self.app.service.record_outcome(ana["ref"], OUTCOME_BY_COMMAND, self.clock())
        self.step(self.clock())
        self.until(day(3, 17, 20))
        self.customer_replies(ana, "outcome", "No need, thanks!")
        self.until(day(3))

    def end_of_week(self) -> None:
        self.timeline.heading("Days 4-5 · Thursday and Friday: a promised date passes")
        self.until(day(5))

    def next_monday(self) -> None:
        self.timeline.heading("Day 8 · Monday 7 December: the slipped promise is kept")
        ravi = self.loop_of(RAVI)
        self.until(day(8, 10, 0))
        self.staff_replies(ravi, "staff-reminder", OUTCOME_AFTER_REMINDER)
        self.until(day(8))

    def weeks_later(self) -> None:
        self.timeline.heading("Two weeks later")
        self.until(day(32))

    def months_later(self) -> None:
        self.timeline.heading("Three months later: check-ins")
        jane = self.loop_of(JANE)
        self.until(day(93, 8, 40))
        self.customer_replies(jane, "check-in", "All good now, thanks!")
        self.until(day(101))

    def after_the_check_ins(self) -> None:
        self.timeline.heading("Two weeks after the check-ins")
        self.until(day(122))

    # what people do --------------------------------------------------------------------------------------

    def staff_replies(self, loop: dict[str, Any], kind: str, text: str) -> None:
        """The loop's owner answers closeloop's mail of ``kind`` from their mail client: the outcome."""
        owner = loop["owner"]
        self.timeline.narrate(self.clock(), f"{self.staff_name(owner)} replies to the {kind} email")
        mail = self.reply_to(self.email(kind, loop["ref"]), (self.staff_name(owner), owner), TEAM_ZONE, text)
        self.deliver(mail)

    def customer_replies(self, loop: dict[str, Any], kind: str, text: str) -> None:
        customer = loop["customer"]
        self.timeline.narrate(self.clock(), f'{customer["name"]} answers the {kind}: "{text}"')
        answered = self.email(kind, loop["ref"])
        self.deliver(self.reply_to(answered, (customer["name"], customer["email"]), ZONES[customer["email"]], text))

    def reply_to(self, answered: Accepted, sender: tuple[str, str], zone: ZoneInfo, text: str) -> bytes:
        """A reply as a mail client writes it: new words on top, the answered email quoted below."""
        now = self.clock().astimezone(zone)
        inbox = self.app.settings.inboxes[0]
        message = EmailMessage(policy=SMTP)
        message["From"] = formataddr(sender)
        message["To"] = formataddr((inbox.display_name, inbox.address))
        subject = answered.subject
        message["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
        message["Date"] = format_datetime(now)
        message["Message-ID"] = f"<reply.{next(self._replies)}.{int(now.timestamp())}@{sender[1].partition('@')[2]}>"
        message["In-Reply-To"] = f"<{answered.message_id}>"
        message["References"] = f"<{answered.message_id}>"
        sent = answered.date.astimezone(zone)
        attribution = f"On {format_datetime(sent)}, {inbox.display_name} <{inbox.address}> wrote:"
        quoted = "\n".join(f"> {line}".rstrip() for line in answered.text.splitlines())
        message.set_content(f"{text}\n\n{attribution}\n{quoted}\n")
        return message.as_bytes()

    def deliver(self, raw: bytes) -> None:
        self.maildir.deliver(raw, self.clock())
        self.step(self.clock(), delivered=[_message_id(raw)])

    # closeloop's work ------------------------------------------------------------------------------------

    def step(self, moment: datetime, delivered: list[str] | None = None) -> None:
        """One ``App.once()`` at ``moment``: read the Maildir, close what is due, send what is due.

        :raises StoryError: an inbox pass failed or the SMTP server could not be reached.
        """
        self.clock.set(moment)
        report = self.app.once()
        problems = [*report.failures, *(d.smtp_down for d in report.dispatched if d.smtp_down)]
        if problems:
            raise StoryError(f"closeloop could not finish a pass: {'; '.join(problems)}")
        self.timeline.record(moment, delivered or [])

    def until(self, end: datetime) -> None:
        """Let time pass up to ``end``, stepping at every moment closeloop has something due.

        :raises StoryError: when something due does not happen (it would otherwise loop forever).
        """
        last = None
        for _ in range(MAX_STEPS):
            upcoming = self.next_due()
            if upcoming is None or upcoming > end:
                self.clock.set(end)
                return
            if last is not None and upcoming <= last:
                raise StoryError(f"something due at {upcoming:%Y-%m-%d %H:%M} UTC did not happen; see the log")
            last = max(upcoming, self.clock())
            self.step(last)
        raise StoryError(f"more than {MAX_STEPS} steps before {end:%Y-%m-%d %H:%M}")

    def next_due(self) -> datetime | None:
        """The next planned touch or quiet close, as the store has it."""
        with self.app.store.reading() as tx:
            moments = [tx.next_due_at()]
            moments += [loop.closes_at for loop in tx.loops() if loop.is_open]
        return min((m for m in moments if m is not None), default=None)

    # looking things up -----------------------------------------------------------------------------------

    def loop_of(self, email: str) -> dict[str, Any]:
        """The newest loop of the customer at ``email``, as ``closeloop loops --json`` shows it."""
        found = [loop for loop in self.app.service.loops() if loop["customer"]["email"] == email]
        if not found:
            raise StoryError(f"closeloop opened no loop for {email}")
        return found[-1]

    def email(self, kind: str, ref: str) -> Accepted:
        """The latest email of ``kind`` closeloop sent for loop ``ref``."""
        for accepted in reversed(self.server.accepted):
            if accepted.kind == kind and accepted.ref == ref:
                return accepted
        raise StoryError(f"closeloop sent no {kind} for {ref}")

    def staff_name(self, email: str) -> str:
        return next((member.name for member in self.app.settings.staff if member.email == email), email)


def _message_id(raw: bytes) -> str:
    return str(message_from_bytes(raw, policy=policy.default).get("Message-ID", "")).strip().strip("<>")
