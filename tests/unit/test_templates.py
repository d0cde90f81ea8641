"""The shipped templates: every kind renders, personally, in text and HTML, with and without optional values."""

import re
from pathlib import Path

import pytest

from daemon.domain.model import TouchKind
from daemon.render import RenderedTouch, Renderer, sample_context

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
KINDS = [kind.value for kind in TouchKind]
CUSTOMER_KINDS = [kind.value for kind in TouchKind if not kind.to_staff]
STAFF_KINDS = [kind.value for kind in TouchKind if kind.to_staff]
LEAKS = ["{{", "}}", "{%", "%}", "{#", "Undefined", "None", "Traceback", "Hi ,", "Hello ,", " ,", "Dear customer", "  "]


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(TEMPLATES)


def render(renderer: Renderer, kind: str, *, complete: bool = True, language: str | None = None) -> RenderedTouch:
    return renderer.render(kind, sample_context(kind, complete=complete), language=language)


def visible_text(html: str) -> str:
    """The words of an HTML body, roughly as a reader sees them."""
    body = re.sub(r"(?s)<(style|title)>.*?</\1>", "", html)
    body = re.sub(r"</?(strong|a|span|em|b)\b[^>]*>", "", body)
    return " ".join(re.sub(r"<[^>]+>", " ", body).split())


def test_the_shipped_templates_pass_check(renderer: Renderer) -> None:
    assert [str(p) for p in renderer.check()] == []


@pytest.mark.parametrize("complete", [True, False], ids=["complete", "minimal"])
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_subject_text_and_html_without_leaks(renderer: Renderer, kind: str, complete: bool) -> None:
    touch = render(renderer, kind, complete=complete)

    assert touch.template == f"en/{kind}.txt"
    assert touch.html is not None
    for part in (touch.subject, touch.text, visible_text(touch.html)):
        assert part.strip()
        for leak in LEAKS:
            assert leak not in part, f"{leak!r} in {kind}: {part}"
    assert "\n" not in touch.subject and "\r" not in touch.subject
    assert "[CL-7K3P]" in touch.subject


@pytest.mark.parametrize("kind", CUSTOMER_KINDS)
def test_customer_mail_is_personal(renderer: Renderer, kind: str) -> None:
    touch = render(renderer, kind)
    assert touch.html is not None
    html_words = visible_text(touch.html)

    for part in (touch.text, html_words):
        assert part.startswith("Hi Jane,") or "Hi Jane," in part
        assert "Sam" in part and "Example Support" in part
        assert "CL-7K3P" in part
        assert "Invoice shows the wrong VAT number" in part
    assert touch.subject == "Re: Invoice shows the wrong VAT number [CL-7K3P]"


@pytest.mark.parametrize("kind", CUSTOMER_KINDS)
def test_customer_mail_without_a_first_name_says_hello(renderer: Renderer, kind: str) -> None:
    touch = render(renderer, kind, complete=False)
    assert touch.html is not None

    assert touch.text.startswith("Hello,\n")
    assert "<p>Hello,</p>" in re.sub(r' style="[^"]*"', "", touch.html)


@pytest.mark.parametrize("complete", [True, False], ids=["complete", "minimal"])
@pytest.mark.parametrize("kind", CUSTOMER_KINDS)
def test_customer_mail_ends_with_how_to_stop_these_emails(renderer: Renderer, kind: str, complete: bool) -> None:
    touch = render(renderer, kind, complete=complete)
    assert touch.html is not None

    last_line = touch.text.rstrip("\n").rsplit("\n", 1)[-1]
    assert last_line.startswith("To stop these emails")
    assert "mailto:support+unsubscribe@example.org?subject=unsubscribe" in last_line
    assert "\n-- \n" in touch.text  # mail clients leave the footer out of replies
    assert 'href="mailto:support+unsubscribe@example.org?subject=unsubscribe"' in touch.html
    if complete:
        assert "https://example.org/unsubscribe?t=7K3P" in last_line


@pytest.mark.parametrize("kind", ["acknowledgement", "thank-you"])
def test_promised_date_is_named_or_left_out_cleanly(renderer: Renderer, kind: str) -> None:
    complete = render(renderer, kind)
    minimal = render(renderer, kind, complete=False)

    assert "by Friday, 27 November" in complete.text
    assert "as soon as I can" in minimal.text and "27 November" not in minimal.text


def test_acknowledgement_reflects_what_they_wrote_and_who_owns_it(renderer: Renderer) -> None:
    text = render(renderer, "acknowledgement").text

    assert "Thank you for taking the time" in text
    assert "> I received invoice 2026-114 today" in text
    assert "I'm Sam, and I'll look after this for you myself." in text
    assert "just reply to this email" in text


