"""The renderer: sandbox, limits, error reporting, resolution, hot reload, dates. Uses small template sets in tmp."""

import os
import shutil
import time
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from daemon.domain.model import TouchKind
from daemon.render import (
    FormattedDate,
    Renderer,
    TemplateError,
    TemplateProblem,
    language_tag,
    sample_context,
)

ACK = "acknowledgement"
SUBJECT = "Re: {{ loop.subject }} [{{ loop.ref }}]\n"
TEXT = "Hi {{ customer.first_name or 'there' }},\nabout {{ loop.subject }}\n"
HTML = "<p>Hi {{ customer.first_name or 'there' }}, about {{ loop.subject }}</p>\n"


def write(root: Path, files: dict[str, str]) -> Path:
    for name, content in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    return root


def ack_set(root: Path, folder: str = "en", *, text: str = TEXT, html: str | None = HTML) -> Path:
    files = {f"{folder}/{ACK}.subject.txt": SUBJECT, f"{folder}/{ACK}.txt": text}
    if html is not None:
        files[f"{folder}/{ACK}.html"] = html
    return write(root, files)


def failure(root: Path, body: str, **options: float) -> TemplateError:
    """Render an acknowledgement whose text is a first line and then ``body`` on line 2."""
    ack_set(root, text=f"line one\n{body}\n", html=None)
    renderer = Renderer(root, **options)  # type: ignore[arg-type]
    with pytest.raises(TemplateError) as caught:
        renderer.render(ACK, sample_context(ACK))
    return caught.value


def context(**overrides: object) -> dict[str, object]:
    ctx = sample_context(ACK)
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        if field:
            ctx[section] = {**ctx[section], field: value}  # type: ignore[dict-item]
        else:
            ctx[section] = value
    return ctx


# -- the rendered touch -----------------------------------------------------------------------------------------


def test_render_returns_subject_text_html_template_and_version(tmp_path: Path) -> None:
    touch = Renderer(ack_set(tmp_path)).render(ACK, sample_context(ACK))

    assert touch.subject == "Re: Invoice shows the wrong VAT number [CL-7K3P]"
    assert touch.text == "Hi Jane,\nabout Invoice shows the wrong VAT number\n"
    assert touch.html is not None and "Hi Jane, about Invoice shows the wrong VAT number" in touch.html
    assert touch.template == "en/acknowledgement.txt"
    assert len(touch.version) == 12 and int(touch.version, 16) >= 0


def test_without_an_html_template_the_touch_is_text_only(tmp_path: Path) -> None:
    touch = Renderer(ack_set(tmp_path, html=None)).render(ACK, sample_context(ACK))

    assert touch.html is None


@pytest.mark.parametrize("evil", ["a\r\nBcc: x@evil.example", "a\nb", "a\rb", "a\x00b", "a\u2028b", "a\x85b", "a\tb"])
def test_subject_never_carries_line_breaks_or_control_characters(tmp_path: Path, evil: str) -> None:
    touch = Renderer(ack_set(tmp_path)).render(ACK, context(loop__subject=evil))

    assert not any(ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F or ch in "\u2028\u2029" for ch in touch.subject)
    assert touch.subject.startswith("Re: a ") and touch.subject.endswith("[CL-7K3P]")


def test_subject_is_trimmed_and_capped(tmp_path: Path) -> None:
    touch = Renderer(ack_set(tmp_path)).render(ACK, context(loop__subject="  word " * 100))

    assert len(touch.subject) <= 200
    assert touch.subject.endswith("…") and "  " not in touch.subject


def test_html_escapes_customer_data_and_text_keeps_it_literal(tmp_path: Path) -> None:
    evil = "<script>alert('x')</script> & Co"
    touch = Renderer(ack_set(tmp_path)).render(ACK, context(loop__subject=evil, customer__first_name="<b>Jo</b>"))

    assert touch.html is not None
    assert "&lt;script&gt;" in touch.html and "<script>" not in touch.html
    assert "&lt;b&gt;Jo&lt;/b&gt;" in touch.html
    assert "<script>alert('x')</script> & Co" in touch.text
    assert "Hi <b>Jo</b>," in touch.text


def test_text_is_tidied_but_keeps_the_signature_separator(tmp_path: Path) -> None:
    text = "Hello,   \r\n\n\n\n\nbody\n{{ '-- ' }}\nSam\n\n\n"
    touch = Renderer(ack_set(tmp_path, text=text)).render(ACK, sample_context(ACK))

    assert touch.text == "Hello,\n\nbody\n-- \nSam\n"


