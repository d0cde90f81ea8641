"""Which loop an inbound message belongs to.

1. In-Reply-To, then References newest first, matched against every recorded Message-ID (ours and theirs).
2. Fallback: a loop reference in the subject (``[CL-7K3P]``) or in a plus address (``support+cl-7k3p@…``),
   accepted only from the loop's own customer or from staff, so a stranger cannot write into someone's loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from daemon.domain.model import InboundMessage, LoopState
from daemon.domain.reference import ref_from_plus_tag, refs_in_subject


@dataclass(frozen=True, kw_only=True)
class LoopSummary:
    """What threading needs to know about a candidate loop."""

    id: int
    ref: str
    customer_email: str
    state: LoopState


def thread_clues(message: InboundMessage, plus_tag: str | None) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """The Message-IDs and loop references a message offers, for the store to look up in one go."""
    plus_ref = ref_from_plus_tag(plus_tag)
    refs = refs_in_subject(message.subject) + ((plus_ref,) if plus_ref else ())
    return message.thread_ids, refs


def find_loop(
    message: InboundMessage,
    *,
    plus_tag: str | None,
    by_message_id: Mapping[str, LoopSummary],
    by_ref: Mapping[str, LoopSummary],
    staff: frozenset[str],
) -> LoopSummary | None:
    """The loop ``message`` continues, or ``None`` when it starts a new conversation."""
    for message_id in message.thread_ids:
        if message_id in by_message_id:
            return by_message_id[message_id]
    sender = message.sender.email if message.sender else ""
    for ref in thread_clues(message, plus_tag)[1]:
        loop = by_ref.get(ref)
        if loop is not None and (sender == loop.customer_email or sender in staff):
            return loop
    return None
