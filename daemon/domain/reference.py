"""Loop references: short, human, unique (``CL-7K3P``), derived from the loop's row id.

The id is scrambled by an affine bijection on ``32**width`` so consecutive loops do not get consecutive
references, then written in Crockford's base 32 (no I, L, O, U: nothing to misread on a phone). Four characters
cover the first million loops; the reference grows by a character each time the ids outgrow a width, and a
bijection per width means two ids never share a reference.
"""

from __future__ import annotations

import re

PREFIX = "CL-"
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MIN_WIDTH = 4
_MULTIPLIER = 0x5BD1E995 | 1  # odd, hence invertible modulo any power of two
_OFFSET = 0x2F6B

SUBJECT_REF = re.compile(r"\[(CL-[0-9A-HJKMNP-TV-Z]{4,10})\]", re.IGNORECASE)
PLUS_REF = re.compile(r"^cl-([0-9a-hjkmnp-tv-z]{4,10})$", re.IGNORECASE)


def ref_for(loop_id: int) -> str:
    """The reference of the loop with row id ``loop_id`` (a positive integer)."""
    if loop_id < 1:
        raise ValueError(f"loop ids start at 1, got {loop_id}")
    width = MIN_WIDTH
    while loop_id >= 32**width:
        width += 1
    scrambled = (loop_id * _MULTIPLIER + _OFFSET) % 32**width
    digits = []
    for _ in range(width):
        scrambled, digit = divmod(scrambled, 32)
        digits.append(ALPHABET[digit])
    return PREFIX + "".join(reversed(digits))


def loop_id_for(ref: str) -> int | None:
    """The row id behind a reference, or ``None`` when ``ref`` is not one :func:`ref_for` could produce."""
    body = ref.upper().removeprefix(PREFIX)
    if len(body) < MIN_WIDTH or len(body) > 12 or any(c not in ALPHABET for c in body):
        return None
    width = len(body)
    scrambled = 0
    for char in body:
        scrambled = scrambled * 32 + ALPHABET.index(char)
    modulus = 32**width
    loop_id = ((scrambled - _OFFSET) * pow(_MULTIPLIER, -1, modulus)) % modulus
    smallest = 1 if width == MIN_WIDTH else 32 ** (width - 1)
    return loop_id if loop_id >= smallest else None


def refs_in_subject(subject: str) -> tuple[str, ...]:
    """Every ``[CL-XXXX]`` token in a subject, upper-cased, in order."""
    return tuple(match.upper() for match in SUBJECT_REF.findall(subject))


def ref_from_plus_tag(tag: str | None) -> str | None:
    """The reference in a plus address tag (``support+cl-7k3p@…`` has tag ``cl-7k3p``)."""
    if tag is None:
        return None
    match = PLUS_REF.match(tag)
    return PREFIX + match.group(1).upper() if match else None


def plus_tag_for(ref: str) -> str:
    return ref.lower()