def test_css_in_a_style_block_is_inlined_and_media_queries_stay(tmp_path: Path) -> None:
    html = (
        "<html><head><style>p { color: #123456; } @media (max-width: 600px) { p { color: red !important; } }"
        "</style></head><body><p>{{ loop.ref }}</p></body></html>"
    )
    touch = Renderer(ack_set(tmp_path, html=html)).render(ACK, sample_context(ACK))

    assert touch.html is not None
    assert '<p style="color: #123456;">CL-7K3P</p>' in touch.html
    assert "@media (max-width: 600px)" in touch.html


def test_remote_stylesheets_are_never_fetched_or_kept(tmp_path: Path) -> None:
    html = '<html><head><link rel="stylesheet" href="http://192.0.2.1/x.css"></head><body><p>x</p></body></html>'
    touch = Renderer(ack_set(tmp_path, html=html)).render(ACK, sample_context(ACK))

    assert touch.html is not None and "192.0.2.1" not in touch.html


def test_subject_is_available_to_the_bodies(tmp_path: Path) -> None:
    html = "<title>{{ subject }}</title>"
    touch = Renderer(ack_set(tmp_path, html=html)).render(ACK, sample_context(ACK))

    assert touch.html is not None
    assert "<title>Re: Invoice shows the wrong VAT number [CL-7K3P]</title>" in touch.html


def test_paragraphs_filter_makes_escaped_paragraphs_in_html_and_leaves_text_alone(tmp_path: Path) -> None:
    root = ack_set(tmp_path, text="{{ outcome|paragraphs }}\n", html="{{ outcome|paragraphs }}")
    outcome = "First <line>\nsecond line\n\nNew paragraph"
    touch = Renderer(root).render(ACK, context(outcome=outcome))

    assert touch.html is not None
    assert "<p>First &lt;line&gt;<br>\nsecond line</p>\n<p>New paragraph</p>" in touch.html
    assert touch.text == outcome + "\n"


@pytest.mark.parametrize(
    ("note", "sentence"),
    [("the customer says all is well", "The customer says all is well."), ("Done!", "Done!"), ("ok.", "Ok.")],
)
def test_sentence_filter_turns_a_note_into_a_sentence(tmp_path: Path, note: str, sentence: str) -> None:
    root = ack_set(tmp_path, text="{{ touch.note|sentence }}\n", html=None)
    touch = Renderer(root).render(ACK, context(touch__note=note))

    assert touch.text == sentence + "\n"


def test_quote_filter_quotes_every_line_like_mail(tmp_path: Path) -> None:
    root = ack_set(tmp_path, text="{{ message.text|quote }}\n", html=None)
    touch = Renderer(root).render(ACK, context(message__text="one\n\ntwo\n"))

    assert touch.text == "> one\n>\n> two\n"


# -- dates --------------------------------------------------------------------------------------------------------


def test_dates_read_naturally_in_the_templates_language(tmp_path: Path) -> None:
    text = "{% set d = loop.promised_by %}{{ d }}|{{ d.date }}|{{ d.weekday }}|{{ d.time }}"
    root = write(
        tmp_path,
        {
            "en/acknowledgement.subject.txt": "s",
            "en/acknowledgement.txt": text,
            "de/acknowledgement.subject.txt": "s",
            "de/acknowledgement.txt": text,
        },
    )
    renderer = Renderer(root)

    english = renderer.render(ACK, sample_context(ACK)).text
    american = renderer.render(ACK, sample_context(ACK), language="en-US").text
    german = renderer.render(ACK, sample_context(ACK), language="de").text
    fallback = renderer.render(ACK, sample_context(ACK), language="fr").text

    assert english == "Friday, 27 November|27 November 2026|Friday|17:00\n"
    assert american == "Friday, November 27|November 27, 2026|Friday|5:00\u202fPM\n"
    assert german == "Freitag, 27. November|27. November 2026|Freitag|17:00\n"
    assert fallback == english  # no French templates: the English text gets English dates


def test_dates_keep_the_timezone_they_were_given(tmp_path: Path) -> None:
    root = ack_set(tmp_path, text="{{ loop.promised_by.time }} {{ loop.promised_by.iso }}", html=None)
    tokyo = datetime(2026, 11, 27, 8, 30, tzinfo=timezone(timedelta(hours=9)))
    touch = Renderer(root).render(ACK, context(loop__promised_by=tokyo))

    assert touch.text == "08:30 2026-11-27T08:30:00+09:00\n"


def test_nested_dates_in_lists_are_formatted_too(tmp_path: Path) -> None:
    text = "{% for e in earlier_loops %}{{ e.opened_at.date }};{% endfor %}"
    touch = Renderer(ack_set(tmp_path, text=text, html=None)).render(ACK, sample_context(ACK))

    assert touch.text == "3 March 2026;14 January 2026;\n"


def test_formatted_date_str_is_the_day() -> None:
    from babel import Locale

    value = FormattedDate(datetime(2026, 11, 28, 14, 0, tzinfo=UTC), Locale.parse("en_GB"))

    assert str(value) == value.day == "Saturday, 28 November"
    assert value.date == "28 November 2026"


