"""The quote stripper on replies as real clients write them, and its guards (bounded, total)."""

from __future__ import annotations

import random

import pytest

from daemon.mail import quotes
from daemon.mail.quotes import MAX_CHARS, MAX_LINE_CHARS, latest_reply, without_sign_off

GMAIL = """Thanks, that fixed it!

On Mon, Dec 1, 2025 at 10:02 AM Anna from Acme <support@acme.example> wrote:
> Hi Bob,
>
> we changed the export settings. Could you try again?
>
> Anna
"""

GMAIL_WRAPPED_HEADER = """Works now, thank you.

On Mon, Dec 1, 2025 at 10:02 AM Anna Lindqvist from Acme Support <
support+7K3P@acme.example> wrote:

> Hi Bob,
> we changed the export settings.
"""

OUTLOOK_DESKTOP = """Hi Anna,

the export still fails with error 500.

Best regards,
Bob Smith
Example Ltd. | +44 20 7946 0000

________________________________
From: Anna from Acme <support@acme.example>
Sent: Monday, December 1, 2025 10:02 AM
To: Bob Smith <bob@example.com>
Subject: Re: Export broken [CL-7K3P]

Hi Bob,
we changed the export settings.
"""

OUTLOOK_ORIGINAL_MESSAGE = """All good now.

-----Original Message-----
From: Anna from Acme [mailto:support@acme.example]
Sent: Monday, December 01, 2025 10:02 AM
To: Bob Smith
Subject: RE: Export broken

Hi Bob, could you try again?
"""

OUTLOOK_IOS = """Yes, feel free to check back.

Get Outlook for iOS<https://aka.ms/o0ukef>
________________________________
From: Anna from Acme <support@acme.example>
Sent: Monday, December 1, 2025 10:02:33 AM
To: bob@example.com <bob@example.com>
Subject: Re: Export broken

Hi Bob,
"""

OUTLOOK_WEB_NO_SEPARATOR = """Sorry, one more thing: the PDF has no logo.

From: Anna from Acme <support@acme.example>
Sent: Monday, December 1, 2025 10:02
To: Bob Smith <bob@example.com>
Subject: Re: Export broken

Hi Bob,
"""

APPLE_MAIL_IPHONE = """No issues since, thanks!

Sent from my iPhone

> On 1 Dec 2025, at 10:02, Anna from Acme <support@acme.example> wrote:
>
> Hi Bob,
> how are things now?
"""

THUNDERBIRD_BOTTOM_POST = """On 01/12/2025 10:02, Anna from Acme wrote:
> Hi Bob,
> how are things now?

Everything is great, thanks!

--
Bob Smith
Example Ltd.
""".replace("\n--\n", "\n-- \n")  # the signature delimiter, with its trailing space

THUNDERBIRD_GERMAN = """Läuft alles bestens, danke!

Viele Grüße
Bob

Am 01.12.25 um 10:02 schrieb Anna von Acme:
> Hallo Bob,
> wie läuft es inzwischen?
"""

GMAIL_GERMAN = """Alles gut, danke!

Am Mo., 1. Dez. 2025 um 10:02 Uhr schrieb Anna von Acme <
support@acme.example>:

> Hallo Bob,
> wie läuft es inzwischen?
"""

OUTLOOK_GERMAN = """Leider geht der Export immer noch nicht.

Mit freundlichen Grüßen
Bob Schmidt

Von: Anna von Acme <support@acme.example>
Gesendet: Montag, 1. Dezember 2025 10:02
An: Bob Schmidt <bob@example.com>
Betreff: AW: Export kaputt

Hallo Bob,
"""

IPHONE_GERMAN = """Ja, gerne.

Von meinem iPhone gesendet

> Am 01.12.2025 um 10:02 schrieb Anna von Acme <support@acme.example>:
>
> Hallo Bob,
"""

GMAIL_FRENCH = """Tout fonctionne, merci !

Le lun. 1 déc. 2025 à 10:02, Anna de Acme <support@acme.example> a écrit :

> Bonjour Bob,
> comment ça va depuis ?
"""

