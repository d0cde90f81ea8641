"""Bytes → :class:`InboundMessage`: all closeloop needs from one received email, and nothing it must trust.

Every input is hostile until parsed. The MIME tree is walked here, iteratively, over byte offsets into the
raw message: the stdlib parser recurses once per nesting level (a 1,000-deep message raises
``RecursionError`` after most of a second) and its modern policy builds header objects for every part
(seconds for 10,000 parts). So the stdlib ``email`` package parses each entity's header block
(``compat32``, which keeps raw values and never raises on odd headers), and this module decodes what it
needs itself: RFC 2047 encoded words leniently (adjacent words are joined before decoding, so a character
split across two words survives), 8-bit headers as UTF-8 or Windows-1252, bodies in their declared charset
with fallbacks, never raising on an unknown one.

Bounds (:class:`ParseLimits`) keep time and memory linear in the size of the message: the header block is
capped (over it the message is refused), nesting deeper than ``max_depth`` is not entered, at most
``max_parts`` parts are looked at, text and HTML are cut before they are decoded, and report parts are read
until ``max_report_parts`` of them or ``max_report_bytes`` of their fields have been.

Decisions worth knowing:

* An encapsulated message (``message/rfc822``, ``message/global``) is another message: it is listed in
  ``parts`` but not entered, so a customer who forwards a bounce as an attachment does not look like a
  bounce, and the text of a forwarded message is not mistaken for the customer's words.
* ``text`` is the whole readable text (quoted history included): the inline ``text/plain`` parts, or the
  inline ``text/html`` parts converted with html2text when no plain part has any text. Attachments (a
  disposition of ``attachment``, or a file name) never contribute.
* NUL and other control characters are removed from every string: PostgreSQL refuses NUL in text.
* Addresses longer than 320 characters (RFC 5321 §4.5.3.1) are dropped; so are Message-IDs over 998.
* Reports are read here as far as syntax goes: the header block of each attached original (never its MIME
  tree), the field groups of delivery-status and disposition-notification parts, ``Message-ID:`` lines quoted
  in the text, ``X-Failed-Recipients``. What they mean (``cited_ids``, ``delivery_action``,
  ``failed_recipients``) is decided in :mod:`daemon.mail.reports`.
"""

from __future__ import annotations

import binascii
import hashlib
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import collapse_rfc2231_value, getaddresses, parsedate_to_datetime

import html2text

from daemon.domain.model import Address, InboundMessage
from daemon.mail.reports import Clues, read_report

__all__ = ["DEFAULT_LIMITS", "ParseLimits", "UnparseableMessage", "decode_words", "first_name_of", "parse_message"]


@dataclass(frozen=True, kw_only=True)
class ParseLimits:
    """How much of a message is looked at. Defaults suit a support inbox."""

    max_header_bytes: int = 256 * 1024
    max_parts: int = 1_000
    max_depth: int = 50
    max_text_chars: int = 100_000
    max_html_chars: int = 500_000
    max_references: int = 100
    max_report_parts: int = 20
    max_report_bytes: int = 256 * 1024


DEFAULT_LIMITS = ParseLimits()