# -- resolution ---------------------------------------------------------------------------------------------------


def marked_sets(root: Path, *folders: str) -> Renderer:
    """An acknowledgement set in each folder whose text names the folder."""
    for folder in folders:
        ack_set(root, folder, text=f"from {folder}\n", html=f"<p>{folder}</p>")
    return Renderer(root)


@pytest.mark.parametrize(
    ("language", "inbox", "expected"),
    [
        (None, None, "en"),
        ("en", "billing", "billing/en"),
        ("de", "billing", "billing/de"),
        ("en", "support", "support"),
        ("en-GB", "support", "support"),
        ("de", "support", "de"),
        ("pt-BR", None, "pt-BR"),
        ("pt_br", None, "pt-BR"),
        ("pt-PT", None, "pt"),
        ("fr", None, "en"),
        ("fr", "billing", "en"),
        ("../../etc", None, "en"),
        ("pt-BR, en;q=0.8", None, "pt-BR"),
        ("", "support", "support"),
    ],
)
def test_resolution_takes_the_first_existing_folder(
    tmp_path: Path, language: str | None, inbox: str | None, expected: str
) -> None:
    renderer = marked_sets(tmp_path, "en", "de", "pt", "pt-BR", "support", "billing/en", "billing/de")

    touch = renderer.render(ACK, sample_context(ACK), language=language, inbox=inbox)

    assert touch.text == f"from {expected}\n"
    assert touch.template == f"{expected}/acknowledgement.txt"


def test_an_inbox_folder_without_the_kind_falls_back_to_the_language_folders(tmp_path: Path) -> None:
    renderer = marked_sets(tmp_path, "en")
    write(tmp_path, {"support/outcome.txt": "x", "support/outcome.subject.txt": "x"})

    assert renderer.render(ACK, sample_context(ACK), inbox="support").template == "en/acknowledgement.txt"


def test_parts_never_mix_folders(tmp_path: Path) -> None:
    renderer = marked_sets(tmp_path, "en")
    ack_set(tmp_path, "de", text="nur Text\n", html=None)

    touch = renderer.render(ACK, sample_context(ACK), language="de")

    assert touch.text == "nur Text\n"
    assert touch.html is None  # not en/acknowledgement.html, which says something else


def test_a_folder_with_a_text_but_no_subject_is_an_error_naming_the_missing_file(tmp_path: Path) -> None:
    renderer = marked_sets(tmp_path, "en")
    write(tmp_path, {"de/acknowledgement.txt": "Hallo\n"})

    with pytest.raises(TemplateError) as caught:
        renderer.render(ACK, sample_context(ACK), language="de")

    assert caught.value.path == "de/acknowledgement.subject.txt"
    assert "missing" in str(caught.value)


def test_a_kind_without_any_template_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match=r"en/outcome.txt: missing"):
        marked_sets(tmp_path, "en").render("outcome", sample_context("outcome"))


def test_unknown_kind_and_bad_inbox_names_are_errors(tmp_path: Path) -> None:
    renderer = marked_sets(tmp_path, "en")

    with pytest.raises(TemplateError, match="unknown touch kind"):
        renderer.render("../en/acknowledgement", sample_context(ACK))
    with pytest.raises(TemplateError, match="not a valid inbox"):
        renderer.render(ACK, sample_context(ACK), inbox="../en")


def test_language_tags_are_canonical_folder_names() -> None:
    assert language_tag("pt_br") == "pt-BR"
    assert language_tag("DE") == "de"
    assert language_tag("es-419") == "es-419"
    assert language_tag("und") is None
    assert language_tag("support") is None
    assert language_tag("en;q=0.9") is None


# -- versions and hot reload --------------------------------------------------------------------------------------


def touch_file(path: Path, content: str) -> None:
    """Rewrite a template and move its mtime on, so the change shows even on coarse-mtime file systems."""
    before = path.stat().st_mtime_ns
    path.write_text(content, encoding="utf-8")
    os.utime(path, ns=(before + 2_000_000_000, before + 2_000_000_000))


def complete_set(root: Path, *, ack_text: str = TEXT) -> Path:
    """A subject and a text for every kind in en/: a set that passes the check (unless ``ack_text`` breaks it)."""
    for kind in TouchKind:
        write(root, {f"en/{kind.value}.subject.txt": SUBJECT, f"en/{kind.value}.txt": TEXT})
    return write(root, {f"en/{ACK}.txt": ack_text})


TYPO = "Hi,\n\n{{ custmer.first_name }}\n"
TYPO_PROBLEM = "en/acknowledgement.txt:3: undefined: 'custmer' is undefined"


