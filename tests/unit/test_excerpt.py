"""The excerpt templates quote back to the customer: what they wrote about, not how they said hello."""

from __future__ import annotations

import pytest

from daemon.context import EXCERPT_CHARS, excerpt


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Hello,\n\nI received invoice 2026-114 today.\n\nJane", "I received invoice 2026-114 today."),
        ("Hi Alex!\nThe export crashes at 10,000 rows.", "The export crashes at 10,000 rows."),
        ("Dear support team,\n\nmy parcel is late.", "my parcel is late."),
        ("Good morning,\nI need help with my account.", "I need help with my account."),
        ("Guten Tag,\n\ndie Rechnung ist falsch.", "die Rechnung ist falsch."),
        ("Bonjour !\n\nLa facture est fausse.", "La facture est fausse."),
        ("Hello, I was charged twice for my order last week.", "I was charged twice for my order last week."),
        ("Hiya folks, quick one: can I change my plan?", "quick one: can I change my plan?"),
    ],
)
def test_the_greeting_is_not_the_excerpt(text: str, expected: str) -> None:
    assert excerpt(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Delivery is late and nobody answers the phone.",
        "Hi there is a bug in the export when I click save",  # no comma: not a greeting line
        "Dearest colleagues at the warehouse lost my parcel again",
        "Hello world example from your docs fails with an error on line 3 of the script",
    ],
)
def test_a_first_line_that_only_starts_like_a_greeting_is_kept(text: str) -> None:
    assert excerpt(text) == text


def test_a_message_that_is_only_a_greeting_has_no_excerpt() -> None:
    assert excerpt("Hello,\n\n") == ""
    assert excerpt("Hi") == ""


def test_quoted_history_is_not_the_excerpt() -> None:
    text = "Hi,\n\nStill broken, sorry.\n\nOn Mon, 23 Nov 2026, Support <support@example.org> wrote:\n> Fixed now."
    assert excerpt(text) == "Still broken, sorry."


def test_a_long_paragraph_is_cut_at_a_word_with_an_ellipsis() -> None:
    cut = excerpt("Hello,\n\n" + "the parcel arrived damaged again " * 30)
    assert cut.endswith("…")
    assert len(cut) <= EXCERPT_CHARS + 1
    assert cut.startswith("the parcel arrived damaged again")
    assert not cut[:-1].endswith(" ")