def test_outcome_tells_them_in_the_teams_words_and_asks_to_check_back(renderer: Renderer) -> None:
    touch = render(renderer, "outcome")
    assert touch.html is not None

    assert "I have sent you a corrected invoice (2026-114-A)" in touch.text
    assert "I have sent you a corrected invoice (2026-114-A)" in visible_text(touch.html)
    for part in (touch.text, visible_text(touch.html)):
        assert "check back with you in a few months" in part
        assert "reply “no”" in part or 'reply "no"' in part


def test_outcome_without_words_from_the_team_still_reads_well(renderer: Renderer) -> None:
    text = render(renderer, "outcome", complete=False).text

    assert "finished looking into your message" in text
    assert "here it is" not in text


def test_follow_through_is_honest_about_the_slipped_promise(renderer: Renderer) -> None:
    complete = render(renderer, "follow-through").text
    minimal = render(renderer, "follow-through", complete=False).text

    assert "by Friday, 27 November, and we're not there yet" in complete
    assert "Here's where it stands: The fix is written" in complete
    assert "again by Wednesday, 2 December" in complete
    assert "not there yet" not in minimal and "waiting longer than we'd like" in minimal
    assert "as soon as I know more" in minimal


def test_check_in_asks_how_things_are_and_how_to_close_it(renderer: Renderer) -> None:
    text = render(renderer, "check-in").text

    assert "how are things now?" in text
    assert '"all good"' in text and "close this conversation" in text
    assert "24 November 2026" in text


def test_closing_thanks_them_and_keeps_the_door_open(renderer: Renderer) -> None:
    text = render(renderer, "closing").text

    assert "Thank you again" in text
    assert "closed this conversation" in text
    assert "write to support@example.org" in text


@pytest.mark.parametrize("complete", [True, False], ids=["complete", "minimal"])
@pytest.mark.parametrize("kind", STAFF_KINDS)
def test_staff_mail_names_the_loop_and_how_to_record_the_outcome(renderer: Renderer, kind: str, complete: bool) -> None:
    touch = render(renderer, kind, complete=complete)
    assert touch.html is not None
    escalated = kind == "staff-reminder" and complete

    for part in (touch.text, visible_text(touch.html)):
        assert ("Hi all," if escalated else "Hi Sam,") in part
        assert "CL-7K3P" in part
        assert 'closeloop outcome CL-7K3P --text "…"' in part
        assert "unsubscribe" not in part.lower()


def test_staff_notification_carries_the_customers_message(renderer: Renderer) -> None:
    text = render(renderer, "staff-notification").text

    assert "From: Jane Doe <jane.doe@example.com>\nSubject: Invoice shows the wrong VAT number\n" in text
    assert "> Could you send a corrected invoice?" in text
    assert "CL-2M9Q, 3 March 2026: Can I add a second user?" in text


def test_staff_notification_says_why_it_was_sent(renderer: Renderer) -> None:
    reply = render(renderer, "staff-notification").text
    new = render(renderer, "staff-notification", complete=False).text

    assert "Hi Sam,\n\nJane Doe replied; the rules could not tell what they want, over to you.\n" in reply
    assert "Hi Sam,\n\nA new message came in, and loop CL-7K3P is yours.\n" in new


def test_staff_reminder_escalates_when_the_touch_note_says_so(renderer: Renderer) -> None:
    escalated = render(renderer, "staff-reminder")
    plain = render(renderer, "staff-reminder", complete=False)

    assert escalated.subject.startswith("[CL-7K3P] Escalated:")
    assert escalated.text.startswith("Hi all,\n\nEscalated to the whole team: this was the last planned update.\n")
    assert (
        "(CL-7K3P), and the date we gave has passed without one. 3 updates have gone out to them so far, saying "
        "we're not there yet; the latest promises news by Friday, 27 November." in escalated.text
    )
    assert "Sam Rivera owns this loop. If Sam can't get to it, whoever can, please take it over" in escalated.text
    assert plain.text.startswith("Hi Sam,\n")
    assert "Escalated" not in plain.subject and "scalated" not in plain.text and "owns this loop" not in plain.text


@pytest.mark.parametrize("part", ["text", "html"])
def test_staff_reminder_never_calls_the_new_promise_passed(renderer: Renderer, part: str) -> None:
    """The customer's update goes out just before its reminder and moves the promised date to a new one."""
    context = sample_context("staff-reminder", complete=False)
    context["customer"] = {"first_name": "Jane", "name": "Jane Doe", "email": "jane.doe@example.com"}
    promised = sample_context("staff-reminder")["loop"]["promised_by"]  # type: ignore[index]

    before_update = {**context, "loop": {**context["loop"], "promised_by": promised}}  # type: ignore[dict-item]
    after_update = {**before_update, "loop": {**before_update["loop"], "follow_throughs": 1}}  # type: ignore[dict-item]
    old = renderer.render("staff-reminder", before_update)
    new = renderer.render("staff-reminder", after_update)
    read = (lambda t: t.text) if part == "text" else (lambda t: visible_text(t.html or ""))

    assert "by Friday, 27 November, and that date has passed without one. No update has gone out" in read(old)
    assert "and that date has passed" not in read(new)
    assert "the date we gave has passed without one. One update has gone out to them so far" in read(new)
    assert "it promises news by Friday, 27 November." in read(new)


