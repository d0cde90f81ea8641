"""The demo's folder: ``closeloop.toml``, ``data/``, ``Maildir/`` and ``outbox/``, and nothing else.

**Templates** are not copied: the written config points ``[templates] dir`` at the shipped folder. In the source
tree ``daemon/demo/templates`` is a symbolic link to the top-level ``templates/``; building a wheel follows the
link, so an installed closeloop carries the templates as package data in the same place. A checkout that lost the
link (``git config core.symlinks false``) falls back to the top-level folder.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from importlib import resources
from pathlib import Path

CONFIG = "closeloop.toml"
ENTRIES = frozenset({CONFIG, "data", "Maildir", "outbox"})


class WorkspaceError(Exception):
    """The demo cannot use the folder it was given (a usage problem: exit 2)."""


@dataclass(frozen=True, kw_only=True)
class Workspace:
    root: Path

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def database(self) -> Path:
        return self.root / "data" / "closeloop.db"

    @property
    def maildir(self) -> Path:
        return self.root / "Maildir"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox"

    @classmethod
    def create(cls, root: Path, *, fresh: bool) -> Workspace:
        """Make the folder (empty, or emptied with ``fresh`` when it holds only what an earlier demo wrote).

        :raises WorkspaceError: the folder is not empty (without ``fresh``), holds files the demo did not write,
            or cannot be created.
        """
        root = root.expanduser().absolute()
        if root.exists() and not root.is_dir():
            raise WorkspaceError(f"{root} exists and is not a folder; pass another --dir")
        present = sorted(p.name for p in root.iterdir()) if root.is_dir() else []
        if present and not fresh:
            raise WorkspaceError(
                f"{root} is not empty; pass --fresh to replace an earlier demo there, or another --dir"
            )
        foreign = [name for name in present if name not in ENTRIES]
        if foreign:
            raise WorkspaceError(
                f"{root} holds files the demo did not write ({', '.join(foreign[:5])}); "
                "--fresh only replaces an earlier demo, pass another --dir"
            )
        try:
            for name in present:
                _remove(root / name)
            workspace = cls(root=root)
            for sub in ("tmp", "new", "cur"):
                (workspace.maildir / sub).mkdir(parents=True, exist_ok=True)
            workspace.database.parent.mkdir(parents=True, exist_ok=True)
            workspace.outbox.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise WorkspaceError(f"cannot prepare {root}: {exc.strerror or exc}") from exc
        return workspace


class Maildir:
    """Delivers messages into the demo's Maildir the way a mail server does: written in ``tmp/``, then renamed
    into ``new/``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sequence = itertools.count(1)

    def deliver(self, raw: bytes, when: datetime) -> Path:
        name = f"{int(when.timestamp())}.M{next(self._sequence):06d}P{os.getpid()}.closeloop-demo"
        temporary = self.path / "tmp" / name
        temporary.write_bytes(raw)
        delivered = self.path / "new" / name
        temporary.rename(delivered)
        return delivered


def seed_messages() -> list[bytes]:
    """The messages customers (and machines) send on the demo's first morning, in delivery order."""
    folder = resources.files("daemon.demo") / "inbox"
    found = sorted((item for item in folder.iterdir() if item.name.endswith(".eml")), key=lambda item: item.name)
    return [item.read_bytes() for item in found]


def shipped_templates() -> Path:
    """The templates closeloop ships (see the module docstring).

    :raises WorkspaceError: when neither place has them.
    """
    here = Path(__file__).resolve().parent
    for candidate in (here / "templates", here.parents[1] / "templates"):
        if (candidate / "en").is_dir():
            return candidate.resolve()
    raise WorkspaceError(
        f"the shipped templates are missing (looked in {here / 'templates'} and {here.parents[1] / 'templates'}); "
        "reinstall closeloop"
    )


def config_text(templates: Path, smtp_port: int) -> str:
    """The demo's configuration: a real one, loaded with ``Settings.load`` like any other."""
    return CONFIG_TEMPLATE.format(templates=json.dumps(str(templates), ensure_ascii=False), smtp_port=smtp_port)


CONFIG_TEMPLATE = """\
# closeloop configuration written by `closeloop demo`: a real one, loaded the way production loads its file.
# Look around with it:   closeloop --config closeloop.toml loops
#                        closeloop --config closeloop.toml show CL-XXXX
# Relative paths resolve against this file's folder. Every key is explained in config/closeloop.example.toml.

[database]
url = "sqlite:///data/closeloop.db"          # the embedded default; PostgreSQL for several daemons

[templates]
dir = {templates}
# ^ the templates closeloop ships, used in place: copy the folder and point here to edit your own
language = "en"

[team]
timezone = "Europe/Berlin"
business_hours = "09:00-17:00"               # in the customer's own time when their mail shows it
business_days = ["mon", "tue", "wed", "thu", "fri"]

[cadence]                                    # the defaults, written out
promise_business_days = 3
thank_you_after_hours = 24
follow_through_every_business_days = 3
follow_through_max = 3
check_in_after_days = 90
check_in_close_after_days = 14
out_of_office_pause_days = 5

[[inboxes]]
name = "support"
address = "support@example.org"
display_name = "Example Support"

[inboxes.maildir]                            # instead of [inboxes.imap]: a Maildir on this machine
path = "Maildir"

[smtp]                                       # the demo's embedded SMTP server; it stopped when the demo ended.
host = "127.0.0.1"                           # Point this at your mail server (see the example config).
port = {smtp_port}
security = "none"                            # plain SMTP: loopback only

[[staff]]
name = "Sam Rivera"
email = "sam@example.org"

[[staff]]
name = "Alex Kim"
email = "alex@example.org"
"""


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink()
