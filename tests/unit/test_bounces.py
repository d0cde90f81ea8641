"""What reports say about the message they are about: cited Message-IDs, the delivery action, failed recipients.

The corpus holds the real shapes; the tests below build one message per rule, the mail each rule must not
catch, and the hostile inputs.
"""

from __future__ import annotations

import base64
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest

from daemon.domain.model import InboundMessage
from daemon.mail.parse import ParseLimits, parse_message
from daemon.mail.reports import MAX_CITED_IDS, MAX_FAILED_RECIPIENTS

CORPUS = Path(__file__).parent.parent / "corpus"
EXPECTED: dict[str, dict[str, Any]] = tomllib.loads((CORPUS / "expected.toml").read_text(encoding="utf-8"))

TOUCH = "closeloop.cl-7k3p.acknowledgement.1a2b3c4d5e6f@example.org"
OTHER_TOUCH = "closeloop.cl-7k3p.follow-through.aabbccddeeff@example.org"
CUSTOMER_MAIL = "CAF=jane-first-message@mail.example.com"

DAEMON = "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\nTo: support@example.org\nReturn-Path: <>"
PERSON = "From: Jane Doe <jane.doe@example.com>\nTo: support@example.org\nReturn-Path: <jane.doe@example.com>"
NEUTRAL = "This is the mail system at host mx.example.net."
FAILURE = "I'm sorry to have to inform you that your message could not be delivered to one or more recipients."


def parse(text: str) -> InboundMessage:
    return parse_message(text.encode("utf-8"))


def mail(headers: str, body: str, *, subject: str = "Returned mail") -> InboundMessage:
    return parse(f"{headers}\nSubject: {subject}\nMessage-ID: <report-1@mx.example.net>\n\n{body}")


def report_bytes(
    *parts: tuple[str, str], headers: str = DAEMON, report_type: str = "delivery-status", notice: str = NEUTRAL
) -> bytes:
    """A multipart/report from ``headers``: a ``notice``, then ``(content type line(s), body)`` parts."""
    chunks = [f"--B\nContent-Type: text/plain\n\n{notice}\n"]
    chunks += [f"--B\nContent-Type: {ctype}\n\n{body}\n" for ctype, body in parts]
    content_type = f'Content-Type: multipart/report; report-type={report_type}; boundary="B"'
    head = (
        f"{headers}\nSubject: Delivery report\nMessage-ID: <report-1@mx.example.net>\nMIME-Version: 1.0\n{content_type}"
    )
    return f"{head}\n\n{''.join(chunks)}--B--\n".encode()


def report(
    *parts: tuple[str, str], headers: str = DAEMON, report_type: str = "delivery-status", notice: str = NEUTRAL
) -> InboundMessage:
    return parse_message(report_bytes(*parts, headers=headers, report_type=report_type, notice=notice))


def status(*recipients: str, per_message: str = "Reporting-MTA: dns; mx.example.net") -> tuple[str, str]:
    return "message/delivery-status", "\n\n".join([per_message, *recipients])


def recipient(address: str, action: str | None = "failed", status_code: str | None = None) -> str:
    lines = [f"Final-Recipient: rfc822; {address}"]
    lines += [f"Action: {action}"] if action is not None else []
    lines += [f"Status: {status_code}"] if status_code is not None else []
    return "\n".join(lines)


def headers_part(message_id: str, extra: str = "") -> tuple[str, str]:
    return "text/rfc822-headers", f"From: support@example.org\nMessage-ID: <{message_id}>\n{extra}"


# --- the corpus ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_corpus_report(name: str) -> None:
    expected = EXPECTED[name]
    parsed = parse_message((CORPUS / name).read_bytes())
    assert parsed.delivery_action == expected.get("delivery_action")
    assert list(parsed.failed_recipients) == expected.get("failed_recipients", [])
    if "cited_ids" in expected:
        assert list(parsed.cited_ids) == expected["cited_ids"]


def test_every_bounce_sample_states_its_action_and_the_samples_cover_each_action() -> None:
    bounces = {name: entry for name, entry in EXPECTED.items() if entry["classification"] == "bounce"}
    assert all("delivery_action" in entry for entry in bounces.values())
    assert {entry["delivery_action"] for entry in bounces.values()} == {"failed", "delayed"}


# --- cited Message-IDs --------------------------------------------------------------------------------------


