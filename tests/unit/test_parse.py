"""Parsing received mail: every field of InboundMessage, the hostile inputs, first names and fingerprints."""

from __future__ import annotations

import base64
import time
from datetime import UTC, datetime, timedelta, timezone

import pytest

from daemon.domain.model import Address, InboundMessage
from daemon.mail.parse import ParseLimits, UnparseableMessage, decode_words, first_name_of, parse_message


def mail(headers: str, body: str = "Hello.\n", *, crlf: bool = True) -> bytes:
    """A message from header lines (one per line, no trailing newline needed) and a body."""
    text = headers.strip("\n") + "\n\n" + body
    raw = text.encode("utf-8")
    return raw.replace(b"\n", b"\r\n") if crlf else raw


BASIC = "From: Jane Doe <jane@example.com>\nTo: support@example.org\nSubject: Hi\nMessage-ID: <a1@example.com>"


def parse(headers: str, body: str = "Hello.\n") -> InboundMessage:
    return parse_message(mail(headers, body))


def within_a_second(raw: bytes, limits: ParseLimits | None = None) -> InboundMessage:
    started = time.perf_counter()
    message = parse_message(raw) if limits is None else parse_message(raw, limits=limits)
    assert time.perf_counter() - started < 1.0
    return message


# --- addresses ----------------------------------------------------------------------------------------------


def test_sender_is_the_first_mailbox_of_from_lower_cased_with_its_name_decoded_and_unquoted() -> None:
    message = parse('From: "Doe, Jane" <Jane.Doe@Example.COM>, other@example.net\nTo: support@example.org')
    assert message.sender == Address(email="jane.doe@example.com", name="Doe, Jane")


def test_sender_name_in_encoded_words_is_decoded() -> None:
    message = parse("From: =?utf-8?q?Ren=C3=A9e_Dubois?= <renee@example.fr>")
    assert message.sender == Address(email="renee@example.fr", name="Renée Dubois")


def test_sender_quoted_encoded_word_name_is_decoded_without_quotes() -> None:
    message = parse('From: "=?utf-8?B?SsO8cmdlbg==?=" <j@example.de>')
    assert message.sender == Address(email="j@example.de", name="Jürgen")


def test_sender_found_when_a_client_encoded_the_whole_from_header() -> None:
    message = parse("From: =?utf-8?b?Sm9zw6kgPGpvc2VAZXhhbXBsZS5lcz4=?=")  # "José <jose@example.es>"
    assert message.sender == Address(email="jose@example.es", name="José")


def test_sender_with_8bit_utf8_and_latin1_names() -> None:
    utf8 = parse_message("From: José García <jose@example.es>\n\nx".encode())
    latin1 = parse_message("From: Jürgen Müller <j@example.de>\n\nx".encode("latin-1"))
    assert utf8.sender == Address(email="jose@example.es", name="José García")
    assert latin1.sender == Address(email="j@example.de", name="Jürgen Müller")


def test_missing_from_gives_no_sender() -> None:
    assert parse("To: support@example.org").sender is None


def test_overlong_address_is_dropped() -> None:
    assert parse(f"From: {'x' * 320}@example.com").sender is None


def test_reply_to_is_read() -> None:
    message = parse(BASIC + "\nReply-To: Jane at Home <JANE@home.example>")
    assert message.reply_to == Address(email="jane@home.example", name="Jane at Home")


