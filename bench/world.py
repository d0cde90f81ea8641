"""What a benchmark run talks to: a private Dovecot and SMTP sink, customers' mail, closeloop config files."""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from imapclient import IMAPClient

from bench import ROOT
from bench.crowd import SUPPORT, mail

from servers.dovecot import DovecotServer, ImapAccount
from servers.postgres import postgres_database
from servers.smtp import SmtpSink

STAFF = (("Sam Rivera", "sam@example.org"), ("Alex Kim", "alex@example.org"))
APPEND_CHUNK = 200


@dataclass(frozen=True, kw_only=True)
class Servers:
    dovecot: DovecotServer
    sink: SmtpSink


@contextlib.contextmanager
def servers() -> Iterator[Servers]:
    """Dovecot and an arrivals-only SMTP sink on loopback, stopped afterwards."""
    with DovecotServer() as dovecot, SmtpSink(keep="arrivals") as sink:
        yield Servers(dovecot=dovecot, sink=sink)


def fill(account: ImapAccount, numbers: Sequence[int]) -> None:
    """Put customer ``n``'s message for every ``n`` into the account's INBOX (MULTIAPPEND, in chunks)."""
    with account.client() as client:
        for start in range(0, len(numbers), APPEND_CHUNK):
            client.multiappend("INBOX", [mail(n) for n in numbers[start : start + APPEND_CHUNK]])


def imap_client(account: ImapAccount) -> IMAPClient:
    client = IMAPClient(account.host, port=account.port, ssl=False, timeout=30)
    client.login(account.username, account.password)
    return client


def append_uid(response: bytes) -> int:
    found = re.search(rb"\[APPENDUID \d+ (\d+)\]", response)
    return int(found.group(1)) if found else 0


@contextlib.contextmanager
def database(backend: str, path: Path) -> Iterator[str]:
    """A new, empty database: the SQLite file ``path``, or a throwaway PostgreSQL database."""
    if backend == "sqlite":
        path.unlink(missing_ok=True)
        yield f"sqlite:///{path}"
    else:
        with postgres_database() as url:
            yield url


def write_config(path: Path, *, account: ImapAccount, sink: SmtpSink, url: str, level: str = "INFO") -> Path:
    """A closeloop config for one inbox on ``account`` sending through ``sink``; defaults everywhere else."""
    q = json.dumps
    staff = "".join(f"\n[[staff]]\nname = {q(name)}\nemail = {q(email)}\n" for name, email in STAFF)
    path.write_text(
        f"""[database]
url = {q(url)}

[templates]
dir = {q(str(ROOT / "templates"))}

[logging]
level = {q(level)}
format = "json"

[[inboxes]]
name = "support"
address = {q(SUPPORT)}
display_name = "Example Support"

[inboxes.imap]
host = {q(account.host)}
port = {account.port}
security = "none"
username = {q(account.username)}
password = {q(account.password)}

[smtp]
host = {q(sink.host)}
port = {sink.port}
security = "none"
{staff}"""
    )
    return path
