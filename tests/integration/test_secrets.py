"""Passwords never show: not in any log line at DEBUG (ours and every library's), not in ``repr(settings)``, not in
``closeloop check`` output, not in a configuration error. Real Dovecot over STARTTLS, an aiosmtpd sink that
requires STARTTLS and AUTH, PostgreSQL with a password in its URL.

Each secret is looked for in every form it could leak in: as written, quoted and escaped as IMAP sends it, URL
quoted, and base64 encoded as SMTP AUTH PLAIN and LOGIN send it.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from daemon import cli
from daemon.app import App
from daemon.config import ConfigError, Settings
from daemon.logs import configure

from servers import free_port
from servers.dovecot import DovecotServer, ImapAccount
from servers.smtp import SmtpSink, SmtpSinkFactory
from servers.tls import TlsFiles
from support import mails
from support.settings import STAFF, TEMPLATES, settings_for

pytestmark = pytest.mark.integration

TOKEN = secrets.token_hex(4)
IMAP_USER, IMAP_PASSWORD = f"support-{TOKEN}", f'Imap "Pw\\{TOKEN} 7Hq'  # a space, a quote, a backslash
SMTP_USER, SMTP_PASSWORD = "support-smtp", f"Smtp-Pw-{TOKEN}-9Rv"
DB_PASSWORD = f"Db-Pw-{TOKEN}-4Kx"
WRONG_PASSWORD = f"Wrong-Pw-{TOKEN}-2Zt"
PEER_LOGGERS = ("mail.log",)  # aiosmtpd, the test's SMTP server: the peer's own log, not closeloop's


def forms(secret: str, user: str = "") -> set[str]:
    """Every spelling of ``secret`` a log line could carry."""
    escaped = secret.replace("\\", "\\\\").replace('"', '\\"')
    b64 = {
        base64.b64encode(value.encode()).decode()
        for value in (secret, f"\0{user}\0{secret}", f"{user}\0{user}\0{secret}")
    }
    return {secret, escaped, repr(secret)[1:-1], quote(secret), quote(secret, safe=""), *b64}


def leaks(text: str, *secret_forms: set[str]) -> list[str]:
    return sorted(form for found in secret_forms for form in found if form in text)


@pytest.fixture
def everything_logged(caplog: pytest.LogCaptureFixture) -> Iterator[io.StringIO]:
    """closeloop's own JSON log handler at DEBUG, every logger (imapclient, sqlalchemy, apscheduler…) at DEBUG,
    and pytest's capture as well; the root logger is put back afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    levels = {name: logging.getLogger(name).level for name in list(logging.root.manager.loggerDict)}
    stream = io.StringIO()
    configure("DEBUG", "json", stream=stream)
    root.addHandler(caplog.handler)
    for name in levels:
        logging.getLogger(name).setLevel(logging.DEBUG)
    caplog.handler.setLevel(logging.DEBUG)
    yield stream
    root.handlers[:], _ = saved
    root.setLevel(saved[1])
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def captured(stream: io.StringIO, caplog: pytest.LogCaptureFixture) -> str:
    ours = [line for line in stream.getvalue().splitlines() if not any(f'"{p}"' in line for p in PEER_LOGGERS)]
    records = [r for r in caplog.records if not r.name.startswith(PEER_LOGGERS)]
    formatted = [f"{r.name} {r.getMessage()} {r.__dict__} {r.exc_text or ''}" for r in records]
    return "\n".join([*ours, *formatted])


def settings_with_secrets(
    dovecot: DovecotServer, sink: SmtpSink, tls_ca: TlsFiles, database_url: str, tmp_path: Path, **overrides: Any
) -> tuple[Settings, ImapAccount]:
    """Settings that log in to Dovecot over STARTTLS and to the sink with STARTTLS and AUTH, SQL echo on."""
    account = dovecot.add_user(IMAP_USER, IMAP_PASSWORD)
    imap = {"security": "starttls", "ca_file": str(tls_ca.ca_file), **overrides.pop("imap", {})}
    smtp = {
        "security": "starttls",
        "ca_file": str(tls_ca.ca_file),
        "username": SMTP_USER,
        "password": SMTP_PASSWORD,
        **overrides.pop("smtp", {}),
    }
    settings = settings_for(
        account, sink, database_url, tmp_path, inbox={"imap": imap}, smtp=smtp, database={"echo": True}
    )
    return settings, account


