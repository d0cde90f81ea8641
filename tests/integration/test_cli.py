"""The staff commands, run in-process as ``closeloop`` would run them: a config file, real Dovecot and aiosmtpd,
SQLite and PostgreSQL. ``daemon.cli.main(argv, environ)`` returns the exit code; stdout is what staff read."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from daemon import cli
from daemon.domain.reference import ref_for
from daemon.store.repository import Store
from daemon.store.tables import customers, touches

from servers.dovecot import ImapAccount
from servers.smtp import SmtpSink
from support import mails
from support.settings import STAFF, TEMPLATES

pytestmark = pytest.mark.integration

UNKNOWN_REF = ref_for(4242)


def config_text(account: ImapAccount, sink: SmtpSink, database_url: str) -> str:
    staff = "".join(f'\n[[staff]]\nname = "{m["name"]}"\nemail = "{m["email"]}"\n' for m in STAFF)
    return f"""
[database]
url = "{database_url}"

[templates]
dir = "{TEMPLATES}"

[team]
timezone = "Europe/Berlin"

[[inboxes]]
name = "support"
address = "support@example.org"
display_name = "Example Support"

[inboxes.imap]
host = "{account.host}"
port = {account.port}
security = "none"
username = "{account.username}"
password = "env:TEST_IMAP_PASSWORD"
timeout_seconds = 10

[smtp]
host = "{sink.host}"
port = {sink.port}
security = "none"
timeout_seconds = 10
{staff}"""


@pytest.fixture(autouse=True)
def _root_logger() -> Iterator[None]:
    """``main`` installs its own log handler on the root logger; put pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


class Closeloop:
    """Runs ``closeloop --config FILE …`` in-process and keeps what it printed."""

    def __init__(self, config: Path, environ: dict[str, str], capsys: pytest.CaptureFixture[str]) -> None:
        self.config, self.environ, self.capsys = config, environ, capsys
        self.out = self.err = ""

    def __call__(self, *argv: str, config: bool = True) -> int:
        self.capsys.readouterr()
        code = cli.main([*(["--config", str(self.config)] if config else []), *argv], self.environ)
        self.out, self.err = self.capsys.readouterr()
        return code

    def json(self, *argv: str) -> Any:
        assert self(*argv, "--json") == 0, self.err
        return json.loads(self.out)


@pytest.fixture
def config(imap_account: ImapAccount, smtp_sink: SmtpSink, database_url: str, tmp_path: Path) -> Path:
    path = tmp_path / "closeloop.toml"
    path.write_text(config_text(imap_account, smtp_sink, database_url), encoding="utf-8")
    return path


@pytest.fixture
def closeloop(config: Path, imap_account: ImapAccount, capsys: pytest.CaptureFixture[str]) -> Closeloop:
    return Closeloop(config, {"TEST_IMAP_PASSWORD": imap_account.password}, capsys)


@pytest.fixture
def two_loops(closeloop: Closeloop, imap_account: ImapAccount) -> dict[str, str]:
    """Jane and Ravi wrote; ``closeloop once`` acknowledged both. Their loop references by email."""
    imap_account.append(mails.mail(message_id="vat@mail.example.com"))
    imap_account.append(mails.customer(1, message_id="damaged@mail.example.com"))
    assert closeloop("once") == 0, closeloop.err
    assert closeloop.out.strip() == "recorded 2 messages, opened 2 loops, sent 4 emails"
    listed = closeloop.json("loops")
    return {loop["customer"]["email"]: loop["ref"] for loop in listed}


def rows(config: Path, environ: dict[str, str], table: Any) -> list[dict[str, Any]]:
    from daemon.config import Settings

    store = Store(Settings.load(config, environ).database.url)
    try:
        with store.engine.connect() as db:
            return [dict(r._mapping) for r in db.execute(select(table).order_by(table.c.id))]
    finally:
        store.close()


def touch_states(closeloop: Closeloop, ref: str) -> dict[str, str]:
    (loop,) = [loop for loop in closeloop.json("loops") if loop["ref"] == ref]
    return {t["kind"]: t["state"] for t in loop["touches"]}


# listing -------------------------------------------------------------------------------------------------------


