"""The repository: every query closeloop runs, behind names from the domain.

``Store`` owns the engine; ``Store.transaction()`` yields a :class:`Transaction` whose methods read and write
domain records. SQLite runs in WAL mode and takes its write lock at ``BEGIN IMMEDIATE``, so two writers
serialise instead of failing half-way; PostgreSQL claims due touches with ``FOR UPDATE SKIP LOCKED``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Connection,
    Engine,
    Row,
    bindparam,
    create_engine,
    delete,
    event,
    func,
    insert,
    literal_column,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from daemon.domain.model import (
    Classification,
    Consent,
    Customer,
    Loop,
    LoopState,
    Touch,
    TouchKind,
    TouchState,
)
from daemon.domain.reference import loop_id_for, ref_for
from daemon.domain.threading import LoopSummary
from daemon.store.tables import customers, loops, mailboxes, messages, touches
from daemon.store.tables import intake_attempts as attempts

log = logging.getLogger(__name__)

MAX_MESSAGE_ID = 900


class LoopNotFound(LookupError):
    def __init__(self, ref: str) -> None:
        self.ref = ref
        super().__init__(f"no loop {ref}")


class StoreUnavailable(Exception):
    """The database could not be reached or gave up (connection, lock timeout): nothing to do with the data."""


class Clash(Exception):
    """A unique key fired: another writer (a second daemon, a replay) wrote the same thing first."""


class DuplicateDelivery(Clash):
    """The message is already recorded (same mailbox position or fingerprint)."""


@dataclass(frozen=True, kw_only=True)
class NewTouch:
    loop_id: int
    kind: TouchKind
    due_at: datetime
    recipient: str
    message_id: str
    sequence: int = 0
    note: str = ""
    answers: str | None = None


@dataclass(frozen=True, kw_only=True)
class RecordedMessage:
    """A message row to write: inbound (with its IMAP position) or outbound (with its touch)."""

    direction: str
    inbox: str
    classification: str
    received_at: datetime
    message_id: str | None = None
    fingerprint: str | None = None
    folder: str | None = None
    uidvalidity: int | None = None
    uid: int | None = None
    in_reply_to: Sequence[str] = ()
    references: Sequence[str] = ()
    from_email: str = ""
    from_name: str = ""
    recipients: Sequence[str] = ()
    subject: str = ""
    sent_at: datetime | None = None
    text_body: str = ""
    reason: str = ""
    loop_id: int | None = None
    touch_id: int | None = None
    size: int = 0
    raw: bytes | None = None


@dataclass(frozen=True, kw_only=True)
class MessageView:
    id: int
    direction: str
    message_id: str | None
    from_email: str
    from_name: str
    subject: str
    received_at: datetime
    sent_at: datetime | None
    text_body: str
    classification: str
    reason: str
    touch_id: int | None


@dataclass(frozen=True, kw_only=True)
class DueTouch:
    touch: Touch
    loop: Loop
    customer: Customer


@dataclass(frozen=True, kw_only=True)
class Sent:
    subject: str
    text: str
    html: str | None
    template: str
    template_version: str


class Store:
    """The database: engine, migrations and transactions."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.engine = _engine(url, echo=echo)
        self._turns = WriteTurns()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic ``upgrade head``)."""
        from daemon.store.migrate import upgrade

        with self.engine.begin() as connection:
            upgrade(connection)

    @contextmanager
    def transaction(self, *, wait_for_disk: bool = True) -> Iterator[Transaction]:
        """One write transaction; committed when the block ends, rolled back when it raises.

        With ``wait_for_disk=False`` PostgreSQL confirms the commit before its WAL is on disk
        (``synchronous_commit = off``, one fsync less per transaction): a crash of the database server — not of
        closeloop — may lose the last fraction of a second of such commits, never half of one. SQLite in WAL mode
        with ``synchronous=NORMAL`` already commits that way.
        """
        with self._turns.turn() if self.is_sqlite else nullcontext(), self.engine.begin() as connection:
            if not wait_for_disk and not self.is_sqlite:
                connection.exec_driver_sql("SET LOCAL synchronous_commit = off")
            yield Transaction(connection)

    @contextmanager
    def write_turn(self) -> Iterator[None]:
        """Keep this thread's turn at SQLite's write lock for the transactions the block runs, one after the other;
        each still commits on its own. (PostgreSQL has row locks and needs no turns.)"""
        with self._turns.keep() if self.is_sqlite else nullcontext():
            yield

    @contextmanager
    def reading(self) -> Iterator[Transaction]:
        """A read-only transaction that does not wait for SQLite's write lock."""
        with self.engine.connect() as connection:
            connection = connection.execution_options(closeloop_read=True)
            with connection.begin():
                yield Transaction(connection)

    def healthy(self) -> str | None:
        """``None`` when the database answers, else the reason."""
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except OperationalError as exc:
            return f"database unreachable: {exc.orig or exc}"
        return None

    def close(self) -> None:
        self.engine.dispose()


