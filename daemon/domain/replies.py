"""What a customer's reply means, and until when an out-of-office reply says they are away. Pure rules.

``read_reply`` reads the new words of a reply (quotes and signature already removed) and the kind of our touch
it answers. The rules, in order; the first that fits decides:

====  =========================  ==========================================================  ================
step  answering                  the reply                                                   intent
====  =========================  ==========================================================  ================
1     anything                   has no words                                                unsure
2     anything                   a stop phrase ("unsubscribe", "stop emailing me", "remove   stop
                                 me from your list", "no more emails", ...), no question
                                 mark, at most 20 words, and besides politeness at most two
                                 other words, none of them a negation, question word,
                                 problem word or someone else ("my team", "our users")
3     not outcome, not check-in  anything else (acknowledgement, thank-you, follow-through,  unsure
                                 closing, or unknown): the owner reads it
4     outcome                    at most 15 words, no problem signal, no negation, no        decline-check-in
                                 hedge, and only "no"-kind ("no thanks", "no need", "please  / allow-check-in
                                 don't") or only "yes"-kind ("yes", "sure", "feel free",
                                 "sounds good") consent words
5     outcome or check-in        a positive word negated ("not all good", "isn't fixed")     unsure
6     outcome or check-in        a problem signal and a positive word ("all good but ...?")  unsure
7     outcome or check-in        a problem signal                                            new-problem
8     outcome or check-in        a positive word ("all good", "works", "fixed", thumbs up)   all-good
                                 and no hedge ("mostly", "I think", "maybe")
9     outcome or check-in        anything else ("thanks!")                                   unsure
====  =========================  ==========================================================  ================

A *problem signal* is a problem word or phrase (:data:`PROBLEM_WORDS`, :data:`PROBLEM_PHRASES`: "but",
"still", "again", "not working", "broken", "error", "can't", "doesn't", "problem", "issue", "wrong", "help",
👎, …), a question mark, or more than :data:`LONG_REPLY_WORDS` words. Phrases that only look like problems or
negations are read first: "no problems since", "thanks again", "thanks for your help", "works again",
"still works", "the issue is resolved", "doesn't crash anymore" count as positive or as nothing.

Words are matched whole, case-insensitively and without accents; punctuation separates clauses; positive emoji
(👍 👌 ✅ 🙂 …) read as a positive word, negative ones (👎 🙁 😡 …) as a problem word. English throughout;
German and French for stop requests, all-good, problem words and consent (the phrase lists below say
which). When in doubt the answer is ``unsure``: a person reads it, which beats a wrong "all good" or "stop".

``out_of_office_until`` finds the return date an auto-reply states; see its docstring for the rules.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from enum import StrEnum

from daemon.domain.model import TouchKind


class Intent(StrEnum):
    ALL_GOOD = "all-good"  # things are fine / resolved, nothing left to do
    NEW_PROBLEM = "new-problem"  # raises something that needs the team again
    DECLINE_CHECK_IN = "decline-check-in"  # "no" to "may we check back in a few months?"
    ALLOW_CHECK_IN = "allow-check-in"  # "yes, feel free"
    STOP = "stop"  # plainly asks to stop receiving these emails
    UNSURE = "unsure"  # anything else: hand it to the owner, never guess


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


LONG_REPLY_WORDS = 40
"""A longer reply is a problem signal: nobody writes 40 words to say "all good"."""

CONSENT_MAX_WORDS = 15
STOP_MAX_WORDS = 20
STOP_MAX_OTHER_WORDS = 2
"""Besides the stop phrase and politeness, room for a name ("… Thanks, Bob Smith")."""

# Phrase lists are regular expressions over folded text (lower case, no accents: "désabonner" matches
# "desabonner" too). A space matches any run of spaces and commas, an apostrophe may be left out ("dont")
# and a hyphen may be a space or left out ("e-mails", "emails"). Use no upper-case escapes (\S, \W).

STOP_PHRASES = (
    # English
    r"unsubscribe(?: me)?",
    r"opt (?:me )?out",
    r"stop (?:e-mailing|mailing|contacting|messaging|spamming|writing to) me",
    r"stop sending (?:me )?(?:these |this |your |any |the |more )?(?:e-mails?|mails?|messages|newsletters?)",
    r"(?:remove|delete|take) me (?:off|from) (?:your|this|the) (?:e-mail |mailing |contact )?list",
    r"(?:remove|delete) my (?:e-mail )?(?:address|e-mail) from (?:your|this|the) (?:e-mail |mailing )?list",
    r"(?:don't|do not|never) (?:contact|e-mail|mail|write to) me(?: again| anymore| any more)?",
    r"no more (?:e-mails|mails|messages)",
    r"(?:don't|do not) want (?:any more |anymore |more |any |your |these )?(?:e-mails|mails|messages)",
    # German
    r"abmelden",
    r"abbestellen",
    r"austragen",
    r"tragen sie mich (?:bitte )?aus",
    r"keine (?:weiteren )?(?:e-mails|mails|nachrichten)(?: mehr)?",
    r"(?:kontaktieren|schreiben) sie mich (?:bitte )?nicht mehr",
    r"nicht mehr kontaktieren",
    # French
    r"(?:me )?desabonner",
    r"(?:me )?desinscrire",
    r"desabonnement",
    r"desinscription",
    r"ne me contactez plus",
    r"ne plus (?:me contacter|recevoir)",
    r"arretez de m'envoyer",
    r"plus d'e-mails",
    r"plus de mails",
    r"retirez-moi de (?:votre|vos|la) liste",
)

STOP_FILLER = _word_set(
    """
    please pls plz kindly thanks thank you thx ty cheers hi hello hey dear just now immediately asap right away
    i i'd id i'm im would like want wish to me from all any these this your the future further more again
    anymore emails e-mails mails messages newsletter newsletters list mailing and also sir madam regards best
    sorry bye goodbye it that is a an of for in with on at by really seriously
    bitte danke hallo guten tag ich mochte mich mir sofort sie ihre ihren und von aus ihrer liste vielen dank
    gruss grusse mfg lg vg
    merci bonjour je veux voudrais souhaite de des vos ces moi s'il vous plait svp la le les votre liste et
    cordialement
    """
)

# Words that make a message mentioning a stop phrase something other than a plain request to stop.
STOP_BLOCKERS = _word_set(
    """
    how why what where when which who can't cant cannot unable don't dont doesn't doesnt not no never won't
    wont my our his her their team colleague colleagues member members user users staff employee employees
    client clients customer customers account subscription renewal trying tried help
    wie warum wieso was nicht kein keine kann mein meine unser unsere kollege kollegin team
    comment pourquoi quoi pas mon ma mes notre equipe collegue
    """
)

CONSENT_NO = (
    r"no",
    r"nope",
    r"nah",
    r"no thanks?(?: you)?",
    r"no need",
    r"not (?:necessary|needed)",
    r"unnecessary",
    r"please (?:don't|do not)",
    r"don't bother",
    r"(?:i'd |i would )?rather not",
    # German, French
    r"nein(?: danke)?",
    r"nicht (?:notig|notwendig)",
    r"lieber nicht",
    r"non(?: merci)?",
    r"pas (?:la peine|necessaire|besoin)",
    r"inutile",
)

CONSENT_YES = (
    r"yes",
    r"yeah",
    r"yep",
    r"yup",
    r"sure",
    r"of course",
    r"feel free",
    r"sounds good",
    r"ok",
    r"okay",
    r"please do",
    r"go ahead",
    r"absolutely",
    r"definitely",
    r"certainly",
    r"fine (?:by|with) me",
    r"that's fine",
    r"by all means",
    r"happy to",
    r"(?:i )?(?:don't|do not) mind",
    r"why not",
    # German, French
    r"ja",
    r"gerne?",
    r"klar",
    r"naturlich",
    r"einverstanden",
    r"oui",
    r"d'accord",
    r"volontiers",
    r"avec plaisir",
    r"bien sur",
)

# Politeness that contains problem-looking words; removed before anything else is read.
NEUTRAL_PHRASES = (
    r"thanks? (?:you )?(?:so much |very much |a lot )?(?:again )?for (?:all )?(?:your|the) "
    r"(?:great |quick |kind |fast )?(?:help|support|assistance|reply|response|answer|follow-up|message|e-mail|update)",
    r"thanks? (?:you )?(?:so much |very much |a lot )?again",
    r"thanks? (?:you )?for (?:checking in|asking|getting back|following up|reaching out)",
    r"(?:contact(?:ed)?|hear from|write to|e-mail|get in touch with) (?:me |you )?again",
    r"good (?:morning|afternoon|evening|day)",
    r"happy (?:new year|holidays)",
    r"working on (?:it|this|that)",
    r"danke (?:nochmals|nochmal|fur (?:ihre|deine|die) hilfe)",
    r"merci (?:encore|pour (?:votre|ton|l') aide)",
    r"bien (?:recu|a vous|cordialement)",
)

# Phrases that contain a problem word or a negation but mean things are fine.
POSITIVE_PHRASES = (
    r"(?:no|zero|not any|not a single|without|no more|no further|no other|never had any|"
    r"(?:haven't|have not|hasn't|didn't|did not|don't|do not) (?:had |have |seen |see |noticed |notice )?any)"
    r" (?:more |further |other |new )?(?:problems?|issues?|errors?|bugs?|crashes|complaints?|trouble|hiccups?)",
    r"not a problem",
    r"no worries",
    r"nothing (?:wrong|to report)",
    r"can't complain",
    r"couldn't be (?:better|happier)",
    r"never been better",
    r"can't thank you enough",
    r"so far so good",
    r"(?:problem|issue|error|bug)s? (?:is |are |was |were |has been |have been |got |seems )?(?:now )?"
    r"(?:solved|resolved|fixed|gone|sorted)",
    r"(?:works?|working|running) (?:again|fine again|perfectly again)",
    r"back to normal",
    r"still (?:all )?(?:good|fine|great|ok|okay|perfect|happy)",
    r"still works?(?: fine| great| perfectly| well)?(?! on)",
    r"still working (?:fine|well|great|perfectly)",
    r"(?:(?:the |that |this )?(?:error|problem|issue|bug|crash)s? )?"
    r"(?:doesn't|does not|didn't|did not|hasn't|has not|won't|no longer|never) (?:\w+ )?"
    r"(?:crash|fail|freeze|hang|happen|appear|occur|show up|come back|return|time out)\w*",
    # German
    r"(?:kein|keine) (?:problem|probleme|fehler|beschwerden)(?: mehr)?",
    r"(?:problem|fehler) (?:ist )?(?:gelost|behoben|weg)",
    r"(?:funktioniert|lauft|klappt|geht) (?:alles )?wieder",
    r"(?:alles )?wieder (?:gut|in ordnung)",
    r"nicht mehr (?:auf|ab|aufgetreten|abgesturzt|passiert|vorgekommen)",
    # French
    r"(?:pas de|aucun|plus de) (?:probleme|souci|bug|erreur)s?",
    r"rien a signaler",
    r"probleme (?:est )?(?:resolu|regle)",
    r"(?:marche|fonctionne|remarche) (?:a nouveau|de nouveau)",
    r"remarche",
    r"n(?:e |')(?:se )?(?:plante|apparait|reproduit|bloque|arrive)\w* plus",
)

PROBLEM_PHRASES = (
    r"(?:not|isn't|is not|aren't|wasn't) (?:\w+ )?(?:working|loading|opening|syncing|starting)",
    r"(?:doesn't|does not|don't|do not|won't|will not|didn't|did not) (?:\w+ )?(?:work|load|open|sync|start)",
    r"(?:stopped|no longer) (?:working|works|loading|syncing)",
    r"(?:funktioniert|lauft|klappt|geht) (?:\w+ ){0,3}nicht",
    r"keeps? \w+ing",
    r"immer noch",
    r"noch immer",
    r"schon wieder",
    r"sturzt (?:\w+ )?ab",
    r"ne (?:\w+ )?(?:marche|fonctionne|va) (?:\w+ )?(?:pas|plus)",
    r"(?:marche|fonctionne) (?:toujours )?pas",
    r"toujours pas",
)

PROBLEM_WORDS = (
    r"but",
    r"still",
    r"again",
    r"however",
    r"although",
    r"unfortunately",
    r"except",
    r"broken",
    r"breaks?",
    r"errors?",
    r"bugs?",
    r"crash\w*",
    r"fail\w*",
    r"problems?",
    r"issues?",
    r"wrong",
    r"help",
    r"can't",
    r"cannot",
    r"couldn't",
    r"doesn't",
    r"didn't",
    r"won't",
    r"unable",
    r"missing",
    r"stuck",
    r"stop(?:s|ped|ping)",
    r"slow(?:er)?",
    r"worse",
    r"freez\w*",
    r"urgent",
    r"thumbsdown",
    # German
    r"aber",
    r"wieder",
    r"fehler\w*",
    r"probleme?",
    r"kaputt",
    r"leider",
    r"hilfe",
    r"absturz",
    r"langsam",
    r"falsch",
    r"trotzdem",
    r"jedoch",
    # French
    r"mais",
    r"encore",
    r"erreurs?",
    r"problemes?",
    r"plante",
    r"bloque",
    r"malheureusement",
    r"aide",
    r"impossible",
    r"lent",
    r"cependant",
    r"pourtant",
)

POSITIVE_WORDS = (
    r"all (?:good|fine|set|sorted)",
    r"all is well",
    r"going well",
    r"good",
    r"great",
    r"fine",
    r"perfect(?:ly)?",
    r"excellent",
    r"awesome",
    r"fantastic",
    r"wonderful",
    r"brilliant",
    r"amazing",
    r"superb",
    r"nice",
    r"works",
    r"working",
    r"worked",
    r"resolved",
    r"solved",
    r"fixed",
    r"sorted",
    r"happy",
    r"satisfied",
    r"pleased",
    r"ok",
    r"okay",
    r"smooth(?:ly)?",
    r"flawless(?:ly)?",
    r"love it",
    r"thumbsup",
    # German
    r"gut",
    r"bestens",
    r"in ordnung",
    r"funktioniert",
    r"lauft",
    r"klappt",
    r"super",
    r"prima",
    r"perfekt",
    r"passt",
    r"gelost",
    r"behoben",
    r"erledigt",
    r"zufrieden",
    r"toll",
    r"wunderbar",
    # French
    r"tout va bien",
    r"tout est (?:bon|ok)",
    r"ca (?:marche|fonctionne)",
    r"fonctionne",
    r"marche",
    r"parfait(?:ement)?",
    r"resolu",
    r"regle",
    r"impeccable",
    r"nickel",
    r"bien",
    r"contente?",
    r"satisfaite?",
    r"genial",
)

NEGATIONS = (
    r"not",
    r"never",
    r"nothing",
    r"hardly",
    r"barely",
    r"isn't",
    r"aren't",
    r"wasn't",
    r"weren't",
    r"don't",
    r"doesn't",
    r"didn't",
    r"hasn't",
    r"haven't",
    r"nicht",
    r"nie",
    r"nichts",
    r"kein\w*",
    r"pas",
    r"jamais",
    r"rien",
)

HEDGES = (
    r"not sure",
    r"unsure",
    r"i think",
    r"i guess",
    r"i believe",
    r"maybe",
    r"perhaps",
    r"probably",
    r"mostly",
    r"almost",
    r"kind of",
    r"sort of",
    r"partly",
    r"partially",
    r"somewhat",
    r"hopefully",
    r"vielleicht",
    r"glaube",
    r"eigentlich",
    r"teilweise",
    r"grosstenteils",
    r"meistens",
    r"hoffentlich",
    r"peut-etre",
    r"je crois",
    r"je pense",
    r"presque",
    r"partiellement",
    r"plutot",
)

# Questions that ask for nothing; they do not count as a question mark.
SMALL_TALK_QUESTIONS = (
    r"why not\s*\?",
    r"how are you(?: doing)?\s*\?",
    r"how about you\s*\?",
    r"and you\s*\?",
    r"wie geht(?:'s| es (?:ihnen|dir))\s*\?",
    r"et vous\s*\?",
    r"comment allez-vous\s*\?",
)

POSITIVE_EMOJI = "👍👌✅✔🙂😊😀😃😄😁🙏❤💯🎉👏🥳☺😍🤩💪"
NEGATIVE_EMOJI = "👎🙁☹😞😟😕😠😡😢😭🤬😤❌"

_FOLD = {ord(ch): " thumbsup " for ch in POSITIVE_EMOJI} | {ord(ch): " thumbsdown " for ch in NEGATIVE_EMOJI}
_FOLD |= {ord(ch): "'" for ch in "’‘`´ʼ"}


def _fold(text: str) -> str:
    """Lower case without accents; emoji become the words ``thumbsup`` / ``thumbsdown``."""
    decomposed = unicodedata.normalize("NFKD", text.translate(_FOLD))
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def _phrases(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern matching any of ``patterns`` as whole words (see the note above the lists)."""
    parts = []
    for pattern in patterns:
        folded = _fold(pattern).replace(" ", r"[\s,]+").replace("'", "'?").replace("-", "[- ]?")
        parts.append(f"(?:{folded})")
    return re.compile(r"(?<![\w'])(?:" + "|".join(parts) + r")(?![\w'])")