def test_loops_json_lists_each_loop_with_its_customer_and_touches(
    closeloop: Closeloop, two_loops: dict[str, str]
) -> None:
    listed = closeloop.json("loops")

    assert sorted(loop["ref"] for loop in listed) == sorted(two_loops.values())
    jane = next(loop for loop in listed if loop["ref"] == two_loops["jane@example.com"])
    assert jane["state"] == "acknowledged"
    assert jane["subject"] == "Invoice shows the wrong VAT number"
    assert jane["customer"] == {"email": "jane@example.com", "name": "Jane Doe"}
    for loop in listed:
        assert {"ref", "state", "subject", "customer", "touches"} <= set(loop)
        for touch in loop["touches"]:
            assert {"kind", "state", "due_at", "sent_at"} <= set(touch)
            datetime.fromisoformat(touch["due_at"])
    touches_by_kind = {t["kind"]: t for t in jane["touches"]}
    assert set(touches_by_kind) >= {"acknowledgement", "staff-notification", "thank-you", "follow-through"}
    assert touches_by_kind["acknowledgement"]["state"] == "sent"
    assert datetime.fromisoformat(touches_by_kind["acknowledgement"]["sent_at"]).tzinfo is not None
    assert touches_by_kind["thank-you"]["state"] == "planned" and touches_by_kind["thank-you"]["sent_at"] is None


def test_loops_state_keeps_only_loops_in_that_state(closeloop: Closeloop, two_loops: dict[str, str]) -> None:
    jane, ravi = two_loops["jane@example.com"], two_loops["ravi.1@example.com"]
    assert closeloop("close", jane) == 0

    assert [loop["ref"] for loop in closeloop.json("loops", "--state", "closed")] == [jane]
    assert [loop["ref"] for loop in closeloop.json("loops", "--state", "acknowledged")] == [ravi]
    assert closeloop.json("loops", "--state", "checked_in") == []

    assert closeloop("loops", "--state", "closed") == 0
    (line,) = closeloop.out.splitlines()
    assert line.split()[:2] == [jane, "closed"] and "Jane Doe" in line


def test_an_unknown_state_is_a_usage_error(closeloop: Closeloop) -> None:
    with pytest.raises(SystemExit) as exit_:
        closeloop("loops", "--state", "sleeping")
    assert exit_.value.code == 2


# one loop ------------------------------------------------------------------------------------------------------


def test_show_prints_the_loops_timeline_in_time_order(closeloop: Closeloop, two_loops: dict[str, str]) -> None:
    ref = two_loops["jane@example.com"]

    assert closeloop("show", ref.lower()) == 0
    lines = closeloop.out.splitlines()
    assert lines[0] == f"{ref}  Invoice shows the wrong VAT number"
    assert "customer: Jane Doe <jane@example.com>" in lines[1]
    assert "state: acknowledged" in lines[2]
    events = lines[3:]
    received = next(i for i, line in enumerate(events) if "received" in line and "customer" in line)
    ack = next(i for i, line in enumerate(events) if "touch sent" in line and "acknowledgement" in line)
    assert received < ack
    assert any("touch planned" in line and "thank-you" in line for line in events)

    timeline = closeloop.json("show", ref)
    assert timeline["ref"] == ref and timeline["customer"]["email"] == "jane@example.com"
    moments = [event["at"] for event in timeline["events"]]
    assert moments == sorted(moments)
    assert timeline["events"][0]["what"] == "received"
    assert timeline["events"][0]["message_id"] == "vat@mail.example.com"


def test_outcome_text_records_the_staffs_words_and_plans_the_outcome_email(
    closeloop: Closeloop, two_loops: dict[str, str]
) -> None:
    ref = two_loops["jane@example.com"]

    assert closeloop("outcome", ref, "--text", "We corrected the VAT number and reissued the invoice.") == 0

    assert closeloop.out.strip() == f"{ref}: outcome recorded; the customer is told in business hours"
    assert closeloop.json("show", ref)["outcome"] == "We corrected the VAT number and reissued the invoice."
    states = touch_states(closeloop, ref)
    assert states["outcome"] == "planned"
    assert states["thank-you"] == states["follow-through"] == "cancelled"


def test_outcome_file_records_the_files_text(closeloop: Closeloop, two_loops: dict[str, str], tmp_path: Path) -> None:
    ref = two_loops["ravi.1@example.com"]
    written = tmp_path / "outcome.txt"
    written.write_text("We sent a replacement lid.\n\nIt should arrive on Friday.\n", encoding="utf-8")

    assert closeloop("outcome", ref, "--file", str(written)) == 0

    assert closeloop.json("show", ref)["outcome"] == "We sent a replacement lid.\n\nIt should arrive on Friday."
    assert touch_states(closeloop, ref)["outcome"] == "planned"


def test_outcome_file_that_cannot_be_read_or_is_empty_is_a_usage_error(
    closeloop: Closeloop, two_loops: dict[str, str], tmp_path: Path
) -> None:
    ref = two_loops["jane@example.com"]
    assert closeloop("outcome", ref, "--file", str(tmp_path / "missing.txt")) == 2
    assert "missing.txt" in closeloop.err
    assert closeloop("outcome", ref, "--text", "   ") == 2
    assert "empty" in closeloop.err
    assert closeloop.json("show", ref)["outcome"] is None


