"""A quarantined message is never answered, so the team is told about it: once, by email, on real servers
(Dovecot, aiosmtpd, SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from daemon.app import App
from daemon.quarantine import KIND
from daemon.store.tables import messages

from servers.dovecot import ImapAccount
from servers.smtp import Received, SmtpSink
from support import mails
from support.db import rows
from support.settings import STAFF

pytestmark = pytest.mark.integration

NO_HEADERS = b"hello there\r\nthis message has no header fields at all, just text\r\n"


def alerts(sink: SmtpSink) -> list[Received]:
    return [r for r in sink.messages if r.message["X-Closeloop-Kind"] == KIND]


def test_the_staff_are_told_once_about_a_quarantined_message(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    imap_account.append(mails.customer(1))
    uid = imap_account.append(NO_HEADERS)

    report = app.once()

    assert report.quarantine_reported == 1
    told = alerts(smtp_sink)
    assert sorted(r.rcpt_tos[0] for r in told) == sorted(member["email"] for member in STAFF)
    for alert in told:
        assert alert.message["Subject"] == "[closeloop] 1 message quarantined, not answered"
        assert alert.message["Auto-Submitted"] == "auto-generated"
        body = alert.message.get_content()
        assert "no header fields" in body
        assert f"UID {uid}" in body
        assert "never deletes mail" in body
    quarantined = [m for m in rows(app, messages) if m["classification"] == "quarantined"]
    assert len(quarantined) == 1 and quarantined[0]["reported_at"] is not None

    again = app.once()

    assert again.quarantine_reported == 0
    assert len(alerts(smtp_sink)) == len(STAFF)


def test_a_deferred_alert_is_sent_on_the_next_pass_and_nothing_is_marked_before(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    imap_account.append(NO_HEADERS)
    smtp_sink.fail_next(1)  # the first email of the pass is the alert: 451

    first = app.once()

    assert first.quarantine_reported == 0
    assert alerts(smtp_sink) == []
    assert [m["reported_at"] for m in rows(app, messages)] == [None]

    second = app.once()

    assert second.quarantine_reported == 1
    assert len(alerts(smtp_sink)) == len(STAFF)
    assert all(m["reported_at"] is not None for m in rows(app, messages))


def test_several_quarantined_messages_go_in_one_email(app: App, imap_account: ImapAccount, smtp_sink: SmtpSink) -> None:
    for n in range(3):
        imap_account.append(NO_HEADERS + f"number {n}\r\n".encode())  # the same bytes would be one message

    report = app.once()

    assert report.quarantine_reported == 3
    told = alerts(smtp_sink)
    assert len(told) == len(STAFF)
    assert told[0].message["Subject"] == "[closeloop] 3 messages quarantined, not answered"
    assert told[0].message.get_content().count("  why: ") == 3


def test_nothing_is_marked_reported_until_a_staff_member_has_the_alert(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    imap_account.append(NO_HEADERS)
    for member in STAFF:
        smtp_sink.reject(member["email"])

    refused = app.once()

    assert refused.quarantine_reported == 0
    assert [m["reported_at"] for m in rows(app, messages)] == [None]


def test_one_staff_address_refused_does_not_keep_the_others_from_being_told(
    app: App, imap_account: ImapAccount, smtp_sink: SmtpSink
) -> None:
    imap_account.append(NO_HEADERS)
    smtp_sink.reject(STAFF[0]["email"])

    report = app.once()

    assert report.quarantine_reported == 1
    assert [r.rcpt_tos[0] for r in alerts(smtp_sink)] == [STAFF[1]["email"]]
