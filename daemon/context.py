"""What a template sees: the context documented in ``templates/README.md``, built from a due touch.

Only plain values (str, int, None, aware datetimes in the customer's zone, lists and dicts of them) go in; the
renderer turns the datetimes into readable dates in the template's language.
"""

from __future__ import annotations

from datetime import datetime, tzinfo
from functools import lru_cache
from typing import Any

from daemon.config import Inbox, Settings
from daemon.domain.loop import Timing, next_promise
from daemon.domain.model import Customer, Loop, Staff, Touch, TouchKind
from daemon.store.repository import MessageView, Transaction

EXCERPT_CHARS = 300


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
    from daemon.mail.quotes import latest_reply, without_greeting

    paragraphs = [p for p in without_greeting(latest_reply(text)).split("\n\n") if p.strip()]
    first = " ".join(paragraphs[0].split()) if paragraphs else ""
    if len(first) <= limit:
        return first
    return first[:limit].rsplit(" ", 1)[0].rstrip(",.;:") + "…"


def _local(moment: datetime | None, zone: tzinfo) -> datetime | None:
    return None if moment is None else moment.astimezone(zone)