@pytest.mark.parametrize("ctype", ["text/rfc822-headers", "message/rfc822", "message/global", "message/global-headers"])
def test_the_message_id_of_an_attached_original_is_cited(ctype: str) -> None:
    parsed = report(status(recipient("jane.doe@example.com")), (ctype, f"Message-ID: <{TOUCH}>\nSubject: Hi\n\nHello"))
    assert parsed.cited_ids == (TOUCH,)


def test_an_attached_original_is_read_for_its_headers_only_never_its_mime_tree() -> None:
    inner = (
        f"Message-ID: <{TOUCH}>\nContent-Type: multipart/mixed; boundary=I\n\n--I\n"
        "Content-Type: message/rfc822\n\nMessage-ID: <nested@example.net>\n\nx\n--I\n"
        "Content-Type: message/delivery-status\n\nFinal-Recipient: rfc822; x@example.net\nAction: failed\n--I--"
    )
    parsed = report(status(recipient("jane.doe@example.com")), ("message/rfc822", inner))
    assert parsed.cited_ids == (TOUCH,)
    assert (parsed.delivery_action, parsed.failed_recipients) == ("failed", ("jane.doe@example.com",))


@pytest.mark.parametrize("encoding", ["base64", "quoted-printable"])
def test_a_transfer_encoded_header_part_is_decoded(encoding: str) -> None:
    headers = f"From: support@example.org\r\nMessage-ID: <{TOUCH}>\r\n"
    soft_break = headers.replace("acknowledgement", "acknowl=\r\nedgement")  # a quoted-printable soft line break
    body = base64.b64encode(headers.encode()).decode() if encoding == "base64" else soft_break
    part = (f"text/rfc822-headers\nContent-Transfer-Encoding: {encoding}", body)
    assert report(status(recipient("jane.doe@example.com")), part).cited_ids == (TOUCH,)


def test_original_message_id_fields_of_a_report_are_cited() -> None:
    gmail = status(recipient("a@example.com"), per_message=f"Reporting-MTA: dns; x\nX-Original-Message-ID: <{TOUCH}>")
    mdn = (
        "message/disposition-notification",
        f"Final-Recipient: rfc822; a@example.com\nOriginal-Message-ID: <{TOUCH}>",
    )
    assert report(gmail).cited_ids == (TOUCH,)
    assert report(mdn, report_type="disposition-notification").cited_ids == (TOUCH,)


def test_cited_ids_are_the_original_then_what_the_report_answers_then_the_originals_thread() -> None:
    original = headers_part(TOUCH, f"In-Reply-To: <{CUSTOMER_MAIL}>\nReferences: <older@example.com> <{CUSTOMER_MAIL}>")
    answered = f"{DAEMON}\nIn-Reply-To: <{TOUCH}>\nReferences: <{OTHER_TOUCH}> <{TOUCH}>"
    parsed = report(status(recipient("jane.doe@example.com")), original, headers=answered)
    assert parsed.cited_ids == (TOUCH, OTHER_TOUCH, CUSTOMER_MAIL, "older@example.com")


def test_an_auto_reply_cites_what_it_answers() -> None:
    parsed = mail(
        f"{PERSON}\nAuto-Submitted: auto-replied\nIn-Reply-To: <{TOUCH}>\nReferences: <{CUSTOMER_MAIL}> <{TOUCH}>",
        "I am away until Monday.",
        subject="Out of office",
    )
    assert parsed.cited_ids == (TOUCH, CUSTOMER_MAIL)
    assert parsed.delivery_action is None


def test_cited_ids_leave_out_the_reports_own_message_id_and_are_capped() -> None:
    references = " ".join(f"<ref-{n}@example.com>" for n in range(3 * MAX_CITED_IDS))
    parsed = mail(f"{DAEMON}\nReferences: <report-1@mx.example.net> {references}", "x")
    assert len(parsed.cited_ids) == MAX_CITED_IDS
    assert "report-1@mx.example.net" not in parsed.cited_ids


def test_only_the_first_report_parts_are_read() -> None:
    originals = [("text/rfc822-headers", f"Message-ID: <original-{n}@example.org>") for n in range(30)]
    parsed = parse_message(report_bytes(*originals), limits=ParseLimits(max_report_parts=3))
    assert parsed.cited_ids == ("original-0@example.org", "original-1@example.org", "original-2@example.org")


