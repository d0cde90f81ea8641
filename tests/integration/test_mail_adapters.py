"""The IMAP and SMTP adapters against real servers: TLS verified, STARTTLS enforced, errors translated."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from daemon.config import Imap, Smtp
from daemon.mail.imap import ImapMailbox, MailboxError
from daemon.mail.smtp import PermanentSendError, SmtpSender, TransientSendError

from servers.dovecot import DovecotServer, ImapAccount
from servers.smtp import SmtpSink, SmtpSinkFactory
from servers.tls import TlsFiles
from support import mails

pytestmark = pytest.mark.integration


def imap_settings(account: ImapAccount, **overrides: object) -> Imap:
    values: dict[str, object] = {
        "host": account.host,
        "port": account.port,
        "security": "none",
        "username": account.username,
        "password": account.password,
        "timeout_seconds": 5,
        "idle_renew_minutes": 1,
        "poll_seconds": 1,
    }
    values.update(overrides)
    return Imap.model_validate(values)


def smtp_settings(sink: SmtpSink, **overrides: object) -> Smtp:
    values: dict[str, object] = {"host": sink.host, "port": sink.port, "security": "none", "timeout_seconds": 5}
    values.update(overrides)
    return Smtp.model_validate(values)


# IMAP ------------------------------------------------------------------------------------------------------


def test_fetch_does_not_mark_seen_and_marking_adds_the_keyword(imap_account: ImapAccount) -> None:
    first = imap_account.append(mails.customer(1))
    second = imap_account.append(mails.customer(2), flags=["\\Seen"])
    mailbox = ImapMailbox("support", imap_settings(imap_account))
    mailbox.open()
    try:
        assert mailbox.uids_after(0) == [first, second]
        assert mailbox.uids_after(first) == [second]
        assert mailbox.uids_after(second) == []
        fetched = mailbox.fetch([first, second])
        assert [f.uid for f in fetched] == [first, second]
        assert b"order #1001" in fetched[0].raw
        mailbox.mark_processed([first, second])
    finally:
        mailbox.close()
    flags = imap_account.fetch_flags()
    assert flags[first] == {"$Closeloop"}
    assert flags[second] == {"$Closeloop", "\\Seen"}


def test_move_to_a_folder_keeps_the_message(imap_account: ImapAccount) -> None:
    uid = imap_account.append(mails.customer(1))
    imap_account.create_folder("Processed")
    mailbox = ImapMailbox("support", imap_settings(imap_account, move_to="Processed"))
    mailbox.open()
    try:
        mailbox.mark_processed([uid])
    finally:
        mailbox.close()
    assert imap_account.uids() == []
    assert len(imap_account.messages("Processed")) == 1


def test_a_server_without_move_still_moves_with_uidplus(dovecot_restricted: DovecotServer) -> None:
    account = dovecot_restricted.add_user()
    uid = account.append(mails.customer(1))
    keep = account.append(mails.customer(2))
    account.create_folder("Processed")
    mailbox = ImapMailbox("support", imap_settings(account, move_to="Processed"))
    mailbox.open()
    try:
        assert not mailbox.has("MOVE")
        mailbox.mark_processed([uid])
    finally:
        mailbox.close()
    assert account.uids() == [keep]
    assert len(account.messages("Processed")) == 1


def test_idle_wakes_on_new_mail(imap_account: ImapAccount) -> None:
    mailbox = ImapMailbox("support", imap_settings(imap_account))
    mailbox.open()
    stop = threading.Event()
    try:
        timer = threading.Timer(0.5, lambda: imap_account.append(mails.customer(3)))
        timer.start()
        started = time.monotonic()
        assert mailbox.wait(20, stop) is True
        assert time.monotonic() - started < 10
        timer.join()
    finally:
        mailbox.close()


def test_mail_announced_during_a_pass_ends_the_wait_at_once(imap_account: ImapAccount) -> None:
    imap_account.append(mails.customer(1))
    mailbox = ImapMailbox("support", imap_settings(imap_account))
    mailbox.open()
    try:
        uids = mailbox.uids_after(0)
        imap_account.append(mails.customer(2))  # arrives while the pass is busy…
        mailbox.mark_processed(uids)  # …and the server says so in the answer to this STORE, not in IDLE
        started = time.monotonic()
        assert mailbox.wait(20, threading.Event()) is True
        assert time.monotonic() - started < 1
        assert mailbox.uids_after(uids[-1]) == [uids[-1] + 1]
    finally:
        mailbox.close()


def test_wait_returns_when_stopped(imap_account: ImapAccount) -> None:
    mailbox = ImapMailbox("support", imap_settings(imap_account))
    mailbox.open()
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    try:
        assert mailbox.wait(30, stop) is False
    finally:
        mailbox.close()


def test_wrong_password_is_a_mailbox_error(imap_account: ImapAccount) -> None:
    mailbox = ImapMailbox("support", imap_settings(imap_account, password="wrong"))
    with pytest.raises(MailboxError, match="inbox support"):
        mailbox.open()


def test_unreachable_server_is_a_mailbox_error(imap_account: ImapAccount) -> None:
    from servers import free_port

    mailbox = ImapMailbox("support", imap_settings(imap_account, port=free_port()))
    with pytest.raises(MailboxError):
        mailbox.open()


def test_implicit_tls_verifies_the_certificate(imap_account: ImapAccount, tls_ca: TlsFiles) -> None:
    good = imap_settings(imap_account, port=imap_account.tls_port, security="tls", ca_file=tls_ca.ca_file)
    mailbox = ImapMailbox("support", good)
    mailbox.open()
    mailbox.close()
    untrusted = imap_settings(imap_account, port=imap_account.tls_port, security="tls")
    with pytest.raises(MailboxError, match="CERTIFICATE_VERIFY_FAILED"):
        ImapMailbox("support", untrusted).open()


def test_tls_checks_the_host_name(imap_account: ImapAccount, tls_ca: TlsFiles) -> None:
    wrong_name = imap_settings(
        imap_account, host="127.0.0.2", port=imap_account.tls_port, security="tls", ca_file=tls_ca.ca_file
    )
    with pytest.raises(MailboxError):
        ImapMailbox("support", wrong_name).open()


def test_starttls_verifies_the_certificate(imap_account: ImapAccount, tls_ca: TlsFiles) -> None:
    mailbox = ImapMailbox("support", imap_settings(imap_account, security="starttls", ca_file=tls_ca.ca_file))
    mailbox.open()
    mailbox.close()
    with pytest.raises(MailboxError, match="CERTIFICATE_VERIFY_FAILED"):
        ImapMailbox("support", imap_settings(imap_account, security="starttls")).open()


def test_starttls_downgrade_aborts_before_login(dovecot_restricted: DovecotServer, tmp_path: Path) -> None:
    """The restricted server advertises no STARTTLS: closeloop must refuse to send the password in clear."""
    account = dovecot_restricted.add_user()
    with pytest.raises(MailboxError, match="does not offer STARTTLS"):
        ImapMailbox("support", imap_settings(account, security="starttls")).open()
    assert f"user={account.username}" not in dovecot_restricted.log()


# SMTP ------------------------------------------------------------------------------------------------------


def raw() -> bytes:
    return mails.mail(sender="Example Support <support@example.org>", to="jane@example.com")


def test_one_connection_serves_many_messages(smtp_sink: SmtpSink) -> None:
    with SmtpSender(smtp_settings(smtp_sink)) as sender:
        for _ in range(5):
            sender.send(raw(), "support@example.org", ["jane@example.com"])
    assert len(smtp_sink.wait_for(5)) == 5


def test_4xx_is_transient_and_5xx_permanent(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(1, code=451)
    smtp_sink.reject("gone@example.com")
    with SmtpSender(smtp_settings(smtp_sink)) as sender:
        with pytest.raises(TransientSendError) as transient:
            sender.send(raw(), "support@example.org", ["jane@example.com"])
        assert transient.value.code == 451
        with pytest.raises(PermanentSendError) as permanent:
            sender.send(raw(), "support@example.org", ["gone@example.com"])
        assert permanent.value.code == 550
        sender.send(raw(), "support@example.org", ["jane@example.com"])
    assert len(smtp_sink.messages) == 1


def test_a_dropped_connection_is_transient_and_the_next_send_reconnects(smtp_sink: SmtpSink) -> None:
    smtp_sink.drop_next(1)
    with SmtpSender(smtp_settings(smtp_sink)) as sender:
        with pytest.raises(TransientSendError):
            sender.send(raw(), "support@example.org", ["jane@example.com"])
        sender.send(raw(), "support@example.org", ["jane@example.com"])
    assert len(smtp_sink.messages) == 1


def test_server_down_is_transient_without_a_code() -> None:
    from servers import free_port

    settings = Smtp.model_validate({"host": "127.0.0.1", "port": free_port(), "security": "none"})
    with SmtpSender(settings) as sender, pytest.raises(TransientSendError) as caught:
        sender.send(raw(), "support@example.org", ["jane@example.com"])
    assert caught.value.code is None


def test_starttls_with_login_verifies_and_authenticates(smtp_sink_factory: SmtpSinkFactory, tls_ca: TlsFiles) -> None:
    sink = smtp_sink_factory(mode="starttls", require_starttls=True, credentials=("support", "s3cret"))
    settings = smtp_settings(sink, security="starttls", ca_file=tls_ca.ca_file, username="support", password="s3cret")
    with SmtpSender(settings) as sender:
        sender.send(raw(), "support@example.org", ["jane@example.com"])
    (received,) = sink.wait_for(1)
    assert received.tls and received.username == "support"


def test_implicit_tls(smtp_sink_factory: SmtpSinkFactory, tls_ca: TlsFiles) -> None:
    sink = smtp_sink_factory(mode="implicit")
    with SmtpSender(smtp_settings(sink, security="tls", ca_file=tls_ca.ca_file)) as sender:
        sender.send(raw(), "support@example.org", ["jane@example.com"])
    assert sink.wait_for(1)[0].tls


def test_untrusted_certificate_is_refused(smtp_sink_factory: SmtpSinkFactory) -> None:
    sink = smtp_sink_factory(mode="implicit")
    with (
        SmtpSender(smtp_settings(sink, security="tls")) as sender,
        pytest.raises(TransientSendError, match="CERTIFICATE"),
    ):
        sender.send(raw(), "support@example.org", ["jane@example.com"])
    assert sink.messages == []


def test_starttls_downgrade_never_sends_credentials(smtp_sink: SmtpSink) -> None:
    """A plain server (or a man in the middle stripping STARTTLS): no AUTH, no message."""
    settings = smtp_settings(smtp_sink, security="starttls", username="support", password="s3cret")
    with SmtpSender(settings) as sender, pytest.raises(TransientSendError, match="does not offer STARTTLS"):
        sender.send(raw(), "support@example.org", ["jane@example.com"])
    assert smtp_sink.logins == []
    assert smtp_sink.messages == []
