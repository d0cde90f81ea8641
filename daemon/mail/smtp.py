"""Sending over SMTP with smtplib: one connection serves many messages; TLS is always verified.

smtplib's errors are translated here into :class:`TransientSendError` (4xx, dropped connections, timeouts,
a server that is down: try again later) and :class:`PermanentSendError` (5xx for this message: do not retry).
A server that does not offer STARTTLS when the configuration asks for it is refused before any credentials
are sent.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from daemon.config import Smtp

log = logging.getLogger(__name__)


class SendError(Exception):
    def __init__(self, reason: str, code: int | None = None) -> None:
        self.reason, self.code = reason, code
        super().__init__(f"{code} {reason}" if code else reason)


class TransientSendError(SendError):
    """Try again later: the server deferred, dropped the connection or could not be reached."""


class PermanentSendError(SendError):
    """The server refused this message for good (5xx)."""


def tls_context(ca_file: Path | None) -> ssl.SSLContext:
    """A context that verifies the certificate chain and the host name (the system CAs, or ``ca_file``)."""
    return ssl.create_default_context(cafile=str(ca_file) if ca_file else None)


class SmtpSender:
    """Sends messages through the configured SMTP server, reusing one connection until closed."""

    def __init__(self, settings: Smtp) -> None:
        self.settings = settings
        self._connection: smtplib.SMTP | None = None

    def __enter__(self) -> SmtpSender:
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()

    def send(self, message: bytes, sender: str, recipients: Sequence[str]) -> None:
        """Hand one message to the server; returns after its 250.

        A reused connection the server has meanwhile closed gets one fresh attempt; a fresh connection that
        drops is a transient failure.

        :raises TransientSendError: try again later.
        :raises PermanentSendError: the server will not take this message.
        """
        reused = self._connection is not None
        try:
            self._send_once(message, sender, recipients)
        except smtplib.SMTPServerDisconnected as exc:
            self.close()
            if not reused:
                raise TransientSendError(f"connection dropped: {exc}") from exc
            self.send(message, sender, recipients)

    def _send_once(self, message: bytes, sender: str, recipients: Sequence[str]) -> None:
        try:
            refused = self._connect().sendmail(sender, list(recipients), message)
        except smtplib.SMTPServerDisconnected:
            raise
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            raise _by_code(code, text) from exc
        except smtplib.SMTPResponseException as exc:
            self._reset()
            raise _by_code(exc.smtp_code, exc.smtp_error) from exc
        except (OSError, smtplib.SMTPException) as exc:
            self.close()
            raise TransientSendError(f"{type(exc).__name__}: {exc}") from exc
        if refused:
            code, text = next(iter(refused.values()))
            raise _by_code(code, text)

    def check(self) -> None:
        """Connect and log in, then leave: the configuration works.

        :raises TransientSendError: naming what failed.
        """
        self._connect()
        self.close()

    def _connect(self) -> smtplib.SMTP:
        if self._connection is not None:
            return self._connection
        s = self.settings
        context = tls_context(s.ca_file) if s.security != "none" else None
        connection: smtplib.SMTP | None = None
        try:
            if s.security == "tls":
                connection = smtplib.SMTP_SSL(s.host, s.port, timeout=s.timeout_seconds, context=context)
            else:
                connection = smtplib.SMTP(s.host, s.port, timeout=s.timeout_seconds)
            connection.ehlo()
            if s.security == "starttls":
                if not connection.has_extn("starttls"):
                    connection.close()
                    raise TransientSendError(f"{s.host}:{s.port} does not offer STARTTLS; refusing to go on in clear")
                connection.starttls(context=context)
                connection.ehlo()
            if s.username and s.password:
                connection.login(s.username, s.password.get_secret_value())
        except smtplib.SMTPAuthenticationError as exc:
            _abandon(connection)
            raise TransientSendError(f"SMTP login refused for {s.username} ({exc.smtp_code})") from exc
        except (TimeoutError, OSError, smtplib.SMTPException) as exc:
            _abandon(connection)
            raise TransientSendError(f"cannot reach {s.host}:{s.port}: {exc}") from exc
        self._connection = connection
        return connection

    def _reset(self) -> None:
        try:
            if self._connection is not None:
                self._connection.rset()
        except (OSError, smtplib.SMTPException):
            self.close()

    def close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is None:
            return
        try:
            connection.quit()
        except (OSError, smtplib.SMTPException):
            connection.close()


def _abandon(connection: smtplib.SMTP | None) -> None:
    """Close a connection that failed on the way (greeting, STARTTLS, certificate, login): no socket is left open."""
    if connection is not None:
        connection.close()


def _by_code(code: int, text: bytes | str) -> SendError:
    reason = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return PermanentSendError(reason, code) if 500 <= code < 600 else TransientSendError(reason, code)
