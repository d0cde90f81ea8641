"""The IMAP side of an inbox, through imapclient: UIDs only, ``BODY.PEEK[]``, never a deletion.

The only imapclient importer. Its errors (and socket errors) are translated into :class:`MailboxError`.
Messages are marked processed with a keyword after the database commit and, when configured, moved to another
folder (MOVE where the server has it; otherwise COPY, then ``\\Deleted`` + ``UID EXPUNGE`` of exactly those
UIDs, which needs UIDPLUS; without it the messages are only flagged).
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError

from daemon.config import Imap
from daemon.mail.smtp import tls_context

log = logging.getLogger(__name__)
T = TypeVar("T")


class MailboxError(Exception):
    """The mailbox could not be read (connection, login, protocol); the inbox pass is retried later."""

    def __init__(self, inbox: str, reason: str) -> None:
        self.inbox, self.reason = inbox, reason
        super().__init__(f"inbox {inbox}: {reason}")


@dataclass(frozen=True, kw_only=True)
class Fetched:
    uid: int
    raw: bytes


class ImapMailbox:
    """One connection to one folder of one inbox."""

    def __init__(self, inbox: str, settings: Imap) -> None:
        self.inbox, self.settings = inbox, settings
        self.folder = settings.folder
        self.uidvalidity = 0
        self._client: IMAPClient | None = None
        self._capabilities: frozenset[str] = frozenset()
        self._keywords_allowed = True

    # connection ------------------------------------------------------------------------------------------

    def open(self) -> int:
        """Connect, log in and select the folder; returns its UIDVALIDITY.

        :raises MailboxError: when any step fails.
        """
        self.close()
        s = self.settings
        try:
            context = tls_context(s.ca_file)
            client = IMAPClient(
                s.host, port=s.port, ssl=s.security == "tls", ssl_context=context, timeout=s.timeout_seconds
            )
            self._client = client
            if s.security == "starttls":
                if b"STARTTLS" not in client.capabilities():
                    raise MailboxError(self.inbox, "the server does not offer STARTTLS; refusing to log in in clear")
                client.starttls(ssl_context=context)
            client.login(s.username, s.password.get_secret_value())
            self._capabilities = frozenset(c.decode().upper() for c in client.capabilities())
            selected = client.select_folder(self.folder)
        except MailboxError:
            self.close()
            raise
        except (TimeoutError, IMAPClientError, OSError, ssl.SSLError) as exc:
            self.close()
            raise MailboxError(self.inbox, _describe(exc)) from exc
        self.uidvalidity = int(selected[b"UIDVALIDITY"])
        self._announced()  # SELECT counts what is there; the first search reads it
        permanent = selected.get(b"PERMANENTFLAGS", ())
        self._keywords_allowed = rb"\*" in permanent or s.processed_keyword.encode() in permanent
        return self.uidvalidity

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except (IMAPClientError, OSError):
            with contextlib.suppress(IMAPClientError, OSError):
                client.shutdown()

    @property
    def connected(self) -> bool:
        return self._client is not None

    def has(self, capability: str) -> bool:
        return capability.upper() in self._capabilities

    # reading ---------------------------------------------------------------------------------------------

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above ``last_uid``, ascending (``n:*`` also answers the highest UID, so filter)."""
        self._announced()  # this search answers every announcement so far
        found = self._call(lambda c: c.search(["UID", f"{last_uid + 1}:*"]))
        return sorted(uid for uid in found if uid > last_uid)

    def fetch(self, uids: Sequence[int]) -> list[Fetched]:
        """The raw messages, fetched without setting ``\\Seen``; UIDs that vanished meanwhile are left out."""
        if not uids:
            return []
        answer = self._call(lambda c: c.fetch(list(uids), ["BODY.PEEK[]"]))
        return [Fetched(uid=uid, raw=answer[uid][b"BODY[]"]) for uid in uids if b"BODY[]" in answer.get(uid, {})]

    # marking ---------------------------------------------------------------------------------------------

    def mark_processed(self, uids: Sequence[int]) -> None:
        """Flag recorded messages with the processed keyword, and move them when configured."""
        if not uids:
            return
        if self._keywords_allowed:
            self._call(lambda c: c.add_flags(list(uids), [self.settings.processed_keyword]))
        if self.settings.move_to:
            self._move(list(uids), self.settings.move_to)

    def _move(self, uids: list[int], folder: str) -> None:
        if self.has("MOVE"):
            self._call(lambda c: c.move(uids, folder))
        elif self.has("UIDPLUS"):
            self._call(lambda c: c.copy(uids, folder))
            self._call(lambda c: c.add_flags(uids, [rb"\Deleted"]))
            self._call(lambda c: c.uid_expunge(uids))
        else:
            log.warning("cannot move without MOVE or UIDPLUS; messages stay in place", extra={"inbox": self.inbox})

    # waiting ---------------------------------------------------------------------------------------------

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Wait up to ``seconds`` for new mail: IMAP IDLE when the server has it, else sleep until the next poll.

        Returns True when the server announced something. IDLE is left in at most ``idle_renew_minutes``.
        """
        if not self.has("IDLE"):
            stop.wait(min(seconds, self.settings.poll_seconds))
            return False
        client = self._require()
        if self._announced():
            return True
        deadline = min(seconds, self.settings.idle_renew_minutes * 60)
        try:
            client.idle()
            news = False
            waited = 0.0
            while waited < deadline and not stop.is_set() and not news:
                step = min(1.0, deadline - waited)
                news = any(_is_news(response) for response in client.idle_check(timeout=step))
                waited += step
            client.idle_done()
        except (TimeoutError, IMAPClientError, OSError) as exc:
            self.close()
            raise MailboxError(self.inbox, _describe(exc)) from exc
        return news

    def _announced(self) -> bool:
        """Whether the server announced new mail (EXISTS, RECENT) in an answer since the last time we asked.

        A server tells of new mail in the answer to whatever command comes next — a FETCH or the STORE that
        marks a batch — and imaplib keeps those untagged answers aside. IDLE does not repeat them: without this
        check, mail that arrived during a pass would wait for the next IDLE renewal (minutes).
        """
        pending = self._require()._imap.untagged_responses
        exists, recent = pending.pop("EXISTS", None), pending.pop("RECENT", None)
        return bool(exists or recent)

    def noop(self) -> None:
        self._call(lambda c: c.noop())

    # plumbing --------------------------------------------------------------------------------------------

    def _require(self) -> IMAPClient:
        if self._client is None:
            raise MailboxError(self.inbox, "not connected")
        return self._client

    def _call(self, action: Callable[[IMAPClient], T]) -> T:
        client = self._require()
        try:
            return action(client)
        except (TimeoutError, IMAPClientError, OSError) as exc:
            self.close()
            raise MailboxError(self.inbox, _describe(exc)) from exc


def _is_news(response: object) -> bool:
    return isinstance(response, tuple) and len(response) >= 2 and response[1] in (b"EXISTS", b"RECENT")


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}" if type(exc).__name__ not in text else text
