"""Log lines: one event per line with its fields; human on a terminal, JSON otherwise."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from daemon.logs import configure


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:], root.level = handlers, level


def test_json_when_not_a_terminal() -> None:
    stream = io.StringIO()
    configure("INFO", "auto", stream)
    logging.getLogger("daemon.dispatch").info("sent", extra={"loop": "CL-4680", "message_id": "a@b"})
    (line,) = stream.getvalue().splitlines()
    event = json.loads(line)
    assert event["message"] == "sent"
    assert event["loop"] == "CL-4680" and event["message_id"] == "a@b"
    assert event["level"] == "INFO" and event["name"] == "daemon.dispatch"


def test_human_on_a_terminal() -> None:
    stream = Terminal()
    configure("INFO", "auto", stream)
    logging.getLogger("daemon.intake").info("loop opened", extra={"loop": "CL-4680", "subject": "two words"})
    (line,) = stream.getvalue().splitlines()
    assert " INFO  loop opened  " in line
    assert "loop=CL-4680" in line and "subject='two words'" in line


def test_format_can_be_forced() -> None:
    stream = Terminal()
    configure("INFO", "json", stream)
    logging.getLogger("daemon").warning("held")
    assert json.loads(stream.getvalue())["message"] == "held"


def test_one_line_per_event_even_with_a_traceback() -> None:
    stream = io.StringIO()
    configure("INFO", "json", stream)
    try:
        raise ValueError("boom\nsecond line")
    except ValueError:
        logging.getLogger("daemon").exception("failed")
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    assert "boom" in json.loads(lines[0])["exc_info"]


def test_level_filters() -> None:
    stream = io.StringIO()
    configure("WARNING", "json", stream)
    logging.getLogger("daemon").info("quiet")
    assert stream.getvalue() == ""