def test_recipients_come_from_to_cc_and_the_delivery_fields_lower_cased_deduplicated_in_order() -> None:
    message = parse(
        "From: a@example.com\nTo: Support <Support@Example.org>, undisclosed-recipients:;\n"
        "Cc: b@example.com, support@example.org\nDelivered-To: support+cl-7k3p@example.org\n"
        "X-Original-To: help@example.org\nEnvelope-To: help@example.org, c@example.org\nBcc: hidden@example.org"
    )
    assert message.recipients == (
        "support@example.org",
        "b@example.com",
        "support+cl-7k3p@example.org",
        "help@example.org",
        "c@example.org",
    )


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (None, None),
        ("Return-Path: <>", ""),
        ("Return-Path:", ""),
        ("Return-Path: <MAILER-DAEMON>", "mailer-daemon"),
        ("Return-Path: <Jane@Example.com>", "jane@example.com"),
    ],
)
def test_return_path_is_none_when_absent_empty_for_the_null_sender_else_the_address(
    field: str | None, expected: str | None
) -> None:
    headers = BASIC if field is None else field + "\n" + BASIC
    assert parse(headers).return_path == expected


def test_first_return_path_wins_when_a_message_was_delivered_twice() -> None:
    assert parse("Return-Path: <a@example.com>\nReturn-Path: <>\n" + BASIC).return_path == "a@example.com"


# --- Message-IDs --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("<abc@example.com>", "abc@example.com"),
        ("  < abc@example.com >  ", "abc@example.com"),
        ("<83b495a0-4547-4174-b297-aec8956f6dba>", "83b495a0-4547-4174-b297-aec8956f6dba"),
        ("abc@example.com", "abc@example.com"),
        ("<first@example.com> <second@example.com>", "first@example.com"),
        ("garbage", None),
        ("<>", None),
        (f"<{'x' * 999}@example.com>", None),
    ],
)
def test_message_id_is_normalised_and_garbage_ignored(value: str, expected: str | None) -> None:
    assert parse(f"From: a@example.com\nMessage-ID: {value}").message_id == expected


def test_missing_message_id_is_none() -> None:
    assert parse("From: a@example.com").message_id is None


def test_in_reply_to_keeps_every_id_and_ignores_the_comment_around_them() -> None:
    message = parse(
        'From: a@example.com\nIn-Reply-To: <one@example.org> (Jane\'s message of "Mon, 3 Jun")\n <two@example.org>'
    )
    assert message.in_reply_to == ("one@example.org", "two@example.org")


def test_references_are_unfolded_deduplicated_and_garbage_free() -> None:
    message = parse(
        "From: a@example.com\nReferences: <r1@example.org>\n\t<r2@example.org> junk <r1@example.org>\n <> <r3@x>"
    )
    assert message.references == ("r1@example.org", "r2@example.org", "r3@x")


def test_references_keep_only_the_newest_when_there_are_too_many() -> None:
    ids = " ".join(f"<r{n}@example.org>" for n in range(300))
    message = parse_message(mail(f"From: a@example.com\nReferences: {ids}"), limits=ParseLimits(max_references=5))
    assert message.references == tuple(f"r{n}@example.org" for n in range(295, 300))


# --- subject, date, language, headers -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("(=?ISO-8859-1?Q?a?=)", "(a)"),  # RFC 2047 §8 examples
        ("(=?ISO-8859-1?Q?a?= b)", "(a b)"),
        ("(=?ISO-8859-1?Q?a?= =?ISO-8859-1?Q?b?=)", "(ab)"),
        ("(=?ISO-8859-1?Q?a?=\n    =?ISO-8859-1?Q?b?=)", "(ab)"),
        ("(=?ISO-8859-1?Q?a_b?=)", "(a b)"),
        ("=?utf-8?B?w6k=?= =?utf-8?Q?t=C3=A9?=", "été"),
        ("=?UTF-8*en?Q?English?=", "English"),
        ("=?x-unknown-999?q?caf=C3=A9?=", "café"),
        ("=?utf-8?b?!!!?= rest", " rest"),
        ("=?utf-8?q?unterminated", "=?utf-8?q?unterminated"),
        ("=?utf-8?q?=E2=82?= =?utf-8?q?=AC?=", "€"),
        ("plain text, no words", "plain text, no words"),
    ],
)
def test_encoded_words_decode_leniently(value: str, expected: str) -> None:
    assert parse(f"From: a@example.com\nSubject: {value}").subject == expected.strip()