def test_an_edited_template_takes_effect_on_the_next_render(tmp_path: Path) -> None:
    renderer = Renderer(complete_set(tmp_path), reload_interval=0)
    first = renderer.render(ACK, sample_context(ACK))

    touch_file(tmp_path / "en/acknowledgement.txt", "Edited for {{ customer.first_name }}\n")
    second = renderer.render(ACK, sample_context(ACK))

    assert first.text != second.text == "Edited for Jane\n"
    assert first.version != second.version


def test_refresh_makes_an_edit_take_effect_at_once_and_reports_each_change_once(tmp_path: Path) -> None:
    renderer = Renderer(complete_set(tmp_path), reload_interval=3600)
    first = renderer.refresh()
    assert (first.changed, first.ok, first.fallback) == (True, True, False)
    assert renderer.render(ACK, sample_context(ACK)).text.startswith("Hi Jane")

    touch_file(tmp_path / "en/acknowledgement.txt", "Edited\n")
    edited = renderer.refresh()
    again = renderer.refresh()

    assert renderer.render(ACK, sample_context(ACK)).text == "Edited\n"
    assert edited.changed and edited.generation == first.generation + 1 and edited.version != first.version
    assert not again.changed and again.generation == edited.generation


def test_a_broken_edit_leaves_the_last_good_version_in_use(tmp_path: Path) -> None:
    renderer = Renderer(complete_set(tmp_path), reload_interval=3600)
    good = renderer.render(ACK, sample_context(ACK))

    touch_file(tmp_path / "en/acknowledgement.txt", TYPO)
    refresh = renderer.refresh()
    meanwhile = renderer.render(ACK, sample_context(ACK))

    assert [str(p) for p in refresh.problems] == [TYPO_PROBLEM]
    assert refresh.changed and refresh.fallback
    assert [str(p) for p in renderer.problems()] == [TYPO_PROBLEM]
    assert [str(p) for p in renderer.check()] == [TYPO_PROBLEM]
    assert (meanwhile.text, meanwhile.version) == (good.text, good.version)


def test_mending_the_template_makes_the_files_on_disk_live_again(tmp_path: Path) -> None:
    renderer = Renderer(complete_set(tmp_path), reload_interval=3600)
    renderer.refresh()
    touch_file(tmp_path / "en/acknowledgement.txt", TYPO)
    renderer.refresh()

    touch_file(tmp_path / "en/acknowledgement.txt", "Hi {{ customer.first_name or 'there' }}, mended\n")
    mended = renderer.refresh()

    assert mended.ok and not mended.fallback and renderer.problems() == []
    assert renderer.render(ACK, sample_context(ACK)).text == "Hi Jane, mended\n"


def test_other_edits_wait_with_the_broken_one_so_versions_never_mix(tmp_path: Path) -> None:
    renderer = Renderer(complete_set(tmp_path), reload_interval=3600)
    renderer.refresh()

    touch_file(tmp_path / "en/acknowledgement.txt", TYPO)
    touch_file(tmp_path / "en/thank-you.txt", "A new thank-you\n")
    renderer.refresh()

    assert renderer.render("thank-you", sample_context("thank-you")).text.startswith("Hi Jane")


def test_a_removed_templates_folder_leaves_the_last_good_version_in_use(tmp_path: Path) -> None:
    root = complete_set(tmp_path / "templates")
    renderer = Renderer(root, reload_interval=3600)
    good = renderer.render(ACK, sample_context(ACK))

    shutil.rmtree(root)
    refresh = renderer.refresh()

    assert refresh.fallback and any(
        str(p).startswith("en/acknowledgement.subject.txt: missing") for p in refresh.problems
    )
    assert renderer.render(ACK, sample_context(ACK)).text == good.text


def test_a_new_install_with_broken_templates_has_no_last_good_version_and_raises(tmp_path: Path) -> None:
    renderer = Renderer(complete_set(tmp_path, ack_text=TYPO), reload_interval=3600)

    with pytest.raises(TemplateError) as caught:
        renderer.render(ACK, sample_context(ACK))

    assert str(caught.value) == TYPO_PROBLEM
    assert [str(p) for p in renderer.problems()] == [TYPO_PROBLEM]
    assert not renderer.refresh().fallback
    assert renderer.render("thank-you", sample_context("thank-you")).text.startswith("Hi Jane")  # what works, works


def test_a_render_that_fails_with_the_last_good_version_still_raises(tmp_path: Path) -> None:
    renderer = Renderer(complete_set(tmp_path, ack_text="{{ message.text }}\n"), max_output_chars=5_000)
    real = context(message__text="a long message " * 1_000)

    with pytest.raises(TemplateError, match="output limit"):
        renderer.render(ACK, real)
    assert renderer.problems() == []