class WriteTurns:
    """Turns at SQLite's one write lock for the threads of this process, in the order they asked.

    Left to SQLite, a waiting writer sleeps and retries (up to 100 ms between tries) and loses to a thread that
    commits and begins again at once: intake waited for dispatch to run out of due touches before it could
    record new mail. With turns, the inbox watcher and the dispatcher alternate, and nobody sleeps on the lock.
    A thread may :meth:`keep` its turn for several transactions in a row (the dispatcher does, for a fraction of a
    second, since its transactions are one email each and intake's a whole batch of messages). Other processes
    (a staff command) still meet SQLite's own lock.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._issued = 0  # tickets handed out
        self._serving = 0  # the ticket whose turn it is
        self._gone: set[int] = set()  # tickets whose threads stopped waiting
        self._holder: int | None = None
        self._kept = False  # the holder keeps the turn across transactions
        self._inside = False  # a transaction runs in a kept turn

    @contextmanager
    def turn(self) -> Iterator[None]:
        """Wait for this thread's turn and hold it for the block (one transaction); inside :meth:`keep` on the same
        thread, the turn is already there.

        :raises RuntimeError: when this thread is inside a transaction already (it would wait for itself forever).
        """
        me = threading.get_ident()
        with self._changed:
            mine = self._holder == me
            if mine and (not self._kept or self._inside):
                raise RuntimeError("a write transaction inside another one on the same thread")
        if mine:
            self._inside = True
            try:
                yield
            finally:
                self._inside = False
            return
        with self._taken(me):
            yield

    @contextmanager
    def keep(self) -> Iterator[None]:
        """Wait for this thread's turn and keep it for the transactions the block runs, one after the other."""
        with self._taken(threading.get_ident()):
            self._kept = True
            try:
                yield
            finally:
                self._kept = False

    @contextmanager
    def _taken(self, me: int) -> Iterator[None]:
        with self._changed:
            if self._holder == me:
                raise RuntimeError("a write turn inside another one on the same thread")
            ticket, self._issued = self._issued, self._issued + 1
            try:
                self._changed.wait_for(lambda: self._serving == ticket)
            except BaseException:
                self._gone.add(ticket)
                self._next()
                raise
            self._holder = me
        try:
            yield
        finally:
            with self._changed:
                self._holder = None
                self._serving += 1
                self._next()

    def _next(self) -> None:
        while self._serving in self._gone:
            self._gone.discard(self._serving)
            self._serving += 1
        self._changed.notify_all()


def _engine(url: str, *, echo: bool) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, echo=echo, pool_pre_ping=True)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    # Pooled: a new connection costs its PRAGMAs, and closing the last one checkpoints the WAL.
    engine = create_engine(url, echo=echo, connect_args={"timeout": 60})

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's begin event issues BEGIN itself
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "busy_timeout=60000"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        read = connection.get_execution_options().get("closeloop_read", False)
        connection.exec_driver_sql("BEGIN" if read else "BEGIN IMMEDIATE")

    return engine


