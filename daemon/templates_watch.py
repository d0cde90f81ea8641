"""What the daemon does when staff edit the templates: tell the team what is wrong, and send what was held.

The renderer keeps rendering from the last version of the templates that passed its check (``render.py``); a
touch whose template fails anyway is held by dispatch, with a reason that starts with :data:`HELD_PREFIX`. This
module looks at the templates before each dispatch pass and, once per change:

- when the templates fail the check, logs the problems at error level and mails them to every ``[[staff]]``
  address, with what closeloop does meanwhile. That mail is plain text built here, never from the (perhaps
  broken) templates.
- when they pass, puts the touches held for a template problem back in the plan, so the pass that follows sends
  them, and, if the team was told of problems, tells them that all is well again.

A mail that cannot be sent (SMTP down) is tried again before the next pass; a newer change replaces it.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, replace
from datetime import datetime

from daemon.config import Settings
from daemon.dispatch import Sender
from daemon.mail.compose import Mailbox
from daemon.mail.smtp import SmtpSender
from daemon.render import Refresh, Renderer, TemplateProblem
from daemon.staff_mail import mail_staff
from daemon.store.repository import Store

log = logging.getLogger(__name__)

HELD_PREFIX = "template problem:"  # how dispatch begins the reason of a touch it holds because its template fails
RELEASED = "released: its templates pass the check again"
ALERT_KIND = "staff-alert"


@dataclass(frozen=True, kw_only=True)
class StaffAlert:
    """A plain-text mail to the team, and who has yet to receive it."""

    subject: str
    text: str
    recipients: tuple[str, ...]
    generation: int


class TemplatesWatch:
    """Looks at the templates for the daemon; one instance, used from the dispatch job's thread."""

    def __init__(self, settings: Settings, store: Store, renderer: Renderer) -> None:
        self.settings, self.store, self.renderer = settings, store, renderer
        self._seen: int | None = None  # the renderer's generation this watch last acted on
        self._told: tuple[TemplateProblem, ...] = ()  # the problems of the team's latest alert, until all is well
        self._pending: StaffAlert | None = None

    def look(self, now: datetime, *, tell_staff: bool = True) -> Refresh:
        """Refresh the templates; after a change, report it and release held touches if they pass.

        With ``tell_staff`` the team is mailed (through the configured SMTP server) about the change.
        """
        refresh = self.renderer.refresh()
        if refresh.generation != self._seen:
            self._seen = refresh.generation
            self._pending = self._changed(refresh)
        if tell_staff and self._pending is not None:
            self._pending = self._send(self._pending, now)
        return refresh

    @property
    def pending(self) -> StaffAlert | None:
        """The alert still to be delivered, if any."""
        return self._pending

    def _changed(self, refresh: Refresh) -> StaffAlert | None:
        if refresh.problems:
            with self.store.reading() as tx:
                held = tx.count_held(HELD_PREFIX)
            log.error(
                "templates fail the check",
                extra={
                    "problems": [str(problem) for problem in refresh.problems],
                    "using": "the last version that passed" if refresh.fallback else "the files as they are",
                    "held": held,
                },
            )
            if refresh.problems == self._told:
                return self._pending  # another edit, the same problems: the team knows already
            self._told = refresh.problems
            return self._alert(problem_alert(refresh, held, self.renderer), refresh)
        with self.store.transaction() as tx:
            released = tx.release_held(HELD_PREFIX, RELEASED)
        log.info("templates pass the check", extra={"version": refresh.version, "released": released})
        if not self._told:
            return None
        self._told = ()
        return self._alert(all_clear(refresh, released), refresh)

    def _alert(self, subject_and_text: tuple[str, str], refresh: Refresh) -> StaffAlert:
        subject, text = subject_and_text
        recipients = tuple(member.email for member in self.settings.staff)
        return StaffAlert(subject=subject, text=text, recipients=recipients, generation=refresh.generation)

    def _send(self, alert: StaffAlert, now: datetime) -> StaffAlert | None:
        """Mail ``alert`` to those who have not got it; what is left when the SMTP server defers."""
        with SmtpSender(self.settings.smtp) as sender:
            return self._send_with(sender, alert, now)

    def _send_with(self, sender: Sender, alert: StaffAlert, now: datetime) -> StaffAlert | None:
        domain = self.settings.inboxes[0].id_domain
        mailed = mail_staff(
            sender,
            self.settings,
            [Mailbox(email=recipient) for recipient in alert.recipients],
            kind=ALERT_KIND,
            subject=alert.subject,
            text=alert.text,
            message_id=lambda _: f"closeloop.templates.{alert.generation}.{secrets.token_hex(6)}@{domain}",
            now=now,
        )
        if mailed.left:
            return replace(alert, recipients=mailed.left)
        log.info("staff told about the templates", extra={"subject": alert.subject})
        return None


def problem_alert(refresh: Refresh, held: int, renderer: Renderer) -> tuple[str, str]:
    """Subject and text of the mail that tells the team what is wrong with the templates, and where."""
    count = len(refresh.problems)
    subject = f"[closeloop] templates: {count} problem{'' if count == 1 else 's'}"
    lines = [
        f"The templates in {renderer.directory} changed, and closeloop's check found {_count(count, 'problem')}:",
        "",
        *(f"  {problem}" for problem in refresh.problems),
        "",
    ]
    if refresh.fallback:
        lines.append(
            f"Meanwhile closeloop keeps sending with the last version of the templates that passed the check "
            f"(version {refresh.version}). No other edit is used until every problem above is fixed."
        )
    else:
        lines.append(
            "No version of the templates has passed the check since closeloop started, so an email whose "
            "template fails is held instead of sent"
            + (f" ({_count(held, 'email')} held now)." if held else ".")
            + " Held emails go out once the templates pass."
        )
    lines += [
        "",
        "Fix the files, and run `closeloop templates check` to see what is left. closeloop notices the change",
        "by itself and tells you when all is well.",
    ]
    return subject, "\n".join(lines) + "\n"


def all_clear(refresh: Refresh, released: int) -> tuple[str, str]:
    """Subject and text of the mail that tells the team the templates pass again."""
    text = (
        f"The templates pass the check again; closeloop uses them from the next email on (version {refresh.version})."
    )
    if released:
        verb = "goes" if released == 1 else "go"
        text += f"\n\n{_count(released, 'email')} held because of a template problem {verb} out now."
    return "[closeloop] templates: all problems fixed", text + "\n"


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


__all__ = ["HELD_PREFIX", "StaffAlert", "TemplatesWatch", "all_clear", "problem_alert"]