class UnparseableMessage(Exception):
    """Nothing usable could be read from the bytes; ``reason`` says why, for the quarantine record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def parse_message(raw: bytes, *, limits: ParseLimits = DEFAULT_LIMITS) -> InboundMessage:
    """Read one email.

    :raises UnparseableMessage: the bytes are empty, have no header fields, or a header block larger than
        ``limits.max_header_bytes``.
    """
    data = bytes(raw)
    if not data.strip():
        raise UnparseableMessage("empty message")
    try:
        return _inbound(data, _top_entity(data, limits), limits)
    except UnparseableMessage:
        raise
    except Exception as exc:  # a parser bug must quarantine one message, not stop the intake
        raise UnparseableMessage(f"unexpected {type(exc).__name__} while parsing: {exc}") from exc


# --- entities: one header block and the byte range of its body ----------------------------------------------

_HEADER_BLOCK = re.compile(
    rb"(?:From [^\n]*\n)?"  # an mbox envelope line
    rb"(?:[!-9;-~]+[ \t]*:[^\n]*(?:\n|\Z)(?:[ \t][^\n]*(?:\n|\Z))*)*"
)


@dataclass(frozen=True)
class _Entity:
    headers: Message
    body_start: int
    end: int
    depth: int

    @property
    def content_type(self) -> str:
        return self.headers.get_content_type()

    def param(self, name: str) -> str:
        value = self.headers.get_param(name)
        if not value:
            return ""
        return _clean(collapse_rfc2231_value(value)).strip().strip('"').lower()

    def header(self, name: str) -> str:
        return str(self.headers.get(name, "")).strip().lower()

    @property
    def is_attachment(self) -> bool:
        disposition = self.header("content-disposition")
        return disposition.startswith("attachment") or bool(self.param("name") or self._filename())

    def _filename(self) -> str:
        value = self.headers.get_param("filename", header="content-disposition")
        return "" if value is None else str(collapse_rfc2231_value(value))


def _top_entity(data: bytes, limits: ParseLimits) -> _Entity:
    header_end = _header_end(data, 0, len(data), limits.max_header_bytes)
    if header_end > limits.max_header_bytes:
        raise UnparseableMessage(f"header block larger than {limits.max_header_bytes} bytes")
    entity = _entity(data, 0, len(data), depth=0, header_end=header_end)
    if not entity.headers.keys():
        raise UnparseableMessage("no header fields")
    return entity


def _header_end(data: bytes, start: int, end: int, limit: int) -> int:
    match = _HEADER_BLOCK.match(data, start, min(end, start + limit + 1))
    return match.end() if match else start


def _entity(data: bytes, start: int, end: int, *, depth: int, header_end: int, digest: bool = False) -> _Entity:
    headers = BytesHeaderParser(policy=compat32).parsebytes(data[start:header_end])
    if digest:
        headers.set_default_type("message/rfc822")
    body_start = header_end
    if data.startswith(b"\r\n", header_end):
        body_start += 2
    elif data.startswith(b"\n", header_end):
        body_start += 1
    return _Entity(headers=headers, body_start=min(body_start, end), end=end, depth=depth)


def _children(data: bytes, parent: _Entity, budget: int, limits: ParseLimits) -> list[_Entity]:
    boundary = _boundary(parent)
    if not boundary or budget <= 0:
        return []
    digest = parent.content_type == "multipart/digest"
    children = []
    for start, end in _part_ranges(data, boundary, parent.body_start, parent.end):
        header_end = _header_end(data, start, end, limits.max_header_bytes)
        children.append(_entity(data, start, end, depth=parent.depth + 1, header_end=header_end, digest=digest))
        if len(children) >= budget:
            break
    return children


def _boundary(entity: _Entity) -> bytes:
    value = entity.headers.get_boundary()
    if not value:
        return b""
    return value.encode("utf-8", "surrogateescape")


def _part_ranges(data: bytes, boundary: bytes, start: int, end: int) -> Iterator[tuple[int, int]]:
    """Byte ranges of the parts between delimiter lines (RFC 2046 §5.1.1); a missing close is tolerated."""
    opened: int | None = None
    for line_start, line_end, closing in _delimiters(data, boundary, start, end):
        if opened is not None:
            yield opened, _before_line_break(data, opened, line_start)
        if closing:
            return
        opened = line_end
    if opened is not None and opened < end:
        yield opened, end


def _delimiters(data: bytes, boundary: bytes, start: int, end: int) -> Iterator[tuple[int, int, bool]]:
    marker = b"--" + boundary
    position = start
    while (found := data.find(marker, position, end)) >= 0:
        position = found + len(marker)
        if found > start and data[found - 1] != 0x0A:
            continue
        newline = data.find(b"\n", position, min(end, position + 1024))
        line_end = end if newline < 0 else newline + 1
        rest = data[position : min(line_end, position + 1024)]
        closing = rest.startswith(b"--")
        if (rest[2:] if closing else rest).strip():
            continue
        yield found, line_end, closing
        position = line_end


def _before_line_break(data: bytes, start: int, end: int) -> int:
    if end - start >= 2 and data[end - 2 : end] == b"\r\n":
        return end - 2
    if end > start and data[end - 1] == 0x0A:
        return end - 1
    return end


# --- the walk: content types, report types and the readable text --------------------------------------------

_ENCAPSULATED = frozenset({"message/rfc822", "message/global", "message/news"})
_ORIGINALS = frozenset({"message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers"})
_REPORT_FIELDS = frozenset(
    {
        "message/delivery-status",
        "message/global-delivery-status",
        "message/disposition-notification",
        "message/global-disposition-notification",
    }
)


@dataclass
class _Walk:
    parts: list[str]
    report_types: list[str]
    plain: list[_Entity]
    html: list[_Entity]
    report_parts: list[_Entity]


def _walk(data: bytes, top: _Entity, limits: ParseLimits) -> _Walk:
    """Depth-first over the MIME tree with an explicit stack: deep nesting costs no recursion."""
    walk = _Walk(parts=[], report_types=[], plain=[], html=[], report_parts=[])
    stack = [top]
    while stack and len(walk.parts) < limits.max_parts:
        entity = stack.pop()
        ctype = entity.content_type
        walk.parts.append(ctype)
        if ctype == "multipart/report":
            walk.report_types.append(entity.param("report-type"))
        if ctype in _ORIGINALS or ctype in _REPORT_FIELDS:
            walk.report_parts.append(entity)
        if entity.headers.get_content_maintype() == "multipart":
            if entity.depth < limits.max_depth:
                budget = limits.max_parts - len(walk.parts) - len(stack)
                stack.extend(reversed(_children(data, entity, budget, limits)))
        elif ctype not in _ENCAPSULATED and not entity.is_attachment:
            _collect_text(walk, entity)
    return walk


def _collect_text(walk: _Walk, entity: _Entity) -> None:
    if entity.content_type == "text/plain":
        walk.plain.append(entity)
    elif entity.content_type == "text/html":
        walk.html.append(entity)


def _readable_text(data: bytes, walk: _Walk, limits: ParseLimits) -> str:
    budget = limits.max_text_chars
    plain = _joined_bodies(data, walk.plain, budget)
    if plain.strip() or not walk.html:
        return _normalised_text(plain, budget)
    html = _joined_bodies(data, walk.html, limits.max_html_chars)
    return _normalised_text(_html_to_text(html[: limits.max_html_chars]), budget)


def _joined_bodies(data: bytes, entities: list[_Entity], budget: int) -> str:
    texts: list[str] = []
    for entity in entities:
        texts.append(_decoded_body(data, entity, budget * 8))
        if sum(map(len, texts)) >= budget:
            break
    return "\n".join(texts)


def _decoded_body(data: bytes, entity: _Entity, max_bytes: int) -> str:
    payload = _transfer_decoded(data[entity.body_start : min(entity.end, entity.body_start + max_bytes)], entity)
    charset = entity.param("charset") or (_meta_charset(payload) if entity.content_type == "text/html" else "")
    return _bytes_to_text(payload, charset)


def _transfer_decoded(payload: bytes, entity: _Entity) -> bytes:
    encoding = entity.header("content-transfer-encoding")
    if encoding == "base64":
        return _base64(payload)
    if encoding == "quoted-printable":
        return binascii.a2b_qp(payload)
    return payload


def _base64(payload: bytes) -> bytes:
    try:
        return binascii.a2b_base64(payload)
    except binascii.Error:
        alphabet = re.sub(rb"[^A-Za-z0-9+/]", b"", payload)
        alphabet = alphabet[: len(alphabet) - (len(alphabet) % 4 == 1)]
        return binascii.a2b_base64(alphabet + b"=" * (-len(alphabet) % 4))


_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?([A-Za-z0-9_.:-]{1,40})""", re.IGNORECASE)


