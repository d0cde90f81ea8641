"""A local Maildir as an intake source: real files in a temporary Maildir, delivered with the stdlib's mailbox."""

from __future__ import annotations

import mailbox
import os
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from daemon.config import Settings
from daemon.mail.imap import MailboxError
from daemon.mail.maildir import UIDLIST, MaildirSource
from daemon.store.repository import Store
from daemon.store.tables import messages

from support import mails

pytestmark = pytest.mark.integration

TEMPLATES = Path(__file__).parents[2] / "templates"


@pytest.fixture
def maildir(tmp_path: Path) -> mailbox.Maildir:
    return mailbox.Maildir(tmp_path / "Maildir", create=True)


def deliver(box: mailbox.Maildir, raw: bytes, *, at: float | None = None) -> Path:
    """Deliver like an MDA (tmp/, then new/); ``at`` sets the delivery time."""
    key = box.add(raw)
    path = Path(box._path) / "new" / key
    if at is not None:
        os.utime(path, (at, at))
    return path


def source_on(box: mailbox.Maildir) -> MaildirSource:
    source = MaildirSource("support", Path(box._path))
    source.open()
    return source


def files(box: mailbox.Maildir) -> dict[str, bytes]:
    root = Path(box._path)
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != UIDLIST}


def settle(box: mailbox.Maildir) -> None:
    """Date the folders back, as if the last change were long ago (the source trusts only settled mtimes)."""
    for sub in ("new", "cur"):
        past = time.time() - 60
        os.utime(Path(box._path) / sub, (past, past))


def test_new_messages_get_uids_in_delivery_order(maildir: mailbox.Maildir) -> None:
    now = time.time()
    deliver(maildir, b"Subject: second\r\n\r\n2", at=now - 20)
    deliver(maildir, b"Subject: third\r\n\r\n3", at=now - 10)
    deliver(maildir, b"Subject: first\r\n\r\n1", at=now - 30)
    source = source_on(maildir)

    uids = source.uids_after(0)

    assert uids == [1, 2, 3]
    assert [f.raw.split(b"\r\n")[0] for f in source.fetch(uids)] == [
        b"Subject: first",
        b"Subject: second",
        b"Subject: third",
    ]
    assert source.uids_after(2) == [3]
    assert source.uids_after(3) == []


def test_same_delivery_time_orders_by_name(maildir: mailbox.Maildir) -> None:
    root = Path(maildir._path)
    for name in ("1700000000.b.host", "1700000000.a.host"):
        (root / "new" / name).write_bytes(name.encode())
        os.utime(root / "new" / name, (1_700_000_000, 1_700_000_000))
    source = source_on(maildir)

    assert [f.raw for f in source.fetch(source.uids_after(0))] == [b"1700000000.a.host", b"1700000000.b.host"]


def test_uids_survive_a_restart_and_flag_renames_by_a_mail_client(maildir: mailbox.Maildir) -> None:
    now = time.time()
    paths = [deliver(maildir, f"Subject: {n}\r\n\r\nbody {n}".encode(), at=now - 10 + n) for n in range(3)]
    first = source_on(maildir)
    before = {f.uid: f.raw for f in first.fetch(first.uids_after(0))}
    root = Path(maildir._path)
    paths[0].rename(root / "cur" / f"{paths[0].name}:2,S")  # read in a mail client
    paths[1].rename(root / "cur" / f"{paths[1].name}:2,")  # seen as old, still unread
    (root / "cur" / f"{paths[1].name}:2,").rename(root / "cur" / f"{paths[1].name}:2,FS")  # then flagged

    again = source_on(maildir)

    assert again.uidvalidity == first.uidvalidity
    assert again.uids_after(0) == [1, 2, 3]
    assert {f.uid: f.raw for f in again.fetch([1, 2, 3])} == before


def test_a_message_renamed_between_listing_and_fetching_is_still_found(maildir: mailbox.Maildir) -> None:
    path = deliver(maildir, b"Subject: moving\r\n\r\nx")
    source = source_on(maildir)
    (uid,) = source.uids_after(0)
    path.rename(Path(maildir._path) / "cur" / f"{path.name}:2,S")

    assert [f.raw for f in source.fetch([uid])] == [b"Subject: moving\r\n\r\nx"]


