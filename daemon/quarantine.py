"""Telling the team about quarantined messages.

A message intake could not handle (unparseable, or one that stopped intake three times) is recorded raw and
quarantined so that the messages behind it go on; it is never answered. Somebody has to look at it: after each
intake pass and at every housekeeping tick, the staff get one email listing the quarantined messages nobody was
told about yet, and those are marked reported once at least one of them has the email. If the mail cannot go out
(the SMTP server defers, is down, or refuses every staff address), nothing is marked and the next tick tries
again; a crash between the send and the mark sends the same email again, with the same Message-ID.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from datetime import datetime

from daemon.config import Settings
from daemon.mail.compose import Mailbox, Outgoing, compose
from daemon.mail.smtp import PermanentSendError, SmtpSender, TransientSendError
from daemon.store.repository import QuarantinedMessage, Store

log = logging.getLogger(__name__)

KIND = "quarantine-alert"
AT_MOST = 50
"""Messages listed in one email; more wait for the next one."""


def report_quarantine(store: Store, settings: Settings, now: datetime) -> int:
    """Mail the staff about quarantined messages they have not been told about; how many were reported."""
    with store.reading() as tx:
        found = tx.unreported_quarantine(AT_MOST)
    if not found or not settings.staff:
        return 0
    subject, text = alert(found)
    inbox = settings.inboxes[0]
    batch = f"{found[0].id}-{found[-1].id}"
    delivered = 0
    try:
        with SmtpSender(settings.smtp) as sender:
            for member in settings.staff:
                recipient = hashlib.sha256(member.email.encode()).hexdigest()[:8]
                raw = compose(
                    Outgoing(
                        kind=KIND,
                        loop_ref="",
                        sender=Mailbox(email=inbox.address, name="closeloop"),
                        recipient=Mailbox(email=member.email, name=member.name),
                        subject=subject,
                        text=text,
                        html=None,
                        message_id=f"closeloop.quarantine.{batch}.{recipient}@{inbox.id_domain}",
                        date=now,
                        answers=False,
                    )
                )
                try:
                    sender.send(raw, inbox.address, [member.email])
                    delivered += 1
                except PermanentSendError as exc:
                    log.error("quarantine alert refused", extra={"to": member.email, "smtp": str(exc)})
    except TransientSendError as exc:
        log.warning("quarantine alert deferred; will retry", extra={"smtp": str(exc)})
        return 0
    if not delivered:
        log.error("quarantine alert refused for every staff member; will retry", extra={"count": len(found)})
        return 0
    with store.transaction() as tx:
        tx.mark_reported([message.id for message in found], now)
    log.warning("staff told about quarantined messages", extra={"count": len(found)})
    return len(found)


def alert(found: Sequence[QuarantinedMessage]) -> tuple[str, str]:
    """Subject and text of the email that lists ``found`` for the team."""
    count = len(found)
    many = count != 1
    subject = f"[closeloop] {count} message{'s' if many else ''} quarantined, not answered"
    lines = [
        f"closeloop could not handle {'these messages' if many else 'this message'} and quarantined "
        f"{'them' if many else 'it'}, so that the mail behind went on. "
        f"{'They were' if many else 'It was'} recorded raw and nobody has answered yet:",
        "",
    ]
    for message in found:
        where = f"{message.inbox}/{message.folder or '-'} UID {message.uid}" if message.uid else message.inbox
        lines += [
            f"- from {message.from_email or '(no sender)'}: {_short(message.subject) or '(no subject)'}",
            f"  received {message.received_at:%Y-%m-%d %H:%M} UTC, {message.size:,} bytes, in {where}",
            f"  why: {_short(message.reason, 300)}",
        ]
    lines += [
        "",
        "The original is still in the mailbox (closeloop never deletes mail). Please read it in your mail client "
        "and answer the sender yourself if it is a customer.",
    ]
    return subject, "\n".join(lines) + "\n"


def _short(value: str, limit: int = 200) -> str:
    """One line of at most ``limit`` characters: this text comes from the hostile message itself."""
    line = " ".join(value.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


__all__ = ["AT_MOST", "KIND", "alert", "report_quarantine"]