def test_report_parts_are_read_until_the_byte_budget_is_spent() -> None:
    originals = [("text/rfc822-headers", f"Message-ID: <original-{n}@example.org>") for n in range(3)]
    parsed = parse_message(report_bytes(*originals), limits=ParseLimits(max_report_bytes=50))
    assert parsed.cited_ids == ("original-0@example.org",)


# --- Message-IDs quoted in the text of a classic bounce -----------------------------------------------------

QUOTING_BOUNCE = """This message was created automatically by mail delivery software.

A message that you sent could not be delivered to one or more of its
recipients. This is a permanent error. The following address(es) failed:

  jane.doe@example.com

------ This is a copy of the message, including all the headers. ------

Return-path: <support@example.org>
Message-Id: <{mid}>
Subject: We got your message [CL-7K3P]

Hello Jane, we will retry tomorrow.
"""


def test_a_classic_bounce_cites_the_message_id_it_quotes_and_its_quote_does_not_decide_the_action() -> None:
    parsed = mail(DAEMON, QUOTING_BOUNCE.format(mid=TOUCH), subject="Returned message")
    assert (parsed.cited_ids, parsed.delivery_action) == ((TOUCH,), "failed")


@pytest.mark.parametrize(
    "quoted",
    [
        f"Message-ID: <{TOUCH}>",
        f"message-id:<{TOUCH}>",
        f"> Message-ID: <{TOUCH}>",
        f"    Message-ID: <{TOUCH}>",
        f"Message-ID:\n  <{TOUCH}>",
        f"Message-ID: {TOUCH}",
    ],
)
def test_quoted_message_id_lines_are_found_in_their_usual_shapes(quoted: str) -> None:
    assert mail(DAEMON, f"Hi. This is the qmail-send program.\n\n{quoted}\n").cited_ids == (TOUCH,)


def test_a_person_quoting_headers_cites_nothing_from_the_text() -> None:
    parsed = mail(PERSON, QUOTING_BOUNCE.format(mid=TOUCH), subject="Fwd: Mail delivery failed")
    assert (parsed.cited_ids, parsed.delivery_action) == ((), None)


def test_quoted_message_ids_are_looked_for_in_a_bounded_prefix_of_the_text() -> None:
    parsed = mail(DAEMON, "x" * 60_000 + f"\nMessage-ID: <{TOUCH}>\n")
    assert parsed.cited_ids == ()


# --- the delivery action of a delivery-status report --------------------------------------------------------


@pytest.mark.parametrize(
    ("actions", "expected"),
    [
        (["failed"], "failed"),
        (["delivered", "failed", "delayed"], "failed"),
        (["delivered", "delayed"], "delayed"),
        (["relayed", "delivered"], "relayed"),
        (["expanded"], "expanded"),
        (["FAILED"], "failed"),
        (["failed (bad destination mailbox address)"], "failed"),
        (["failure"], "failed"),
    ],
)
def test_the_worst_action_of_the_recipients_wins(actions: list[str], expected: str) -> None:
    recipients = [recipient(f"r{n}@example.com", action) for n, action in enumerate(actions)]
    assert report(status(*recipients)).delivery_action == expected


@pytest.mark.parametrize(
    ("action", "status_code", "expected"),
    [
        (None, "5.1.1", "failed"),
        (None, "5.0.0 (permanent failure)", "failed"),
        (None, "4.4.1", "delayed"),
        (None, "2.0.0", "delivered"),
        ("unknown-word", "4.2.2", "delayed"),
        ("delayed", "5.1.1", "delayed"),
    ],
)
def test_status_decides_when_the_action_is_missing_or_unknown(
    action: str | None, status_code: str, expected: str
) -> None:
    assert report(status(recipient("jane.doe@example.com", action, status_code))).delivery_action == expected


def test_per_message_and_per_recipient_fields_without_a_blank_line_are_still_read() -> None:
    merged = "Reporting-MTA: dns; mx.example.net\nFinal-Recipient: rfc822; jane.doe@example.com\nAction: failed"
    parsed = report(("message/delivery-status", merged))
    assert (parsed.delivery_action, parsed.failed_recipients) == ("failed", ("jane.doe@example.com",))