class Transaction:
    """Reads and writes inside one database transaction.

    The frequent writes pass their values as execution parameters rather than with ``.values(...)``: their
    statements then compile once and come from SQLAlchemy's cache (a write costs a third as much).
    """

    def __init__(self, connection: Connection) -> None:
        self.db = connection

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A nested transaction: a failure inside rolls back only what the block wrote.

        :raises Clash: when a unique key fired inside the block.
        """
        try:
            with self.db.begin_nested():
                yield
        except IntegrityError as exc:
            raise Clash(str(exc.orig)) from exc
        except (OperationalError, InterfaceError) as exc:
            raise StoreUnavailable(str(exc.orig or exc)) from exc

    # intake attempts ---------------------------------------------------------------------------------------

    def attempts(self, inbox: str, folder: str, uidvalidity: int, uids: Sequence[int]) -> dict[int, int]:
        """Intake attempts already counted for these UIDs (absent: never tried, or recorded since)."""
        query = select(attempts.c.uid, attempts.c.attempts).where(
            *self._attempt_key(inbox, folder, uidvalidity), attempts.c.uid.in_(list(uids))
        )
        return dict(self.db.execute(query).all())

    def count_attempt(
        self, inbox: str, folder: str, uidvalidity: int, uids: Sequence[int], now: datetime
    ) -> dict[int, int]:
        """Count one more intake attempt for each UID; returns the attempts, this one included.

        Committed before the messages are processed, so a message that kills the process every time is
        recognised after a bounded number of tries and quarantined instead of blocking the inbox.
        """
        known = self.attempts(inbox, folder, uidvalidity, uids)
        if known:
            self.db.execute(
                update(attempts)
                .where(*self._attempt_key(inbox, folder, uidvalidity), attempts.c.uid.in_(list(known)))
                .values(attempts=attempts.c.attempts + 1, last_at=now)
            )
        key = {"inbox": inbox, "folder": folder, "uidvalidity": uidvalidity, "attempts": 1, "last_at": now}
        new = [{**key, "uid": uid} for uid in uids if uid not in known]
        if new:
            self.db.execute(insert(attempts), new)
        return {uid: known.get(uid, 0) + 1 for uid in uids}

    @staticmethod
    def _attempt_key(inbox: str, folder: str, uidvalidity: int) -> tuple[Any, ...]:
        return (attempts.c.inbox == inbox, attempts.c.folder == folder, attempts.c.uidvalidity == uidvalidity)

    def forget_attempts(self, inbox: str, folder: str, uidvalidity: int, uids: Sequence[int]) -> None:
        self.db.execute(
            delete(attempts).where(*self._attempt_key(inbox, folder, uidvalidity), attempts.c.uid.in_(list(uids)))
        )

    # mailboxes --------------------------------------------------------------------------------------------

    def mailbox_position(self, inbox: str, folder: str) -> tuple[int, int] | None:
        """``(UIDVALIDITY, last UID recorded)`` of a mailbox, or ``None`` before its first pass."""
        row = self.db.execute(
            select(mailboxes.c.uidvalidity, mailboxes.c.last_uid).where(
                mailboxes.c.inbox == inbox, mailboxes.c.folder == folder
            )
        ).first()
        return None if row is None else (row.uidvalidity, row.last_uid)

    def set_mailbox_position(self, inbox: str, folder: str, uidvalidity: int, last_uid: int, now: datetime) -> None:
        values = {"uidvalidity": uidvalidity, "last_uid": last_uid, "updated_at": now}
        done = self.db.execute(
            update(mailboxes).where(mailboxes.c.inbox == inbox, mailboxes.c.folder == folder).values(**values)
        )
        if done.rowcount == 0:
            self.db.execute(insert(mailboxes).values(inbox=inbox, folder=folder, **values))

    # messages ---------------------------------------------------------------------------------------------

    def known_uids(self, inbox: str, folder: str, uidvalidity: int, uids: Iterable[int]) -> set[int]:
        wanted = list(uids)
        if not wanted:
            return set()
        query = select(messages.c.uid).where(
            messages.c.inbox == inbox,
            messages.c.folder == folder,
            messages.c.uidvalidity == uidvalidity,
            messages.c.uid.in_(wanted),
        )
        return {uid for (uid,) in self.db.execute(query)}

    def known_fingerprints(self, fingerprints: Iterable[str]) -> set[str]:
        wanted = list(fingerprints)
        if not wanted:
            return set()
        query = select(messages.c.fingerprint).where(messages.c.fingerprint.in_(wanted))
        return {fp for (fp,) in self.db.execute(query)}

    def record_message(self, message: RecordedMessage) -> int:
        """Write one message row.

        :raises DuplicateDelivery: when its IMAP position or fingerprint is already recorded.
        """
        values = {
            **message.__dict__,
            "message_id": _clip_id(message.message_id),
            "in_reply_to": " ".join(_clip_id(m) or "" for m in message.in_reply_to),
            "references": " ".join(_clip_id(m) or "" for m in message.references),
            "recipients": ", ".join(message.recipients),
            "subject": message.subject[:2000],
            "from_name": message.from_name[:200],
            "from_email": message.from_email[:320],
        }
        try:
            return int(self.db.execute(insert(messages).returning(messages.c.id), values).scalar_one())
        except IntegrityError as exc:
            raise DuplicateDelivery(str(exc.orig)) from exc

    def unreported_quarantine(self, limit: int) -> list[QuarantinedMessage]:
        """Quarantined messages the team has not been told about, oldest first."""
        query = (
            select(*_QUARANTINE_VIEW)
            .where(text(_UNREPORTED))  # as the partial index says it, so that the index serves
            .order_by(messages.c.id)
            .limit(limit)
        )
        return [QuarantinedMessage(**row._mapping) for row in self.db.execute(query)]

    def mark_reported(self, message_ids: Sequence[int], now: datetime) -> None:
        self.db.execute(update(messages).where(messages.c.id.in_(message_ids)).values(reported_at=now))

    def messages_of(self, loop_id: int) -> list[MessageView]:
        query = (
            select(*_MESSAGE_VIEW).where(messages.c.loop_id == loop_id).order_by(messages.c.received_at, messages.c.id)
        )
        return [MessageView(**row._mapping) for row in self.db.execute(query)]

    def message(self, message_id: str) -> MessageView | None:
        row = self.db.execute(_MESSAGE_BY_ID, {"message_id": message_id}).first()
        return None if row is None else MessageView(**row._mapping)

    def opening_message(self, loop_id: int) -> MessageView | None:
        query = (
            select(*_MESSAGE_VIEW)
            .where(messages.c.loop_id == loop_id, messages.c.direction == "in")
            .order_by(messages.c.id)
            .limit(1)
        )
        row = self.db.execute(query).first()
        return None if row is None else MessageView(**row._mapping)

    def thread_of(self, loop_id: int, limit: int = 10, *, customer_visible: bool = False) -> list[str]:
        """Message-IDs of a loop's conversation, oldest first: the opening message and the latest ones.

        With ``customer_visible``, only mail the customer has seen (theirs, and ours to them): a mail to the
        customer must not cite a staff notification or a colleague's internal reply.
        """
        query = _CUSTOMER_THREAD if customer_visible else _THREAD
        rows = {row.id: row.message_id for row in self.db.execute(query, {"loop_id": loop_id, "latest": limit - 1})}
        return [rows[key] for key in sorted(rows)]

    # threading --------------------------------------------------------------------------------------------

    def loops_by_message_ids(self, message_ids: Iterable[str]) -> dict[str, LoopSummary]:
        """Loops that recorded any of these Message-IDs, in a message or as an outgoing touch."""
        wanted = [m for m in (_clip_id(m) for m in message_ids) if m]
        if not wanted:
            return {}
        columns = (loops.c.id, loops.c.customer_id, loops.c.state, customers.c.email)
        joined = loops.join(customers, customers.c.id == loops.c.customer_id)
        found: dict[str, LoopSummary] = {}
        for source in (messages, touches):
            query = (
                select(source.c.message_id, *columns)
                .select_from(source.join(joined, loops.c.id == source.c.loop_id))
                .where(source.c.message_id.in_(wanted))
            )
            for row in self.db.execute(query):
                found.setdefault(row.message_id, _summary(row))
        return found

    def loops_by_refs(self, refs: Iterable[str]) -> dict[str, LoopSummary]:
        ids = {loop_id: ref for ref in refs if (loop_id := loop_id_for(ref)) is not None}
        if not ids:
            return {}
        query = (
            select(loops.c.id, loops.c.customer_id, loops.c.state, customers.c.email)
            .select_from(loops.join(customers, customers.c.id == loops.c.customer_id))
            .where(loops.c.id.in_(list(ids)))
        )
        return {ids[row.id]: _summary(row) for row in self.db.execute(query)}

    # customers --------------------------------------------------------------------------------------------

    def customer_by_email(self, email: str) -> Customer | None:
        row = self.db.execute(select(customers).where(customers.c.email == email)).first()
        return None if row is None else _customer(row)

    def customer(self, customer_id: int) -> Customer:
        return _customer(self.db.execute(_CUSTOMER, {"customer_id": customer_id}).one())

    def add_customer(self, customer: Customer, now: datetime) -> Customer:
        values = {**_customer_values(customer), "created_at": now}
        new_id = self.db.execute(insert(customers).returning(customers.c.id), values)
        return Customer(**{**customer.__dict__, "id": int(new_id.scalar_one())})

    def save_customer(self, customer: Customer) -> None:
        self.db.execute(update(customers).where(customers.c.id == customer.id).values(**_customer_values(customer)))

    # loops ------------------------------------------------------------------------------------------------

    def add_loop(self, loop: Loop) -> Loop:
        new_id = int(self.db.execute(insert(loops).returning(loops.c.id), _loop_values(loop)).scalar_one())
        return Loop(**{**loop.__dict__, "id": new_id, "ref": ref_for(new_id)})

    def save_loop(self, loop: Loop) -> None:
        self.db.execute(_SAVE_LOOP, {**_loop_values(loop), "loop_id": loop.id})

    def loop(self, loop_id: int) -> Loop:
        row = self.db.execute(select(loops).where(loops.c.id == loop_id)).first()
        if row is None:
            raise LoopNotFound(ref_for(loop_id) if loop_id > 0 else str(loop_id))
        return _loop(row)

    def loop_by_ref(self, ref: str, *, lock: bool = False) -> Loop:
        """:raises LoopNotFound: when no loop has that reference."""
        loop_id = loop_id_for(ref)
        if loop_id is None:
            raise LoopNotFound(ref)
        query = select(loops).where(loops.c.id == loop_id)
        row = self.db.execute(query.with_for_update() if lock else query).first()
        if row is None:
            raise LoopNotFound(ref)
        return _loop(row)

    def loops(self, *, state: LoopState | None = None, customer_id: int | None = None) -> list[Loop]:
        query = select(loops).order_by(loops.c.id)
        if state is not None:
            query = query.where(loops.c.state == state)
        if customer_id is not None:
            query = query.where(loops.c.customer_id == customer_id)
        return [_loop(row) for row in self.db.execute(query)]

    def recent_loops(self, limit: int) -> list[Loop]:
        query = select(loops).order_by(loops.c.id.desc()).limit(limit)
        return [_loop(row) for row in self.db.execute(query)]

    def open_loops_of(self, customer_id: int) -> list[Loop]:
        query = select(loops).where(loops.c.customer_id == customer_id, loops.c.state != LoopState.CLOSED)
        return [_loop(row) for row in self.db.execute(query.order_by(loops.c.id))]

    def earlier_loops(self, customer_id: int, before: int, limit: int = 5) -> list[Loop]:
        found = self.db.execute(_EARLIER_LOOPS, {"customer_id": customer_id, "before": before, "limit": limit})
        return [_loop(row) for row in found]

    def last_owner(self, customer_id: int) -> str | None:
        query = select(loops.c.owner).where(loops.c.customer_id == customer_id).order_by(loops.c.id.desc())
        return self.db.execute(query.limit(1)).scalar()

    def loops_to_close_quietly(self, now: datetime, limit: int = 500) -> list[Loop]:
        query = (
            select(loops)
            .where(loops.c.closes_at.is_not(None), loops.c.closes_at <= now, loops.c.state != LoopState.CLOSED)
            .order_by(loops.c.closes_at)
            .limit(limit)
        )
        return [_loop(row) for row in self.db.execute(query)]

    # touches ----------------------------------------------------------------------------------------------

    def add_touches(self, new: Sequence[NewTouch], now: datetime) -> None:
        if new:
            rows = [{**t.__dict__, "state": TouchState.PLANNED, "created_at": now} for t in new]
            self.db.execute(insert(touches), rows)

    def cancel_touches(self, loop_id: int, kinds: Iterable[TouchKind], reason: str) -> int:
        wanted = [str(kind) for kind in kinds]
        if not wanted:
            return 0
        done = self.db.execute(
            update(touches)
            .where(
                touches.c.loop_id == loop_id,
                touches.c.kind.in_(wanted),
                touches.c.state.in_([TouchState.PLANNED, TouchState.HELD]),
            )
            .values(state=TouchState.CANCELLED, reason=reason)
        )
        return done.rowcount

    def defer_touches(self, loop_id: int, until: datetime) -> None:
        """Move the loop's pending customer touches to ``until`` at the earliest (an out-of-office pause)."""
        customer_kinds = [str(kind) for kind in TouchKind if not kind.to_staff]
        self.db.execute(
            update(touches)
            .where(
                touches.c.loop_id == loop_id,
                touches.c.state == TouchState.PLANNED,
                touches.c.kind.in_(customer_kinds),
                touches.c.due_at < until,
            )
            .values(due_at=until)
        )

    def last_sent_at(self, loop_id: int) -> datetime | None:
        query = select(func.max(touches.c.sent_at)).where(touches.c.loop_id == loop_id)
        return self.db.execute(query).scalar()

    def touch_by_message_id(self, message_id: str) -> Touch | None:
        row = self.db.execute(select(touches).where(touches.c.message_id == _clip_id(message_id))).first()
        return None if row is None else _touch(row)

    def defer(self, touch_id: int, due_at: datetime, reason: str) -> None:
        """Move a touch later without counting an attempt (a cap, a pause)."""
        self.db.execute(update(touches).where(touches.c.id == touch_id).values(due_at=due_at, reason=reason))

    def first_sent_to_since(self, recipient: str, since: datetime) -> datetime | None:
        query = select(func.min(touches.c.sent_at)).where(
            touches.c.recipient == recipient, touches.c.state == TouchState.SENT, touches.c.sent_at > since
        )
        return self.db.execute(query).scalar()

    def held_to_since(self, recipient: str, reason_prefix: str, since: datetime) -> int:
        query = select(func.count()).where(
            touches.c.recipient == recipient,
            touches.c.state == TouchState.HELD,
            touches.c.reason.startswith(reason_prefix),
            touches.c.due_at > since,
        )
        return int(self.db.execute(query).scalar_one())

    def hold_customer_touches(self, customer_id: int, reason: str) -> int:
        """Hold every planned touch to a customer (their address bounced)."""
        return self._customer_touches(customer_id, [TouchState.PLANNED], TouchState.HELD, reason)

    def release_customer_touches(self, customer_id: int, reason_prefix: str) -> int:
        """Put touches held for ``reason_prefix`` back to planned (the address works again)."""
        loop_ids = select(loops.c.id).where(loops.c.customer_id == customer_id).scalar_subquery()
        done = self.db.execute(
            update(touches)
            .where(
                touches.c.loop_id.in_(loop_ids),
                touches.c.state == TouchState.HELD,
                touches.c.reason.startswith(reason_prefix),
            )
            .values(state=TouchState.PLANNED, reason="")
        )
        return done.rowcount

    def touch_kind(self, message_id: str) -> TouchKind | None:
        """The kind of our touch that went out with ``message_id``, if it was ours."""
        query = select(touches.c.kind).where(touches.c.message_id == _clip_id(message_id))
        kind = self.db.execute(query).scalar()
        return None if kind is None else TouchKind(kind)

    def touches_of(self, loop_id: int) -> list[Touch]:
        query = select(touches).where(touches.c.loop_id == loop_id).order_by(touches.c.due_at, touches.c.id)
        return [_touch(row) for row in self.db.execute(query)]

    def touches_for(self, loop_ids: Sequence[int]) -> dict[int, list[Touch]]:
        found: dict[int, list[Touch]] = {loop_id: [] for loop_id in loop_ids}
        if loop_ids:
            query = select(touches).where(touches.c.loop_id.in_(list(loop_ids)))
            for row in self.db.execute(query.order_by(touches.c.due_at, touches.c.id)):
                found[row.loop_id].append(_touch(row))
        return found

    def claim_due(self, now: datetime) -> DueTouch | None:
        """The next planned touch that is due, locked with its loop for this transaction (others skip both).

        Touch and loop are locked by one statement that skips what another transaction holds, so a dispatcher
        never waits for a lock while holding one: a close that locked the loop and then cancels its touches
        cannot deadlock with it (the touch is skipped now and found cancelled later).
        """
        row = self.db.execute(_CLAIM, {"now": now}).first()
        if row is None:
            return None
        mapping = row._mapping
        loop = _loop_from({column.name: mapping[f"loop__{column.name}"] for column in loops.c})
        customer = _customer_from({column.name: mapping[f"customer__{column.name}"] for column in customers.c})
        return DueTouch(touch=_touch(row), loop=loop, customer=customer)

    def next_due_at(self) -> datetime | None:
        query = select(func.min(touches.c.due_at)).where(touches.c.state == TouchState.PLANNED)
        return self.db.execute(query).scalar()

    def mark_sent(self, touch_id: int, sent: Sent, now: datetime) -> None:
        values = {
            "state": TouchState.SENT,
            "sent_at": now,
            "subject": sent.subject,
            "body_text": sent.text,
            "body_html": sent.html,
            "template": sent.template,
            "template_version": sent.template_version,
            "reason": "",
        }
        self.db.execute(_MARK_SENT, {**values, "touch_id": touch_id})

    def settle(self, touch_id: int, state: TouchState, reason: str, *, attempt: bool = False) -> None:
        """Cancel, fail or hold one touch, saying why."""
        values: dict[str, Any] = {"state": state, "reason": reason}
        if attempt:
            values["attempts"] = touches.c.attempts + 1
        self.db.execute(update(touches).where(touches.c.id == touch_id).values(**values))

    def retry_later(self, touch_id: int, due_at: datetime, reason: str) -> None:
        self.db.execute(
            update(touches)
            .where(touches.c.id == touch_id)
            .values(due_at=due_at, reason=reason, attempts=touches.c.attempts + 1)
        )

    def count_held(self, reason_prefix: str) -> int:
        """How many touches are held with a reason that starts with ``reason_prefix``."""
        held = touches.c.state == TouchState.HELD, touches.c.reason.startswith(reason_prefix, autoescape=True)
        return int(self.db.execute(select(func.count()).where(*held)).scalar_one())

    def release_held(self, reason_prefix: str, reason: str) -> int:
        """Plan again every touch held with a reason that starts with ``reason_prefix``; it keeps its due time."""
        held = touches.c.state == TouchState.HELD, touches.c.reason.startswith(reason_prefix, autoescape=True)
        done = self.db.execute(update(touches).where(*held).values(state=TouchState.PLANNED, reason=reason))
        return done.rowcount

    def sent_to_since(self, recipient: str, since: datetime) -> int:
        return int(self.db.execute(_SENT_TO_SINCE, {"recipient": recipient, "since": since}).scalar_one())

    def cancel_customer_touches(self, customer_id: int, reason: str) -> int:
        """Cancel every pending touch to a customer, across all their loops (opt-out)."""
        return self._customer_touches(customer_id, [TouchState.PLANNED, TouchState.HELD], TouchState.CANCELLED, reason)

    def _customer_touches(self, customer_id: int, states: list[TouchState], to: TouchState, reason: str) -> int:
        loop_ids = select(loops.c.id).where(loops.c.customer_id == customer_id).scalar_subquery()
        customer_kinds = [str(kind) for kind in TouchKind if not kind.to_staff]
        done = self.db.execute(
            update(touches)
            .where(touches.c.loop_id.in_(loop_ids), touches.c.kind.in_(customer_kinds), touches.c.state.in_(states))
            .values(state=to, reason=reason)
        )
        return done.rowcount

    # figures ----------------------------------------------------------------------------------------------

    def count_loops(self) -> dict[str, int]:
        query = select(loops.c.state, func.count()).group_by(loops.c.state)
        return {state: int(count) for state, count in self.db.execute(query)}

    def count_touches(self, now: datetime) -> dict[str, int]:
        planned = touches.c.state == TouchState.PLANNED
        due = self.db.execute(select(func.count()).where(planned, touches.c.due_at <= now)).scalar_one()
        overdue = self.db.execute(
            select(func.count()).where(planned, touches.c.due_at <= now - timedelta(minutes=15))
        ).scalar_one()
        return {"due": int(due), "overdue": int(overdue)}