def test_close_with_a_reason_closes_the_loop_and_cancels_its_pending_touches(
    closeloop: Closeloop, two_loops: dict[str, str]
) -> None:
    ref = two_loops["jane@example.com"]

    assert closeloop("close", ref, "--reason", "answered by phone") == 0

    assert closeloop.out.strip() == f"{ref}: closed (answered by phone)"
    timeline = closeloop.json("show", ref)
    assert (timeline["state"], timeline["close_reason"]) == ("closed", "answered by phone")
    assert timeline["closed_at"] is not None
    assert "planned" not in touch_states(closeloop, ref).values()
    assert touch_states(closeloop, two_loops["ravi.1@example.com"])["thank-you"] == "planned"


def test_optout_records_the_refusal_and_cancels_the_customers_touches(
    closeloop: Closeloop, two_loops: dict[str, str]
) -> None:
    assert closeloop("optout", "Jane@Example.com") == 0

    assert "opted out" in closeloop.out
    (jane,) = [c for c in rows(closeloop.config, closeloop.environ, customers) if c["email"] == "jane@example.com"]
    assert jane["opted_out_at"] is not None
    assert (jane["consent"], jane["consent_via"]) == ("refused", "closeloop optout")
    jane_ref = two_loops["jane@example.com"]
    customer_kinds = {"thank-you", "follow-through"}
    assert {k: s for k, s in touch_states(closeloop, jane_ref).items() if k in customer_kinds} == {
        "thank-you": "cancelled",
        "follow-through": "cancelled",
    }
    pending = [t for t in rows(closeloop.config, closeloop.environ, touches) if t["state"] == "planned"]
    assert pending and all(t["recipient"] != "jane@example.com" for t in pending)


# exit codes ----------------------------------------------------------------------------------------------------


def test_an_unknown_reference_exits_1_naming_it(closeloop: Closeloop, two_loops: dict[str, str]) -> None:
    for argv in (
        ["show", UNKNOWN_REF],
        ["outcome", UNKNOWN_REF, "--text", "done"],
        ["close", UNKNOWN_REF],
        ["show", "not-a-ref"],
    ):
        assert closeloop(*argv) == 1, argv
        assert f"no loop {argv[1].upper()}" in closeloop.err, argv


def test_closing_a_closed_loop_exits_1_and_changes_nothing(closeloop: Closeloop, two_loops: dict[str, str]) -> None:
    ref = two_loops["jane@example.com"]
    assert closeloop("close", ref, "--reason", "first") == 0

    assert closeloop("close", ref, "--reason", "second") == 1

    assert f"loop {ref} is closed" in closeloop.err
    assert closeloop.json("show", ref)["close_reason"] == "first"
    assert closeloop("outcome", ref, "--text", "too late") == 1


def test_optout_of_an_unknown_address_exits_1(closeloop: Closeloop, two_loops: dict[str, str]) -> None:
    assert closeloop("optout", "nobody@example.net") == 1
    assert "no customer nobody@example.net" in closeloop.err


def test_a_bad_configuration_exits_2_naming_the_file_and_the_key(closeloop: Closeloop, config: Path) -> None:
    config.write_text(config.read_text(encoding="utf-8") + "\n[cadence]\npromise_business_days = 0\n", encoding="utf-8")

    assert closeloop("loops") == 2

    assert str(config) in closeloop.err
    assert "cadence.promise_business_days" in closeloop.err
    assert closeloop.out == ""


def test_a_missing_secret_exits_2_naming_the_key(closeloop: Closeloop, config: Path) -> None:
    closeloop.environ = {}
    assert closeloop("loops") == 2
    assert str(config) in closeloop.err and "inboxes[0].imap.password" in closeloop.err
    assert "TEST_IMAP_PASSWORD" in closeloop.err


def test_no_configuration_at_all_exits_2(closeloop: Closeloop, tmp_path: Path) -> None:
    assert closeloop("loops", config=False) == 2
    assert "no configuration" in closeloop.err and "CLOSELOOP_CONFIG" in closeloop.err

    closeloop.config = tmp_path / "nowhere.toml"
    assert closeloop("loops") == 2
    assert "nowhere.toml" in closeloop.err


def test_the_config_file_may_come_from_closeloop_config(closeloop: Closeloop, config: Path) -> None:
    closeloop.environ = {**closeloop.environ, "CLOSELOOP_CONFIG": str(config)}
    assert closeloop("loops", "--json", config=False) == 0
    assert json.loads(closeloop.out) == []
