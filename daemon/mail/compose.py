"""Touch → email: the bytes that go over SMTP, with headers that cannot be injected.

Every header value is checked before it is set: CR, LF, NUL and other control characters in names and subjects
are collapsed to a space (they come from customers and templates), and anything else that would still change the
header set is refused with :class:`HeaderInjection`. The finished message is parsed back and must carry exactly
the headers we meant to write (the role ``verify_generated_headers`` plays in newer Pythons).
"""

from __future__ import annotations

import binascii
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.errors import HeaderParseError
from email.header import Header, decode_header, make_header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.parser import BytesParser
from email.policy import Compat32
from email.utils import format_datetime, formataddr

CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029\x85]+")
MAX_SUBJECT = 250
MAX_LINE = 78  # RFC 5322 2.1.1: lines SHOULD be no longer than 78 characters
_PLAIN = re.compile(r"[!-~]+(?: [!-~]+)*")  # printable ASCII words, one space between them


def _plain(value: str) -> bool:
    """Text ``email.header.Header`` writes back unchanged when it fits on a line: printable ASCII words with single
    spaces between them."""
    return _PLAIN.fullmatch(value) is not None


class _Policy(Compat32):
    """The email package's classic API (``compat32``), which writes a message three times faster than its modern
    one (that one parses and refolds every header value it is given), with CRLF line ends and one shortcut: a
    header that is printable ASCII and fits on one line is written as it is. The classic API would hand it to
    ``email.header.Header`` to find that out — a third of the time spent writing an email. Anything longer, or not
    plain ASCII, is still folded or encoded by the library.

    Safety does not rest on either path: every value is checked or collapsed to one line before it is set, and
    the written headers are parsed back (``_verify``).
    """

    def fold_binary(self, name: str, value: str) -> bytes:
        if isinstance(value, str) and len(name) + 2 + len(value) <= MAX_LINE and _plain(value):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


POLICY = _Policy(linesep="\r\n")


class HeaderInjection(ValueError):
    """A header value would have changed the message's header set."""


@dataclass(frozen=True, kw_only=True)
class Mailbox:
    email: str
    name: str = ""


@dataclass(frozen=True, kw_only=True)
class Outgoing:
    """Everything an automated email says about itself."""

    kind: str
    loop_ref: str
    sender: Mailbox
    recipient: Mailbox
    subject: str
    text: str
    html: str | None
    message_id: str
    date: datetime
    answers: bool
    in_reply_to: str | None = None
    references: Sequence[str] = ()
    reply_to: str | None = None
    list_unsubscribe: str | None = None


def one_line(value: str, limit: int = MAX_SUBJECT) -> str:
    """Header text made safe: encoded words decoded, control characters (CR, LF, NUL, tabs, Unicode line
    separators) and runs of space collapsed, and any remaining ``=?`` broken up so the email package cannot
    decode a CR/LF back out of it when it writes the header (CVE-2024-6923 in Pythons before 3.11.10)."""
    for _ in range(3):
        if "=?" not in value:
            break
        value = _decoded(value)
    return " ".join(CONTROL.sub(" ", value).replace("=?", "= ?").split())[:limit]


def _decoded(value: str) -> str:
    try:
        return str(make_header(decode_header(value)))
    except (HeaderParseError, LookupError, UnicodeDecodeError, ValueError):
        return value


def compose(mail: Outgoing) -> bytes:
    """The message as bytes with CRLF line ends, ready for ``smtplib.sendmail``.

    :raises HeaderInjection: when an address or Message-ID could not be written safely.
    """
    text = _part(mail.text, "plain")
    message: Message = text
    if mail.html is not None:
        message = MIMEMultipart("alternative", boundary=_boundary())
        del text["MIME-Version"]  # said once, by the message
        message.attach(text)
        html = _part(mail.html, "html")
        del html["MIME-Version"]
        message.attach(html)
    headers = _headers(mail)
    for name, value in headers:
        _set(message, name, value)
    raw = message.as_bytes(policy=POLICY)
    structural = ["MIME-Version", "Content-Type"]
    if not message.is_multipart():
        structural.append("Content-Transfer-Encoding")
    _verify(raw, [name for name, _ in headers] + structural)
    return raw