_UNREPORTED = "classification = 'quarantined' AND reported_at IS NULL"
_QUARANTINE_VIEW = (
    messages.c.id,
    messages.c.inbox,
    messages.c.folder,
    messages.c.uid,
    messages.c.from_email,
    messages.c.subject,
    messages.c.received_at,
    messages.c.reason,
    messages.c.size,
)


@dataclass(frozen=True, kw_only=True)
class QuarantinedMessage:
    """A message intake recorded raw and never answered, as the team is told about it."""

    id: int
    inbox: str
    folder: str | None
    uid: int | None
    from_email: str
    subject: str
    received_at: datetime
    reason: str
    size: int


_MESSAGE_VIEW = (
    messages.c.id,
    messages.c.direction,
    messages.c.message_id,
    messages.c.from_email,
    messages.c.from_name,
    messages.c.subject,
    messages.c.received_at,
    messages.c.sent_at,
    messages.c.text_body,
    messages.c.classification,
    messages.c.reason,
    messages.c.touch_id,
)


def _clip_id(message_id: str | None) -> str | None:
    return None if message_id is None else message_id[:MAX_MESSAGE_ID]


def _summary(row: Any) -> LoopSummary:
    return LoopSummary(id=row.id, ref=ref_for(row.id), customer_email=row.email, state=LoopState(row.state))