_STOP = _phrases(STOP_PHRASES)
_CONSENT_NO = _phrases(CONSENT_NO)
_CONSENT_YES = _phrases(CONSENT_YES)
_NEUTRAL = _phrases(NEUTRAL_PHRASES)
_POSITIVE_PHRASE = _phrases(POSITIVE_PHRASES)
_PROBLEM_PHRASE = _phrases(PROBLEM_PHRASES)
_PROBLEM = _phrases(PROBLEM_WORDS)
_POSITIVE = _phrases(POSITIVE_WORDS)
_HEDGE = _phrases(HEDGES)
_SMALL_TALK = _phrases(SMALL_TALK_QUESTIONS)
_NEGATION = _phrases(NEGATIONS)
# A negation up to two words before a positive word, within one clause: "not all good", "isn't fixed".
_NEGATED = re.compile(
    _NEGATION.pattern + r"(?:[ \t]+[\w']+){0,2}[ \t]+" + _POSITIVE.pattern.removeprefix(r"(?<![\w'])")
)
_WORD = re.compile(r"[\w']+")

_MAX_REPLY_CHARS = 20_000


@dataclass(frozen=True, kw_only=True)
class _Reading:
    """What the rules look at in one reply; ``text`` is folded, with idioms replaced by marker words."""

    text: str
    words: int
    question: bool

    @property
    def problem(self) -> bool:
        return self.question or self.words > LONG_REPLY_WORDS or bool(_PROBLEM.search(self.text))

    @property
    def positive(self) -> bool:
        return bool(_POSITIVE.search(self.text))

    @property
    def negated(self) -> bool:
        return bool(_NEGATED.search(self.text))

    @property
    def hedged(self) -> bool:
        return bool(_HEDGE.search(self.text))


