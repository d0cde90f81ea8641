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
from daemon.mail.compose import Mailbox
from daemon.mail.smtp import SmtpSender
from daemon.staff_mail import mail_staff
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
    batch = f"{found[0].id}-{found[-1].id}"
    domain = settings.inboxes[0].id_domain
    with SmtpSender(settings.smtp) as sender:
        mailed = mail_staff(
            sender,
            settings,
            [Mailbox(email=member.email, name=member.name) for member in settings.staff],
            kind=KIND,
            subject=subject,
            text=text,
            message_id=lambda to: f"closeloop.quarantine.{batch}.{_hashed(to.email)}@{domain}",
            now=now,
        )
    if mailed.left:
        return 0  # deferred: nothing is marked, the next tick tries again
    if not mailed.delivered:
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


def _hashed(address: str) -> str:
    return hashlib.sha256(address.encode()).hexdigest()[:8]


def _short(value: str, limit: int = 200) -> str:
    """One line of at most ``limit`` characters: this text comes from the hostile message itself."""
    line = " ".join(value.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


__all__ = ["AT_MOST", "KIND", "alert", "report_quarantine"]