def test_decode_words_joins_a_character_split_across_two_base64_words() -> None:
    raw = "écran".encode()
    first, second = base64.b64encode(raw[:1]).decode(), base64.b64encode(raw[1:]).decode()
    assert decode_words(f"=?utf-8?B?{first}?= =?utf-8?B?{second}?=") == "écran"


def test_subject_with_raw_8bit_utf8_is_read() -> None:
    assert parse_message("Subject: Größe\n\nx".encode()).subject == "Größe"


def test_date_is_aware_and_keeps_the_senders_offset() -> None:
    message = parse("From: a@example.com\nDate: Mon, 3 Jun 2024 09:45:01 +0200")
    assert message.date == datetime(2024, 6, 3, 9, 45, 1, tzinfo=timezone(timedelta(hours=2)))
    assert message.tz_offset_minutes == 120


def test_date_with_unknown_zone_is_read_as_utc() -> None:
    assert parse("From: a@example.com\nDate: Sun, 16 Jun 2024 20:00:00 -0000").date == datetime(
        2024, 6, 16, 20, 0, tzinfo=UTC
    )


@pytest.mark.parametrize("value", ["garbled", "Mon, 45 Foo 2024 99:99:99 +0200", "", "Fri, 13 Oct 99999 11:10:16"])
def test_garbled_date_is_none(value: str) -> None:
    assert parse(f"From: a@example.com\nDate: {value}").date is None


def test_missing_date_is_none() -> None:
    assert parse("From: a@example.com").date is None


@pytest.mark.parametrize(
    ("value", "expected"), [("de-de", "de-DE"), ("en-US, fr", "en-US"), ("DE", "de"), ("12 nonsense", None)]
)
def test_language_comes_from_content_language(value: str, expected: str | None) -> None:
    assert parse(f"From: a@example.com\nContent-Language: {value}").language == expected


def test_language_falls_back_to_the_text_part() -> None:
    raw = mail(
        'From: a@example.com\nContent-Type: multipart/mixed; boundary="b"',
        "--b\nContent-Type: text/plain\nContent-Language: fr\n\nBonjour\n--b--\n",
    )
    assert parse_message(raw).language == "fr"


def test_headers_are_every_top_level_field_in_order_lower_case_and_decoded() -> None:
    raw = mail(
        "From: a@example.com\nSubject: =?utf-8?q?caf=C3=A9?=\nX-Thing: one\n two\nX-Thing: again\n"
        'Content-Type: multipart/mixed; boundary="b"',
        "--b\nX-Inner: not top level\n\nx\n--b--\n",
    )
    assert parse_message(raw).headers == (
        ("from", "a@example.com"),
        ("subject", "café"),
        ("x-thing", "one two"),
        ("x-thing", "again"),
        ("content-type", 'multipart/mixed; boundary="b"'),
    )


def test_size_is_the_length_of_the_raw_bytes() -> None:
    raw = mail(BASIC)
    assert parse_message(raw).size == len(raw)


def test_mbox_from_line_before_the_headers_is_skipped() -> None:
    message = parse_message(b"From jane@example.com Mon Jun  3 09:45:01 2024\n" + mail(BASIC, crlf=False))
    assert message.sender == Address(email="jane@example.com", name="Jane Doe")
    assert message.subject == "Hi"


# --- text ---------------------------------------------------------------------------------------------------


def alternative(plain: str | None, html: str) -> bytes:
    parts = ""
    if plain is not None:
        parts += f"--b\nContent-Type: text/plain; charset=utf-8\n\n{plain}\n"
    parts += f"--b\nContent-Type: text/html; charset=utf-8\n\n{html}\n--b--\n"
    return mail('From: a@example.com\nContent-Type: multipart/alternative; boundary="b"', parts)


def test_text_prefers_the_plain_part() -> None:
    assert parse_message(alternative("plain words", "<p>html words</p>")).text == "plain words"