def test_html_escapes_customer_data_that_the_text_keeps(renderer: Renderer) -> None:
    evil = "<script>alert(1)</script>"
    ctx = sample_context("staff-notification")
    ctx["loop"] = {**ctx["loop"], "subject": evil}  # type: ignore[dict-item]
    ctx["customer"] = {**ctx["customer"], "name": evil, "first_name": evil}  # type: ignore[dict-item]
    ctx["message"] = {**ctx["message"], "text": evil, "excerpt": evil}  # type: ignore[dict-item]

    for kind in ("acknowledgement", "staff-notification"):
        touch = renderer.render(kind, ctx)
        assert touch.html is not None
        assert "<script>" not in touch.html and "&lt;script&gt;" in touch.html
        assert evil in touch.text
        assert evil in touch.subject


def test_evil_subjects_cannot_add_headers(renderer: Renderer) -> None:
    ctx = sample_context("acknowledgement")
    ctx["loop"] = {**ctx["loop"], "subject": "Hi\r\nBcc: everyone@example.com\r\n\r\nbody"}  # type: ignore[dict-item]

    touch = renderer.render("acknowledgement", ctx)

    assert touch.subject == "Re: Hi Bcc: everyone@example.com body [CL-7K3P]"


def test_long_subjects_keep_the_reference(renderer: Renderer) -> None:
    ctx = sample_context("acknowledgement")
    ctx["loop"] = {**ctx["loop"], "subject": "very long words " * 30}  # type: ignore[dict-item]

    touch = renderer.render("acknowledgement", ctx)

    assert touch.subject.endswith("… [CL-7K3P]") and len(touch.subject) <= 200


@pytest.mark.parametrize("kind", KINDS)
def test_html_is_a_simple_self_contained_mail_layout(renderer: Renderer, kind: str) -> None:
    html = render(renderer, kind).html
    assert html is not None

    assert html.startswith("<!DOCTYPE html>")
    assert 'role="presentation"' in html and "max-width: 600px" in html
    assert "<script" not in html and "<link" not in html and "@import" not in html
    assert not re.search(r"""(src|href)=["']?https?://(?!example\.org/unsubscribe)""", html)
    assert '<p style="' in html  # the <style> rules were inlined for Gmail and Outlook


def test_german_acknowledgement(renderer: Renderer) -> None:
    complete = render(renderer, "acknowledgement", language="de")
    minimal = render(renderer, "acknowledgement", language="de-CH", complete=False)

    assert complete.template == "de/acknowledgement.txt"
    assert complete.text.startswith("Hallo Jane,\n\nvielen Dank, dass Sie sich die Zeit genommen haben")
    assert "Bis Freitag, 27. November melde ich mich" in complete.text
    assert complete.text.rstrip().rsplit("\n", 1)[-1].startswith("Keine weiteren E-Mails dieser Art?")
    assert complete.html is not None and '<html lang="de">' in complete.html
    assert "Bis <strong>Freitag, 27. November</strong>" in complete.html
    assert minimal.text.startswith("Guten Tag,\n") and "Sobald ich mehr weiß" in minimal.text
    for leak in LEAKS:
        assert leak not in complete.text and leak not in minimal.text


def test_a_kind_not_yet_translated_falls_back_to_english(renderer: Renderer) -> None:
    touch = render(renderer, "outcome", language="de")

    assert touch.template == "en/outcome.txt"
    assert touch.text.startswith("Hi Jane,")


@pytest.mark.parametrize("language", ["en", "de"])
@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_subject_and_message_still_read_well(renderer: Renderer, kind: str, language: str) -> None:
    ctx = sample_context(kind, complete=False)
    ctx["loop"] = {**ctx["loop"], "subject": ""}  # type: ignore[dict-item]
    ctx["message"] = {**ctx["message"], "subject": "", "text": "", "excerpt": "", "from_email": ""}  # type: ignore[dict-item]

    touch = renderer.render(kind, ctx, language=language)
    assert touch.html is not None

    for part in (touch.subject, touch.text, visible_text(touch.html)):
        for empty in ('""', "“”", "„“", "<>", "\n>\n", "\n\n\n", " ."):
            assert empty not in part, f"{empty!r} in {kind}: {part}"
    assert "[CL-7K3P]" in touch.subject and len(touch.subject) > len("[CL-7K3P]")
