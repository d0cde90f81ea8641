"""The test servers themselves: what other integration tests rely on them to do."""

import contextlib
import smtplib
import ssl
from email import policy
from email.message import EmailMessage

import psycopg
import pytest
import sqlalchemy
from imapclient import IMAPClient

from servers.dovecot import DovecotServer, ImapAccount
from servers.postgres import admin_connection, postgres_database
from servers.smtp import SmtpSink, SmtpSinkFactory
from servers.tls import TlsFiles

pytestmark = pytest.mark.integration


def make_message(subject: str = "Printer on fire") -> bytes:
    message = EmailMessage()
    message["From"] = "Ada <ada@example.com>"
    message["To"] = "support@example.com"
    message["Subject"] = subject
    message["Message-ID"] = "<harness@example.com>"
    message.set_content("Grüße,\n.a line starting with a dot\n")
    return message.as_bytes(policy=policy.SMTP)


def send(sink: SmtpSink, raw: bytes, rcpt: str = "ada@example.com") -> None:
    with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
        client.sendmail("support@example.com", [rcpt], raw)


# Dovecot


def test_appended_message_reads_back_unseen(imap_account: ImapAccount) -> None:
    raw = make_message()

    uid = imap_account.append(raw)

    assert imap_account.uids() == [uid]
    assert imap_account.messages() == [raw]
    assert "\\Seen" not in imap_account.fetch_flags()[uid]


def test_append_with_flags_and_folders(imap_account: ImapAccount) -> None:
    imap_account.create_folder("Processed")

    uid = imap_account.append(make_message(), folder="Processed", flags=["\\Seen", "$Closeloop"])

    assert imap_account.uids() == []
    assert {"\\Seen", "$Closeloop"} <= imap_account.fetch_flags("Processed")[uid]
    imap_account.delete_folder("Processed")


def test_users_added_while_running_log_in_at_once(dovecot: DovecotServer) -> None:
    for _ in range(3):
        account = dovecot.add_user()
        assert account.uids() == []


def test_idle_wakes_on_append_from_another_connection(imap_account: ImapAccount) -> None:
    with imap_account.client() as client:
        client.select_folder("INBOX")
        client.idle()
        try:
            imap_account.append(make_message())
            responses = client.idle_check(timeout=10)
        finally:
            client.idle_done()

    assert (1, b"EXISTS") in responses


def test_implicit_tls_verifies_against_the_test_ca(imap_account: ImapAccount, tls_ca: TlsFiles) -> None:
    assert imap_account.tls_port is not None
    with IMAPClient(imap_account.host, imap_account.tls_port, ssl_context=tls_ca.client_context()) as client:
        client.login(imap_account.username, imap_account.password)
        assert client.list_folders()


def test_starttls_verifies_against_the_test_ca(imap_account: ImapAccount, tls_ca: TlsFiles) -> None:
    with IMAPClient(imap_account.host, imap_account.port, ssl=False) as client:
        client.starttls(tls_ca.client_context())
        client.login(imap_account.username, imap_account.password)
        assert client.list_folders()


def test_imap_tls_without_the_test_ca_fails_verification(imap_account: ImapAccount) -> None:
    assert imap_account.tls_port is not None
    with pytest.raises(ssl.SSLCertVerificationError):
        IMAPClient(imap_account.host, imap_account.tls_port, ssl_context=ssl.create_default_context())
    client = IMAPClient(imap_account.host, imap_account.port, ssl=False)
    with pytest.raises(ssl.SSLCertVerificationError):
        client.starttls(ssl.create_default_context())
    with contextlib.suppress(OSError):  # the failed handshake already closed the socket
        client.shutdown()


@pytest.mark.parametrize(("server", "expected"), [("dovecot", True), ("dovecot_restricted", False)])
def test_restricted_server_hides_move_and_condstore(
    request: pytest.FixtureRequest, server: str, expected: bool
) -> None:
    account = request.getfixturevalue(server).add_user()
    with account.client() as client:
        capabilities = set(client.capabilities())

    assert (b"MOVE" in capabilities) is expected
    assert (b"CONDSTORE" in capabilities) is expected
    assert b"IDLE" in capabilities