def test_text_converts_html_when_there_is_no_plain_part_without_styles_scripts_or_images() -> None:
    html = (
        "<html><head><style>p{color:red}</style><script>alert('x')</script></head>"
        "<body><p>Hello <b>there</b> &amp; welcome</p><img src='cid:logo' alt='LOGO'>"
        "<script>document.write('evil')</script></body></html>"
    )
    assert parse_message(alternative(None, html)).text == "Hello there & welcome"


def test_text_uses_html_when_the_plain_part_is_empty() -> None:
    assert parse_message(alternative("   \n", "<p>the words</p>")).text == "the words"


def test_html_charset_is_taken_from_its_meta_tag_when_mime_does_not_say() -> None:
    html = '<html><head><meta charset="windows-1252"></head><body>caf\xe9 \x80</body></html>'.encode("latin-1")
    raw = b"From: a@example.com\r\nContent-Type: text/html\r\n\r\n" + html
    assert parse_message(raw).text == "café €"


def test_text_normalises_newlines_and_keeps_inline_plain_parts_in_order() -> None:
    raw = mail(
        'From: a@example.com\nContent-Type: multipart/mixed; boundary="b"',
        "--b\nContent-Type: text/plain\n\nfirst\r\nline\n--b\nContent-Type: image/jpeg\n\nJPEG\n"
        "--b\nContent-Type: text/plain\n\nsecond\rline\n--b--\n",
        crlf=False,
    )
    assert parse_message(raw).text == "first\nline\nsecond\nline"


def test_attachments_never_contribute_text() -> None:
    raw = mail(
        'From: a@example.com\nContent-Type: multipart/mixed; boundary="b"',
        "--b\nContent-Type: text/plain\n\nthe words\n"
        "--b\nContent-Type: text/plain\nContent-Disposition: attachment\n\nATTACHED\n"
        '--b\nContent-Type: text/plain; name="log.txt"\n\nNAMED\n'
        '--b\nContent-Type: text/plain\nContent-Disposition: inline; filename="x.txt"\n\nFILENAME\n'
        "--b\nContent-Type: message/rfc822\n\nFrom: x@example.com\n\nFORWARDED\n--b--\n",
    )
    assert parse_message(raw).text == "the words"


def test_text_is_capped() -> None:
    message = parse_message(mail(BASIC, "x" * 5000), limits=ParseLimits(max_text_chars=1000))
    assert message.text == "x" * 1000


def test_quoted_printable_and_base64_bodies_are_decoded() -> None:
    qp = mail(
        BASIC + "\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable",
        "caf=C3=A9 =\nau lait",
    )
    b64 = mail(BASIC + "\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64", "Y2Fmw6k=")
    assert parse_message(qp).text == "café au lait"
    assert parse_message(b64).text == "café"


def test_unknown_charset_falls_back_without_raising() -> None:
    utf8 = b"From: a@example.com\r\nContent-Type: text/plain; charset=x-unknown-999\r\n\r\ncaf\xc3\xa9"
    legacy = b"From: a@example.com\r\nContent-Type: text/plain; charset=x-unknown-999\r\n\r\ncaf\xe9 \x80"
    assert parse_message(utf8).text == "café"
    assert parse_message(legacy).text == "café €"


def test_wrong_charset_label_falls_back_to_utf8() -> None:
    raw = b"From: a@example.com\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nna\xc3\xafve"
    assert parse_message(raw).text == "naïve"


def test_invalid_base64_decodes_what_it_can_without_raising() -> None:
    raw = mail(BASIC + "\nContent-Transfer-Encoding: base64", "SGVsbG8gd29y!!!bGQ=\n@@@")
    assert parse_message(raw).text.startswith("Hello wor")


