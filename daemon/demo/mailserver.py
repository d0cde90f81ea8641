"""The demo's SMTP server: aiosmtpd on a free loopback port, keeping every accepted email as an ``.eml`` file.

closeloop sends to it through the same :class:`~daemon.mail.smtp.SmtpSender` it uses with a real mail server
(plain SMTP on loopback, ``security = "none"``). Each accepted message is written, byte for byte, to
``outbox/NNNN-KIND-REF.eml`` (in the order accepted; kind and loop from the ``X-Closeloop-Kind`` and
``X-Closeloop-Loop`` headers every closeloop email carries) before the server answers 250, so once a send
returns, the file is there.
"""

from __future__ import annotations

import re
import socket
import threading
from dataclasses import dataclass
from datetime import datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parsedate_to_datetime
from pathlib import Path
from types import TracebackType

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

HOST = "127.0.0.1"
START_ATTEMPTS = 3
_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")


class MailServerError(Exception):
    """The embedded SMTP server could not start."""


@dataclass(frozen=True, kw_only=True)
class Accepted:
    """One email the server accepted, as the timeline shows it."""

    number: int
    path: Path
    kind: str
    ref: str
    to: str
    subject: str
    date: datetime
    message_id: str
    text: str


class OutboxServer:
    """aiosmtpd's ``Controller`` in a thread; :meth:`stop` is safe to call twice and after a failed start."""

    def __init__(self, outbox: Path) -> None:
        self.outbox = outbox
        self.host, self.port = HOST, 0
        self._lock = threading.Lock()
        self._accepted: list[Accepted] = []
        self._controller: Controller | None = None

    def __enter__(self) -> OutboxServer:
        self.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Listen on a free loopback port (a few tries: another process may take a free port first).

        :raises MailServerError: when no port could be bound.
        """
        self.outbox.mkdir(parents=True, exist_ok=True)
        problem: Exception | None = None
        for _ in range(START_ATTEMPTS):
            port = _free_port()
            controller = Controller(
                self, hostname=HOST, port=port, server_hostname="closeloop-demo.localhost", ready_timeout=5.0
            )
            try:
                controller.start()
            except (OSError, TimeoutError, RuntimeError) as exc:
                problem = exc
                continue
            self._controller, self.port = controller, port
            return
        raise MailServerError(f"cannot start the embedded SMTP server on {HOST}: {problem}")

    def stop(self) -> None:
        if self._controller is not None:
            controller, self._controller = self._controller, None
            controller.stop()

    @property
    def accepted(self) -> list[Accepted]:
        with self._lock:
            return list(self._accepted)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """aiosmtpd's hook: keep the message, then answer 250 (runs on the server's thread)."""
        raw = envelope.original_content or b""
        with self._lock:
            accepted = _accepted(raw, len(self._accepted) + 1, self.outbox)
            accepted.path.write_bytes(raw)
            self._accepted.append(accepted)
        return "250 OK: kept as " + accepted.path.name


def _accepted(raw: bytes, number: int, outbox: Path) -> Accepted:
    message = message_from_bytes(raw, _class=EmailMessage, policy=policy.default)
    kind = str(message.get("X-Closeloop-Kind", "email"))
    ref = str(message.get("X-Closeloop-Loop", ""))
    name = "-".join(part for part in (f"{number:04d}", _UNSAFE.sub("_", kind), _UNSAFE.sub("_", ref)) if part)
    body = message.get_body(preferencelist=("plain",))
    return Accepted(
        number=number,
        path=outbox / f"{name}.eml",
        kind=kind,
        ref=ref,
        to=str(message.get("To", "")),
        subject=str(message.get("Subject", "")),
        date=parsedate_to_datetime(str(message["Date"])),
        message_id=str(message.get("Message-ID", "")).strip().strip("<>"),
        text=body.get_content() if isinstance(body, EmailMessage) else "",
    )


def _free_port() -> int:
    """A loopback port that was free a moment ago (``Controller`` needs the number before it binds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port