def _meta_charset(payload: bytes) -> str:
    match = _META_CHARSET.search(payload, 0, 4096)
    return match.group(1).decode("ascii").lower() if match else ""


def _html_to_text(html: str) -> str:
    converter = html2text.HTML2Text()
    converter.body_width = 0
    converter.ignore_images = True
    converter.ignore_emphasis = True
    converter.ignore_mailto_links = True
    converter.skip_internal_links = True
    converter.unicode_snob = True
    try:
        return str(converter.handle(html))
    except Exception:  # html.parser and html2text raise assorted errors on hostile markup
        return re.sub(r"<[^>]*>", " ", re.sub(r"(?is)<(script|style|head)\b.*?</\1\s*>", " ", html))


_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _normalised_text(text: str, limit: int) -> str:
    text = _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))
    lines = (line.rstrip() for line in text.split("\n"))
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")
    return text[:limit]


# --- charsets -----------------------------------------------------------------------------------------------

# Labels that in practice mean a larger charset (as browsers read them, WHATWG Encoding).
_SUPERSETS = {
    "iso-8859-1": "cp1252",
    "iso8859-1": "cp1252",
    "iso_8859-1": "cp1252",
    "latin1": "cp1252",
    "latin-1": "cp1252",
    "iso-8859-9": "cp1254",
    "iso-8859-11": "cp874",
    "tis-620": "cp874",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "shift_jis": "cp932",
    "shift-jis": "cp932",
    "sjis": "cp932",
    "x-sjis": "cp932",
    "windows-31j": "cp932",
    "euc-kr": "cp949",
    "ks_c_5601-1987": "cp949",
    "big5": "big5hkscs",
    "iso-8859-8-i": "iso-8859-8",
}
_UNTRUSTED = frozenset({"", "us-ascii", "ascii", "ansi_x3.4-1968", "unknown-8bit", "x-unknown", "default"})