def test_nul_bytes_are_removed_everywhere() -> None:
    raw = b"From: J\x00ane <jane@example.com>\r\nSubject: a\x00b\r\n\r\nhel\x00lo"
    message = parse_message(raw)
    assert (message.sender, message.subject, message.text) == (
        Address(email="jane@example.com", name="Jane"),
        "ab",
        "hello",
    )
    assert all("\x00" not in value for _, value in message.headers)


# --- structure ----------------------------------------------------------------------------------------------


def test_parts_are_listed_depth_first() -> None:
    raw = mail(
        'From: a@example.com\nContent-Type: multipart/mixed; boundary="outer"',
        '--outer\nContent-Type: multipart/alternative; boundary="inner"\n\n'
        "--inner\nContent-Type: text/plain\n\nx\n--inner\nContent-Type: text/html\n\n<p>x</p>\n--inner--\n"
        "--outer\nContent-Type: application/pdf\n\n%PDF\n--outer--\n",
    )
    assert parse_message(raw).parts == (
        "multipart/mixed",
        "multipart/alternative",
        "text/plain",
        "text/html",
        "application/pdf",
    )


def test_report_types_are_found_nested_in_multipart_mixed_but_not_inside_a_forwarded_message() -> None:
    raw = mail(
        'From: a@example.com\nContent-Type: multipart/mixed; boundary="m"',
        '--m\nContent-Type: multipart/report; report-type="Delivery-Status"; boundary="r"\n\n'
        "--r\nContent-Type: text/plain\n\nfailed\n--r\nContent-Type: message/delivery-status\n\nAction: failed\n--r--\n"
        "--m\nContent-Type: message/rfc822\n\nFrom: b@example.com\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="f"\n\n--f--\n--m--\n',
    )
    message = parse_message(raw)
    assert message.report_types == ("delivery-status",)
    assert message.parts == (
        "multipart/mixed",
        "multipart/report",
        "text/plain",
        "message/delivery-status",
        "message/rfc822",
    )


def test_report_without_a_type_is_reported_as_empty() -> None:
    raw = mail('From: a@example.com\nContent-Type: multipart/report; boundary="r"', "--r\n\nx\n--r--\n")
    assert parse_message(raw).report_types == ("",)


def test_digest_parts_default_to_messages() -> None:
    raw = mail(
        'From: a@example.com\nContent-Type: multipart/digest; boundary="d"', "--d\n\nFrom: x@example.com\n\nx\n--d--\n"
    )
    assert parse_message(raw).parts == ("multipart/digest", "message/rfc822")


def test_missing_closing_boundary_is_tolerated() -> None:
    raw = mail(
        'From: a@example.com\nContent-Type: multipart/mixed; boundary="b"',
        "--b\nContent-Type: text/plain\n\nunfinished\n",
    )
    assert parse_message(raw).text == "unfinished"


def test_multipart_without_boundary_has_no_children() -> None:
    message = parse_message(mail("From: a@example.com\nContent-Type: multipart/mixed", "--x\n\ny\n--x--\n"))
    assert message.parts == ("multipart/mixed",)


# --- hostile input ------------------------------------------------------------------------------------------


def nested(depth: int) -> bytes:
    opening = "".join(f'Content-Type: multipart/mixed; boundary="b{n}"\n\n--b{n}\n' for n in range(depth))
    closing = "".join(f"--b{n}--\n" for n in reversed(range(depth)))
    return f"From: a@example.com\n{opening}Content-Type: text/plain\n\ndeep\n{closing}".encode()


def test_thousand_deep_nesting_parses_quickly_and_stops_descending_at_max_depth() -> None:
    message = within_a_second(nested(1000))
    assert message.parts == ("multipart/mixed",) * 51
    assert message.sender == Address(email="a@example.com")


def test_nesting_within_max_depth_is_read_to_the_bottom() -> None:
    assert within_a_second(nested(20)).text == "deep"


