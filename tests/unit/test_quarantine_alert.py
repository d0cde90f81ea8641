"""The email that tells the team about quarantined messages: what it lists, and that hostile text stays tame."""

from __future__ import annotations

from datetime import UTC, datetime

from daemon.quarantine import alert
from daemon.store.repository import QuarantinedMessage

AT = datetime(2026, 11, 24, 9, 30, tzinfo=UTC)


def quarantined(n: int, **overrides: object) -> QuarantinedMessage:
    values: dict[str, object] = {
        "id": n, "inbox": "support", "folder": "INBOX", "uid": 40 + n, "from_email": f"x{n}@example.net",
        "subject": f"Subject {n}", "received_at": AT, "reason": "no header fields", "size": 1234,
    }  # fmt: skip
    values.update(overrides)
    return QuarantinedMessage(**values)  # type: ignore[arg-type]


def test_one_message_is_named_with_where_to_find_it_and_why() -> None:
    subject, text = alert([quarantined(1)])
    assert subject == "[closeloop] 1 message quarantined, not answered"
    assert "this message and quarantined it" in text
    assert "- from x1@example.net: Subject 1\n" in text
    assert "  received 2026-11-24 09:30 UTC, 1,234 bytes, in support/INBOX UID 41\n" in text
    assert "  why: no header fields\n" in text


def test_several_messages_are_listed_in_one_email() -> None:
    subject, text = alert([quarantined(n) for n in range(1, 4)])
    assert subject == "[closeloop] 3 messages quarantined, not answered"
    assert "these messages and quarantined them" in text
    assert text.count("- from ") == 3


def test_hostile_values_stay_on_one_short_line() -> None:
    _, text = alert([quarantined(1, subject="a\r\nBcc: victim@example.net " + "x" * 500, reason="r\n" * 400)])
    lines = text.splitlines()
    assert not any(line.startswith("Bcc:") for line in lines)
    assert max(len(line) for line in lines) < 320


def test_missing_sender_subject_and_position_read_well() -> None:
    _, text = alert([quarantined(1, from_email="", subject="", uid=None, folder=None)])
    assert "- from (no sender): (no subject)\n" in text
    assert ", in support\n" in text