def test_a_global_delivery_status_with_utf8_addresses_is_read() -> None:
    fields = "Final-Recipient: utf-8; josé@example.es\nOriginal-Recipient: utf-8;JOSÉ@example.es\nAction: failed"
    parsed = report(
        ("message/global-delivery-status", f"Reporting-MTA: dns; mx.example.net\n\n{fields}"),
        ("message/global-headers", f"From: Soporte <support@example.org>\nMessage-ID: <{TOUCH}>"),
        report_type="global-delivery-status",
    )
    assert (parsed.delivery_action, parsed.failed_recipients, parsed.cited_ids) == (
        "failed",
        ("josé@example.es",),
        (TOUCH,),
    )


def test_a_delivery_status_nested_in_multipart_mixed_counts_but_one_inside_a_forwarded_message_does_not() -> None:
    dsn = "Final-Recipient: rfc822; jane.doe@example.com\nAction: failed"
    nested = (
        'Content-Type: multipart/mixed; boundary="O"\n\n--O\nContent-Type: multipart/report; '
        'report-type=delivery-status; boundary="I"\n\n--I\nContent-Type: message/delivery-status\n\n'
        f"{dsn}\n--I--\n--O--\n"
    )
    forwarded = (
        'Content-Type: multipart/mixed; boundary="O"\n\n--O\nContent-Type: text/plain\n\nSee below.\n--O\n'
        "Content-Type: message/rfc822\n\nFrom: MAILER-DAEMON@mx.example.net\nContent-Type: multipart/report; "
        f'boundary="I"\n\n--I\nContent-Type: message/delivery-status\n\n{dsn}\n--I--\n--O--\n'
    )
    assert parse(f"{DAEMON}\n{nested}").delivery_action == "failed"
    assert parse(f"{PERSON}\n{forwarded}").delivery_action is None


def test_x_failed_recipients_alone_means_failed_and_outranks_a_delayed_report() -> None:
    listed = f"{DAEMON}\nX-Failed-Recipients: Jane.Doe@Example.com, ken@example.net"
    assert mail(listed, "Something went wrong.").delivery_action == "failed"
    assert report(status(recipient("a@example.com", "delayed")), headers=listed).delivery_action == "failed"


# --- the delivery action of a classic text bounce -----------------------------------------------------------


@pytest.mark.parametrize(
    ("subject", "body", "expected"),
    [
        ("Mail delivery failed: returning message to sender", "x", "failed"),
        ("Undeliverable: We got your message [CL-7K3P]", "x", "failed"),
        ("failure notice", "x", "failed"),
        ("DELIVERY FAILURE: User not listed", "x", "failed"),
        ("Warning: message 1s7yQa-0006Zt-1B delayed 24 hours", "x", "delayed"),
        ("Delayed Mail (still being retried)", "x", "delayed"),
        ("Warning: could not send message for past 4 hours", "x", "delayed"),
        ("Delivery Status Notification (Delay)", "x", "delayed"),
        ("Notice", "Hi. This is the qmail-send program. This is a permanent error; I've given up.", "failed"),
        ("Notice", "Sorry, we were unable to deliver your message to the following address.", "failed"),
        ("Notice", "Delivery to the following recipient failed permanently:", "failed"),
        ("Notice", "** Address not found **", "failed"),
        ("Notice", "Your message to <tom@example.net> was automatically rejected:", "failed"),
        ("Notice", "host mx.example.com said: 550 5.1.1 <a@example.com>: User unknown", "failed"),
        ("Notice", "** Delivery incomplete **\nGmail will retry for 46 more hours.", "delayed"),
        ("Notice", "A message that you sent has not yet been delivered to one or more of its\nrecipients", "delayed"),
        ("Notice", "THIS IS A WARNING ONLY. Your message could not be delivered for more than 4 hour(s).", "delayed"),
        ("Notice", "Delivery to the following recipients has been delayed.", "delayed"),
        ("Notice", "host mx.example.com said: 451 4.3.0 Try again later", None),
        ("Notice", "Something happened to your message.", None),
    ],
)
def test_a_mail_systems_notice_says_failed_or_delayed_in_its_own_words(
    subject: str, body: str, expected: str | None
) -> None:
    assert mail(DAEMON, body, subject=subject).delivery_action == expected