def _reading(text: str) -> _Reading:
    folded = _fold(text[:_MAX_REPLY_CHARS])
    marked = _NEUTRAL.sub(" , ", folded)
    marked = _POSITIVE_PHRASE.sub(" thumbsup ", marked)
    marked = _PROBLEM_PHRASE.sub(" thumbsdown ", marked)
    question = "?" in _SMALL_TALK.sub(" ", folded)
    return _Reading(text=marked, words=len(_WORD.findall(folded)), question=question)


def read_reply(text: str, *, answering: TouchKind | None) -> Intent:
    """What the customer's reply ``text`` (new words only) means; ``answering`` is the touch it replies to.

    Follows the table in the module docstring. Total: any text gives an intent.
    """
    reading = _reading(text)
    if reading.words == 0:
        return Intent.UNSURE
    if _asks_to_stop(text):
        return Intent.STOP
    if answering is TouchKind.OUTCOME and (consent := _consent(reading)) is not None:
        return consent
    if answering in (TouchKind.OUTCOME, TouchKind.CHECK_IN):
        return _how_things_are(reading)
    return Intent.UNSURE


def _asks_to_stop(text: str) -> bool:
    folded = _fold(text[:_MAX_REPLY_CHARS])
    if "?" in folded or not _STOP.search(folded) or len(_WORD.findall(folded)) > STOP_MAX_WORDS:
        return False
    others = [word for word in _WORD.findall(_STOP.sub(" ", folded)) if word not in STOP_FILLER]
    blocked = any(word in STOP_BLOCKERS for word in others)
    return not blocked and len(others) <= STOP_MAX_OTHER_WORDS