def test_thousand_deep_forwarded_messages_are_not_entered() -> None:
    raw = (
        b"From: a@example.com\r\nContent-Type: message/rfc822\r\n\r\n" + b"Content-Type: message/rfc822\r\n\r\n" * 1000
    )
    assert within_a_second(raw).parts == ("message/rfc822",)


def test_ten_thousand_parts_parse_quickly_and_are_capped() -> None:
    body = "".join(f"--x\nContent-Type: text/plain\n\npart {n}\n" for n in range(10_000)) + "--x--\n"
    message = within_a_second(mail('From: a@example.com\nContent-Type: multipart/mixed; boundary="x"', body))
    assert len(message.parts) == 1000
    assert message.text.startswith("part 0\npart 1\n")


def test_one_megabyte_header_is_refused_quickly() -> None:
    raw = mail("From: a@example.com\nX-Big: " + "a" * 1024 * 1024)
    started = time.perf_counter()
    with pytest.raises(UnparseableMessage, match="header block larger than") as caught:
        parse_message(raw)
    assert time.perf_counter() - started < 1.0
    assert "262144" in caught.value.reason


def test_header_limit_is_configurable() -> None:
    with pytest.raises(UnparseableMessage):
        parse_message(mail(BASIC), limits=ParseLimits(max_header_bytes=50))
    assert parse_message(mail(BASIC), limits=ParseLimits(max_header_bytes=500)).subject == "Hi"


def test_many_small_header_fields_under_the_limit_parse_quickly() -> None:
    message = within_a_second(mail("From: a@example.com\n" + "X-H: v\n" * 25_000))
    assert len(message.headers) == 25_001