def _codec(charset: str) -> str | None:
    """A Python text codec for a MIME charset label, or ``None`` when it is unknown or says nothing."""
    label = charset.strip().strip("\"'").split("*", 1)[0].lower()
    if label in _UNTRUSTED or len(label) > 40:
        return None
    name = _SUPERSETS.get(label, label)
    try:
        b"".decode(name)
    except (LookupError, ValueError):
        return None
    return name


def _bytes_to_text(payload: bytes, charset: str) -> str:
    """Decode with the declared charset, then UTF-8, then Windows-1252; never raises."""
    codec = _codec(charset)
    for name in filter(None, (codec, "utf-8")):
        try:
            return payload.decode(name)
        except (UnicodeError, LookupError, ValueError):
            continue
    if codec is not None:
        try:
            return payload.decode(codec, "replace")
        except (UnicodeError, LookupError, ValueError):
            pass
    return _legacy_text(payload)


def _legacy_text(payload: bytes) -> str:
    try:
        return payload.decode("cp1252")
    except UnicodeError:
        return payload.decode("latin-1")


# --- headers ------------------------------------------------------------------------------------------------

_SURROGATE = re.compile("[\udc80-\udcff]")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,80})\?([bBqQ])\?([^?]*?)\?=")


def _clean(value: str) -> str:
    """Undo the parser's escaping of raw 8-bit bytes (UTF-8, else Windows-1252); drop control characters."""
    if _SURROGATE.search(value):
        raw = value.encode("utf-8", "surrogateescape")
        try:
            value = raw.decode("utf-8")
        except UnicodeError:
            value = _legacy_text(raw)
    return _CONTROL.sub("", value.replace("\t", " "))


def _unfolded(value: str) -> str:
    return _clean(_FOLD.sub("", value)).replace("\r", " ").replace("\n", " ")


def decode_words(text: str) -> str:
    """RFC 2047 decoding that never raises: whitespace between adjacent encoded words is dropped (§6.2) and
    their bytes are joined before decoding when they share a charset; bad words decode as best they can."""
    out: list[str] = []
    run: list[tuple[str, bytes]] = []
    position = 0
    for match in _ENCODED_WORD.finditer(text):
        between = text[position : match.start()]
        if between.strip() or not run:
            out.extend(_bytes_to_text(chunk, charset) for charset, chunk in run)
            run.clear()
            out.append(between)
        charset, chunk = match.group(1).split("*", 1)[0].lower(), _word_bytes(match.group(2), match.group(3))
        if run and run[-1][0] == charset:
            run[-1] = (charset, run[-1][1] + chunk)
        else:
            run.append((charset, chunk))
        position = match.end()
    out.extend(_bytes_to_text(chunk, charset) for charset, chunk in run)
    out.append(text[position:])
    return "".join(out)


def _word_bytes(encoding: str, text: str) -> bytes:
    raw = text.encode("utf-8", "surrogateescape")
    if encoding in "bB":
        return _base64(raw)
    return binascii.a2b_qp(raw, header=True)


def _header_text(value: str) -> str:
    return decode_words(_unfolded(value)).strip()


_Fields = dict[str, list[str]]


def _fields(headers: Message) -> _Fields:
    """Raw values by lower-case name (compat32's ``get_all`` would turn 8-bit values into lossy objects)."""
    fields: _Fields = {}
    for name, value in headers.raw_items():
        fields.setdefault(name.strip().lower(), []).append(str(value))
    return fields


def _first_text(fields: _Fields, name: str) -> str:
    values = fields.get(name)
    return _header_text(values[0]) if values else ""