def _consent(reading: _Reading) -> Intent | None:
    """The answer to "may we check back later?", when the reply is a short, clean yes or no."""
    if reading.words > CONSENT_MAX_WORDS or reading.problem or reading.negated or reading.hedged:
        return None
    no, yes = bool(_CONSENT_NO.search(reading.text)), bool(_CONSENT_YES.search(reading.text))
    rest = _CONSENT_YES.sub(" ", _CONSENT_NO.sub(" ", reading.text))
    if no == yes or _NEGATION.search(rest):  # "absolutely not", "of course not"
        return None
    return Intent.DECLINE_CHECK_IN if no else Intent.ALLOW_CHECK_IN


def _how_things_are(reading: _Reading) -> Intent:
    if reading.negated:
        return Intent.UNSURE
    if reading.problem:
        return Intent.UNSURE if reading.positive else Intent.NEW_PROBLEM
    if reading.positive and not reading.hedged:
        return Intent.ALL_GOOD
    return Intent.UNSURE


# out-of-office ---------------------------------------------------------------------------------------------

MONTHS = {
    **dict.fromkeys(["january", "jan", "januar", "janner", "janvier", "janv"], 1),
    **dict.fromkeys(["february", "feb", "februar", "fevrier", "fevr", "fev"], 2),
    **dict.fromkeys(["march", "mar", "marz", "maerz", "mrz", "mars"], 3),
    **dict.fromkeys(["april", "apr", "avril", "avr"], 4),
    **dict.fromkeys(["may", "mai"], 5),
    **dict.fromkeys(["june", "jun", "juni", "juin"], 6),
    **dict.fromkeys(["july", "jul", "juli", "juillet", "juil"], 7),
    **dict.fromkeys(["august", "aug", "aout"], 8),
    **dict.fromkeys(["september", "sept", "sep", "septembre"], 9),
    **dict.fromkeys(["october", "oct", "oktober", "okt", "octobre"], 10),
    **dict.fromkeys(["november", "nov", "novembre"], 11),
    **dict.fromkeys(["december", "dec", "dezember", "dez", "decembre"], 12),
}