def test_words_in_the_quoted_copy_of_the_original_do_not_decide_the_action() -> None:
    body = "Something happened.\n\n--- Below this line is a copy of the message.\n\nThis is a permanent error."
    assert mail(DAEMON, body, subject="Notice").delivery_action is None


@pytest.mark.parametrize(
    "headers",
    [
        "From: Mail Delivery Subsystem <mailer-daemon@googlemail.com>\nReturn-Path: <bounces@example.net>",
        "From: postmaster@example.net\nReturn-Path: <postmaster@example.net>",
        "From: Mail Administrator <admin@example.net>",
        "From: notices@example.net\nReturn-Path: <MAILER-DAEMON@example.net>",
        "From: notices@example.net\nReturn-Path: <>",
        "From: notices@example.net\nAuto-Submitted: auto-generated (failure)",
        "From: notices@example.net\nX-MS-Exchange-Message-Is-Ndr:",
        "To: support@example.org",
    ],
)
def test_machine_evidence_lets_the_text_decide(headers: str) -> None:
    assert mail(headers, "This is a permanent error.", subject="Notice").delivery_action == "failed"


@pytest.mark.parametrize(
    "headers",
    [PERSON, f"{PERSON}\nAuto-Submitted: no", "From: Mail Lover <jane@example.com>\nReturn-Path: <jane@example.com>"],
)
def test_bounce_words_from_a_person_are_no_report(headers: str) -> None:
    parsed = mail(headers, "Delivery to the following recipient failed permanently:", subject="Undeliverable: help")
    assert (parsed.delivery_action, parsed.failed_recipients) == (None, ())


# --- failed recipients --------------------------------------------------------------------------------------


def test_failed_recipients_are_those_whose_action_failed_original_and_final_lower_cased_deduplicated() -> None:
    failed = (
        "Final-Recipient: rfc822; Jane.Doe@Example.com\nOriginal-Recipient: rfc822;<jane@example.com>\nAction: failed"
    )
    parsed = report(
        status(recipient("ok@example.com", "delivered"), failed, recipient("slow@example.com", "delayed")),
        headers=f"{DAEMON}\nX-Failed-Recipients: jane.doe@example.com, Ken@Example.net",
    )
    assert parsed.failed_recipients == ("jane.doe@example.com", "jane@example.com", "ken@example.net")


def test_the_only_recipient_counts_when_the_report_gives_it_no_action_and_its_notice_says_failed() -> None:
    only = report(status(recipient("jane.doe@example.com", action=None)), notice=FAILURE)
    two = report(status(recipient("a@example.com", None), recipient("b@example.com", None)), notice=FAILURE)
    unsure = report(status(recipient("jane.doe@example.com", action=None)))
    assert (unsure.delivery_action, unsure.failed_recipients) == (None, ())
    assert (only.delivery_action, only.failed_recipients) == ("failed", ("jane.doe@example.com",))
    assert (two.delivery_action, two.failed_recipients) == ("failed", ())


def test_a_delayed_recipient_is_never_a_failed_one() -> None:
    parsed = report(status(recipient("slow@example.com", "delayed")))
    assert (parsed.delivery_action, parsed.failed_recipients) == ("delayed", ())


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("rfc822; jane@example.com", ("jane@example.com",)),
        ("RFC822;<jane@example.com>", ("jane@example.com",)),
        ("rfc822; jane@example.com (Jane Doe)", ("jane@example.com",)),
        ("jane@example.com", ("jane@example.com",)),
        ("x400; /G=Jane/S=Doe/O=Example/", ()),
        ("rfc822; not an address", ()),
        ("rfc822; ", ()),
        (f"rfc822; {'x' * 320}@example.com", ()),
    ],
)
def test_recipient_address_types(value: str, expected: tuple[str, ...]) -> None:
    parsed = report(status(f"Final-Recipient: {value}\nAction: failed"))
    assert parsed.failed_recipients == expected


def test_failed_recipients_are_capped() -> None:
    recipients = [recipient(f"r{n}@example.com") for n in range(2 * MAX_FAILED_RECIPIENTS)]
    assert len(report(status(*recipients)).failed_recipients) == MAX_FAILED_RECIPIENTS


# --- reports that are not bounces ---------------------------------------------------------------------------