OUTLOOK_FRENCH = """Tout va bien, merci.

Cordialement,
Bob

De : Anna de Acme <support@acme.example>
Envoyé : lundi 1 décembre 2025 10:02
À : Bob <bob@example.com>
Objet : RE: Export

Bonjour Bob,
"""

IPHONE_FRENCH = """Oui, avec plaisir.

Envoyé de mon iPhone

> Le 1 déc. 2025 à 10:02, Anna de Acme <support@acme.example> a écrit :
>
> Bonjour Bob,
"""

GMAIL_SPANISH = """Todo bien, gracias.

El lun, 1 dic 2025 a las 10:02, Anna de Acme (<support@acme.example>) escribió:

> Hola Bob,
"""

GMAIL_DUTCH = """Alles werkt weer, bedankt!

Op ma 1 dec 2025 om 10:02 schreef Anna van Acme <support@acme.example>:

> Hoi Bob,
"""

GMAIL_PORTUGUESE_WRAPPED = """Tudo certo, obrigado.

Em seg., 1 de dez. de 2025 às 10:02, Anna da Acme <
support@acme.example> escreveu:

> Olá Bob,
"""

ANDROID = """Sure, go ahead

Sent from my Galaxy

-------- Original message --------
From: Anna from Acme <support@acme.example>
Date: 01/12/2025 10:02 (GMT+00:00)
To: bob@example.com
Subject: Re: Export broken

Hi Bob,
"""

INLINE_ANSWERS = """> Did the new export fix it?
Yes, mostly.
> Anything else?
The PDF is still slow.
"""

NO_QUOTE = """Hello,

my invoice for November shows the wrong VAT number. Can you fix it?

- invoice 2025-11-004
- customer no. 1234

Thanks,
Bob
"""

STAFF_OUTCOME_REPLY = """We shipped a fix for the export in version 4.2: large reports no longer time out.
Thanks for telling us about it.

Anna

On Tue, Dec 2, 2025 at 9:00 AM closeloop <support@acme.example> wrote:
> New loop CL-7K3P from Bob Smith: "Export broken"
> Reply to this email with the outcome.
"""


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(GMAIL, "Thanks, that fixed it!", id="gmail"),
        pytest.param(GMAIL_WRAPPED_HEADER, "Works now, thank you.", id="gmail-wrapped-header"),
        pytest.param(OUTLOOK_DESKTOP, "Hi Anna,\n\nthe export still fails with error 500.", id="outlook-desktop"),
        pytest.param(OUTLOOK_ORIGINAL_MESSAGE, "All good now.", id="outlook-original-message"),
        pytest.param(OUTLOOK_IOS, "Yes, feel free to check back.", id="outlook-ios"),
        pytest.param(OUTLOOK_WEB_NO_SEPARATOR, "Sorry, one more thing: the PDF has no logo.", id="outlook-web"),
        pytest.param(APPLE_MAIL_IPHONE, "No issues since, thanks!", id="apple-mail-iphone"),
        pytest.param(THUNDERBIRD_BOTTOM_POST, "Everything is great, thanks!", id="thunderbird-bottom-post"),
        pytest.param(THUNDERBIRD_GERMAN, "Läuft alles bestens, danke!", id="thunderbird-de"),
        pytest.param(GMAIL_GERMAN, "Alles gut, danke!", id="gmail-de"),
        pytest.param(OUTLOOK_GERMAN, "Leider geht der Export immer noch nicht.", id="outlook-de"),
        pytest.param(IPHONE_GERMAN, "Ja, gerne.", id="iphone-de"),
        pytest.param(GMAIL_FRENCH, "Tout fonctionne, merci !", id="gmail-fr"),
        pytest.param(OUTLOOK_FRENCH, "Tout va bien, merci.", id="outlook-fr"),
        pytest.param(IPHONE_FRENCH, "Oui, avec plaisir.", id="iphone-fr"),
        pytest.param(GMAIL_SPANISH, "Todo bien, gracias.", id="gmail-es"),
        pytest.param(GMAIL_DUTCH, "Alles werkt weer, bedankt!", id="gmail-nl"),
        pytest.param(GMAIL_PORTUGUESE_WRAPPED, "Tudo certo, obrigado.", id="gmail-pt-wrapped"),
        pytest.param(ANDROID, "Sure, go ahead", id="android"),
        pytest.param(INLINE_ANSWERS, "Yes, mostly.\nThe PDF is still slow.", id="inline-answers"),
        pytest.param(
            NO_QUOTE,
            "Hello,\n\nmy invoice for November shows the wrong VAT number. Can you fix it?\n\n"
            "- invoice 2025-11-004\n- customer no. 1234",
            id="no-quote-keeps-hyphen-list",
        ),
        pytest.param(
            STAFF_OUTCOME_REPLY,
            "We shipped a fix for the export in version 4.2: large reports no longer time out.\n"
            "Thanks for telling us about it.\n\nAnna",
            id="staff-outcome",
        ),
    ],
)
def test_latest_reply_keeps_only_the_new_words(text: str, expected: str) -> None:
    assert latest_reply(text) == expected


