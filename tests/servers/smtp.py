"""An aiosmtpd server on loopback that keeps what it is sent and fails on request."""

import asyncio
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Literal, Protocol

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from . import free_port
from .tls import TlsFiles

Mode = Literal["plain", "starttls", "implicit"]
Stage = Literal["RCPT", "DATA"]
Keep = Literal["messages", "arrivals"]

KIND_HEADER = re.compile(rb"^X-Closeloop-Kind:[ \t]*(\S+)", re.MULTILINE | re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class Received:
    """One accepted message, with its envelope and the bytes exactly as the client sent them."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    message: EmailMessage
    arrived: float  # time.monotonic()
    tls: bool
    username: str | None  # the AUTH identity of the session, if it authenticated


@dataclass(frozen=True, kw_only=True)
class Arrival:
    """One accepted message as a benchmark needs it: its recipients, its ``X-Closeloop-Kind`` and when."""

    rcpt_tos: tuple[str, ...]
    kind: str
    arrived: float  # time.monotonic()


@dataclass(frozen=True, kw_only=True)
class Login:
    """One AUTH attempt, successful or not."""

    mechanism: str
    username: str
    password: str
    accepted: bool


class SmtpSinkFactory(Protocol):
    """The ``smtp_sink_factory`` fixture: starts a sink with the session's test certificate."""

    def __call__(
        self,
        *,
        mode: Mode = "plain",
        require_starttls: bool = False,
        credentials: tuple[str, str] | None = None,
    ) -> "SmtpSink": ...


class SmtpSink:
    """An aiosmtpd ``Controller`` in a thread; every method is safe to call from the test's thread.

    ``mode`` is ``plain``, ``starttls`` (STARTTLS offered, required with ``require_starttls``) or
    ``implicit`` (TLS from the first byte). With ``credentials`` the server offers AUTH PLAIN and LOGIN
    (after STARTTLS in ``starttls`` mode) and refuses MAIL FROM with 530 until the client authenticates.
    With ``keep="arrivals"`` it neither parses nor keeps the messages: it records an :class:`Arrival` for
    each (see :meth:`wait_for_arrivals`), fast enough to measure a sender against.
    """

    def __init__(
        self,
        *,
        mode: Mode = "plain",
        tls: TlsFiles | None = None,
        require_starttls: bool = False,
        credentials: tuple[str, str] | None = None,
        keep: Keep = "messages",
    ) -> None:
        if mode != "plain" and tls is None:
            raise ValueError(f"mode {mode!r} needs tls files")
        self.host = "127.0.0.1"
        self.port = free_port()
        self.mode = mode
        self.credentials = credentials
        self.keep = keep
        self._changed = threading.Condition()
        self._messages: list[Received] = []
        self._arrivals: list[Arrival] = []
        self._kinds: Counter[str] = Counter()
        self._logins: list[Login] = []
        self._failures: dict[Stage, list[str]] = {"RCPT": [], "DATA": []}
        self._drops = 0
        self._rejected: dict[str, str] = {}
        self._attempts = 0
        self._running = False
        self._controller = Controller(
            self,
            hostname=self.host,
            port=self.port,
            server_hostname="sink.closeloop.test",  # else aiosmtpd calls socket.getfqdn()
            ssl_context=tls.server_context() if tls and mode == "implicit" else None,
            tls_context=tls.server_context() if tls and mode == "starttls" else None,
            require_starttls=require_starttls,
            authenticator=self._authenticate if credentials else None,
            # aiosmtpd cannot tell that an implicit-TLS session is encrypted, so it would never offer AUTH.
            auth_require_tls=mode == "starttls",
        )

    def start(self) -> None:
        self._controller.start()
        self._running = True

    def stop(self) -> None:
        """Stop the server thread; safe to call twice."""
        if self._running:
            self._running = False
            self._controller.stop()

    def __enter__(self) -> "SmtpSink":
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def messages(self) -> list[Received]:
        with self._changed:
            return list(self._messages)

    @property
    def logins(self) -> list[Login]:
        with self._changed:
            return list(self._logins)

    @property
    def attempts(self) -> int:
        """DATA commands seen, including failed and dropped ones."""
        with self._changed:
            return self._attempts

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least ``count`` messages arrived, and return them.

        :raises AssertionError: naming what did arrive, when ``timeout`` seconds pass first.
        """
        with self._changed:
            if not self._changed.wait_for(lambda: len(self._messages) >= count, timeout):
                subjects = [received.message["Subject"] for received in self._messages]
                raise AssertionError(f"expected {count} messages within {timeout}s, got {subjects}")
            return list(self._messages)

    def wait_for_arrivals(self, count: int, timeout: float = 10.0, *, kind: str | None = None) -> list[Arrival]:
        """Like :meth:`wait_for`, for a sink that keeps arrivals: ``count`` of them (of ``kind``, if given).

        :raises AssertionError: when ``timeout`` seconds pass first.
        """

        def arrived() -> int:
            return len(self._arrivals) if kind is None else self._kinds[kind]

        with self._changed:
            if not self._changed.wait_for(lambda: arrived() >= count, timeout):
                raise AssertionError(f"expected {count} {kind or 'messages'} within {timeout}s, got {arrived()}")
            return list(self._arrivals)

    @property
    def arrivals(self) -> list[Arrival]:
        with self._changed:
            return list(self._arrivals)

    def clear(self) -> None:
        """Forget received messages, logins and pending faults."""
        with self._changed:
            self._messages.clear()
            self._arrivals.clear()
            self._kinds.clear()
            self._logins.clear()
            self._failures = {"RCPT": [], "DATA": []}
            self._drops = 0
            self._rejected.clear()
            self._attempts = 0

    def fail_next(
        self, n: int = 1, code: int = 451, text: str = "4.3.0 Try again later", *, at: Stage = "DATA"
    ) -> None:
        """Answer the next ``n`` DATA (or, with ``at="RCPT"``, RCPT) commands with ``code text``."""
        with self._changed:
            self._failures[at] += [f"{code} {text}"] * n

    def drop_next(self, n: int = 1) -> None:
        """Close the next ``n`` connections abruptly after the message data, without answering it."""
        with self._changed:
            self._drops += n

    def reject(self, address: str, code: int = 550, text: str = "5.1.1 No such user") -> None:
        """Refuse RCPT TO for ``address`` from now on."""
        with self._changed:
            self._rejected[address.lower()] = f"{code} {text}"

    # aiosmtpd handler hooks, called on the server's thread.

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.credentials and not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        with self._changed:
            if address.lower() in self._rejected:
                return self._rejected[address.lower()]
            if self._failures["RCPT"]:
                return self._failures["RCPT"].pop(0)
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with self._changed:
            self._attempts += 1
            if self._drops:
                self._drops -= 1
                assert isinstance(server.transport, asyncio.Transport)
                server.transport.abort()
                return "421 4.3.0 dropped"  # never reaches the client
            if self._failures["DATA"]:
                return self._failures["DATA"].pop(0)
            if self.keep == "arrivals":
                self._arrivals.append(_arrival(envelope))
                self._kinds[self._arrivals[-1].kind] += 1
            else:
                self._messages.append(self._received(server, session, envelope))
            self._changed.notify_all()
        return "250 OK"

    def _received(self, server: SMTP, session: Session, envelope: Envelope) -> Received:
        raw = envelope.original_content or b""
        assert server.transport is not None
        return Received(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            raw=raw,
            message=message_from_bytes(raw, _class=EmailMessage, policy=policy.default),
            arrived=time.monotonic(),
            tls=server.transport.get_extra_info("ssl_object") is not None,
            username=session.auth_data if isinstance(session.auth_data, str) else None,
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        username, password = auth_data.login.decode(), auth_data.password.decode()
        accepted = (username, password) == self.credentials
        with self._changed:
            self._logins.append(Login(mechanism=mechanism, username=username, password=password, accepted=accepted))
        return AuthResult(success=accepted, handled=False, auth_data=username if accepted else None)


def _arrival(envelope: Envelope) -> Arrival:
    raw = envelope.original_content or b""
    headers_end = raw.find(b"\r\n\r\n")
    found = KIND_HEADER.search(raw, 0, headers_end if headers_end >= 0 else len(raw))
    return Arrival(
        rcpt_tos=tuple(envelope.rcpt_tos),
        kind=found.group(1).decode() if found else "",
        arrived=time.monotonic(),
    )