# SMTP sink


def test_sink_records_the_message_as_sent(smtp_sink: SmtpSink) -> None:
    raw = make_message()

    send(smtp_sink, raw)

    [received] = smtp_sink.wait_for(1)
    assert received.raw == raw
    assert received.mail_from == "support@example.com"
    assert received.rcpt_tos == ("ada@example.com",)
    assert received.message["Subject"] == "Printer on fire"
    assert not received.tls


def test_fail_next_answers_451_then_accepts(smtp_sink: SmtpSink) -> None:
    smtp_sink.fail_next(1)

    with pytest.raises(smtplib.SMTPDataError) as failure:
        send(smtp_sink, make_message())
    send(smtp_sink, make_message())

    assert failure.value.smtp_code == 451
    assert len(smtp_sink.wait_for(1)) == 1
    assert smtp_sink.attempts == 2


def test_drop_next_disconnects_without_recording(smtp_sink: SmtpSink) -> None:
    smtp_sink.drop_next(1)

    with pytest.raises(smtplib.SMTPServerDisconnected):
        send(smtp_sink, make_message())
    send(smtp_sink, make_message())

    assert len(smtp_sink.wait_for(1)) == 1


def test_rejected_address_is_refused_permanently(smtp_sink: SmtpSink) -> None:
    smtp_sink.reject("gone@example.com")

    with pytest.raises(smtplib.SMTPRecipientsRefused) as failure:
        send(smtp_sink, make_message(), rcpt="gone@example.com")

    assert failure.value.recipients["gone@example.com"][0] == 550
    assert smtp_sink.messages == []


def test_starttls_sink_verifies_and_records_the_login(smtp_sink_factory: SmtpSinkFactory, tls_ca: TlsFiles) -> None:
    sink = smtp_sink_factory(mode="starttls", require_starttls=True, credentials=("closeloop", "s3cret"))

    with smtplib.SMTP(sink.host, sink.port, timeout=10) as client:
        client.starttls(context=tls_ca.client_context())
        client.login("closeloop", "s3cret")
        client.sendmail("support@example.com", ["ada@example.com"], make_message())

    [received] = sink.wait_for(1)
    assert received.tls
    assert received.username == "closeloop"
    assert [login.accepted for login in sink.logins] == [True]


def test_sink_refuses_mail_before_auth(smtp_sink_factory: SmtpSinkFactory, tls_ca: TlsFiles) -> None:
    sink = smtp_sink_factory(mode="implicit", credentials=("closeloop", "s3cret"))

    with smtplib.SMTP_SSL(sink.host, sink.port, context=tls_ca.client_context(), timeout=10) as client:
        with pytest.raises(smtplib.SMTPSenderRefused):
            client.sendmail("support@example.com", ["ada@example.com"], make_message())
        with pytest.raises(smtplib.SMTPAuthenticationError):
            client.login("closeloop", "wrong")

    assert sink.messages == []
    assert sink.logins[0].password == "wrong"


def test_implicit_tls_sink_verifies_against_the_test_ca(smtp_sink_factory: SmtpSinkFactory, tls_ca: TlsFiles) -> None:
    sink = smtp_sink_factory(mode="implicit")

    with smtplib.SMTP_SSL(sink.host, sink.port, context=tls_ca.client_context(), timeout=10) as client:
        client.sendmail("support@example.com", ["ada@example.com"], make_message())
    with pytest.raises(ssl.SSLCertVerificationError):
        smtplib.SMTP_SSL(sink.host, sink.port, context=ssl.create_default_context(), timeout=10)

    assert sink.wait_for(1)[0].tls


# Databases


def test_database_url_connects_with_sqlalchemy(database_url: str) -> None:
    engine = sqlalchemy.create_engine(database_url)
    try:
        with engine.connect() as connection:
            assert connection.execute(sqlalchemy.text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()


def test_postgres_database_is_dropped_even_with_open_connections() -> None:
    with postgres_database() as url:
        name = url.rsplit("/", 1)[1]
        leftover = psycopg.connect(url.replace("+psycopg", ""))
    leftover.close()

    with admin_connection() as admin:
        assert admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone() is None