def test_a_sign_off_followed_by_a_sentence_is_kept() -> None:
    text = "Hi Anna,\n\nThanks, everything works now.\n\nThank you, the team is happy too.\n\nRegards,\nBob"
    assert latest_reply(text) == "Hi Anna,\n\nThanks, everything works now.\n\nThank you, the team is happy too."


def test_a_sign_off_with_a_name_is_a_signature() -> None:
    assert latest_reply("The export works.\n\nThanks, Bob\nAcme Ltd.") == "The export works."


def test_windows_line_endings_are_read() -> None:
    assert latest_reply(GMAIL.replace("\n", "\r\n")) == "Thanks, that fixed it!"


def test_a_reply_of_nothing_but_quotation_has_no_new_words() -> None:
    assert latest_reply("On Mon, Dec 1, 2025 at 10:02 AM Anna <a@acme.example> wrote:\n> Hi Bob,\n> ok?\n") == ""


@pytest.mark.parametrize("text", ["", "   ", "\n\n\n", "\r\n"])
def test_empty_text_gives_empty_text(text: str) -> None:
    assert latest_reply(text) == ""


def test_only_the_first_max_chars_are_examined() -> None:
    assert len(latest_reply("x" * (MAX_CHARS * 3))) == MAX_CHARS


def test_a_long_line_of_new_words_survives_unchanged() -> None:
    long_line = "On and" + " so on and" * (MAX_LINE_CHARS // 8)
    assert latest_reply(f"{long_line}\n\n{GMAIL}") == f"{long_line}\n\nThanks, that fixed it!"


def test_runs_of_blank_lines_are_collapsed() -> None:
    assert latest_reply("First.\n\n\n\n\n\nSecond.") == "First.\n\nSecond."


def test_the_library_failing_gives_the_stripped_original(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(**_: object) -> object:
        raise RecursionError("regex engine gave up")

    monkeypatch.setattr(quotes, "EmailMessage", broken)
    assert latest_reply("  All good.\n> quoted\n") == "All good.\n> quoted"


def test_unknown_languages_are_ignored() -> None:
    assert latest_reply(GMAIL, languages=("xx", "EN", "")) == "Thanks, that fixed it!"


def test_any_text_gives_text() -> None:
    rng = random.Random(20251201)
    pieces = ["On ", " wrote:", "> ", "\n", "\n\n", "Thanks,", "-- ", "From: a", "Sent: b", "Am ", "schrieb", "\ue000"]
    for _ in range(300):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 60)))
        assert isinstance(latest_reply(text), str)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Refund issued.\n\nCheers\nSam Rivera", "Refund issued."),
        ("Refund issued.\n\nSam", "Refund issued."),
        ("We fixed it.\nBest regards,\nSam", "We fixed it."),
        ("We fixed it.\n\n-- Sam --", "We fixed it."),
        ("Sam will call you tomorrow.", "Sam will call you tomorrow."),
        ("Fixed.\nThanks to Sam for the report.", "Fixed.\nThanks to Sam for the report."),
        ("Thanks", "Thanks"),
    ],
)
def test_without_sign_off(text: str, expected: str) -> None:
    assert without_sign_off(text, ["Sam Rivera", "Sam"]) == expected
