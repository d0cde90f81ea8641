"""The demo's printed timeline: what closeloop recorded and sent at each step, read back from the product.

Nothing here knows the story. After each step the timeline compares the loops (``Closeloop.loops`` and
``Closeloop.timeline``, the data behind ``closeloop loops --json`` and ``closeloop show``) with what it saw
before, reads the messages the step delivered back from the store, and lists the emails the SMTP server
accepted meanwhile.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from email.utils import parseaddr
from functools import cached_property
from typing import Any, TextIO

from daemon.app import App
from daemon.demo.mailserver import Accepted, OutboxServer
from daemon.domain.calendar import customer_zone
from daemon.domain.model import Classification

Snapshot = dict[str, dict[str, Any]]
NO_LOOP = "-"
QUOTE_CHARS = 72
PLAIN = str.maketrans({"→": "->", "←": "<-", "»": ">>", "·": "-", "…": "..."})


@dataclass(kw_only=True)
class Totals:
    """What the run did, for the summary."""

    closed: dict[str, str] = field(default_factory=dict)
    received: Counter[str] = field(default_factory=Counter)


class Timeline:
    def __init__(self, app: App, server: OutboxServer, out: TextIO, zone: tzinfo) -> None:
        self.app, self.server, self.out, self.zone = app, server, out, zone
        self.totals = Totals()
        self._seen: Snapshot = {}
        self._emails = 0
        self._plain = not _can_write(out, "".join(map(chr, PLAIN)))

    # output ----------------------------------------------------------------------------------------------

    def heading(self, title: str) -> None:
        self.print(f"\n{title}")

    def narrate(self, at: datetime, text: str) -> None:
        """What a person in the story does (the product's own lines follow)."""
        self.print(f"  {self.stamp(at)}  {'':<8} » {text}")

    def event(
        self, at: datetime, ref: str, what: str, *, to: str = "", by: str = "", quote: str = "", note: str = ""
    ) -> None:
        line = f"  {self.stamp(at)}  {ref or NO_LOOP:<8} {what}"
        if to:
            line += f" → {to}"
        if by:
            line += f" ← {by}"
        if quote:
            line += f'  "{self.short(quote)}"'
        if note:
            line += f"  ({note})"
        self.print(line)

    def print(self, text: str) -> None:
        """One line; arrows and the like are spelled in ASCII when the output cannot take them."""
        print(text.translate(PLAIN) if self._plain else text, file=self.out, flush=True)

    def stamp(self, at: datetime) -> str:
        local = at.astimezone(self.zone)
        return f"{local:%a} {local.day:>2} {local:%b %H:%M}"

    def their_time(self, email: str, at: datetime) -> str:
        """``at`` on the customer's clock, when it differs from the team's (their zone as closeloop reads it)."""
        with self.app.store.reading() as tx:
            customer = tx.customer_by_email(parseaddr(email)[1] or email)
        if customer is None or customer.tz_offset_minutes is None:
            return ""
        zone = customer_zone(customer.tz_offset_minutes, self.zone, at)
        if at.astimezone(zone).utcoffset() == at.astimezone(self.zone).utcoffset():
            return ""
        return f"{at.astimezone(zone):%H:%M} their time"

    def short(self, text: str) -> str:
        flat = " ".join(text.split())
        return flat if len(flat) <= QUOTE_CHARS else flat[: QUOTE_CHARS - 1].rstrip() + "…"

    # what a step did -------------------------------------------------------------------------------------

    def record(self, now: datetime, delivered: Iterable[str] = ()) -> None:
        """Print what changed since the last call: intake, decisions, emails, closings."""
        snapshot = self._snapshot()
        changes = [self._changes(ref, loop, self._seen.get(ref)) for ref, loop in snapshot.items()]
        for message_id in delivered:
            self._delivered(now, message_id)
        for change in changes:
            change.before_sending(self, now)
        for accepted in self._new_emails():
            note = self.their_time(accepted.to, accepted.date)
            self.event(accepted.date, accepted.ref, accepted.kind, to=accepted.to, quote=accepted.subject, note=note)
        for change in changes:
            change.after_sending(self, now)
        self._seen = snapshot

    def _snapshot(self) -> Snapshot:
        service = self.app.service
        return {loop["ref"]: service.timeline(loop["ref"]) for loop in service.loops()}

    def _new_emails(self) -> list[Accepted]:
        accepted = self.server.accepted
        new, self._emails = accepted[self._emails :], len(accepted)
        return new

    def _delivered(self, now: datetime, message_id: str) -> None:
        """A message the story delivered, as recorded; mail that is never answered is shown with the reason."""
        with self.app.store.reading() as tx:
            message = tx.message(message_id)
        if message is None:
            self.event(now, NO_LOOP, f"not recorded (Message-ID {message_id})")
            return
        self.totals.received[message.classification] += 1
        if message.classification in (Classification.CUSTOMER, Classification.STAFF):
            return
        sender = f"{message.from_name} <{message.from_email}>" if message.from_name else message.from_email
        note = f"{message.classification}: {message.reason}" if message.reason else str(message.classification)
        self.event(now, NO_LOOP, "recorded, not answered", by=sender, quote=message.subject, note=note)

    def _changes(self, ref: str, loop: dict[str, Any], before: dict[str, Any] | None) -> LoopChanges:
        return LoopChanges(ref=ref, loop=loop, before=before, totals=self.totals, staff=self._staff_names())

    def _staff_names(self) -> dict[str, str]:
        return {member.email: member.name for member in self.app.settings.staff}


@dataclass(frozen=True, kw_only=True)
class LoopChanges:
    """One loop, now and at the previous step."""

    ref: str
    loop: dict[str, Any]
    before: dict[str, Any] | None
    totals: Totals
    staff: dict[str, str]

    @cached_property
    def old_events(self) -> dict[str, dict[str, Any]]:
        """The loop's messages and touches at the previous step, by Message-ID."""
        return {e["message_id"]: e for e in (self.before or {}).get("events", []) if e.get("message_id")}

    def before_sending(self, timeline: Timeline, now: datetime) -> None:
        """What intake and staff did: new messages, the outcome, touches no longer needed."""
        inbound = [e for e in self.loop["events"] if e["what"] == "received"]
        for number, event in enumerate(inbound):
            if event["message_id"] not in self.old_events:
                self._received(timeline, now, event, opening=number == 0)
        if self.loop["outcome"] and not (self.before or {}).get("outcome"):
            timeline.event(now, self.ref, "outcome recorded", quote=self.loop["outcome"])
        self._settled(timeline, now)

    def after_sending(self, timeline: Timeline, now: datetime) -> None:
        """What sending led to: a check-in planned for months ahead, the loop closed."""
        for event in self.loop["events"]:
            planned = event.get("kind") == "check-in" and event["what"] == "touch planned"
            if planned and event["message_id"] not in self.old_events:
                due = datetime.fromisoformat(event["due_at"])
                note = timeline.their_time(event["to"], due)
                timeline.event(now, self.ref, f"check-in planned for {timeline.stamp(due)}", note=note)
        if self.loop["state"] == "closed" and (self.before or {}).get("state") != "closed":
            closed = datetime.fromisoformat(self.loop["closed_at"])
            timeline.event(closed, self.ref, f"loop closed: {self.loop['close_reason']}")
            self.totals.closed[self.ref] = self.loop["close_reason"]

    def _received(self, timeline: Timeline, now: datetime, event: dict[str, Any], *, opening: bool) -> None:
        customer = self.loop["customer"]
        sender = event["from"]
        name = customer["name"] if sender == customer["email"] else self.staff.get(sender, "")
        who = f"{name} <{sender}>" if name else sender
        if opening:
            promised = self.loop["promised_by"]
            timeline.event(now, self.ref, "new loop", by=who, quote=event["subject"])
            owner = self.staff.get(self.loop["owner"], self.loop["owner"])
            if promised:
                when = datetime.fromisoformat(promised)
                note = timeline.their_time(sender, when)
                timeline.event(now, self.ref, f"owner {owner}; outcome promised by {timeline.stamp(when)}", note=note)
            return
        kind = "staff reply" if event["classification"] == Classification.STAFF else f"{event['classification']} reply"
        timeline.event(now, self.ref, kind, by=who, quote=event["subject"])

    def _settled(self, timeline: Timeline, now: datetime) -> None:
        """Touches that will not go out after all, grouped by why (a closing loop speaks for itself)."""
        why: dict[tuple[str, str], list[str]] = {}
        for event in self.loop["events"]:
            state = event["what"].removeprefix("touch ")
            old = self.old_events.get(event.get("message_id") or "")
            if "kind" not in event or state in ("planned", "sent") or (old and old["what"] == event["what"]):
                continue
            reason = event["reason"] or state
            if not reason.startswith("loop closed"):
                why.setdefault((state, reason), []).append(event["kind"])
        for (state, reason), kinds in why.items():
            label = "not needed" if state == "cancelled" else state
            timeline.event(now, self.ref, f"{label}: {', '.join(dict.fromkeys(kinds))} ({reason})")


def _can_write(out: TextIO, text: str) -> bool:
    """Whether ``out`` can encode ``text`` (a terminal in a legacy code page cannot take arrows)."""
    encoding = getattr(out, "encoding", None) or "utf-8"
    try:
        text.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return False
    return True