WEEKDAYS = {
    **dict.fromkeys(["monday", "montag", "lundi"], 0),
    **dict.fromkeys(["tuesday", "dienstag", "mardi"], 1),
    **dict.fromkeys(["wednesday", "mittwoch", "mercredi"], 2),
    **dict.fromkeys(["thursday", "donnerstag", "jeudi"], 3),
    **dict.fromkeys(["friday", "freitag", "vendredi"], 4),
    **dict.fromkeys(["saturday", "samstag", "sonnabend", "samedi"], 5),
    **dict.fromkeys(["sunday", "sonntag", "dimanche"], 6),
}
_WEEKDAY_ABBREVIATIONS = ["mon", "tue", "tues", "wed", "thu", "thur", "thurs", "fri", "sat", "sun"]

# Words before a date that make it the day they are back ("back on", "until", "bis", "de retour le") …
RETURN_CUES_BEFORE = (
    r"back",
    r"return\w*",
    r"until",
    r"till",
    r"til",
    r"through",
    r"thru",
    r"(?:available|reachable) again",
    r"in the office (?:on|from)",
    r"bis",
    r"zuruck",
    r"wieder",
    r"retour",
    r"jusqu'(?:au|a|le)",
    r"reviens",
    r"reviendrai",
    r"rentre\w*",
)
# … or after it, German style ("ab dem 08.12. wieder im Büro").
RETURN_CUES_AFTER = (r"wieder", r"zuruck", r"back", r"de retour")
# Between two dates, the second ends the absence: "1 to 8 December", "vom 1. bis 8.12.", "du 1er au 8".
RANGE_WORDS = (r"-", r"–", r"—", r"to", r"till", r"until", r"through", r"thru", r"and", r"bis", r"und", r"au", r"et")

