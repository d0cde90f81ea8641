"""The new words of a reply: quoted history and signatures removed.

Used twice: to read what a customer wrote back to one of our touches, and to take a staff member's outcome
text from their email reply to a notification. Both only want the text typed above (or between) the quotes.

Why `mail-parser-reply` (``mailparser_reply``): quote headers are the hard part, and they differ per client
*and* per language (Gmail's ``Am … schrieb …:``, Outlook's ``Von:/Gesendet:`` and ``De :/Envoyé :``
blocks, Apple Mail's ``Le … a écrit :``). Hand-written regexes here would grow into a worse copy of that
library. `email-reply-parser` (Zapier's port of GitHub's parser) only knows English: on the sample replies
in ``tests/unit/test_quotes.py`` it left the German and French attribution lines, the whole ``Von:``/
``De :`` Outlook blocks with the quoted text under them, and the ``Viele Grüße`` / ``Mit freundlichen
Grüßen`` / ``Cordialement`` signatures in the "reply", and it kept ``Get Outlook for iOS``.
`mail-parser-reply` handled all of those; what it misses is covered here by three small guards:

* lines starting with ``>`` are always dropped (the library keeps them when the new words come after or
  between the quotes; inline answers survive), together with an attribution line just above them that the
  library did not know (Spanish and Dutch Gmail; Portuguese, which the library does not have at all);
* mobile "sent from" lines it does not know (``Von meinem iPhone gesendet``, ``Envoyé de mon iPhone``);
* its sign-off rule cuts at any line starting with ``Thanks,`` or ``Thank you,``, which would throw away
  ``Thanks, everything works now.``: a sign-off followed on the same line by lower-case words is a
  sentence, not a signature, and is kept.

The library's regexes are quadratic in line length and in runs of blank lines, so it only ever sees a
bounded text: the first :data:`MAX_CHARS` characters, runs of blank lines collapsed, and lines longer than
:data:`MAX_LINE_CHARS` hidden behind placeholders (put back afterwards). Worst case stays around a second
for adversarial input; real replies take milliseconds.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from mailparser_reply.constants import MAIL_LANGUAGES
from mailparser_reply.parser import EmailMessage

MAX_CHARS = 100_000
"""Only the start of a reply is examined; new words come first, history last."""

MAX_LINE_CHARS = 256
"""Longer lines are never quote headers; the library only sees a placeholder for them."""

DEFAULT_LANGUAGES: tuple[str, ...] = ("en", "de", "fr", "es", "nl", "it", "pt")
"""Header and signature languages; ones the library does not know (``pt`` in 1.36) are skipped."""

_QUOTED_LINE = re.compile(r"^[ \t]*>")
_BLANK_RUN = re.compile(r"\n{3,}")
_PLACEHOLDER = re.compile("\ue000(\\d+)\ue001")

# Mobile and webmail footers the library misses: the whole line, at most five words after the opener.
_SENT_FROM = re.compile(
    r"^(?:sent from|sent with|get outlook for|von meinem|gesendet von|envoy[ée] de(?:puis)?"
    r"|enviado desde|enviado do|enviado de|verstuurd vanaf|verzonden (?:vanaf|met)|inviato da)"
    r"(?:\s+\S+){1,5}$",
    re.IGNORECASE,
)

# "El lun, 1 dic 2025, Ana <ana@example.org> escribió:": ends with ":" and names a date or an address.
_ATTRIBUTION = re.compile(r"(?=.*[\d@]).{8,300}:$")

# "Thanks, everything works now.": a sign-off followed by a lower-case word is a sentence, not a signature.
_SIGN_OFF_SENTENCE = re.compile(r"^(?:> ?)*[^,]{1,30},\s*[a-zà-ÿ]")

# The salutation a message opens with ("Hello,", "Hi Alex!", "Dear support team,", "Guten Tag,"): not what they
# wrote about, so the excerpt starts after it.
_GREETING = re.compile(
    r"^(hi|hello|hey|hiya|dear|greetings|good (morning|afternoon|evening|day)|to whom it may concern|"
    r"hallo|moin|servus|guten (tag|morgen|abend)|liebe[rs]?|sehr geehrte[rs]?|bonjour|salut|hola|buongiorno|ciao)"
    r"\b(?P<rest>.*)$",
    re.IGNORECASE,
)
_GREETING_END = re.compile(r"^[^,!:.]{0,40}[,!:.]\s*")

_SIGNATURE_TRIES = 5
"""How many sentence-like sign-offs are skipped before giving up on finding a signature."""


def latest_reply(text: str, *, languages: Sequence[str] = DEFAULT_LANGUAGES) -> str:
    """The new words of ``text``, without quoted history and signatures.

    Total and pure: any ``str`` in, a ``str`` out. Returns ``""`` when the message holds nothing but
    quotation, and the whitespace-stripped original when the library fails or finds nothing at all.
    """
    bounded = _bounded(text)
    try:
        parsed = _parse(bounded, languages)
    except Exception:  # a third-party regex engine on untrusted mail must never stop intake
        return bounded.strip()
    if not parsed:
        return bounded.strip()
    return _drop_footers(_drop_quotes(parsed)).strip()


def _bounded(text: str) -> str:
    text = text[:MAX_CHARS].replace("\r\n", "\n").replace("\r", "\n")
    lines = [line.strip() for line in text.split("\n")]
    return _BLANK_RUN.sub("\n\n", "\n".join(lines))


def _parse(text: str, languages: Sequence[str]) -> str:
    """The first reply of ``text`` as the library splits it, signatures and disclaimers removed."""
    hidden, long_lines = _hide_long_lines(text)
    known = [language for language in languages if language in MAIL_LANGUAGES]
    message = EmailMessage(text=hidden, languages=known, keep_hyphen_lists=True).read()
    if not message.replies:
        return ""
    reply = message.replies[0]
    body = reply.content.replace(reply.headers or "", "")
    body = _without_signature(body, message.SIGNATURE_REGEX)
    for disclaimer in reply.disclaimers or ():
        body = body.replace(disclaimer, "")
    return _PLACEHOLDER.sub(lambda match: long_lines[int(match.group(1))], body).strip()


def _hide_long_lines(text: str) -> tuple[str, list[str]]:
    long_lines: list[str] = []
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if len(line) > MAX_LINE_CHARS:
            lines[index] = f"\ue000{len(long_lines)}\ue001"
            long_lines.append(line)
    return "\n".join(lines), long_lines


def _without_signature(body: str, signature: re.Pattern[str]) -> str:
    """``body`` cut at the first signature the library finds that is not a sentence."""
    start = 0
    for _ in range(_SIGNATURE_TRIES):
        match = signature.search(body, start)
        if match is None:
            return body
        text_start = match.start() + len(match.group()) - len(match.group().lstrip())
        line_end = body.find("\n", text_start)
        if not _SIGN_OFF_SENTENCE.match(body[text_start : line_end if line_end >= 0 else len(body)]):
            return body[: match.start()]
        if line_end < 0:
            return body
        start = line_end + 1
    return body


def _drop_quotes(text: str) -> str:
    """``text`` without ``>`` lines and without an attribution line just above a quote block."""
    lines = text.split("\n")
    quoted = [bool(_QUOTED_LINE.match(line)) for line in lines]
    keep = [not is_quoted for is_quoted in quoted]
    for index in range(len(lines)):
        if quoted[index] and (index == 0 or not quoted[index - 1]):
            _drop_attribution_above(lines, keep, index)
    return "\n".join(line for line, kept in zip(lines, keep, strict=True) if kept)


def _drop_attribution_above(lines: list[str], keep: list[bool], quote_start: int) -> None:
    above = quote_start - 1
    while above >= 0 and keep[above] and not lines[above]:
        above -= 1
    if above < 0 or not keep[above] or not _ATTRIBUTION.match(lines[above]):
        return
    keep[above] = False
    if above > 0 and lines[above - 1].endswith("<"):
        keep[above - 1] = False  # Gmail wraps "…, Ana <" / "ana@example.org> escribió:"


def _drop_footers(text: str) -> str:
    return "\n".join(line for line in text.split("\n") if not _SENT_FROM.match(line.strip()))


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


__all__ = ["DEFAULT_LANGUAGES", "MAX_CHARS", "MAX_LINE_CHARS", "latest_reply", "without_greeting"]


SIGN_OFF_WORDS = frozenset(
    {
        "cheers", "thanks", "thank you", "many thanks", "best", "best wishes", "best regards", "regards",
        "kind regards", "warm regards", "all the best", "br", "viele grüße", "gruß", "grüße", "liebe grüße",
        "mfg", "cordialement", "bien à vous", "merci", "saludos", "groeten",
    }
)  # fmt: skip


def without_sign_off(text: str, names: Sequence[str]) -> str:
    """``text`` without a closing sign-off block: trailing lines that are a sign-off word ("Cheers", "Best")
    or the writer's own name (any of ``names``, e.g. "Sam" or "Sam Rivera"), however they are punctuated.

    Used for an outcome a staff member emails: the customer reads the team's words, not the colleague's
    signature. Stops at the first line that is neither, so a sentence is never cut.
    """
    own = {_bare(name) for name in names if name.strip()}
    lines = text.rstrip().split("\n")
    while len(lines) > 1 and (_bare(lines[-1]) in own | SIGN_OFF_WORDS or not lines[-1].strip()):
        lines.pop()
    return "\n".join(lines).rstrip()


def _bare(line: str) -> str:
    return " ".join(re.sub(r"[^\w\s]", " ", line.lower()).split())
