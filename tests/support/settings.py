"""closeloop Settings pointed at the test servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from daemon.config import Settings

from servers.dovecot import ImapAccount
from servers.smtp import SmtpSink

TEMPLATES = Path(__file__).parents[2] / "templates"
STAFF = [
    {"name": "Sam Rivera", "email": "sam@example.org"},
    {"name": "Alex Kim", "email": "alex@example.org"},
]


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        merged[key] = (
            merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


def settings_for(account: ImapAccount, sink: SmtpSink, database_url: str, workdir: Path, **overrides: Any) -> Settings:
    """Settings for one inbox on ``account``, sending through ``sink``, with everything in plain text on loopback."""
    inbox = {
        "name": "support",
        "address": "support@example.org",
        "display_name": "Example Support",
        "imap": {
            "host": account.host,
            "port": account.port,
            "security": "none",
            "username": account.username,
            "password": account.password,
            "timeout_seconds": 10,
            "idle_renew_minutes": 1,
            "poll_seconds": 1,
        },
    }
    data: dict[str, Any] = {
        "database": {"url": database_url},
        "templates": {"dir": str(TEMPLATES)},
        "team": {"timezone": "Europe/Berlin"},
        "daemon": {"tick_seconds": 1},
        "inboxes": [merge(inbox, overrides.pop("inbox", {}))],
        "smtp": {
            "host": sink.host,
            "port": sink.port,
            "security": "none",
            "timeout_seconds": 10,
            "retry": {"first_delay_seconds": 1, "max_delay_seconds": 4},
        },
        "staff": STAFF,
    }
    return Settings.from_mapping(merge(data, overrides), {}, base=workdir)