# Statements that run for every email, built once: building one costs more than running it on SQLite.

# The dispatcher's claim: the next due touch with its loop, both locked.
_CLAIM = (
    select(
        touches,
        *(column.label(f"loop__{column.name}") for column in loops.c),
        *(column.label(f"customer__{column.name}") for column in customers.c),
    )
    .join(loops, loops.c.id == touches.c.loop_id)
    .join(customers, customers.c.id == loops.c.customer_id)
    .where(touches.c.state == TouchState.PLANNED, touches.c.due_at <= bindparam("now"))
    .order_by(touches.c.due_at, touches.c.id)
    .limit(1)
    .with_for_update(of=[touches, loops], skip_locked=True)  # the customer is read, not locked
)
_CUSTOMER = select(customers).where(customers.c.id == bindparam("customer_id"))
_MESSAGE_BY_ID = (
    select(*_MESSAGE_VIEW).where(messages.c.message_id == bindparam("message_id")).order_by(messages.c.id).limit(1)
)
_EARLIER_LOOPS = (
    select(loops)
    .where(loops.c.customer_id == bindparam("customer_id"), loops.c.id < bindparam("before"))
    .order_by(loops.c.id.desc())
    .limit(bindparam("limit"))
)
_SENT_TO_SINCE = select(func.count()).where(
    touches.c.recipient == bindparam("recipient"),
    touches.c.state == TouchState.SENT,
    touches.c.sent_at > bindparam("since"),
)
_MARK_SENT = update(touches).where(touches.c.id == bindparam("touch_id")).values(attempts=touches.c.attempts + 1)
_SAVE_LOOP = update(loops).where(loops.c.id == bindparam("loop_id"))