def test_a_file_saved_twice_within_one_mtime_tick_is_still_noticed(tmp_path: Path) -> None:
    renderer = Renderer(complete_set(tmp_path), reload_interval=3600)
    path = tmp_path / "en/acknowledgement.txt"
    path.write_text("Version A\n", encoding="utf-8")
    renderer.refresh()
    stamp = path.stat().st_mtime_ns

    path.write_text("Version B\n", encoding="utf-8")  # the same size
    os.utime(path, ns=(stamp, stamp))  # and the same mtime, as a coarse clock would leave it

    assert renderer.refresh().changed
    assert renderer.render(ACK, sample_context(ACK)).text == "Version B\n"


def test_a_new_language_folder_is_picked_up_without_a_restart(tmp_path: Path) -> None:
    renderer = Renderer(ack_set(tmp_path), reload_interval=0)
    assert renderer.render(ACK, sample_context(ACK), language="de").template == "en/acknowledgement.txt"

    ack_set(tmp_path, "de", text="Hallo\n")

    assert renderer.render(ACK, sample_context(ACK), language="de").template == "de/acknowledgement.txt"


def test_version_covers_included_and_extended_files(tmp_path: Path) -> None:
    root = write(
        tmp_path,
        {
            "en/_layout.txt": "{% block body %}{% endblock +%}\n{% include 'en/_signature.txt' %}",
            "en/_signature.txt": "Sam\n",
            "en/acknowledgement.subject.txt": SUBJECT,
            "en/acknowledgement.txt": "{% extends 'en/_layout.txt' %}{% block body %}Hi{% endblock %}",
        },
    )
    renderer = Renderer(root, reload_interval=0)
    first = renderer.render(ACK, sample_context(ACK))
    again = renderer.render(ACK, sample_context(ACK))

    touch_file(root / "en/_signature.txt", "Sam Rivera\n")
    edited = renderer.render(ACK, sample_context(ACK))

    assert first.version == again.version
    assert edited.version != first.version
    assert edited.text == "Hi\nSam Rivera\n"


# -- the sandbox ----------------------------------------------------------------------------------------------------

ESCAPES = {
    "class mro": "{{ ''.__class__.__mro__ }}",
    "subclasses": "{{ ().__class__.__base__.__subclasses__() }}",
    "getitem dunder": "{{ ''['__class__'] }}",
    "function globals": "{{ cycler.__init__.__globals__ }}",
    "namespace internals": "{{ namespace.__init__.__globals__['os'] }}",
    "template reference": "{{ self._TemplateReference__context }}",
    "self globals": "{{ self.__init__.__globals__ }}",
    "lipsum globals": "{{ lipsum.__globals__ }}",
    "str.format field": "{{ '{0.__class__.__mro__}'.format('') }}",
    "str.format_map": "{{ '{x.__class__}'.format_map({'x': ''}) }}",
    "format via attr filter": "{{ ('{0.__class__}'|attr('format'))('') }}",
    "markup format": "{{ ('{0.__class__}'|safe).format('') }}",
    "loop internals": "{% for x in [1] %}{{ loop._iterator }}{% endfor %}",
    "date internals": "{{ loop.opened_at._value }}",
    "mutate context": "{{ customer.update({'first_name': 'x'}) }}",
    "mutate list": "{{ earlier_loops.append(1) }}",
    "include absolute": "{% include '/etc/passwd' %}",
    "include parent": "{% include '../../x' %}",
    "import parent": "{% import '../render.py' as r %}",
    "huge range": "{{ range(10**9)|list }}",
    "string times": "{{ 'a' * 10**9 }}",
    "list times": "{{ [1, 2] * 10**9 }}",
    "center filter": "{{ 'x'|center(10**9) }}",
    "center literal": "{{ 'x'|center(1000000000) }}",
    "center method": "{{ 'x'.center(10**9) }}",
    "ljust method": "{{ 'x'.ljust(10**9) }}",
    "zfill method": "{{ '1'.zfill(10**9) }}",
    "expandtabs": "{{ '\t\t'.expandtabs(10**9) }}",
    "translate": "{{ 'aa'.translate({97: 'b' * 1000}) }}",
    "int to bytes": "{{ (1).to_bytes(10**9, 'big') }}",
    "encode": "{{ 'x'.encode().center(10**9) }}",
    "format width": "{{ '{:>1000000000}'.format(1) }}",
    "nested format width": "{{ '{:>{w}}'.format(1, w=10**9) }}",
    "printf width": "{{ '%1000000000d' % 1 }}",
    "printf star": "{{ '%*d' % (10**9, 1) }}",
    "format filter": "{{ '%1000000000s'|format('x') }}",
    "indent filter": "{{ 'a'|indent(10**9, first=true) }}",
    "replace filter": "{% set s = 'a' * 100000 %}{{ s|replace('a', s) }}",
    "replace method": "{% set s = 'a' * 100000 %}{{ s.replace('a', s) }}",
    "join filter": "{% set s = 'a' * 100000 %}{{ range(1000)|map(attribute='x', default=s)|join }}",
    "join method": "{% set s = 'a' * 100000 %}{{ ''.join(range(1000)|map(attribute='x', default=s)) }}",
    "wordwrap": "{% set s = 'a ' * 50000 %}{{ s|wordwrap(1, wrapstring=s) }}",
    "batch fill": "{{ [1]|batch(10**9, 'x')|list }}",
    "slice fill": "{{ [1]|slice(10**9)|list }}",
    "sum of lists": "{{ range(100000)|batch(1)|sum(start=[]) }}",
    "big power": "{{ 10**100000 }}",
    "big product": "{% set n = 10**4000 %}{{ n * n * n * n * n }}",
    "concat doubling": "{% set x = 'a' * 1000 %}" + "{% set x = x ~ x %}" * 40,
    "namespace doubling": "{% set n = namespace(s='a') %}{% for i in range(99) %}{% set n.s = n.s ~ n.s %}{% endfor %}",
    "plus doubling": "{% set ns = namespace(s='ab') %}{% for i in range(99) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
    "captured output": "{% set s = 'a' * 100000 %}{% set x %}{% for i in range(1000) %}{{ s }}{% endfor %}{% endset %}",
    "macro output": "{% set s = 'a' * 9999 %}{% macro m() %}{% for i in range(99) %}{{ s }}{% endfor %}{% endmacro %}"
    "{{ m() }}",
    "list of copies": "{% set s = 'a' * 100000 %}{{ range(1000)|map(attribute='x', default=s)|list|length }}",
    "recursion": "{% macro f() %}{{ f() }}{% endmacro %}{{ f() }}",
    "undefined": "{{ custmer.first_name }}",
    "prints none": "{{ loop.outcome }}",
    "python error": "{{ 1 / 0 }}",
}