STALE_DATE = timedelta(days=31)
"""A date without a year this recent is the past (an auto-reply left on), not next year's."""
STALE_DAY_OF_MONTH = timedelta(days=7)
"""The same for a bare day of the month ("back on the 3rd")."""

_MAX_OUT_OF_OFFICE_CHARS = 20_000
_CUE_WINDOW = 60


def _alternatives(names: Iterable[str]) -> str:
    """A regex alternation of ``names``, longest first so "sept" wins over "sep"."""
    return "|".join(sorted(names, key=len, reverse=True))


_DAY = r"(?P<day>[0-3]?\d)(?:st|nd|rd|th|er|e|\.)?"
_MONTH = rf"(?P<month>{_alternatives(MONTHS)})(?![a-z])\.?"
_YEAR = r"(?:,?\s+(?P<year>\d{4})(?!\d))?"
_PREFIX = rf"(?:(?:{_alternatives(WEEKDAYS)}|{_alternatives(_WEEKDAY_ABBREVIATIONS)})\.?,?\s+)?(?:the\s+|den\s+|le\s+)?"
_DATES = (
    re.compile(rf"(?<![\w.]){_PREFIX}{_DAY}\s*(?:of\s+|de\s+)?{_MONTH}{_YEAR}"),
    re.compile(rf"(?<![\w.]){_PREFIX}{_MONTH}\s+(?P<day>[0-3]?\d)(?:st|nd|rd|th)?(?!\d){_YEAR}"),
    re.compile(r"(?<![\w.])(?P<year>\d{4})-(?P<month>\d{1,2})-(?P<day>\d{1,2})(?![\w])"),
    re.compile(r"(?<![\w.])(?P<a>\d{1,2})(?P<sep>[./-])(?P<b>\d{1,2})(?P=sep)(?P<year>\d{4}|\d{2})(?![\w]|\.\d)"),
    re.compile(r"(?<![\w.])(?P<a>\d{1,2})\.(?P<b>\d{1,2})\.(?!\d)"),
    re.compile(r"(?<![\w./])(?P<a>\d{1,2})/(?P<b>\d{1,2})(?![\w/])"),
    re.compile(r"(?<![\w.])the\s+(?P<day>[0-3]?\d)(?:st|nd|rd|th)(?![\w])"),
    re.compile(rf"(?<![\w.])(?P<weekday>{_alternatives(WEEKDAYS)})(?![\w])"),
    re.compile(r"(?<![\w.])(?P<tomorrow>tomorrow|morgen|demain)(?![\w])"),
)
_CUE_BEFORE = _phrases(RETURN_CUES_BEFORE)
_CUE_AFTER = _phrases(RETURN_CUES_AFTER)
_RANGE_GAP = re.compile(r"\s*(?:" + "|".join(RANGE_WORDS) + r")\s*")
_RANGE_START = re.compile(r"(?<![\w.])[0-3]?\d(?:st|nd|rd|th|er|e|\.)?\s*(?:" + "|".join(RANGE_WORDS) + r")\s*$")
_SENTENCE_END = re.compile(r"[.!?;](?:\s+|$)|\n\s*\n")
_QUOTED_LINE = re.compile(r"^[ \t]*>.*$", re.MULTILINE)


