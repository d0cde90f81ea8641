"""What a report says about the message it is about: delivery reports (RFC 3464, RFC 6533), disposition
notifications (RFC 8098), feedback reports (RFC 5965), classic text bounces and auto-replies.

:mod:`daemon.mail.parse` finds the parts and reads their syntax (header blocks, Message-IDs, addresses) into
:class:`Clues`; this module decides what they mean. Everything here works on parsed, bounded values and never
raises.

* ``cited_ids``, most specific first: the Message-ID of each attached original (``message/rfc822``,
  ``message/global``, ``text/rfc822-headers``, ``message/global-headers``) and each ``Original-Message-ID``
  / ``X-Original-Message-ID`` field of a report part; then, from a mail system only, the ``Message-ID:`` lines
  a classic bounce quotes in its text (Exim, qmail, Yahoo, Gmail…); then the message's own In-Reply-To and
  References (newest first), which is all an auto-reply offers; last the originals' own In-Reply-To and
  References. De-duplicated, the message's own Message-ID left out, at most :data:`MAX_CITED_IDS`. The rule
  is the same for every message, so a customer's reply cites what it answers too: read ``cited_ids`` only
  for what classification calls a report or an auto-reply.
* ``delivery_action``: the worst per-recipient ``Action`` of the delivery-status parts (``failed`` >
  ``delayed`` > ``delivered`` / ``relayed`` / ``expanded``; the ``Status`` class when Action is missing or
  unknown: 5 failed, 4 delayed, 2 delivered), with an ``X-Failed-Recipients`` field counting as ``failed``.
  Without either, and only for mail from a mail system, the notice itself decides: its subject, then its text
  up to the quoted copy of the original (so the words of our own returned mail never count): a delay warning
  is ``delayed``, a permanent-failure text or an SMTP 5xx reply is ``failed``. Anything else is ``None``:
  a customer forwarding a bounce, a read receipt, a complaint, an out-of-office.
* ``failed_recipients``: the ``Final-Recipient`` and ``Original-Recipient`` addresses (``rfc822`` or
  ``utf-8`` type) of every recipient whose action is ``failed``, or of the only recipient when the report
  names one and says no action for it; then ``X-Failed-Recipients``. Only when the action is ``failed``;
  lower-case, de-duplicated, at most :data:`MAX_FAILED_RECIPIENTS`.

"From a mail system" is the machine evidence classification asks of a text bounce (``daemon.domain.classify``,
rules 2, 3, 5 and 10): an NDR field, no sender, a null or ``MAILER-DAEMON`` Return-Path, a mail-system name or
local part, or ``Auto-Submitted``. Text alone never counts: customers forward bounces and write about late
deliveries.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from daemon.domain.classify import from_mail_system
from daemon.domain.model import InboundMessage

__all__ = ["MAX_CITED_IDS", "MAX_FAILED_RECIPIENTS", "Clues", "Report", "read_report"]

MAX_CITED_IDS = 20
MAX_FAILED_RECIPIENTS = 50


@dataclass(frozen=True, kw_only=True)
class Clues:
    """What the parser found in a message's own MIME tree; Message-IDs and addresses already normalised.

    ``original_ids``: the Message-ID of each attached original, then the ``Original-Message-ID`` /
    ``X-Original-Message-ID`` fields; ``original_threads``: the originals' In-Reply-To and References (newest
    first); ``quoted_ids``: ``Message-ID:`` lines in a prefix of the text; ``field_groups``: the blank-line
    separated field groups of every delivery-status and disposition-notification part, each as lower-case
    name → first value (decoded, unfolded); ``listed_failures``: the addresses of ``X-Failed-Recipients``.
    """

    original_ids: tuple[str, ...] = ()
    original_threads: tuple[str, ...] = ()
    quoted_ids: tuple[str, ...] = ()
    field_groups: tuple[Mapping[str, str], ...] = ()
    listed_failures: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Report:
    """The three report fields of :class:`~daemon.domain.model.InboundMessage`."""

    cited_ids: tuple[str, ...] = ()
    delivery_action: str | None = None
    failed_recipients: tuple[str, ...] = ()


def read_report(message: InboundMessage, clues: Clues) -> Report:
    """The report fields of ``message`` (whose own report fields are ignored) from the parser's ``clues``."""
    mail_system = from_mail_system(message)
    action = _structured_action(message, clues) or (_notice_action(message) if mail_system else None)
    return Report(
        cited_ids=_cited_ids(message, clues, mail_system),
        delivery_action=action,
        failed_recipients=_failed_recipients(clues, action),
    )


