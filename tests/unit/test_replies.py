"""What replies mean (every rule of the table, and the replies that must not trip it) and out-of-office dates."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta, timezone

import pytest

from daemon.domain.model import TouchKind
from daemon.domain.replies import LONG_REPLY_WORDS, Intent, out_of_office_until, read_reply

OUTCOME = TouchKind.OUTCOME
CHECK_IN = TouchKind.CHECK_IN

ALL_GOOD = Intent.ALL_GOOD
NEW_PROBLEM = Intent.NEW_PROBLEM
DECLINE = Intent.DECLINE_CHECK_IN
ALLOW = Intent.ALLOW_CHECK_IN
STOP = Intent.STOP
UNSURE = Intent.UNSURE


def case(text: str, answering: TouchKind | None, intent: Intent) -> object:
    return pytest.param(text, answering, intent, id=f"{answering}:{text[:40]}")


STOP_CASES = [
    case("unsubscribe", None, STOP),
    case("Unsubscribe me please", CHECK_IN, STOP),
    case("Please stop emailing me.", TouchKind.ACKNOWLEDGEMENT, STOP),
    case("please remove me from your list", OUTCOME, STOP),
    case("Don't contact me again!", CHECK_IN, STOP),
    case("Do not email me again", TouchKind.FOLLOW_THROUGH, STOP),
    case("No more emails, thanks", None, STOP),
    case("STOP SENDING ME THESE EMAILS", TouchKind.CLOSING, STOP),
    case("Stop sending me these e-mails. Bob Smith", CHECK_IN, STOP),
    case("Please remove me from your mailing list. Thanks, Bob", CHECK_IN, STOP),
    case("Please remove my email address from your list", TouchKind.THANK_YOU, STOP),
    case("I want to opt out", CHECK_IN, STOP),
    case("Bitte abmelden", CHECK_IN, STOP),
    case("Keine E-Mails mehr bitte", OUTCOME, STOP),
    case("Bitte kontaktieren Sie mich nicht mehr.", CHECK_IN, STOP),
    case("Merci de me désabonner", CHECK_IN, STOP),
    case("Ne me contactez plus.", None, STOP),
    # support questions about their own product, and requests that are not plain
    case("the app keeps stopping", CHECK_IN, NEW_PROBLEM),
    case("I can't stop the subscription renewal", CHECK_IN, NEW_PROBLEM),
    case("how do I unsubscribe my team member from notifications?", CHECK_IN, NEW_PROBLEM),
    case("How do I unsubscribe my team member from notifications?", TouchKind.ACKNOWLEDGEMENT, UNSURE),
    case("Unsubscribe my colleague", CHECK_IN, UNSURE),
    case("I don't want to unsubscribe", CHECK_IN, UNSURE),
    case("stop sending me invoices twice", CHECK_IN, UNSURE),
    case("I can't unsubscribe from your newsletter", CHECK_IN, NEW_PROBLEM),
    case("Unsubscribe? No, why would I, it all works", CHECK_IN, UNSURE),
    case(
        "Please stop emailing me about this because our whole accounting team now uses the new export daily",
        CHECK_IN,
        UNSURE,
    ),
]

CONSENT_CASES = [
    case("No thanks", OUTCOME, DECLINE),
    case("no need", OUTCOME, DECLINE),
    case("Please don't.", OUTCOME, DECLINE),
    case("Not needed, thank you", OUTCOME, DECLINE),
    case("I'd rather not", OUTCOME, DECLINE),
    case("Nope, all good", OUTCOME, DECLINE),
    case("Nein danke", OUTCOME, DECLINE),
    case("Non merci", OUTCOME, DECLINE),
    case("Yes", OUTCOME, ALLOW),
    case("Sure!", OUTCOME, ALLOW),
    case("Feel free", OUTCOME, ALLOW),
    case("Sounds good 🙂", OUTCOME, ALLOW),
    case("Yes, all good", OUTCOME, ALLOW),
    case("Sure, no problem", OUTCOME, ALLOW),
    case("Sure, why not?", OUTCOME, ALLOW),
    case("I don't mind", OUTCOME, ALLOW),
    case("Yes please, and thanks again for the help", OUTCOME, ALLOW),
    case("Yes, you can check back in a few months.", OUTCOME, ALLOW),
    case("Ja, gerne", OUTCOME, ALLOW),
    case("Oui, avec plaisir", OUTCOME, ALLOW),
    # only the outcome asks; mixed or negated answers are not consent
    case("Yes", CHECK_IN, UNSURE),
    case("No thanks", CHECK_IN, UNSURE),
    case("Yes", TouchKind.ACKNOWLEDGEMENT, UNSURE),
    case("Yes and no", OUTCOME, UNSURE),
    case("No, feel free", OUTCOME, UNSURE),
    case("Absolutely not", OUTCOME, UNSURE),
    case("Of course not", OUTCOME, UNSURE),
    case("Sure, maybe", OUTCOME, UNSURE),
    case("Yes, but the export still fails", OUTCOME, NEW_PROBLEM),
    case("No, it's still broken", OUTCOME, NEW_PROBLEM),
]

ALL_GOOD_CASES = [
    case("all good", CHECK_IN, ALL_GOOD),
    case("Works fine now", CHECK_IN, ALL_GOOD),
    case("Everything is great, thanks!", CHECK_IN, ALL_GOOD),
    case("No issues since", CHECK_IN, ALL_GOOD),
    case("Resolved, thank you", CHECK_IN, ALL_GOOD),
    case("👍", CHECK_IN, ALL_GOOD),
    case("👍🏻", OUTCOME, ALL_GOOD),
    case("Great, thanks!", OUTCOME, ALL_GOOD),
    case("Perfect, that did it.", OUTCOME, ALL_GOOD),
    case("I haven't had any problems since, thanks for your help!", CHECK_IN, ALL_GOOD),
    case("Still works great", CHECK_IN, ALL_GOOD),
    case("It works again, thanks again!", CHECK_IN, ALL_GOOD),
    case("The issue is resolved.", CHECK_IN, ALL_GOOD),
    case("The error doesn't appear anymore", CHECK_IN, ALL_GOOD),
    case("Good morning Anna, all fixed on our side.", CHECK_IN, ALL_GOOD),
    case("Nothing to report", CHECK_IN, ALL_GOOD),
    case("So far so good", CHECK_IN, ALL_GOOD),
    case("All good, thanks! How are you?", CHECK_IN, ALL_GOOD),
    case("Please close the ticket, it's fixed", CHECK_IN, ALL_GOOD),
    case("The fast fix was great", CHECK_IN, ALL_GOOD),
    case("ALL GOOD!!!", CHECK_IN, ALL_GOOD),
    case("Alles gut, danke!", CHECK_IN, ALL_GOOD),
    case("Läuft alles bestens", CHECK_IN, ALL_GOOD),
    case("Keine Probleme mehr", CHECK_IN, ALL_GOOD),
    case("Funktioniert wieder, vielen Dank", OUTCOME, ALL_GOOD),
    case("Tout va bien, merci", CHECK_IN, ALL_GOOD),
    case("Ça marche, merci !", CHECK_IN, ALL_GOOD),
    case("Pas de problème depuis", CHECK_IN, ALL_GOOD),
]

NEW_PROBLEM_CASES = [
    case("It's broken again", CHECK_IN, NEW_PROBLEM),
    case("Still not working", CHECK_IN, NEW_PROBLEM),
    case("The export fails with an error", CHECK_IN, NEW_PROBLEM),
    case("Can you help me with the invoice?", CHECK_IN, NEW_PROBLEM),
    case("The app crashes when I log in", OUTCOME, NEW_PROBLEM),
    case("I can't log in since Tuesday", CHECK_IN, NEW_PROBLEM),
    case("The report doesn't load", CHECK_IN, NEW_PROBLEM),
    case("Something is wrong with my bill", CHECK_IN, NEW_PROBLEM),
    case("We have a new issue with the API", CHECK_IN, NEW_PROBLEM),
    case("Where can I download last year's invoices?", CHECK_IN, NEW_PROBLEM),
    case("👎", CHECK_IN, NEW_PROBLEM),
    case("Der Export funktioniert leider immer noch nicht", CHECK_IN, NEW_PROBLEM),
    case("Ça ne marche toujours pas", CHECK_IN, NEW_PROBLEM),
    case("How are you? The export fails again.", CHECK_IN, NEW_PROBLEM),
    case(" ".join(["word"] * (LONG_REPLY_WORDS + 1)), CHECK_IN, NEW_PROBLEM),
]

UNSURE_CASES = [
    case("all good but one question?", CHECK_IN, UNSURE),
    case("Everything works, but the PDF export is slow", CHECK_IN, UNSURE),
    case("not all good", CHECK_IN, UNSURE),
    case("no, it's not fixed", CHECK_IN, UNSURE),
    case("It isn't fixed", OUTCOME, UNSURE),
    case("I don't think it's resolved", CHECK_IN, UNSURE),
    case("Es ist nicht gelöst", CHECK_IN, UNSURE),
    case("Ce n'est pas résolu", CHECK_IN, UNSURE),
    case("Mostly works", CHECK_IN, UNSURE),
    case("I think it's fine", CHECK_IN, UNSURE),
    case("Not sure, all good I think", CHECK_IN, UNSURE),
    case("Thanks!", CHECK_IN, UNSURE),
    case("Thanks, Bob", CHECK_IN, UNSURE),
    case("Not really", CHECK_IN, UNSURE),
    case("", CHECK_IN, UNSURE),
    case("   \n ", OUTCOME, UNSURE),
    case("...", CHECK_IN, UNSURE),
    case("🤷", CHECK_IN, UNSURE),
    case(" ".join(["great"] * (LONG_REPLY_WORDS + 1)), CHECK_IN, UNSURE),
    case("All good, thanks", TouchKind.ACKNOWLEDGEMENT, UNSURE),
    case("all good", TouchKind.THANK_YOU, UNSURE),
    case("It's broken again", TouchKind.FOLLOW_THROUGH, UNSURE),
    case("all good", TouchKind.CLOSING, UNSURE),
    case("all good", None, UNSURE),
]


@pytest.mark.parametrize(
    ("text", "answering", "intent"),
    STOP_CASES + CONSENT_CASES + ALL_GOOD_CASES + NEW_PROBLEM_CASES + UNSURE_CASES,
)
def test_read_reply(text: str, answering: TouchKind | None, intent: Intent) -> None:
    assert read_reply(text, answering=answering) is intent


def test_curly_and_missing_apostrophes_read_alike() -> None:
    for text in ("Don’t contact me again", "dont contact me again", "Don't contact me again"):
        assert read_reply(text, answering=CHECK_IN) is STOP


def test_accents_may_be_left_out() -> None:
    assert read_reply("Merci de me desabonner", answering=CHECK_IN) is STOP
    assert read_reply("Lauft alles bestens", answering=CHECK_IN) is ALL_GOOD


def test_a_very_long_reply_is_read_without_failing() -> None:
    assert read_reply("all good " * 100_000, answering=CHECK_IN) is UNSURE


# out-of-office -------------------------------------------------------------------------------------------

CET = timezone(timedelta(hours=1))
MONDAY = datetime(2025, 12, 1, 9, 30, tzinfo=CET)


def ooo(text: str, subject: str, back: str | None) -> object:
    return pytest.param(text, subject, back, id=(text or subject)[:48])


OUT_OF_OFFICE_CASES = [
    ooo("I will be back on Monday 8 December.", "", "2025-12-08"),
    ooo("I am returning 12/08/2026.", "", "2026-08-12"),
    ooo("I am out of the office until 2025-12-08.", "", "2025-12-08"),
    ooo("Thanks for your email. I'm back on the 3rd.", "", "2025-12-03"),
    ooo("back on the 20th", "", "2025-12-20"),
    ooo("Ich bin ab dem 08.12.2025 wieder im Büro.", "", "2025-12-08"),
    ooo("Je suis de retour le 8 décembre.", "", "2025-12-08"),
    ooo("I'm away from 1 to 5 December.", "", "2025-12-05"),
    ooo("", "Out of office until 8 Dec", "2025-12-08"),
    ooo("", "Abwesend bis 08.12.", "2025-12-08"),
    ooo("Vom 25. bis 26. Dezember bin ich nicht im Büro.", "", "2025-12-26"),
    ooo("Zwischen dem 24. Dezember und 8. Januar bin ich nicht am Platz.", "", "2026-01-08"),
    ooo("Mich erreichen Sie erst am 19. Januar wieder.", "", "2026-01-19"),
    ooo("Ab Montag, den 8. Dezember bin ich wieder für Sie da.", "", "2025-12-08"),
    ooo("Ich bin bis zum 31. Mai nicht im Büro. Ihre Nachricht wird nicht weitergeleitet.", "", "2026-05-31"),
    ooo("Bin bis einschließlich 12.12.25 im Urlaub", "", "2025-12-12"),
    ooo("je suis absent du bureau du 1er juillet au 31 août compris", "", "2026-08-31"),
    ooo("Je serai absent jusqu'au 15 janvier 2026 inclus.", "", "2026-01-15"),
    ooo("I will be out of office from July 1th to August 31th", "", "2026-08-31"),
    ooo("I'm away until Tue, Jan 16.", "", "2026-01-16"),
    ooo("I'm away until 3 June with limited access to email. I'll reply when I'm back.", "", "2026-06-03"),
    ooo("Returning December 8th, 2025", "", "2025-12-08"),
    ooo("I return on 5 Jan", "", "2026-01-05"),
    ooo("I'll be back Monday.", "", "2025-12-08"),
    ooo("I am on leave until Friday.", "Away: your message", "2025-12-05"),
    ooo("Back tomorrow!", "", "2025-12-02"),
    ooo("Back on 12/25/2025", "", "2025-12-25"),
    ooo("I'll be back on 8.12. at 9.30", "", "2025-12-08"),
    ooo("I'm out of the office until 1 December", "", "2025-12-01"),
    ooo("I am on holiday until 5 December. For urgent requests before 3 December call Jane.", "", "2025-12-05"),
    ooo("I'm out of the office until 10 December and back on 11 December.", "", "2025-12-11"),
    ooo("back on 8 June", "", "2026-06-08"),
    # no return date stated, or not one that can be right
    ooo("I will be on leave from 1 December.", "", None),
    ooo("Back next week.", "", None),
    ooo("Out of office. Your message dated 28 November will be read.", "", None),
    ooo("I was away until 28 November.", "", None),
    ooo("back on the 30th", "", None),
    ooo("Back on 1 December 2024", "", None),
    ooo("Back on 8 December 2027", "", None),
    ooo("I am out of the office until 2026-12-08.", "", None),
    ooo("Back on 31/04/2026", "", None),
    ooo("Back on 29 February", "", None),
    ooo("> back on 20 December\nI am away.", "", None),
    ooo("I am out of the office.", "Automatic reply: We got your message [CL-3HN8]", None),
    ooo("", "", None),
]


@pytest.mark.parametrize(("text", "subject", "back"), OUT_OF_OFFICE_CASES)
def test_out_of_office_until(text: str, subject: str, back: str | None) -> None:
    until = out_of_office_until(text, subject, received=MONDAY)
    assert (until.date().isoformat() if until else None) == back


def test_the_return_day_starts_at_midnight_in_the_received_timezone() -> None:
    until = out_of_office_until("Back on 8 December", "", received=MONDAY)
    assert until == datetime(2025, 12, 8, tzinfo=CET)
    assert until is not None and until.tzinfo is CET


def test_a_date_without_a_year_is_the_next_one_after_received() -> None:
    received = datetime(2025, 12, 20, tzinfo=UTC)
    assert out_of_office_until("Back on 5 December", "", received=received) is None  # stale: 15 days ago
    received = datetime(2025, 12, 20, tzinfo=UTC) + timedelta(days=40)
    assert out_of_office_until("Back on 5 December", "", received=received) == datetime(2026, 12, 5, tzinfo=UTC)


def test_a_weekday_is_the_next_one_after_received() -> None:
    assert out_of_office_until("Back on Monday", "", received=MONDAY) == datetime(2025, 12, 8, tzinfo=CET)


def test_any_text_gives_a_date_or_none() -> None:
    rng = random.Random(20251201)
    alphabet = string.printable + "äöüßé’👍\u00a0٣²—–"
    tokens = ["back", "until", "bis", "wieder", "8", "31", "12", "/", ".", "-", "2026", "dec", "the", "3rd", "\n"]
    for index in range(500):
        if index % 2:
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 200)))
        else:
            text = " ".join(rng.choice(tokens) for _ in range(rng.randint(0, 40)))
        until = out_of_office_until(text, text[:30], received=MONDAY)
        assert until is None or MONDAY - timedelta(days=1) < until <= MONDAY + timedelta(days=366)
        assert read_reply(text, answering=CHECK_IN) in Intent