def _thread(*, customer_visible: bool) -> CompoundSelect[Any]:
    """A loop's Message-IDs, the first and the latest ``:latest`` (in one statement: one round trip per email); with
    ``customer_visible`` only mail the customer has seen (theirs, and ours to them)."""
    loop_id: BindParameter[int] = bindparam("loop_id")
    ids = select(messages.c.id, messages.c.message_id).where(
        messages.c.loop_id == loop_id, messages.c.message_id.is_not(None)
    )
    if customer_visible:
        # The kinds written into the SQL (our own names), not as an expanding parameter, which would make
        # SQLAlchemy rewrite the statement's text at every execution.
        customer_kinds: list[ColumnElement[str]] = [
            literal_column(f"'{kind}'") for kind in TouchKind if not kind.to_staff
        ]
        to_them = select(touches.c.id).where(touches.c.loop_id == loop_id, touches.c.kind.in_(customer_kinds))
        theirs = (messages.c.direction == "in") & (messages.c.classification == str(Classification.CUSTOMER))
        ids = ids.where(theirs | ((messages.c.direction == "out") & messages.c.touch_id.in_(to_them)))
    first = ids.order_by(messages.c.id).limit(1).subquery()
    latest = ids.order_by(messages.c.id.desc()).limit(bindparam("latest")).subquery()
    return union_all(select(first), select(latest))