def test_twenty_megabyte_attachment_parses_quickly() -> None:
    payload = base64.encodebytes(bytes(range(256)) * (15 * 1024 * 1024 // 256)).decode()
    body = (
        "--x\nContent-Type: text/plain\n\nsee attached\n"
        "--x\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n"
        f'Content-Disposition: attachment; filename="big.bin"\n\n{payload}--x--\n'
    )
    raw = mail('From: a@example.com\nContent-Type: multipart/mixed; boundary="x"', body)
    assert len(raw) > 20_000_000
    message = within_a_second(raw)
    assert (message.text, message.parts) == (
        "see attached",
        ("multipart/mixed", "text/plain", "application/octet-stream"),
    )


def test_huge_text_part_is_cut_before_decoding() -> None:
    message = within_a_second(mail(BASIC, "word " * 4_000_000))
    assert len(message.text) == 100_000


@pytest.mark.parametrize(
    "raw",
    [
        b"From: \r\n\r\n",
        b"From: a@example.com\r\nContent-Type: multipart/mixed\r\n\r\n--\r\n",
        b'From: a@example.com\r\nContent-Type: multipart/mixed; boundary=""\r\n\r\n--\r\n\r\n----\r\n',
        b'From: a@example.com\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b',
        b'From: a@example.com\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n--b\r\n--b--',
        b'From: a@example.com\r\nContent-Type: text/plain; charset="\xff\xfe"\r\n\r\n\xff\xfe',
        b"From: a@example.com\r\nContent-Type: ;;;===\r\nContent-Transfer-Encoding: base64\r\n\r\n=",
        b"From: a@example.com\r\nContent-Type: text/plain; charset=zlib\r\n\r\nx",
        b"From: a@example.com\r\nContent-Type: text/plain; charset=idna\r\n\r\n\xff",
        b"From: a@example.com\r\nthis line has no colon\r\nSubject: lost\r\n\r\nbody",
        b"From: a@example.com",
        b'From: <<<@@@>>>, ,,, "unterminated\r\nTo: ;;;\r\n\r\n',
        b"Date: \xff\xfe\r\nMessage-ID: <\xff@\xfe>\r\n\r\n",
    ],
)
def test_malformed_input_parses_to_a_message(raw: bytes) -> None:
    message = parse_message(raw)
    assert message.size == len(raw)
    assert len(message.fingerprint) == 64


@pytest.mark.parametrize(
    ("raw", "reason"), [(b"", "empty message"), (b"  \r\n", "empty message"), (b"no header here", "no header fields")]
)
def test_nothing_usable_is_refused_with_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(UnparseableMessage) as caught:
        parse_message(raw)
    assert caught.value.reason == reason


# --- fingerprint --------------------------------------------------------------------------------------------

ORIGINAL = (
    "From: Jane <jane@example.com>\nTo: support@example.org\nSubject: Late\nDate: Mon, 3 Jun 2024 09:45:01 +0200\n"
    "Message-ID: <dup@example.com>"
)


def test_fingerprint_is_the_same_for_a_redelivery_with_new_trace_fields_and_line_endings() -> None:
    first = parse_message(mail(ORIGINAL, "body\n", crlf=True))
    again = parse_message(
        mail(
            "Return-Path: <jane@example.com>\nDelivered-To: support@example.org\n"
            "Received: from mx.example.org by imap.example.org; Mon, 3 Jun 2024 09:46:00 +0200\n"
            "X-Spam-Score: 0.1\n" + ORIGINAL.replace("Subject: Late", "Subject:   Late"),
            "body\n",
            crlf=False,
        )
    )
    assert first.fingerprint == again.fingerprint


def test_fingerprint_differs_for_two_messages_sharing_a_broken_message_id() -> None:
    one = parse_message(mail(ORIGINAL, "first body\n"))
    other = parse_message(mail(ORIGINAL, "second body\n"))
    assert one.message_id == other.message_id == "dup@example.com"
    assert one.fingerprint != other.fingerprint


@pytest.mark.parametrize(
    "field", ["From: Someone Else <x@example.com>", "Subject: Other", "Date: Tue, 4 Jun 2024 09:45:01 +0200"]
)
def test_fingerprint_covers_from_subject_and_date(field: str) -> None:
    name = field.split(":", 1)[0]
    changed = "\n".join(field if line.startswith(name + ":") else line for line in ORIGINAL.split("\n"))
    assert parse_message(mail(ORIGINAL)).fingerprint != parse_message(mail(changed)).fingerprint


def test_fingerprint_is_sha256_hex() -> None:
    fingerprint = parse_message(mail(ORIGINAL)).fingerprint
    assert len(fingerprint) == 64
    assert int(fingerprint, 16) >= 0


# --- first names --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("display_name", "expected"),
    [
        ("Jane Doe", "Jane"),
        ("Doe, Jane", "Jane"),
        ("Doe, Jane A.", "Jane"),
        ("Jane Doe, PhD", "Jane"),
        ("Dr. Jane Doe", "Jane"),
        ("Prof. Dr. Jane Doe", "Jane"),
        ("Mr. Smith", ""),
        ("jane.doe", "Jane"),
        ("jane_doe", "Jane"),
        ("jane.doe@example.com", "Jane"),
        ("info@example.com", ""),
        ("j.doe", ""),
        ("", ""),
        ("   ", ""),
        ("Support Team", ""),
        ("The Acme Team", ""),
        ("Acme Inc.", ""),
        ("Customer Service", ""),
        ("Mail Delivery Subsystem", ""),
        ("jane doe", "Jane"),
        ("JANE DOE", "Jane"),
        ("jean-luc picard", "Jean-Luc"),
        ("Anna-Maria García", "Anna-Maria"),
        ("J. Doe", ""),
        ("Jane Doe (Acme Support)", "Jane"),
        ("'Matt Ranostay' via Jailhouse", "Matt"),
        ('"Jane"', "Jane"),
        ("Jane2000", ""),
        ("山田 太郎", ""),
        ("김민수", ""),
        ("Иван Петров", "Иван"),
        ("McDonald Ronald", "McDonald"),
    ],
)
def test_first_name_of(display_name: str, expected: str) -> None:
    assert first_name_of(display_name) == expected