@dataclass(frozen=True, kw_only=True)
class _Mention:
    """A date as written: ``start``/``end`` in the folded text, ``day`` resolved against the received day."""

    start: int
    end: int
    day: date | None


def out_of_office_until(text: str, subject: str, *, received: datetime) -> datetime | None:
    """The day an out-of-office reply says its sender is back, at 00:00 in ``received``'s timezone.

    A date counts when a return cue stands before it in the same sentence ("back on", "returning", "until",
    "till", "through", "bis", "wieder", "zurück", "de retour", "jusqu'au") or "wieder"/"zurück"/"back" follows
    it, or when it ends a range ("1 to 8 December", "vom 1. bis 8.12.", "between 24 December and 5 January").
    Of the counted dates, the latest that is neither before ``received``'s day nor more than a year after it
    wins; "until X" gives X itself. Dates are read in English, German and French: "Monday 8 December",
    "8th of December 2026", "December 8, 2026", "8. Dezember", "1er juillet", "2026-12-08", "08.12.2026",
    "8.12.", "12/08/2026", "8/12", "the 3rd", a bare weekday and "tomorrow". Numeric dates are day first
    ("12/08/2026" is 12 August) unless that is impossible ("12/25/2026"). A date without a year is the next
    such day on or after ``received``'s day, unless that day was at most :data:`STALE_DATE` ago (seven days
    for "the 3rd"): then it is an auto-reply nobody switched off, and in the past. A weekday is the next one
    after ``received``'s day, "tomorrow" the day after. Quoted lines (``>``) are
    skipped. ``None`` when no date counts. Pure and total: never raises on any text.
    """
    body = _QUOTED_LINE.sub("", text[:_MAX_OUT_OF_OFFICE_CHARS])
    folded = _fold(f"{subject[:1000]}\n\n{body}")
    today = received.date()
    mentions = _mentions(folded, today)
    days = [
        mention.day
        for index, mention in enumerate(mentions)
        if mention.day is not None and _within_a_year(mention.day, today) and _cued(folded, mentions, index)
    ]
    if not days:
        return None
    back = max(days)
    return datetime(back.year, back.month, back.day, tzinfo=received.tzinfo)