def _all_headers(headers: Message) -> tuple[tuple[str, str], ...]:
    return tuple((_clean(name).strip().lower(), _header_text(str(value))) for name, value in headers.raw_items())


# --- addresses ----------------------------------------------------------------------------------------------

_MAX_ADDRESS = 320
_MAX_NAME = 200


def _mailboxes(values: Iterable[str]) -> list[Address]:
    found = []
    for value in values:
        for name, email in _address_pairs(_unfolded(value)):
            email = email.strip().lower()
            if email and len(email) <= _MAX_ADDRESS:
                found.append(Address(email=email, name=_display_name(name)))
    return found


def _address_pairs(value: str) -> list[tuple[str, str]]:
    pairs = _getaddresses(value)
    if "=?" in value and not any("@" in email for _, email in pairs):
        pairs = _getaddresses(decode_words(value))  # a client that encoded the whole header, address included
    return pairs


def _getaddresses(value: str) -> list[tuple[str, str]]:
    try:
        return getaddresses([value])
    except (ValueError, IndexError, TypeError):  # it has raised on hostile input in past releases
        return []


def _display_name(name: str) -> str:
    decoded = decode_words(name).strip()
    return re.sub(r"\s+", " ", decoded.replace('"', "")).strip(" '")[:_MAX_NAME]


def _return_path(fields: _Fields) -> str | None:
    values = fields.get("return-path")
    if not values:
        return None
    mailboxes = _mailboxes(values[:1])
    return mailboxes[0].email if mailboxes else ""


def _recipients(fields: _Fields) -> tuple[str, ...]:
    names = ("to", "cc", "delivered-to", "x-original-to", "envelope-to")
    emails = (mailbox.email for name in names for mailbox in _mailboxes(fields.get(name, [])))
    return tuple(dict.fromkeys(emails))


def _first_mailbox(fields: _Fields, name: str) -> Address | None:
    mailboxes = _mailboxes(fields.get(name, [])[:1])
    return mailboxes[0] if mailboxes else None


# --- Message-IDs, date, language ----------------------------------------------------------------------------

_BRACKETED = re.compile(r"<([^<>]*)>")
_BARE_ID = re.compile(r"[^\s<>@]+@[^\s<>@]+")
_PRINTABLE_ID = re.compile(r"[!-~\u00a0-\U0010ffff]{1,998}")


def _message_ids(values: Iterable[str]) -> list[str]:
    """Message-IDs without brackets or whitespace, in order, duplicates and garbage dropped."""
    found: dict[str, None] = {}
    for value in values:
        text = _unfolded(value)
        candidates = [re.sub(r"\s+", "", token) for token in _BRACKETED.findall(text)]
        if not candidates:
            candidates = [token.strip(",;") for token in _BARE_ID.findall(text)]
        found.update(dict.fromkeys(token for token in candidates if _PRINTABLE_ID.fullmatch(token)))
    return list(found)


def _date(fields: _Fields) -> datetime | None:
    text = _first_text(fields, "date")
    if not text:
        return None
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*")


def _language(top: _Entity, walk: _Walk) -> str | None:
    candidates = [top.headers] + [entity.headers for entity in walk.plain + walk.html]
    for headers in candidates:
        value = headers.get("content-language")
        first = _header_text(str(value)).split(",")[0].strip() if value else ""
        if _LANGUAGE_TAG.fullmatch(first) and len(first) <= 35:
            return _canonical_language(first)
    return None


def _canonical_language(tag: str) -> str:
    language, *subtags = tag.split("-")
    shaped = [s.upper() if len(s) == 2 else s.title() if len(s) == 4 else s.lower() for s in subtags]
    return "-".join([language.lower(), *shaped])


# --- reports: what a report quotes of the original, read as syntax (the meaning: daemon.mail.reports) -------

_BLANK_LINES = re.compile(rb"\r?\n(?:[ \t]*\r?\n)+")
_MAX_FIELD_GROUPS = 101  # a per-message group and 100 recipients
_ORIGINAL_ID_FIELDS = ("original-message-id", "x-original-message-id")  # RFC 8098; Gmail's delivery-status
_QUOTED_ID_CHARS = 50_000
_QUOTED_MESSAGE_ID = re.compile(r"^[ \t>]*message-id:[ \t]*((?:\n[ \t]+)?[^\n]*)", re.IGNORECASE | re.MULTILINE)