def _part(body: str, subtype: str) -> MIMENonMultipart:
    """A UTF-8 text part, quoted-printable: readable in the raw, and no line longer than 76.

    The encoding is ``binascii.b2a_qp`` (C) rather than the email package's own encoder (pure Python, per
    character); the headers are the ones ``set_payload(body, charset)`` would write.
    """
    part = MIMENonMultipart("text", subtype, charset="utf-8")
    part["Content-Transfer-Encoding"] = "quoted-printable"
    lines = body.replace("\r\n", "\n").replace("\r", "\n")
    part.set_payload(binascii.b2a_qp(lines.encode("utf-8"), istext=True).decode("ascii"))
    return part


def _set(message: Message, name: str, value: str) -> None:
    """ASCII as it is (folded at spaces when long); anything else as RFC 2047 encoded words."""
    message[name] = value if value.isascii() else Header(value, "utf-8", header_name=name)  # type: ignore[assignment]


def _headers(mail: Outgoing) -> list[tuple[str, str]]:
    ids = [_msg_id(mid) for mid in mail.references if _citable(mid)]
    headers: list[tuple[str, str]] = [
        ("From", _address(mail.sender)),
        ("To", _address(mail.recipient)),
        ("Subject", one_line(mail.subject) or "(no subject)"),
        ("Date", format_datetime(mail.date)),
        ("Message-ID", _msg_id(mail.message_id)),
    ]
    if mail.reply_to:
        headers.append(("Reply-To", _address(Mailbox(email=mail.reply_to, name=mail.sender.name))))
    if mail.in_reply_to and _citable(mail.in_reply_to):
        headers.append(("In-Reply-To", _msg_id(mail.in_reply_to)))
    if ids:
        headers.append(("References", " ".join(ids)))
    headers += [
        ("Auto-Submitted", "auto-replied" if mail.answers else "auto-generated"),
        ("X-Auto-Response-Suppress", "All"),
        ("X-Closeloop-Kind", mail.kind),
        ("X-Closeloop-Loop", one_line(mail.loop_ref)),
    ]
    if mail.list_unsubscribe:
        headers.append(("List-Unsubscribe", f"<{_safe(mail.list_unsubscribe)}>"))
    return headers


def _address(mailbox: Mailbox) -> str:
    local, at, domain = _safe(mailbox.email).rpartition("@")
    if not at or not local or not domain or any(c in mailbox.email for c in ' <>,;"()'):
        raise HeaderInjection(f"not a plain email address: {mailbox.email!r}")
    if not mailbox.email.isascii():
        raise HeaderInjection(f"not an ASCII email address: {mailbox.email!r}")
    return formataddr((one_line(mailbox.name, 200), mailbox.email), charset="utf-8")


def _citable(message_id: str) -> bool:
    """Whether someone else's Message-ID can be cited verbatim in In-Reply-To and References.

    The email package reads those headers as unstructured text and decodes RFC 2047 encoded words in them, so a
    customer's ``<=?utf-8?q?=0D=0ABcc...?=@x>`` would be written back changed (with a line break, or as
    unencodable text) and a non-ASCII one as an encoded word. Such an id is left out: the loop reference in the
    subject still threads the reply.
    """
    return message_id.isascii() and "=?" not in message_id


def _msg_id(message_id: str) -> str:
    value = _safe(message_id).strip("<>")
    if not value or any(c in value for c in " <>\t"):
        raise HeaderInjection(f"not a Message-ID: {message_id!r}")
    return f"<{value}>"


def _safe(value: str) -> str:
    if CONTROL.search(value):
        raise HeaderInjection(f"control characters in a header value: {value!r}")
    return value


def _boundary() -> str:
    """A multipart boundary that cannot occur in a quoted-printable part, where every ``=`` is encoded.

    Left to itself, the email package makes one up and compiles a regular expression per message to check
    that the text does not contain it (and each new pattern pushes another out of ``re``'s cache).
    """
    return f"=_closeloop_{secrets.token_hex(12)}"


def _verify(raw: bytes, intended: list[str]) -> None:
    """Parse the message's headers back: the names must be exactly the ones we wrote, once each."""
    written = BytesParser().parsebytes(raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n", headersonly=True).keys()
    if sorted(name.lower() for name in written) != sorted(name.lower() for name in intended):
        raise HeaderInjection(f"generated headers {written} differ from the intended {intended}")