def _mentions(folded: str, today: date) -> list[_Mention]:
    """Every date written in ``folded``, longest first where they overlap, in order of position."""
    found = [match for pattern in _DATES for match in pattern.finditer(folded)]
    found.sort(key=lambda match: (-(match.end() - match.start()), match.start()))
    covered = bytearray(len(folded))
    taken: list[_Mention] = []
    for match in found:
        if not any(covered[match.start() : match.end()]):
            covered[match.start() : match.end()] = b"\x01" * (match.end() - match.start())
            taken.append(_Mention(start=match.start(), end=match.end(), day=_resolve(match, today)))
    return sorted(taken, key=lambda mention: mention.start)


def _resolve(match: re.Match[str], today: date) -> date | None:
    found = match.groupdict()
    if found.get("tomorrow"):
        return today + timedelta(days=1)
    if found.get("weekday"):
        return today + timedelta(days=(WEEKDAYS[found["weekday"]] - today.weekday() - 1) % 7 + 1)
    year = _year(found.get("year"))
    if found.get("a"):
        day, month = _day_first(int(found["a"]), int(found["b"]))
    elif found.get("month"):
        day, month = int(found["day"]), _month(found["month"])
    else:
        return _nearest(_days_of_month(int(found["day"]), today), today, stale=STALE_DAY_OF_MONTH)
    if year is not None:
        return _date(year, month, day)
    candidates = (_date(year, month, day) for year in range(today.year - 1, today.year + 2))
    return _nearest([day for day in candidates if day is not None], today, stale=STALE_DATE)


def _year(text: str | None) -> int | None:
    if not text:
        return None
    year = int(text)
    return year + 2000 if year < 100 else year


def _month(text: str) -> int:
    return int(text) if text.isdigit() else MONTHS.get(text, 0)


def _day_first(a: int, b: int) -> tuple[int, int]:
    """(day, month) of "a/b": day first, unless only month first is possible."""
    return (b, a) if b > 12 >= a else (a, b)


def _days_of_month(day: int, today: date) -> list[date]:
    """Day ``day`` of last month, this month and the twelve after."""
    months = (today.year * 12 + today.month - 1 + ahead for ahead in range(-1, 13))
    days = (_date(month // 12, month % 12 + 1, day) for month in months)
    return [found for found in days if found is not None]


def _nearest(candidates: list[date], today: date, *, stale: timedelta) -> date | None:
    """The next of ``candidates`` from ``today`` on, or the last before it when that is at most ``stale`` ago."""
    past = max((day for day in candidates if day <= today), default=None)
    if past is not None and today - past <= stale:
        return past
    return min((day for day in candidates if day >= today), default=None)


def _date(year: int, month: int, day: int) -> date | None:
    try:
        return date(year, month, day)
    except (ValueError, OverflowError):
        return None


def _within_a_year(day: date, today: date) -> bool:
    limit = _date(today.year + 1, today.month, today.day) or _date(today.year + 1, today.month, today.day - 1)
    return today <= day <= (limit or today)


def _cued(folded: str, mentions: list[_Mention], index: int) -> bool:
    """Whether the text around mention ``index`` says it is the day they are back."""
    mention = mentions[index]
    previous_end = mentions[index - 1].end if index > 0 else 0
    next_start = mentions[index + 1].start if index + 1 < len(mentions) else len(folded)
    gap = folded[previous_end : mention.start]
    if index > 0 and mentions[index - 1].day is not None and _RANGE_GAP.fullmatch(gap):
        return True
    before = _last_sentence(gap[-_CUE_WINDOW:])
    after = _first_sentence(folded[mention.end : next_start][:_CUE_WINDOW])
    return bool(_CUE_BEFORE.search(before) or _RANGE_START.search(before) or _CUE_AFTER.search(after))


def _last_sentence(text: str) -> str:
    ends = list(_SENTENCE_END.finditer(text))
    return text[ends[-1].end() :] if ends else text


def _first_sentence(text: str) -> str:
    end = _SENTENCE_END.search(text)
    return text[: end.start()] if end else text


__all__ = ["Intent", "out_of_office_until", "read_reply"]
