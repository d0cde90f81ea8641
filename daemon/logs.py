"""Logging: one event per line with its fields (loop, message id, …); human on a terminal, JSON otherwise.

Code everywhere logs with the stdlib (``log.info("sent", extra={"loop": ref})``); this module only formats.
JSON lines come from python-json-logger (well-kept, understands stdlib records and their extras).
Message bodies are never logged at info level, and secrets never reach a log record: settings hold them as
``SecretStr``.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Literal, TextIO

from pythonjsonlogger.json import JsonFormatter

RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}

Format = Literal["auto", "human", "json"]


def fields(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in RESERVED and not key.startswith("_")}


class HumanFormatter(logging.Formatter):
    """``2026-11-24 19:00:01 INFO  loop opened  loop=CL-4680 message_id=abc@example.org``"""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(message)s", datefmt="%Y-%m-%d %H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extra = " ".join(f"{key}={_short(value)}" for key, value in fields(record).items())
        return f"{line}  {extra}" if extra else line


def _short(value: object) -> str:
    text = str(value)
    return repr(text) if " " in text or not text else text


def configure(level: str = "INFO", fmt: Format = "auto", stream: TextIO | None = None) -> None:
    """Install the handler on the root logger (called once, by the command line)."""
    stream = stream or sys.stderr
    human = fmt == "human" or (fmt == "auto" and stream.isatty())
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        HumanFormatter()
        if human
        else JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s", rename_fields={"levelname": "level"})
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("apscheduler", "alembic", "mail.log", "imapclient"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