def test_a_message_removed_by_someone_else_is_left_out(maildir: mailbox.Maildir) -> None:
    gone = deliver(maildir, b"Subject: gone\r\n\r\nx", at=time.time() - 5)
    deliver(maildir, b"Subject: stays\r\n\r\ny")
    source = source_on(maildir)
    uids = source.uids_after(0)
    gone.unlink()

    assert [f.raw for f in source.fetch(uids)] == [b"Subject: stays\r\n\r\ny"]
    assert uids == [1, 2]
    assert source.uids_after(0) == [2]


def test_uidvalidity_persists_and_a_removed_uid_list_makes_a_new_one(maildir: mailbox.Maildir) -> None:
    deliver(maildir, b"Subject: a\r\n\r\na")
    first = source_on(maildir)
    assert 0 < first.uidvalidity < 2**32
    assert source_on(maildir).uidvalidity == first.uidvalidity
    first.uids_after(0)

    (Path(maildir._path) / UIDLIST).unlink()

    with pytest.raises(MailboxError, match="removed"):
        first.uids_after(0)
    renewed = source_on(maildir)
    assert renewed.uidvalidity != first.uidvalidity
    assert renewed.uids_after(0) == [1]


def test_nothing_is_moved_deleted_or_flagged(maildir: mailbox.Maildir) -> None:
    deliver(maildir, b"Subject: new\r\n\r\nnew")
    read = deliver(maildir, b"Subject: read\r\n\r\nread")
    read.rename(Path(maildir._path) / "cur" / f"{read.name}:2,S")
    before = files(maildir)
    source = source_on(maildir)

    uids = source.uids_after(0)
    source.fetch(uids)
    source.mark_processed(uids)
    source.close()

    assert files(maildir) == before
    assert any(name.startswith("new/") for name in before)


def test_garbage_in_new_is_returned_as_raw_bytes_and_dotfiles_and_folders_are_skipped(
    maildir: mailbox.Maildir,
) -> None:
    root = Path(maildir._path)
    (root / "new" / "1700000000.garbage.host").write_bytes(b"\x00\xff\xfe not an email \x00")
    (root / "new" / ".hidden").write_bytes(b"skip me")
    (root / "new" / "a-folder").mkdir()
    (root / "cur" / "1700000001.spaced name.host:2,").write_bytes(b"Subject: odd name\r\n\r\n")
    source = source_on(maildir)

    fetched = source.fetch(source.uids_after(0))

    assert sorted(f.raw for f in fetched) == [b"\x00\xff\xfe not an email \x00", b"Subject: odd name\r\n\r\n"]


def test_messages_delivered_while_reading_are_each_read_once_in_uid_order(maildir: mailbox.Maildir) -> None:
    count = 150
    source = source_on(maildir)
    done = threading.Event()

    def deliver_all() -> None:
        for n in range(count):
            maildir.add(f"Subject: {n}\r\n\r\n{n}".encode())
            if n % 10 == 0:
                time.sleep(0.002)
        done.set()

    delivery = threading.Thread(target=deliver_all)
    delivery.start()
    seen: list[tuple[int, bytes]] = []
    last = 0
    while True:
        finished = done.is_set()
        uids = source.uids_after(last)
        seen += [(f.uid, f.raw) for f in source.fetch(uids)]
        last = max(uids, default=last)
        if finished:
            break
    delivery.join()

    assert [uid for uid, _ in seen] == list(range(1, count + 1))
    assert sorted(raw for _, raw in seen) == sorted(f"Subject: {n}\r\n\r\n{n}".encode() for n in range(count))
    assert source_on(maildir).uids_after(0) == list(range(1, count + 1))


def test_two_readers_of_one_maildir_agree_on_uids(maildir: mailbox.Maildir) -> None:
    one, other = source_on(maildir), source_on(maildir)
    deliver(maildir, b"Subject: a\r\n\r\na", at=time.time() - 5)
    assert one.uids_after(0) == [1]
    deliver(maildir, b"Subject: b\r\n\r\nb")

    assert other.uids_after(0) == [1, 2]
    assert one.uids_after(0) == [1, 2]
    assert [f.raw for f in one.fetch([2])] == [f.raw for f in other.fetch([2])] == [b"Subject: b\r\n\r\nb"]