_THREAD = _thread(customer_visible=False)
_CUSTOMER_THREAD = _thread(customer_visible=True)


def _customer(row: Row[Any]) -> Customer:
    return _customer_from(dict(row._mapping))


def _customer_from(values: dict[str, Any]) -> Customer:
    values.pop("created_at")
    values.pop("undeliverable_reason")
    values["consent"] = Consent(values["consent"])
    return Customer(**values)


def _customer_values(customer: Customer) -> dict[str, Any]:
    values = dict(customer.__dict__)
    values.pop("id")
    values["name"] = values["name"][:200]
    values["first_name"] = values["first_name"][:100]
    return values


def _loop(row: Row[Any]) -> Loop:
    return _loop_from(dict(row._mapping))


def _loop_from(values: dict[str, Any]) -> Loop:
    values["state"] = LoopState(values["state"])
    return Loop(ref=ref_for(values["id"]), **values)


def _loop_values(loop: Loop) -> dict[str, Any]:
    values = dict(loop.__dict__)
    values.pop("id")
    values.pop("ref")
    return values


def _touch(row: Row[Any]) -> Touch:
    mapping = row._mapping
    return Touch(
        id=mapping["id"],
        loop_id=mapping["loop_id"],
        kind=TouchKind(mapping["kind"]),
        state=TouchState(mapping["state"]),
        due_at=mapping["due_at"],
        recipient=mapping["recipient"],
        message_id=mapping["message_id"],
        sequence=mapping["sequence"],
        attempts=mapping["attempts"],
        note=mapping["note"],
        answers=mapping["answers"],
        sent_at=mapping["sent_at"],
        reason=mapping["reason"],
    )


__all__ = [
    "Clash",
    "DueTouch",
    "DuplicateDelivery",
    "LoopNotFound",
    "MessageView",
    "NewTouch",
    "QuarantinedMessage",
    "RecordedMessage",
    "Sent",
    "Store",
    "StoreUnavailable",
    "Transaction",
]
