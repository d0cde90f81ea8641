"""Realistic inbound messages as bytes, built with the stdlib (CRLF, as a mail server stores them)."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime

_counter = itertools.count(1)

SUPPORT = "support@example.org"


def mail(
    *,
    sender: str = "Jane Doe <jane@example.com>",
    to: str = SUPPORT,
    subject: str = "Invoice shows the wrong VAT number",
    body: str = "Hello,\n\nmy last invoice shows our old VAT number. Could you correct it?\n\nThanks, Jane\n",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    date: datetime | None = None,
    return_path: str | None = "jane@example.com",
    headers: dict[str, str] | None = None,
    html: str | None = None,
) -> bytes:
    """A message as a customer's mail client would send it (and a server would store it)."""
    message = EmailMessage(policy=SMTP)
    if return_path is not None:
        message["Return-Path"] = f"<{return_path}>"
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = format_datetime(date or datetime(2026, 11, 24, 9, 30, tzinfo=UTC))
    message["Message-ID"] = f"<{message_id or f'm{next(_counter)}.{id(message)}@mail.example.com'}>"
    if in_reply_to:
        message["In-Reply-To"] = f"<{in_reply_to}>"
    if references:
        message["References"] = references
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message.as_bytes()


def customer(n: int, **kwargs: object) -> bytes:
    """The n-th of a crowd of distinct customers."""
    names = ["Jane Doe", "Ravi Patel", "Ana Lima", "Tom Becker", "Mei Chen", "Olu Ade", "Sara Berg", "Luis Cruz"]
    name = names[n % len(names)]
    address = f"{name.split()[0].lower()}.{n}@example.com"
    defaults: dict[str, object] = {
        "sender": f"{name} <{address}>",
        "subject": f"Question {n}: my order arrived damaged",
        "body": f"Hi,\n\norder #{1000 + n} arrived with a cracked lid. What can you do?\n\nBest,\n{name.split()[0]}\n",
        "return_path": address,
    }
    defaults.update(kwargs)
    return mail(**defaults)  # type: ignore[arg-type]


def bounce(original_message_id: str = "lost@example.org") -> bytes:
    """A Postfix delivery status notification (multipart/report, null Return-Path)."""
    return (
        "Return-Path: <>\r\n"
        "From: MAILER-DAEMON@mx.example.com (Mail Delivery System)\r\n"
        f"To: {SUPPORT}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Date: Tue, 24 Nov 2026 10:00:00 +0000\r\n"
        f"Message-ID: <bounce.{next(_counter)}@mx.example.com>\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nThis is the mail system at host mx.example.com.\r\n"
        "I'm sorry to have to inform you that your message could not be delivered.\r\n"
        "\r\n--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.com\r\n\r\n"
        "Final-Recipient: rfc822; gone@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "\r\n--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"Message-ID: <{original_message_id}>\r\nSubject: Re: something\r\n"
        "\r\n--B--\r\n"
    ).encode()


def out_of_office(
    sender: str = "Jane Doe <jane@example.com>",
    in_reply_to: str | None = None,
    body: str = "I am out of the office until 8 December 2026 with limited access to email.",
) -> bytes:
    return mail(
        sender=sender,
        subject="Automatic reply: Invoice shows the wrong VAT number",
        body=body,
        in_reply_to=in_reply_to,
        headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"},
    )


def newsletter() -> bytes:
    return mail(
        sender="Vendor News <news@vendor.example.net>",
        subject="Our November product update",
        body="Lots of news this month.",
        return_path="bounces@vendor.example.net",
        headers={
            "List-Id": "<news.vendor.example.net>",
            "List-Unsubscribe": "<mailto:leave@vendor.example.net>",
            "Precedence": "bulk",
        },
    )


def noreply() -> bytes:
    return mail(
        sender="Shop <noreply@shop.example.net>",
        subject="Your receipt",
        body="Thanks for your purchase.",
        return_path="noreply@shop.example.net",
    )