# --- cited Message-IDs --------------------------------------------------------------------------------------


def _cited_ids(message: InboundMessage, clues: Clues, mail_system: bool) -> tuple[str, ...]:
    quoted = clues.quoted_ids if mail_system else ()
    answered = (*message.in_reply_to, *reversed(message.references))
    cited = dict.fromkeys((*clues.original_ids, *quoted, *answered, *clues.original_threads))
    cited.pop(message.message_id or "", None)
    return tuple(cited)[:MAX_CITED_IDS]


# --- the delivery action ------------------------------------------------------------------------------------

_SEVERITY = {"failed": 3, "delayed": 2, "delivered": 1, "relayed": 1, "expanded": 1}
_ACTION_SPELLINGS = {"failure": "failed", "delay": "delayed"}
_STATUS = re.compile(r"\s*([245])\.\d{1,3}\.\d{1,3}")
_STATUS_CLASSES = {"5": "failed", "4": "delayed", "2": "delivered"}


def _structured_action(message: InboundMessage, clues: Clues) -> str | None:
    actions = [action for action in map(_group_action, clues.field_groups) if action is not None]
    if message.header("x-failed-recipients") is not None:
        actions.append("failed")
    return max(actions, key=_SEVERITY.__getitem__, default=None)


def _group_action(group: Mapping[str, str]) -> str | None:
    """The RFC 3464 action of one per-recipient group, from ``Action`` or else the class of ``Status``."""
    word = re.sub(r"\([^)]*\)", " ", group.get("action", "")).strip().split(" ", 1)[0].lower()
    action = _ACTION_SPELLINGS.get(word, word)
    if action in _SEVERITY:
        return action
    status = _STATUS.match(group.get("status", ""))
    return _STATUS_CLASSES[status.group(1)] if status else None


def _texts(*patterns: str) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{pattern})" for pattern in patterns), re.IGNORECASE)


