"""Mail to the team outside any loop (a template problem, quarantined messages): plain text, one email each."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from daemon.config import Settings
from daemon.dispatch import Sender
from daemon.mail.compose import Mailbox, Outgoing, compose
from daemon.mail.smtp import PermanentSendError, TransientSendError

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class StaffMailed:
    delivered: int
    """How many recipients the server accepted the email for."""
    left: tuple[str, ...]
    """The addresses still to mail because the server deferred (the deferred one and those after it)."""


def mail_staff(
    sender: Sender,
    settings: Settings,
    recipients: Sequence[Mailbox],
    *,
    kind: str,
    subject: str,
    text: str,
    message_id: Callable[[Mailbox], str],
    now: datetime,
) -> StaffMailed:
    """Mail ``subject`` and ``text`` from the first inbox to each recipient in turn; stop at the first deferral.

    A recipient the server refuses for good is logged and skipped.
    """
    inbox = settings.inboxes[0]
    delivered = 0
    for position, recipient in enumerate(recipients):
        raw = compose(
            Outgoing(
                kind=kind,
                loop_ref="",
                sender=Mailbox(email=inbox.address, name="closeloop"),
                recipient=recipient,
                subject=subject,
                text=text,
                html=None,
                message_id=message_id(recipient),
                date=now,
                answers=False,
            )
        )
        try:
            sender.send(raw, inbox.address, [recipient.email])
        except TransientSendError as exc:
            log.warning(f"{kind} deferred; will retry", extra={"to": recipient.email, "smtp": str(exc)})
            return StaffMailed(delivered=delivered, left=tuple(r.email for r in recipients[position:]))
        except PermanentSendError as exc:
            log.error(f"{kind} refused", extra={"to": recipient.email, "smtp": str(exc)})
            continue
        delivered += 1
    return StaffMailed(delivered=delivered, left=())


__all__ = ["StaffMailed", "mail_staff"]