@pytest.fixture
def sink(smtp_sink_factory: SmtpSinkFactory) -> SmtpSink:
    return smtp_sink_factory(mode="starttls", require_starttls=True, credentials=(SMTP_USER, SMTP_PASSWORD))


@pytest.fixture
def database_with_password(postgres_url: str) -> str:
    """The test PostgreSQL trusts loopback, so any password is accepted, and this one travels everywhere."""
    return postgres_url.replace("postgres@", f"postgres:{DB_PASSWORD}@")


def test_a_whole_pass_at_debug_level_never_logs_a_password(
    dovecot: DovecotServer,
    sink: SmtpSink,
    tls_ca: TlsFiles,
    database_with_password: str,
    tmp_path: Path,
    everything_logged: io.StringIO,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings, account = settings_with_secrets(dovecot, sink, tls_ca, database_with_password, tmp_path)
    account.append(mails.customer(1))

    app = App(settings)
    try:
        report = app.once()
    finally:
        app.close()

    assert report.failures == [] and report.sent == 2  # the passwords were used: IMAP login, SMTP AUTH
    assert [login.accepted for login in sink.logins] == [True]
    text = captured(everything_logged, caplog)
    assert "LOGIN" in text and "sqlalchemy.engine" in text  # the capture saw imapclient's and SQLAlchemy's debug
    assert leaks(text, forms(IMAP_PASSWORD, IMAP_USER), forms(SMTP_PASSWORD, SMTP_USER), forms(DB_PASSWORD)) == []


def test_failed_logins_never_log_the_password_tried(
    dovecot: DovecotServer,
    sink: SmtpSink,
    tls_ca: TlsFiles,
    sqlite_url: str,
    tmp_path: Path,
    everything_logged: io.StringIO,
    caplog: pytest.LogCaptureFixture,
) -> None:
    wrong_smtp, account = settings_with_secrets(
        dovecot, sink, tls_ca, sqlite_url, tmp_path, smtp={"password": WRONG_PASSWORD}
    )
    wrong_imap, _ = settings_with_secrets(
        dovecot, sink, tls_ca, sqlite_url, tmp_path, imap={"password": WRONG_PASSWORD}
    )
    account.append(mails.customer(1))

    app = App(wrong_smtp)
    try:
        refused = app.once()
    finally:
        app.close()
    app = App(wrong_imap)
    try:
        locked_out = app.once()
    finally:
        app.close()

    assert refused.dispatched[-1].smtp_down and "login refused" in refused.dispatched[-1].smtp_down
    assert {login.password for login in sink.logins if not login.accepted} == {WRONG_PASSWORD}  # it was tried
    assert locked_out.failures and "AUTHENTICATIONFAILED" in locked_out.failures[0]
    text = captured(everything_logged, caplog)
    assert "inbox pass failed" in text and "SMTP server unreachable" in text
    assert leaks(text, forms(WRONG_PASSWORD, IMAP_USER), forms(WRONG_PASSWORD, SMTP_USER), forms(IMAP_PASSWORD)) == []


# settings, check, configuration errors ---------------------------------------------------------------------------


def config_text(
    password_line: str = 'password = "env:CL_IMAP_PASSWORD"',  # noqa: S107
    extra: str = "",
    *,
    database: str = "sqlite:///closeloop.db",
    imap: str = 'host = "imap.example.org"',
    smtp: str = 'host = "smtp.example.org"',
) -> str:
    """A config with the IMAP password in the environment and the SMTP password in a file."""
    staff = "".join(f'\n[[staff]]\nname = "{m["name"]}"\nemail = "{m["email"]}"\n' for m in STAFF)
    return f"""
[database]
url = "{database}"

[templates]
dir = "{TEMPLATES}"

[[inboxes]]
name = "support"
address = "support@example.org"

[inboxes.imap]
{imap}
username = "{IMAP_USER}"
{password_line}

[smtp]
{smtp}
username = "{SMTP_USER}"
password = "file:smtp.pw"
{extra}
{staff}"""


ENVIRON = {"CL_IMAP_PASSWORD": IMAP_PASSWORD}


def write_config(directory: Path, text: str) -> Path:
    (directory / "smtp.pw").write_text(SMTP_PASSWORD + "\n", encoding="utf-8")
    path = directory / "closeloop.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def _root_logger() -> Iterator[None]:
    """``main`` installs its own log handler on the root logger; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_settings_never_show_a_password(tmp_path: Path, database_with_password: str) -> None:
    settings = Settings.load(write_config(tmp_path, config_text(database=database_with_password)), ENVIRON)
    assert settings.smtp.password is not None and settings.smtp.password.get_secret_value() == SMTP_PASSWORD
    assert settings.database.url == database_with_password  # the store still gets the whole URL
    for shown in (repr(settings), str(settings), repr(settings.database), repr(settings.inboxes), repr(settings.smtp)):
        assert leaks(shown, forms(IMAP_PASSWORD), forms(SMTP_PASSWORD), forms(DB_PASSWORD)) == []
    assert leaks(settings.model_dump_json(), forms(IMAP_PASSWORD), forms(SMTP_PASSWORD)) == []


def closeloop_check(config: Path) -> subprocess.CompletedProcess[str]:
    """``closeloop --log-level DEBUG --config CONFIG check`` as an operator runs it, in its own process."""
    argv = [sys.executable, "-m", "daemon", "--log-level", "DEBUG", "--config", str(config), "check"]
    environ = {**os.environ, **ENVIRON}
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=environ, check=False)


def test_closeloop_check_logs_in_everywhere_and_never_prints_a_password(
    dovecot: DovecotServer, sink: SmtpSink, tls_ca: TlsFiles, database_with_password: str, tmp_path: Path
) -> None:
    dovecot.add_user(IMAP_USER, IMAP_PASSWORD)
    ca = f'ca_file = "{tls_ca.ca_file}"\nsecurity = "starttls"'
    text = config_text(
        database=database_with_password,
        imap=f'host = "{dovecot.host}"\nport = {dovecot.port}\n{ca}',
        smtp=f'host = "{sink.host}"\nport = {sink.port}\n{ca}',
    )
    done = closeloop_check(write_config(tmp_path, text))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "configuration: ok" in done.stdout and "database: ok" in done.stdout
    assert sink.logins and all(login.accepted for login in sink.logins)
    assert leaks(done.stdout + done.stderr, forms(IMAP_PASSWORD), forms(SMTP_PASSWORD), forms(DB_PASSWORD)) == []


def test_an_unreachable_database_never_prints_its_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://closeloop:{DB_PASSWORD}@127.0.0.1:{free_port()}/closeloop"
    done = closeloop_check(write_config(tmp_path, config_text(database=url)))
    assert done.returncode != 0
    assert "Connection refused" in done.stdout + done.stderr
    assert leaks(done.stdout + done.stderr, forms(DB_PASSWORD)) == []


SECRET = f"{TOKEN}-Imap-Secret"


@pytest.mark.parametrize(
    "changes",
    [
        {"password_line": f'password = ["{SECRET}"]'},  # a list, not a string
        {"password_line": f'password = {{ value = "{SECRET}" }}'},  # a table
        {"password_line": f'password = "env:CL_IMAP_PASSWORD"\npasswrd = "{SECRET}"'},  # a misspelt key
        {"password_line": f'password = "{SECRET}'},  # TOML broken on the password's line
        {"database": f"mysql://closeloop:{SECRET}@db.example.org/closeloop"},  # a URL closeloop cannot use
    ],
    ids=["list", "table", "misspelt", "broken-toml", "database-url"],
)
@pytest.mark.usefixtures("_root_logger")
def test_a_configuration_error_never_echoes_a_password(
    changes: dict[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_config(tmp_path, config_text(**changes))
    with pytest.raises(ConfigError) as caught:
        Settings.load(path, ENVIRON)
    assert cli.main(["--config", str(path), "check"], ENVIRON) == 2
    out, err = capsys.readouterr()
    assert str(path) in str(caught.value) and str(caught.value) in err
    assert leaks(f"{caught.value}\n{out}\n{err}", forms(SECRET), forms(IMAP_PASSWORD), forms(SMTP_PASSWORD)) == []