@pytest.mark.parametrize("body", ESCAPES.values(), ids=ESCAPES.keys())
def test_sandbox_escapes_and_bombs_fail_with_file_and_line(tmp_path: Path, body: str) -> None:
    caught = failure(tmp_path, body)

    assert [(p.path, p.line) for p in caught.problems] == [("en/acknowledgement.txt", 2)]
    assert "Traceback" not in str(caught) and str(caught).startswith("en/acknowledgement.txt:2: ")


def test_sandbox_messages_say_what_was_refused(tmp_path: Path) -> None:
    assert "'__class__'" in str(failure(tmp_path, ESCAPES["class mro"]))
    assert "output limit" in str(failure(tmp_path, ESCAPES["string times"]))
    assert "template not found" in str(failure(tmp_path, ESCAPES["include parent"]))
    assert "'custmer' is undefined" in str(failure(tmp_path, ESCAPES["undefined"]))
    assert "printed None" in str(failure(tmp_path, ESCAPES["prints none"]))


def test_nothing_outside_the_templates_folder_is_readable(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET", encoding="utf-8")
    root = tmp_path / "templates"

    for name in ("../secret.txt", str(secret), "en/../../secret.txt"):
        caught = failure(root, f"{{% include {name!r} %}}")
        assert "TOP SECRET" not in str(caught)


def test_a_symbolic_link_out_of_the_templates_folder_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET", encoding="utf-8")
    root = ack_set(tmp_path / "templates", text="{% include 'en/_link.txt' %}", html=None)
    (root / "en/_link.txt").symlink_to(secret)

    with pytest.raises(TemplateError) as caught:
        Renderer(root).render(ACK, sample_context(ACK))

    assert str(caught.value) == (
        "en/acknowledgement.txt:1: not allowed: en/_link.txt is a symbolic link out of the templates folder"
    )


@pytest.mark.parametrize(
    "body",
    [
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        "{% set s = 'a' * 100000 %}{% for a in s %}{% for b in s %}{% endfor %}{% endfor %}",
        "{% macro f(n) %}{% if n %}{{ f(n - 1) }}{{ f(n - 1) }}{% endif %}{% endmacro %}{{ f(60) }}",
    ],
    ids=["nested loops", "loops over a string", "branching recursion"],
)
def test_rendering_stops_at_the_time_limit(tmp_path: Path, body: str) -> None:
    started = time.monotonic()
    caught = failure(tmp_path, body, time_limit=0.2)

    assert time.monotonic() - started < 2
    assert "time limit" in str(caught)
    assert caught.line == 2


def test_output_is_cut_at_the_limit(tmp_path: Path) -> None:
    caught = failure(tmp_path, "{% for i in range(10000) %}{{ 'x' * 10 }}{% endfor %}", max_output_chars=5_000)

    assert "output limit" in str(caught)
    assert caught.line == 2


def test_output_just_under_the_limit_is_fine(tmp_path: Path) -> None:
    ack_set(tmp_path, text="{{ 'x' * 4000 }}", html=None)

    touch = Renderer(tmp_path, max_output_chars=5_000).render(ACK, sample_context(ACK))

    assert touch.text == "x" * 4000 + "\n"


def test_ordinary_template_code_still_works_in_the_sandbox(tmp_path: Path) -> None:
    text = (
        "{% set ns = namespace(n=0) %}{% for e in earlier_loops %}{% set ns.n = ns.n + 1 %}{% endfor %}"
        "{{ ns.n }} {{ staff|map(attribute='first_name')|join(', ') }} {{ (loop.ref ~ '!')|lower }}"
        " {{ '%s-%02d'|format('a', 7) }} {{ '{}/{}'.format(1, 2) }} {{ loop.subject|truncate(10, end='…') }}"
        " {{ 'ab'.upper() }} {{ [3, 1, 2]|sort|join }} {{ 2 ** 10 }} {{ 'x' * 3 }}"
    )
    touch = Renderer(ack_set(tmp_path, text=text, html=None)).render(ACK, sample_context(ACK))

    assert touch.text == "2 Sam, Alex cl-7k3p! a-07 1/2 Invoice… AB 123 1024 xxx\n"


def test_a_template_file_that_is_too_large_is_refused(tmp_path: Path) -> None:
    caught = failure(tmp_path, "x" * 300_000)

    assert caught.path == "en/acknowledgement.txt" and "larger than" in str(caught)


def test_errors_in_an_included_partial_name_the_partial(tmp_path: Path) -> None:
    write(tmp_path, {"en/_sig.txt": "Sam\n{{ ownr.name }}\n"})
    caught = failure(tmp_path, "{% include 'en/_sig.txt' %}")

    assert (caught.path, caught.line) == ("en/_sig.txt", 2)


def test_syntax_errors_are_reported_with_their_line(tmp_path: Path) -> None:
    caught = failure(tmp_path, "{% if customer.first_name %}Hi")

    assert caught.path == "en/acknowledgement.txt" and caught.line is not None
    assert "syntax error" in str(caught)


# -- check() --------------------------------------------------------------------------------------------------------


def problems_under(problems: list[TemplateProblem], prefix: str) -> list[str]:
    return [str(p) for p in problems if p.path.startswith(prefix)]


def test_check_reports_a_typo_with_file_and_line(tmp_path: Path) -> None:
    ack_set(tmp_path, text="Hi,\n\n{{ custmer.first_name }}\n")

    problems = Renderer(tmp_path).check()

    assert "en/acknowledgement.txt:3: undefined: 'custmer' is undefined" in [str(p) for p in problems]


def test_check_reports_optional_values_printed_without_a_guard(tmp_path: Path) -> None:
    ack_set(tmp_path, text="We will answer by {{ loop.promised_by }}.\n")

    problems = Renderer(tmp_path).check()

    assert problems_under(problems, "en/acknowledgement") == [
        "en/acknowledgement.txt:1: printed None: this optional value is missing here; "
        "wrap it in {% if … %} or write (x or '…')"
    ]


def test_check_reports_missing_kinds_unknown_files_and_partial_sets(tmp_path: Path) -> None:
    ack_set(tmp_path)
    write(
        tmp_path,
        {
            "en/acknowlegement.txt": "typo in the name",
            "en/notes.md": "x",
            "de/outcome.html": "<p>nur HTML</p>",
            "README.md": "fine",
            "pt_BR/acknowledgement.txt": "x",
        },
    )

    problems = [str(p) for p in Renderer(tmp_path).check()]

    assert any(p.startswith("en/acknowlegement.txt: unknown file name") for p in problems)
    assert any(p.startswith("en/notes.md: unknown file name") for p in problems)
    assert any(p.startswith("de/outcome.subject.txt: missing") for p in problems)
    assert any(p.startswith("de/outcome.txt: missing") for p in problems)
    assert any(p.startswith("en/outcome.txt: missing") for p in problems)
    assert any(p.startswith("pt_BR: rename to pt-BR/") for p in problems)
    assert not any(p.startswith("README.md") for p in problems)


def test_check_compiles_partials_nobody_uses_yet(tmp_path: Path) -> None:
    ack_set(tmp_path)
    write(tmp_path, {"en/_footer.html": "<p>\n{% if x %}unclosed</p>"})

    problems = problems_under(Renderer(tmp_path).check(), "en/_footer")

    assert len(problems) == 1 and problems[0].startswith("en/_footer.html:2: syntax error")


def test_check_renders_inbox_overrides_and_given_contexts(tmp_path: Path) -> None:
    ack_set(tmp_path)
    ack_set(tmp_path, "support", text="{{ customer.first_name.upper() }}\n")
    given = sample_context(ACK)
    given["customer"] = {"first_name": None, "name": "", "email": "x@example.com"}

    problems = problems_under(Renderer(tmp_path).check([(ACK, given)]), "support/")

    assert problems == ["support/acknowledgement.txt:1: undefined: 'None' has no attribute 'upper'"]


def test_check_reports_a_file_that_is_not_utf8_at_the_line_of_the_bad_byte(tmp_path: Path) -> None:
    ack_set(tmp_path)
    (tmp_path / "en/_footer.txt").write_bytes(b"fine\n\xe9t\xe9 in Latin-1\n")

    problems = problems_under(Renderer(tmp_path).check(), "en/_footer")

    assert problems == ["en/_footer.txt:2: not UTF-8 text: save the file as UTF-8"]


def test_a_symbolic_link_to_a_folder_is_not_followed(tmp_path: Path) -> None:
    root = ack_set(tmp_path / "templates")
    elsewhere = ack_set(tmp_path / "elsewhere", "de", text="Hallo\n")
    (root / "de").symlink_to(elsewhere / "de")
    renderer = Renderer(root)

    assert renderer.render(ACK, sample_context(ACK), language="de").template == "en/acknowledgement.txt"
    assert "de: is a symbolic link to a folder, which closeloop does not follow" in map(str, renderer.check())


def test_check_is_clean_for_a_complete_set(tmp_path: Path) -> None:
    for kind in TouchKind:
        write(tmp_path, {f"en/{kind.value}.subject.txt": SUBJECT, f"en/{kind.value}.txt": TEXT})

    assert Renderer(tmp_path).check() == []


# -- sample data ----------------------------------------------------------------------------------------------------


def test_minimal_sample_context_leaves_out_every_optional_value() -> None:
    ctx = sample_context("follow-through", complete=False)

    assert ctx["customer"] == {"first_name": "", "name": "", "email": "jane.doe@example.com"}
    assert ctx["loop"]["promised_by"] is None and ctx["loop"]["outcome"] is None  # type: ignore[index]
    assert ctx["outcome"] is None and ctx["next_update"] is None and ctx["earlier_loops"] == []
    assert ctx["message"]["from_name"] == ""  # type: ignore[index]
    assert ctx["unsubscribe"]["url"] is None and ctx["touch"]["note"] == ""  # type: ignore[index]


def test_complete_sample_context_has_every_value() -> None:
    ctx = sample_context("outcome")

    assert ctx["outcome"] and ctx["loop"]["promised_by"] and ctx["earlier_loops"]  # type: ignore[index]
    assert isinstance(ctx["loop"]["opened_at"], datetime)  # type: ignore[index]


@pytest.mark.parametrize(
    "body",
    [
        "{{ loop.promised_by }}",
        "{{ 'by ' ~ loop.promised_by }}",
        "{{ 'by %s' % loop.promised_by }}",
        "{{ 'by %s and %s' % ('x', loop.outcome) }}",
        "{{ 'by {}'.format(loop.promised_by) }}",
        "{{ 'by {x}'.format_map({'x': loop.promised_by}) }}",
        "{{ 'by %s'|format(loop.promised_by) }}",
        "{{ loop.outcome|paragraphs }}",
        "{{ loop.outcome|string }}",
        "{{ loop.outcome|truncate(20) }}",
    ],
)
def test_a_missing_optional_value_never_prints_as_none(tmp_path: Path, body: str) -> None:
    ack_set(tmp_path, text=f"line one\n{body}\n", html=None)

    with pytest.raises(TemplateError, match=r"^en/acknowledgement.txt:2: printed None"):
        Renderer(tmp_path).render(ACK, sample_context(ACK, complete=False))


def test_loops_keep_their_helpers_under_the_time_guard(tmp_path: Path) -> None:
    text = (
        "{% for e in earlier_loops %}{{ loop.index }}/{{ loop.length }}{% if not loop.last %},{% endif %}{% endfor %}"
        "|{% for e in earlier_loops if e.outcome %}{{ e.ref }}{% else %}none{% endfor %}"
        "|{% for e in [] %}x{% else %}empty{% endfor %}"
        "|{% for k, v in {'a': 1}.items() %}{{ k }}={{ v }}{% endfor %}"
        "|{% for n in [[1, [2]], [3]] recursive %}{% if n is iterable %}{{ loop(n) }}{% else %}{{ n }}{% endif %}"
        "{% endfor %}"
    )
    touch = Renderer(ack_set(tmp_path, text=text, html=None)).render(ACK, sample_context(ACK))

    assert touch.text == "1/2,2/2|CL-2M9Q|empty|a=1|123\n"