def _clues(data: bytes, walk: _Walk, fields: _Fields, text: str, limits: ParseLimits) -> Clues:
    originals, groups = _read_report_parts(data, walk, limits)
    return Clues(
        original_ids=_original_ids(originals, groups),
        original_threads=_original_threads(originals, limits),
        quoted_ids=tuple(_message_ids(_QUOTED_MESSAGE_ID.findall(text[:_QUOTED_ID_CHARS]))),
        field_groups=tuple(groups),
        listed_failures=tuple(mailbox.email for mailbox in _mailboxes(fields.get("x-failed-recipients", []))),
    )


def _read_report_parts(data: bytes, walk: _Walk, limits: ParseLimits) -> tuple[list[_Fields], list[dict[str, str]]]:
    """The header fields of each attached original (never its body or MIME tree) and the field groups of the
    report parts, in the order of the walk, until ``max_report_bytes`` have been parsed."""
    originals: list[_Fields] = []
    groups: list[dict[str, str]] = []
    budget = limits.max_report_bytes
    for entity in walk.report_parts[: limits.max_report_parts]:
        payload = _report_payload(data, entity, budget)
        if entity.content_type in _ORIGINALS:
            payload = payload[: _header_end(payload, 0, len(payload), len(payload))]
            originals.append(_header_fields(payload))
        else:
            groups += _field_groups(payload)[: _MAX_FIELD_GROUPS - len(groups)]
        budget -= len(payload)
        if budget <= 0:
            break
    return originals, groups


def _report_payload(data: bytes, entity: _Entity, max_bytes: int) -> bytes:
    raw = data[entity.body_start : min(entity.end, entity.body_start + max_bytes)]
    return _transfer_decoded(raw, entity).lstrip(b" \t\r\n")


def _header_fields(block: bytes) -> _Fields:
    header_end = _header_end(block, 0, len(block), len(block))
    return _fields(BytesHeaderParser(policy=compat32).parsebytes(block[:header_end]))


def _field_groups(payload: bytes) -> list[dict[str, str]]:
    """The blank-line separated field groups of a report part (RFC 3464 §2.1), first value of each field."""
    groups = []
    for block in _BLANK_LINES.split(payload, maxsplit=_MAX_FIELD_GROUPS)[:_MAX_FIELD_GROUPS]:
        fields = _header_fields(block)
        if fields:
            groups.append({name: _header_text(values[0]) for name, values in fields.items()})
    return groups


def _original_ids(originals: list[_Fields], groups: list[dict[str, str]]) -> tuple[str, ...]:
    attached = [mid for fields in originals for mid in _message_ids(fields.get("message-id", [])[:1])[:1]]
    named = _message_ids(group[name] for group in groups for name in _ORIGINAL_ID_FIELDS if name in group)
    return (*attached, *named)


def _original_threads(originals: list[_Fields], limits: ParseLimits) -> tuple[str, ...]:
    """The In-Reply-To and References (newest first) of the originals."""
    threads: list[str] = []
    for fields in originals:
        threads += _message_ids(fields.get("in-reply-to", []))
        threads += reversed(_message_ids(fields.get("references", []))[-limits.max_references :])
    return tuple(threads)


# --- fingerprint --------------------------------------------------------------------------------------------

_FINGERPRINT_FIELDS = ("message-id", "from", "date", "subject")


def _fingerprint(data: bytes, top: _Entity, fields: _Fields) -> str:
    """Stable across re-deliveries (no trace fields in it; line endings normalised), different for two
    messages that share a broken Message-ID (the body and the other fields are in it)."""
    digest = hashlib.sha256()
    for name in _FINGERPRINT_FIELDS:
        for value in fields.get(name, []):
            token = " ".join(_FOLD.sub("", value).split()).encode("utf-8", "surrogateescape")
            digest.update(b"%s:%d:%s\n" % (name.encode(), len(token), token))
    digest.update(data[top.body_start :].replace(b"\r\n", b"\n").rstrip(b"\n"))
    return digest.hexdigest()


# --- assembly -----------------------------------------------------------------------------------------------


