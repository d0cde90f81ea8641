"""What a template sees: the context documented in ``templates/README.md``, built from a due touch.

Only plain values (str, int, None, aware datetimes in the customer's zone, lists and dicts of them) go in; the
renderer turns the datetimes into readable dates in the template's language.
"""

from __future__ import annotations

import re
from datetime import datetime, tzinfo
from functools import lru_cache
from typing import Any

from daemon.config import Inbox, Settings
from daemon.domain.loop import Timing, next_promise
from daemon.domain.model import Customer, Loop, Staff, Touch, TouchKind
from daemon.store.repository import MessageView, Transaction

EXCERPT_CHARS = 300
# The salutation a message opens with ("Hello,", "Hi Alex!", "Dear support team,", "Guten Tag,"): not what they
# wrote about, so the excerpt starts after it.
_GREETING = re.compile(
    r"^(hi|hello|hey|hiya|dear|greetings|good (morning|afternoon|evening|day)|to whom it may concern|"
    r"hallo|moin|servus|guten (tag|morgen|abend)|liebe[rs]?|sehr geehrte[rs]?|bonjour|salut|hola|buongiorno|ciao)"
    r"\b(?P<rest>.*)$",
    re.IGNORECASE,
)
_GREETING_END = re.compile(r"^[^,!:.]{0,40}[,!:.]\s*")


def staff_member(settings: Settings, email: str) -> Staff:
    for member in settings.staff:
        if member.email == email:
            return Staff(name=member.name, email=member.email)
    return Staff(name=email.partition("@")[0], email=email)


def unsubscribe_address(inbox: Inbox) -> str:
    local, _, domain = inbox.address.partition("@")
    return f"{local}+unsubscribe@{domain}"


def unsubscribe_mailto(inbox: Inbox) -> str:
    return f"mailto:{unsubscribe_address(inbox)}?subject=unsubscribe"


def touch_context(
    tx: Transaction,
    settings: Settings,
    touch: Touch,
    loop: Loop,
    customer: Customer,
    timing: Timing,
    now: datetime,
) -> dict[str, Any]:
    """The template context for ``touch``; reads the message it is about and the customer's earlier loops."""
    inbox = settings.inbox(loop.inbox)
    zone = timing.zone
    about = (tx.message(touch.answers) if touch.answers else None) or tx.opening_message(loop.id or 0)
    owner = staff_member(settings, loop.owner)
    earlier = tx.earlier_loops(customer.id or 0, before=loop.id or 0)
    return {
        "customer": {"first_name": customer.first_name, "name": customer.name, "email": customer.email},
        "owner": _person(owner),
        "inbox": {
            "name": inbox.name,
            "address": inbox.address,
            "display_name": inbox.display_name or inbox.name,
        },
        "loop": {
            "ref": loop.ref,
            "subject": loop.subject,
            "state": str(loop.state),
            "opened_at": _local(loop.opened_at, zone),
            "promised_by": _local(loop.promised_by, zone),
            "outcome": loop.outcome,
            "outcome_at": _local(loop.outcome_at, zone),
            "follow_throughs": loop.follow_throughs,
        },
        "message": _message(about, loop, zone),
        "outcome": loop.outcome,
        "earlier_loops": [
            {"ref": e.ref, "subject": e.subject, "opened_at": _local(e.opened_at, zone), "outcome": e.outcome}
            for e in earlier
        ],
        "next_update": _local(next_promise(now, timing), zone) if touch.kind is TouchKind.FOLLOW_THROUGH else None,
        "touch": {"kind": str(touch.kind), "sequence": touch.sequence, "note": touch.note},
        "unsubscribe": {"mailto": unsubscribe_mailto(inbox), "url": None},
        "staff": [_person(Staff(name=m.name, email=m.email)) for m in settings.staff],
        "record_outcome_hint": (
            f'Reply to this email with the outcome, in your own words; or run: closeloop outcome {loop.ref} --text "…"'
        ),
    }


def _person(member: Staff) -> dict[str, str]:
    return {"name": member.name, "first_name": member.first_name, "email": member.email}


def _message(view: MessageView | None, loop: Loop, zone: tzinfo) -> dict[str, Any]:
    if view is None:
        return {
            "subject": loop.subject,
            "text": "",
            "excerpt": "",
            "received_at": _local(loop.opened_at, zone),
            "from_name": "",
            "from_email": "",
        }
    return {
        "subject": view.subject,
        "text": view.text_body,
        "excerpt": excerpt(view.text_body),
        "received_at": _local(view.received_at, zone),
        "from_name": view.from_name,
        "from_email": view.from_email,
    }


@lru_cache(maxsize=8)  # a message's acknowledgement and staff-notification go out one after the other
def excerpt(text: str, limit: int = EXCERPT_CHARS) -> str:
    """The first paragraph of the customer's words after their greeting, on one line, cut at a word boundary."""
    from daemon.mail.quotes import latest_reply

    paragraphs = [p for p in without_greeting(latest_reply(text)).split("\n\n") if p.strip()]
    first = " ".join(paragraphs[0].split()) if paragraphs else ""
    if len(first) <= limit:
        return first
    return first[:limit].rsplit(" ", 1)[0].rstrip(",.;:") + "…"


def without_greeting(text: str) -> str:
    """``text`` without the salutation on its first line: the whole line when it is only a greeting ("Hello,",
    "Hi Alex", "Dear support team,"), else the greeting up to its comma ("Hello, I was charged twice" → "I was
    charged twice"). A first line that merely starts with such a word ("Hey, this is broken" keeps "this is
    broken"; "Hi there is a bug in …" has no comma and stays whole) is never dropped."""
    first, newline, rest = text.lstrip().partition("\n")
    found = _GREETING.match(first.strip())
    if found is None:
        return text
    words = first.split()
    if len(words) <= 3 or (len(words) <= 6 and first.rstrip()[-1] in ",!:."):
        return rest
    end = _GREETING_END.match(found.group("rest"))
    if end is None:
        return text
    return found.group("rest")[end.end() :] + newline + rest


def _local(moment: datetime | None, zone: tzinfo) -> datetime | None:
    return None if moment is None else moment.astimezone(zone)