def test_a_read_receipt_cites_the_original_and_has_no_delivery_action() -> None:
    mdn = (
        "message/disposition-notification",
        f"Final-Recipient: rfc822;jane@example.com\nOriginal-Message-ID: <{TOUCH}>",
    )
    parsed = report(mdn, headers=PERSON, report_type="disposition-notification")
    assert (parsed.cited_ids, parsed.delivery_action, parsed.failed_recipients) == ((TOUCH,), None, ())


def test_a_feedback_report_cites_the_original_and_has_no_delivery_action() -> None:
    arf = ("message/feedback-report", "Feedback-Type: abuse\nOriginal-Rcpt-To: jane@example.com")
    parsed = report(arf, headers_part(TOUCH), headers="From: fbl@isp.example.net", report_type="feedback-report")
    assert (parsed.cited_ids, parsed.delivery_action, parsed.failed_recipients) == ((TOUCH,), None, ())


def test_a_plain_message_has_no_report() -> None:
    parsed = mail(PERSON, "My parcel is late.", subject="Delivery is late")
    assert (parsed.cited_ids, parsed.delivery_action, parsed.failed_recipients) == ((), None, ())


# --- bounds and garbage -------------------------------------------------------------------------------------


def within_a_second(raw: bytes) -> InboundMessage:
    started = time.perf_counter()
    parsed = parse_message(raw)
    assert time.perf_counter() - started < 1.0
    return parsed


def test_a_hundred_thousand_recipient_groups_parse_quickly() -> None:
    groups = "\n\n".join(recipient(f"r{n}@example.com") for n in range(100_000))
    parsed = within_a_second(report_bytes(("message/delivery-status", groups)))
    assert parsed.delivery_action == "failed"
    assert len(parsed.failed_recipients) == MAX_FAILED_RECIPIENTS


def test_ten_thousand_attached_originals_parse_quickly() -> None:
    parts = [("message/rfc822", f"Message-ID: <m{n}@example.org>\n\nx") for n in range(10_000)]
    parsed = within_a_second(report_bytes(*parts))
    assert parsed.cited_ids[0] == "m0@example.org"


def test_an_attached_original_with_a_huge_header_block_parses_quickly() -> None:
    header = f"Message-ID: <{TOUCH}>\n" + "X-Filler: y\n" * 200_000
    parsed = within_a_second(report_bytes(status(recipient("a@example.com")), ("text/rfc822-headers", header)))
    assert parsed.cited_ids == (TOUCH,)


def test_a_huge_text_bounce_parses_quickly() -> None:
    body = "This is a permanent error.\n" + "Message-ID: <x@example.org>\n" * 200_000
    parsed = within_a_second(f"{DAEMON}\nSubject: Notice\n\n{body}".encode())
    assert parsed.delivery_action == "failed"


@pytest.mark.parametrize(
    "body",
    [
        "",
        "\n\n\n",
        ":\n:\n",
        "Action:\nStatus:\nFinal-Recipient:",
        "Final-Recipient: ;\nAction: ;;;\nStatus: 9.9.9",
        "Final-Recipient: rfc822; <<<@@@>>>\nAction: failed",
        "\x00\x01\x02 Action: failed",
        "Final-Recipient: rfc822; =?utf-8?b?////?=\nAction: failed",
        "Action: " + "failed" * 10_000,
    ],
)
def test_garbage_report_fields_never_raise(body: str) -> None:
    parsed = report(("message/delivery-status", body), ("text/rfc822-headers", body), ("message/rfc822", body))
    assert parsed.delivery_action in (None, "failed", "delayed", "delivered")


def test_garbage_bytes_in_report_parts_never_raise() -> None:
    garbage = bytes(range(256)) * 64
    raw = (
        DAEMON.encode() + b'\nContent-Type: multipart/report; boundary="B"\n\n--B\n'
        b"Content-Type: message/delivery-status\nContent-Transfer-Encoding: base64\n\n" + garbage + b"\n--B\n"
        b"Content-Type: message/rfc822\n\n" + garbage + b"\n--B--\n"
    )
    parse_message(raw)


def test_crlf_reports_read_the_same() -> None:
    text = report_bytes(status(recipient("jane.doe@example.com")), headers_part(TOUCH))
    lf, crlf = parse_message(text), parse_message(text.replace(b"\n", b"\r\n"))
    assert (crlf.cited_ids, crlf.delivery_action, crlf.failed_recipients) == (
        lf.cited_ids,
        lf.delivery_action,
        lf.failed_recipients,
    )
