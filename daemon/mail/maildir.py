"""A local Maildir as an intake source, for a daemon running on the mail host itself.

Maildir has no UIDs, so closeloop keeps its own in ``closeloop-uidlist`` in the Maildir's root, the way Dovecot
keeps ``dovecot-uidlist``. Its first line holds a random 32-bit UIDVALIDITY; every further line is
``UID BASE``, where BASE is the unique part of a file name, before the ``:2,`` flag suffix, so a mail client that
renames a file to change its flags (or moves it from ``new/`` to ``cur/``) keeps its UID. The file is only
ever appended to and fsync'd after each append; deleting it makes a new UIDVALIDITY, which the service treats as
a resync (known messages are matched by fingerprint and not recorded twice). The name has no leading dot
because in a Maildir++ root, dot-names are folders.

New messages get UIDs in delivery order: modification time, then name. Files in ``new/`` and ``cur/`` both
count (a mail client may have moved a message to ``cur/`` before closeloop saw it); dot-files and anything that
is not a regular file are skipped, as the Maildir specification asks of readers.

The customer's mail is never deleted, moved, renamed or flagged: :meth:`MaildirSource.mark_processed` leaves
the message where it is. What closeloop has processed is the mailbox's high-water mark in the database, which
moves in the same transaction as the rows it covers; the only thing on disk is the UID list. Moving a message
from ``new/`` to ``cur/`` would keep it unread, but mail clients would stop showing it as new and mail notifiers
watching ``new/`` would miss it, so closeloop does not.

Its errors (a missing Maildir, an unreadable or corrupt UID list) are raised as
:class:`~daemon.mail.imap.MailboxError`, like the IMAP source's, so the daemon retries them the same way.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from daemon.mail.imap import Fetched, MailboxError

log = logging.getLogger(__name__)

UIDLIST = "closeloop-uidlist"
HEADER = b"closeloop-uidlist v1 uidvalidity="
SUBDIRS = ("new", "cur")
POLL_SECONDS = 1.0
# Directory mtimes this close to the moment they were read may hide a later change in the same clock tick
# (coarse timestamps; FAT has 2 s), so such a snapshot is read once more before it is trusted.
SETTLE_SECONDS = 2.1


@dataclass(frozen=True, kw_only=True)
class _Entry:
    base: str
    path: Path
    delivered: float


class MaildirSource:
    """One Maildir, read as a folder of an inbox: stable UIDs, raw bytes, nothing moved or deleted."""

    def __init__(self, inbox: str, path: Path, folder_name: str = "INBOX") -> None:
        self.inbox, self.path, self.folder = inbox, Path(path), folder_name
        self.uidvalidity = 0
        self._uids: dict[str, int] = {}
        self._next_uid = 1
        self._read_offset = 0
        self._identity: tuple[int, int] | None = None
        self._present: dict[str, Path] = {}
        self._snapshot: tuple[int, ...] = ()
        self._snapshot_settled = True

    @property
    def uidlist(self) -> Path:
        return self.path / UIDLIST

    # connection ------------------------------------------------------------------------------------------

    def open(self) -> int:
        """Check the Maildir and load (or create) its UID list; returns its UIDVALIDITY.

        :raises MailboxError: when it is not a Maildir or the UID list cannot be read or written.
        """
        missing = [sub for sub in SUBDIRS if not (self.path / sub).is_dir()]
        if missing:
            raise MailboxError(self.inbox, f"{self.path} is not a Maildir: it has no {' or '.join(missing)}/ folder")
        self._uids, self._next_uid, self._read_offset, self._identity = {}, 1, 0, None
        with self._locked() as fd:
            self._catch_up(fd)
        return self.uidvalidity

    def close(self) -> None:
        """Nothing stays open between calls; here for symmetry with the IMAP source."""

    @property
    def connected(self) -> bool:
        return self.uidvalidity != 0

    # reading ---------------------------------------------------------------------------------------------

    def uids_after(self, last_uid: int) -> list[int]:
        """UIDs above ``last_uid`` of the messages now present, ascending; new messages get theirs first.

        :raises MailboxError: when the UID list was removed or replaced since :meth:`open` (reopen to resync).
        """
        entries = self._scan()
        with self._locked() as fd:
            self._catch_up(fd)
            fresh = sorted((e for e in entries if e.base not in self._uids), key=lambda e: (e.delivered, e.base))
            if fresh:
                self._append(fd, [e.base for e in fresh])
        return sorted(uid for base in self._present if (uid := self._uids[base]) > last_uid)

    def fetch(self, uids: Sequence[int]) -> list[Fetched]:
        """The raw bytes of each message, whatever they are; messages gone meanwhile are left out."""
        bases = {uid: base for base, uid in self._uids.items()}
        fetched = []
        for uid in uids:
            base = bases.get(uid)
            raw = None if base is None else self._read(base)
            if raw is not None:
                fetched.append(Fetched(uid=uid, raw=raw))
        return fetched

    def mark_processed(self, uids: Sequence[int]) -> None:
        """Leave the messages exactly where they are, unread (see the module's docstring for why)."""

    # waiting ---------------------------------------------------------------------------------------------

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Wait up to ``seconds`` for new mail, checking ``new/`` and ``cur/`` once a second.

        Returns True when either folder changed since the last :meth:`uids_after` (a delivery, a client moving
        or renaming a message), or when that scan was too close to a change to be trusted.
        """
        deadline = time.monotonic() + seconds
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if stop.wait(min(POLL_SECONDS, remaining)):
                return False
            if not self._snapshot_settled or self._mtimes() != self._snapshot:
                return True
        return False

    # the folders -----------------------------------------------------------------------------------------

    def _mtimes(self) -> tuple[int, ...]:
        try:
            return tuple((self.path / sub).stat().st_mtime_ns for sub in SUBDIRS)
        except OSError as exc:
            raise MailboxError(self.inbox, f"cannot read {self.path}: {exc.strerror}") from exc

    def _scan(self) -> list[_Entry]:
        """Every message in ``new/`` and ``cur/``; the folders' mtimes are taken first, so nothing is missed."""
        started = time.time()
        self._snapshot = self._mtimes()
        self._snapshot_settled = all(mtime / 1e9 < started - SETTLE_SECONDS for mtime in self._snapshot)
        entries: dict[str, _Entry] = {}
        for sub in SUBDIRS:
            for entry in self._entries(self.path / sub):
                entries.setdefault(entry.base, entry)
        self._present = {base: entry.path for base, entry in entries.items()}
        return list(entries.values())

    def _entries(self, folder: Path) -> Iterator[_Entry]:
        try:
            listing = os.scandir(folder)
        except OSError as exc:
            raise MailboxError(self.inbox, f"cannot list {folder}: {exc.strerror}") from exc
        with listing:
            for item in listing:
                base = item.name.split(":", 1)[0]
                if item.name.startswith(".") or not _storable(base):
                    continue
                try:
                    if not item.is_file(follow_symlinks=False):
                        continue
                    delivered = item.stat(follow_symlinks=False).st_mtime
                except FileNotFoundError:
                    continue  # renamed or removed by a mail client while we listed
                yield _Entry(base=base, path=Path(item.path), delivered=delivered)

    def _read(self, base: str) -> bytes | None:
        """The message's bytes; when a client renamed it meanwhile, look it up once more."""
        for attempt in range(2):
            path = self._present.get(base)
            if path is not None:
                try:
                    return path.read_bytes()
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise MailboxError(self.inbox, f"cannot read {path}: {exc.strerror}") from exc
            if attempt == 0:
                self._scan()
        return None

    # the UID list ----------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[int]:
        """The UID list, opened for appending and locked against another closeloop on the same Maildir."""
        created = self._create_if_missing()
        try:
            fd = os.open(self.uidlist, os.O_RDWR | os.O_APPEND)
        except OSError as exc:
            raise MailboxError(self.inbox, f"cannot open {self.uidlist}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if created and self._identity is not None:
                raise MailboxError(self.inbox, f"{self.uidlist} was removed; reopening with a new UIDVALIDITY")
            yield fd
        finally:
            os.close(fd)

    def _create_if_missing(self) -> bool:
        """Write a new UID list with a fresh UIDVALIDITY, atomically (a temporary file renamed into place)."""
        if self.uidlist.exists():
            return False
        uidvalidity = secrets.randbits(32) or 1
        temporary = self.path / f"{UIDLIST}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, b"%s%d\n" % (HEADER, uidvalidity))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.link(temporary, self.uidlist)  # fails if another process created it first: theirs wins
        except FileExistsError:
            pass
        except OSError as exc:
            raise MailboxError(self.inbox, f"cannot create {self.uidlist}: {exc.strerror}") from exc
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()
        _fsync_folder(self.path)
        log.info("new Maildir UID list", extra={"inbox": self.inbox, "path": str(self.uidlist)})
        return True

    def _catch_up(self, fd: int) -> None:
        """Read what was appended since the last read (by us or another process)."""
        status = os.fstat(fd)
        identity = (status.st_dev, status.st_ino)
        if self._identity is not None and identity != self._identity:
            raise MailboxError(self.inbox, f"{self.uidlist} was replaced; reopening with its UIDVALIDITY")
        data = os.pread(fd, status.st_size - self._read_offset, self._read_offset)
        complete = data[: data.rfind(b"\n") + 1]
        if len(complete) < len(data):
            os.ftruncate(fd, self._read_offset + len(complete))  # a torn append: its UIDs were never handed out
            log.warning("dropped a torn line at the end of the UID list", extra={"path": str(self.uidlist)})
        for number, line in enumerate(complete.splitlines()):
            self._parse(line, first=self._identity is None and number == 0)
        self._read_offset += len(complete)
        self._identity = identity

    def _parse(self, line: bytes, *, first: bool) -> None:
        if first:
            value = line.removeprefix(HEADER)
            if value == line or not value.isdigit() or not 0 < int(value) < 2**32:
                raise self._corrupt(f"its first line is not '{HEADER.decode()}N'")
            self.uidvalidity = int(value)
            return
        uid, _, name = line.partition(b" ")
        base = os.fsdecode(name)
        if not uid.isdigit() or not base or int(uid) < self._next_uid or base in self._uids:
            raise self._corrupt(f"bad line {line[:80]!r}")
        self._uids[base] = int(uid)
        self._next_uid = int(uid) + 1

    def _corrupt(self, problem: str) -> MailboxError:
        return MailboxError(
            self.inbox,
            f"{self.uidlist} is damaged ({problem}); remove it and closeloop re-reads the Maildir without "
            "recording any message twice",
        )

    def _append(self, fd: int, bases: list[str]) -> None:
        first = self._next_uid
        lines = b"".join(b"%d %s\n" % (first + n, os.fsencode(base)) for n, base in enumerate(bases))
        try:
            written = os.write(fd, lines)
            if written != len(lines):
                raise OSError(errno.ENOSPC, "short write")
            os.fsync(fd)
        except OSError as exc:
            raise MailboxError(self.inbox, f"cannot write {self.uidlist}: {exc.strerror}") from exc
        for n, base in enumerate(bases):
            self._uids[base] = first + n
        self._next_uid = first + len(bases)
        self._read_offset += len(lines)


def _storable(base: str) -> bool:
    """A name the UID list can hold on one line (Maildir names never have line breaks)."""
    return bool(base) and "\n" not in base and "\r" not in base


def _fsync_folder(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