# Subjects the mail systems give their notices (anchored: "Re: Undeliverable parcel" is a person writing).
_FAILURE_SUBJECT = _texts(
    r"^undeliver(?:able|ed mail)\b",  # Exchange, Office 365, Postfix
    r"^mail delivery failed\b",  # Exim
    r"^returned mail:",  # Sendmail
    r"^delivery status notification \(failure\)",  # Gmail, Amazon SES
    r"^failure notice$",  # qmail, Yahoo
    r"^delivery failure:",  # Lotus Domino
)
_DELAY_SUBJECT = _texts(
    r"^delayed mail\b",  # Postfix: "Delayed Mail (still being retried)"
    r"^warning: message \S+ delayed\b",  # Exim
    r"^warning: could not send message for past\b",  # Sendmail
    r"^delivery status notification \(delay\)",  # Gmail
    r"^delivery delayed:",  # Exchange
)
# Wording of the notices, read up to the quoted copy of the original.
_DELAY_TEXT = _texts(
    r"this is a warning (?:message )?only",  # Postfix, Sendmail, Exchange
    r"you do not need to resend your message",
    r"has not yet been delivered to one or more of its recipients",  # Exim
    r"delivery attempts will continue",  # Exim
    r"transient non-fatal errors",  # Sendmail
    r"\*\* delivery incomplete \*\*",  # Gmail
    r"temporary problem delivering your message",  # Gmail
    r"delivery to the following recipients? (?:has been|is|was) delayed",  # Exchange
    r"\bwill (?:continue to )?retry\b",
    r"\b(?:will be|still being) retried\b",
)
_FAILURE_TEXT = _texts(
    r"this is a permanent error",  # Exim, qmail
    r"the following address\(es\) failed",  # Exim
    r"permanent fatal errors",  # Sendmail
    r"failed permanently",  # Gmail
    r"could not be delivered to one or more recipients",  # Postfix
    r"delivery has failed to these recipients",  # Exchange
    r"did not reach some or all of the intended recipients",  # Exchange
    r"couldn'?t be delivered",  # Office 365
    r"(?:unable|not able) to deliver your message to the following address",  # Yahoo, qmail
    r"\bwas not delivered to\b",  # Lotus Domino
    r"\bwas undeliverable\b",  # Amazon SES
    r"\*\* (?:address not found|message not delivered) \*\*",  # Gmail
    r"\bwas automatically rejected\b",  # Sieve reject (RFC 5429)
    r"\b5\d\d[ -]5\.\d{1,3}\.\d{1,3}\b",  # an SMTP rejection with its enhanced status: "550 5.1.1"
)
# Where a classic bounce starts quoting the returned message.
_QUOTED_ORIGINAL = re.compile(
    r"^[ \t]*-{2,}[ \t]*(?:this is a copy of|below this line is a copy of|original message|"
    r"undelivered message|returned message|the original message)",
    re.IGNORECASE | re.MULTILINE,
)
_NOTICE_CHARS = 5_000


def _notice_action(message: InboundMessage) -> str | None:
    """``delayed`` or ``failed`` from the words of a mail system's notice, or ``None`` when it says neither."""
    subject = " ".join(message.subject.split())
    if _FAILURE_SUBJECT.search(subject):
        return "failed"
    if _DELAY_SUBJECT.search(subject):
        return "delayed"
    notice = _notice(message.text)
    if _DELAY_TEXT.search(notice):
        return "delayed"
    if _FAILURE_TEXT.search(notice):
        return "failed"
    return None


def _notice(text: str) -> str:
    head = text[:_NOTICE_CHARS]
    quoted = _QUOTED_ORIGINAL.search(head)
    return " ".join((head[: quoted.start()] if quoted else head).split())


# --- who failed ---------------------------------------------------------------------------------------------

_RECIPIENT_FIELDS = ("final-recipient", "original-recipient")
_ADDRESS_TYPES = frozenset({"rfc822", "utf-8"})
_ADDRESS = re.compile(r"[^\s@<>()\[\],;:\"\\]+@[^\s@<>()\[\],;:\"\\]+")
_MAX_ADDRESS = 320


def _failed_recipients(clues: Clues, action: str | None) -> tuple[str, ...]:
    if action != "failed":
        return ()
    groups = [group for group in clues.field_groups if any(name in group for name in _RECIPIENT_FIELDS)]
    failed = [group for group in groups if _group_action(group) == "failed"]
    if not failed and len(groups) == 1 and _group_action(groups[0]) is None:
        failed = groups
    addresses = [address for group in failed for address in _group_addresses(group)]
    return tuple(dict.fromkeys((*addresses, *clues.listed_failures)))[:MAX_FAILED_RECIPIENTS]


def _group_addresses(group: Mapping[str, str]) -> Iterable[str]:
    for name in _RECIPIENT_FIELDS:
        address = _typed_address(group.get(name, ""))
        if address:
            yield address


def _typed_address(value: str) -> str:
    """The address of ``type; address`` (RFC 3464 §2.3.1) when the type is one of mail, else ``""``."""
    kind, _, address = value.partition(";") if ";" in value else ("rfc822", ";", value)
    if kind.strip().lower() not in _ADDRESS_TYPES:
        return ""
    address = re.sub(r"\([^)]*\)", "", address).strip().strip("<>").strip().lower()
    return address if _ADDRESS.fullmatch(address) and len(address) <= _MAX_ADDRESS else ""