def _inbound(data: bytes, top: _Entity, limits: ParseLimits) -> InboundMessage:
    fields = _fields(top.headers)
    walk = _walk(data, top, limits)
    message_ids = _message_ids(fields.get("message-id", [])[:1])
    message = InboundMessage(
        fingerprint=_fingerprint(data, top, fields),
        message_id=message_ids[0] if message_ids else None,
        in_reply_to=tuple(_message_ids(fields.get("in-reply-to", []))),
        references=tuple(_message_ids(fields.get("references", []))[-limits.max_references :]),
        sender=_first_mailbox(fields, "from"),
        reply_to=_first_mailbox(fields, "reply-to"),
        recipients=_recipients(fields),
        subject=_first_text(fields, "subject"),
        date=_date(fields),
        text=_readable_text(data, walk, limits),
        headers=_all_headers(top.headers),
        return_path=_return_path(fields),
        parts=tuple(walk.parts),
        report_types=tuple(walk.report_types),
        language=_language(top, walk),
        size=len(data),
    )
    report = read_report(message, _clues(data, walk, fields, message.text, limits))
    return replace(
        message,
        cited_ids=report.cited_ids,
        delivery_action=report.delivery_action,
        failed_recipients=report.failed_recipients,
    )


# --- first names --------------------------------------------------------------------------------------------


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_TITLES = _words(
    "mr mrs ms miss mx dr doctor prof professor sir dame madam madame rev fr herr frau mme mlle sr sra srta "
    "dott ing mag dipl"
)
_SUFFIXES = _words("jr sr ii iii iv phd md esq mba dds cpa")
_ROLE_WORDS = _words(
    "team support service services customer customers care help helpdesk desk info information sales admin "
    "administrator billing accounts accounting account office reception noreply no-reply donotreply "
    "mailer daemon postmaster webmaster hostmaster abuse security newsletter news notifications notification "
    "alerts alert "
    "system systems department dept group staff hr marketing shop store orders order inc ltd llc gmbh ag co "
    "company corp corporation foundation the contact enquiries inquiries operations ops it mail delivery "
    "subsystem bot robot automated auto reply portal"
)
_NAME_WORD = re.compile(r"[^\W\d_]{2,}(?:[-'’][^\W\d_]+)*")
_UNSURE_SCRIPTS = re.compile(r"[\u3040-\u30ff\u3400-\u9fff\uac00-\ud7af\uf900-\ufaff]")


def first_name_of(display_name: str) -> str:
    """The first name to greet someone by, from a display name; ``""`` when unsure.

    ``"Jane Doe"``, ``"Doe, Jane"`` and ``"Dr. Jane Doe"`` give ``"Jane"``; so do ``"jane.doe"`` and that
    address. Role names (``"Support Team"``), a title before a lone family name (``"Mr. Smith"``), initials,
    digits, and scripts that write the family name first (Chinese, Japanese, Korean) give ``""``. All-lower-
    and all-upper-case names are capitalised.
    """
    name = _CONTROL.sub("", display_name).replace('"', "").strip()
    if "@" in name:
        name = name.split("@", 1)[0]
        return _dotted_first_name(name) if "." in name or "_" in name else ""
    if not name or _UNSURE_SCRIPTS.search(name):
        return ""
    if " " not in name and ("." in name or "_" in name):
        return _dotted_first_name(name)
    words = _name_words(re.sub(r"\([^)]*\)", " ", name))
    untitled = [w for w in words if w.strip(".").lower() not in _TITLES]
    if len(untitled) < len(words) and len(untitled) < 2:
        return ""  # "Mr. Smith": a title before one word is a family name
    return _given_name(untitled)


def _name_words(name: str) -> list[str]:
    if "," in name:
        before, after = (part.strip() for part in name.split(",", 1))
        after_words = [w for w in after.split() if w.strip(".").lower() not in _SUFFIXES]
        name = " ".join(after_words) if after_words else before
    return [w.strip("'’") for w in name.split() if w.strip("'’")]


def _given_name(words: list[str]) -> str:
    if not words or any(w.strip(".,()").lower() in _ROLE_WORDS for w in words):
        return ""
    first = words[0]
    return _capitalised(first) if _NAME_WORD.fullmatch(first) else ""


def _dotted_first_name(name: str) -> str:
    pieces = re.split(r"[._]", name)
    if len(pieces) < 2 or not all(_NAME_WORD.fullmatch(p) for p in pieces):
        return ""
    return _given_name(pieces)


def _capitalised(word: str) -> str:
    if word.islower() or word.isupper():
        return re.sub(r"[^\W\d_]+", lambda m: m.group(0).capitalize(), word)
    return word