def test_wait_wakes_on_delivery_and_times_out_when_quiet(maildir: mailbox.Maildir) -> None:
    source = source_on(maildir)
    settle(maildir)
    source.uids_after(0)
    stop = threading.Event()

    started = time.monotonic()
    assert source.wait(1.5, stop) is False
    assert 1.4 < time.monotonic() - started < 5

    timer = threading.Timer(0.3, deliver, args=(maildir, b"Subject: news\r\n\r\n"))
    timer.start()
    started = time.monotonic()
    assert source.wait(10, stop) is True
    assert time.monotonic() - started < 5  # one poll a second, plus slack for a busy machine
    timer.join()
    assert source.uids_after(0) == [1]


def test_wait_returns_when_stopped(maildir: mailbox.Maildir) -> None:
    source = source_on(maildir)
    settle(maildir)
    source.uids_after(0)
    stop = threading.Event()
    threading.Timer(0.2, stop.set).start()

    started = time.monotonic()
    assert source.wait(30, stop) is False
    assert time.monotonic() - started < 5


def test_a_folder_that_is_not_a_maildir_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "new").mkdir()
    with pytest.raises(MailboxError, match=r"not a Maildir: it has no cur/ folder"):
        MaildirSource("support", tmp_path).open()


def test_a_damaged_uid_list_is_a_clear_error_and_a_torn_last_line_is_dropped(maildir: mailbox.Maildir) -> None:
    deliver(maildir, b"Subject: a\r\n\r\na")
    source_on(maildir).uids_after(0)
    uidlist = Path(maildir._path) / UIDLIST
    uidlist.write_bytes(uidlist.read_bytes() + b"2 half-written")  # a crash in the middle of an append

    assert source_on(maildir).uids_after(0) == [1]
    assert uidlist.read_bytes().endswith(b"\n")

    uidlist.write_bytes(b"something else\n")
    with pytest.raises(MailboxError, match=r"damaged .* remove it"):
        source_on(maildir)


def test_a_maildir_feeds_intake_exactly_once(maildir: mailbox.Maildir, database_url: str, tmp_path: Path) -> None:
    # Imported here, so the adapter's own tests above do not depend on the whole application importing.
    from daemon.render import Renderer
    from daemon.service import Closeloop, MailSource

    settings = Settings.from_mapping(
        {
            "database": {"url": database_url},
            "templates": {"dir": str(TEMPLATES)},
            "inboxes": [
                {
                    "name": "support",
                    "address": "support@example.org",
                    "imap": {"host": "unused.invalid", "username": "u", "password": "p", "batch_size": 2},
                }
            ],
            "smtp": {"host": "unused.invalid"},
            "staff": [{"name": "Sam Rivera", "email": "sam@example.org"}],
        },
        {},
        base=tmp_path,
    )
    store = Store(database_url)
    store.migrate()
    service = Closeloop(settings, store, Renderer(TEMPLATES))
    for n in range(3):
        deliver(maildir, mails.customer(n), at=time.time() - 10 + n)
    (Path(maildir._path) / "new" / "1700000000.garbage.host").write_bytes(b"\x00\xff garbage")
    clock = lambda: datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # noqa: E731
    try:
        source: MailSource = source_on(maildir)
        first = service.read_inbox(settings.inboxes[0], source, clock)
        second = service.read_inbox(settings.inboxes[0], source_on(maildir), clock)
        with store.engine.connect() as db:
            rows = db.execute(select(messages.c.uid, messages.c.folder, messages.c.classification)).all()
    finally:
        store.close()

    assert first.recorded == 4
    assert second.recorded == 0
    assert sorted(r.uid for r in rows) == [1, 2, 3, 4]
    assert {r.folder for r in rows} == {"INBOX"}
    assert sorted(str(r.classification) for r in rows).count("customer") == 3
