"""Composed emails: the headers we mean, and no way to inject others."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import compat32, default

import pytest

from daemon.mail.compose import POLICY, HeaderInjection, Mailbox, Outgoing, compose, one_line

NOW = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def outgoing(**overrides: object) -> Outgoing:
    values: dict[str, object] = {
        "kind": "acknowledgement",
        "loop_ref": "CL-4680",
        "sender": Mailbox(email="support@example.org", name="Example Support"),
        "recipient": Mailbox(email="jane@example.com", name="Jane Doe"),
        "subject": "Re: Invoice shows the wrong VAT number [CL-4680]",
        "text": "Hi Jane,\n\nthanks for writing.\n",
        "html": "<p>Hi Jane,</p>",
        "message_id": "closeloop.cl-4680.acknowledgement.abc@example.org",
        "date": NOW,
        "answers": True,
        "in_reply_to": "first@mail.example.com",
        "references": ["first@mail.example.com"],
        "list_unsubscribe": "mailto:support+unsubscribe@example.org?subject=unsubscribe",
    }
    values.update(overrides)
    return Outgoing(**values)  # type: ignore[arg-type]


def parsed(raw: bytes):  # type: ignore[no-untyped-def]
    return message_from_bytes(raw, policy=default)


def test_headers_of_an_acknowledgement() -> None:
    message = parsed(compose(outgoing()))
    assert message["From"] == "Example Support <support@example.org>"
    assert message["To"] == "Jane Doe <jane@example.com>"
    assert message["Message-ID"] == "<closeloop.cl-4680.acknowledgement.abc@example.org>"
    assert message["In-Reply-To"] == "<first@mail.example.com>"
    assert message["References"] == "<first@mail.example.com>"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["X-Closeloop-Kind"] == "acknowledgement"
    assert message["X-Closeloop-Loop"] == "CL-4680"
    assert message["List-Unsubscribe"] == "<mailto:support+unsubscribe@example.org?subject=unsubscribe>"
    assert message.get_content_type() == "multipart/alternative"


def test_touches_that_answer_nothing_are_auto_generated() -> None:
    assert parsed(compose(outgoing(answers=False)))["Auto-Submitted"] == "auto-generated"


def test_text_only_message() -> None:
    message = parsed(compose(outgoing(html=None)))
    assert message.get_content_type() == "text/plain"
    assert "thanks for writing" in message.get_content()


def test_lines_end_in_crlf_and_stay_short() -> None:
    raw = compose(outgoing(text="word " * 2000))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert max(len(line) for line in raw.split(b"\r\n")) <= 998


def test_non_ascii_names_and_subjects_are_encoded() -> None:
    message = parsed(compose(outgoing(recipient=Mailbox(email="zoe@example.com", name="Zoë Müller"),
                                      subject="Rückfrage zur Rechnung")))  # fmt: skip
    assert message["To"] == "Zoë Müller <zoe@example.com>"
    assert message["Subject"] == "Rückfrage zur Rechnung"


@pytest.mark.parametrize(
    "evil",
    [
        "Jane\r\nBcc: victim@example.net",
        "Jane\nBcc: victim@example.net",
        "Jane\rBcc: victim@example.net",
        "Jane\x00Bcc: victim@example.net",
        "Jane\u2028Bcc: victim@example.net",
        "=?utf-8?q?Jane=0D=0ABcc=3A_victim=40example=2Enet?=",
    ],
)
def test_names_and_subjects_cannot_inject_headers(evil: str) -> None:
    raw = compose(outgoing(subject=f"Re: {evil}", recipient=Mailbox(email="jane@example.com", name=evil)))
    message = parsed(raw)
    assert message["Bcc"] is None
    assert sorted(message.keys()) == sorted(parsed(compose(outgoing())).keys())


@pytest.mark.parametrize(
    "address", ["jane@example.com\r\nBcc: x@example.net", "jane@example.com>, x@example.net", "no-at-sign", "a b@c.d"]
)
def test_bad_addresses_are_refused(address: str) -> None:
    with pytest.raises(HeaderInjection):
        compose(outgoing(recipient=Mailbox(email=address)))


def test_an_address_that_is_not_ascii_is_refused_rather_than_mangled() -> None:
    """Without SMTPUTF8 such an address could only be written as encoded words, which no server delivers to."""
    with pytest.raises(HeaderInjection, match="not an ASCII email address"):
        compose(outgoing(recipient=Mailbox(email="jörg@exämple.de", name="Jörg")))


@pytest.mark.parametrize("name", ["Doe, Jane", 'Jane "JD" Doe', "Zoë (Sales), Berlin", "O'Brien; Ltd.", "a\\b"])
def test_display_names_with_specials_come_back_as_written(name: str) -> None:
    message = parsed(compose(outgoing(recipient=Mailbox(email="jane@example.com", name=name))))
    assert message["To"].addresses[0].display_name == name
    assert message["To"].addresses[0].addr_spec == "jane@example.com"


def test_both_parts_decode_to_exactly_the_rendered_text() -> None:
    text = "Hi Zoë,\n\n" + "a long line of words " * 30 + "\n.starts with a dot\nFrom here \ntrailing space \n"
    html = "<p>Grüße, " + "<b>lang</b> " * 50 + "</p>"
    message = parsed(compose(outgoing(text=text, html=html)))
    plain, rich = message.get_body(("plain",)), message.get_body(("html",))
    assert plain is not None and rich is not None
    assert plain.get_content().replace("\r\n", "\n") == text  # the wire's line ends are CRLF
    assert rich.get_content().replace("\r\n", "\n").rstrip("\n") == html
    assert plain["Content-Transfer-Encoding"] == rich["Content-Transfer-Encoding"] == "quoted-printable"
    assert plain.get_content_charset() == rich.get_content_charset() == "utf-8"


def test_mime_version_is_said_once() -> None:
    raw = compose(outgoing())
    assert raw.count(b"MIME-Version:") == 1


@pytest.mark.parametrize("message_id", ["a@b\r\nBcc: x@y", "has space@x", "", "<>"])
def test_bad_message_ids_are_refused(message_id: str) -> None:
    with pytest.raises(HeaderInjection):
        compose(outgoing(message_id=message_id))


def test_one_line_collapses_control_characters() -> None:
    assert one_line("a\r\nb\tc\x00d\u2029e   f") == "a b c d e f"
    assert len(one_line("x" * 1000)) == 250


@pytest.mark.parametrize(
    "value",
    [
        "Example Support <support@example.org>",
        "Re: Invoice shows the wrong VAT number [CL-4680]",
        "<closeloop.cl-4680.acknowledgement.abc@example.org>",
        "x" * 70,  # fits exactly: 8 + 70 = 78
        "x" * 71,  # one over: left to the library
        "two  spaces",
        " leading space",
        "trailing space ",
        "tab\there",
        "=?utf-8?q?encoded?=",
        "Zoë",
        "a, b; c (d) e",
        "Re: " + "long subject words " * 8,
    ],
)
def test_headers_are_written_exactly_as_the_email_package_would(value: str) -> None:
    """The shortcut for short plain headers changes nothing on the wire."""
    library = compat32.clone(linesep="\r\n")
    assert POLICY.fold_binary("Subject", value) == library.fold_binary("Subject", value)


def test_body_line_ends_are_normalised_and_encoded_lines_stay_within_76() -> None:
    text = "one\r\ntwo\rthree\n" + "é" * 100 + "\n= sign =3D and a tab\t\n"
    raw = compose(outgoing(text=text, html=None))
    body = raw.split(b"\r\n\r\n", 1)[1]
    assert max(len(line) for line in body.split(b"\r\n")) <= 76
    assert parsed(raw).get_content().replace("\r\n", "\n") == text.replace("\r\n", "\n").replace("\r", "\n")
