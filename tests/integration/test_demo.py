"""``closeloop demo``: the whole story on the embedded defaults, run in-process and as a subprocess."""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

import pytest

from daemon.app import App
from daemon.cli import main
from daemon.config import Settings

pytestmark = [pytest.mark.integration, pytest.mark.slow]

CUSTOMERS = ("jane@example.com", "ravi@example.net", "ana@example.com")
MACHINES = ("news@vendor.example.net", "tom@example.com")


@dataclass(frozen=True, kw_only=True)
class Run:
    directory: Path
    code: int
    output: str
    errors: str

    @property
    def emails(self) -> list[tuple[str, EmailMessage]]:
        """(file name, message) for every .eml in the outbox, in order."""
        files = sorted((self.directory / "outbox").glob("*.eml"))
        return [(f.name, message_from_bytes(f.read_bytes(), _class=EmailMessage, policy=policy.default)) for f in files]

    def sent(self, kind: str, to: str | None = None) -> list[EmailMessage]:
        return [
            message
            for _, message in self.emails
            if message["X-Closeloop-Kind"] == kind and (to is None or parseaddr(str(message["To"]))[1] == to)
        ]


@contextlib.contextmanager
def logging_restored() -> Iterator[None]:
    """The command line configures the root logger; give pytest's back afterwards."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        yield
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)


def run_in_process(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with logging_restored(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["demo", *args], environ={})
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Run:
    directory = tmp_path_factory.mktemp("demo") / "closeloop-demo"
    code, output, errors = run_in_process("--dir", str(directory))
    return Run(directory=directory, code=code, output=output, errors=errors)


def test_the_demo_finishes_and_writes_its_folder(demo: Run) -> None:
    assert demo.code == 0, demo.errors
    assert sorted(p.name for p in demo.directory.iterdir()) == ["Maildir", "closeloop.toml", "data", "outbox"]
    assert (demo.directory / "data" / "closeloop.db").is_file()
    assert all((demo.directory / "Maildir" / sub).is_dir() for sub in ("new", "cur", "tmp"))


def test_every_customer_is_acknowledged_and_machine_mail_never_answered(demo: Run) -> None:
    for customer in CUSTOMERS:
        assert len(demo.sent("acknowledgement", customer)) == 1, customer
        assert len(demo.sent("thank-you", customer)) == 1, customer
    recipients = {parseaddr(str(message["To"]))[1] for _, message in demo.emails}
    assert not recipients & set(MACHINES)
    assert "recorded, not answered" in demo.output


def test_the_story_has_outcomes_a_follow_through_check_ins_and_a_closing(demo: Run) -> None:
    assert len(demo.sent("outcome")) == 3
    assert len(demo.sent("staff-notification")) == 3
    assert demo.sent("follow-through", "ravi@example.net")
    assert demo.sent("staff-reminder")
    assert {parseaddr(str(m["To"]))[1] for m in demo.sent("check-in")} == {"jane@example.com", "ravi@example.net"}
    assert [parseaddr(str(m["To"]))[1] for m in demo.sent("closing")] == ["jane@example.com"]


def test_the_outcome_carries_the_staff_members_own_words(demo: Run) -> None:
    (outcome,) = demo.sent("outcome", "jane@example.com")
    body = outcome.get_body(preferencelist=("plain",))
    assert isinstance(body, EmailMessage)
    assert "INV-2026-1183-C" in body.get_content()


def test_outbox_files_are_named_in_order_by_kind_and_loop(demo: Run) -> None:
    names = [name for name, _ in demo.emails]
    assert names[0].startswith("0001-acknowledgement-CL-")
    for number, (name, message) in enumerate(demo.emails, start=1):
        assert name == f"{number:04d}-{message['X-Closeloop-Kind']}-{message['X-Closeloop-Loop']}.eml"


def test_the_all_good_loop_and_the_unanswered_check_in_are_closed(demo: Run) -> None:
    settings = Settings.load(demo.directory / "closeloop.toml", {})
    app = App(settings)
    try:
        loops = {loop["customer"]["email"]: loop for loop in app.service.loops()}
        jane = app.service.timeline(loops["jane@example.com"]["ref"])
        ravi = app.service.timeline(loops["ravi@example.net"]["ref"])
    finally:
        app.close()
    assert jane["state"] == ravi["state"] == "closed"
    assert "all is well" in jane["close_reason"]
    assert "quietly" in ravi["close_reason"]
    assert ravi["closed_at"] > max(e["sent_at"] or "" for e in ravi["events"] if e.get("kind") == "check-in")


def test_the_timeline_reads_like_a_story(demo: Run) -> None:
    for heading in ("Day 1", "Day 2", "Three months later", "Summary"):
        assert re.search(rf"^{heading}", demo.output, re.MULTILINE), heading
    acknowledgement = (
        r"^  Mon 30 Nov 09:00  (CL-\w{4})  acknowledgement → Jane Doe <jane@example.com>  "
        r'"Re: Invoice shows the wrong VAT number \[\1\]"$'
    )
    assert re.search(acknowledgement, demo.output, re.MULTILINE)
    assert re.search(r"^  loops +3 opened, 3 closed$", demo.output, re.MULTILINE)
    assert f"sent      {len(demo.emails)} emails" in demo.output


def test_the_written_config_loads_like_production(demo: Run) -> None:
    settings = Settings.load(demo.directory / "closeloop.toml", {})
    (inbox,) = settings.inboxes
    assert inbox.maildir is not None and inbox.maildir.path == demo.directory / "Maildir"
    assert settings.database.url == f"sqlite:///{demo.directory / 'data' / 'closeloop.db'}"
    assert (settings.templates.dir / "en" / "acknowledgement.txt").is_file()


def test_the_smtp_server_is_stopped_afterwards(demo: Run) -> None:
    smtp = Settings.load(demo.directory / "closeloop.toml", {}).smtp
    with pytest.raises(ConnectionRefusedError), socket.create_connection((smtp.host, smtp.port), timeout=2):
        pass


def test_running_again_without_fresh_exits_2_and_changes_nothing(demo: Run) -> None:
    before = sorted(p.name for p in (demo.directory / "outbox").iterdir())
    code, output, errors = run_in_process("--dir", str(demo.directory))
    assert code == 2
    assert "not empty" in errors and "--fresh" in errors
    assert output == ""
    assert sorted(p.name for p in (demo.directory / "outbox").iterdir()) == before


def test_fresh_leaves_a_folder_alone_that_it_did_not_write(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    code, _, errors = run_in_process("--dir", str(tmp_path), "--fresh")
    assert code == 2
    assert "notes.txt" in errors
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_as_a_subprocess_fresh_replaces_an_earlier_demo(demo: Run, tmp_path: Path) -> None:
    earlier = tmp_path / "closeloop-demo"
    shutil.copytree(demo.directory, earlier)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    done = subprocess.run(
        [sys.executable, "-m", "daemon", "demo", "--dir", str(earlier), "--fresh"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "Summary" in done.stdout
    assert len(list((earlier / "outbox").glob("*.eml"))) == len(demo.emails)
