"""``closeloop demo``: the whole story of a support inbox on the embedded defaults, in a few seconds.

The demo writes a real configuration (``closeloop.toml``) into its folder and runs the production code paths
on it: a SQLite database, a Maildir inbox (a supported intake source) seeded with the messages in ``inbox/``, and
an embedded SMTP server (aiosmtpd, on a free loopback port) that keeps every accepted email as an ``.eml`` file
in ``outbox/``. Time is compressed the one way the architecture allows: ``App`` gets a clock that the story
moves forward (see :mod:`daemon.demo.story`). Nothing in the domain or the service knows it is a demo.

Folder layout (``--dir``, default ``./closeloop-demo``)::

    closeloop.toml      the configuration, loaded with Settings.load; reusable with --config
    data/closeloop.db   the SQLite database
    Maildir/            the inbox: new/ cur/ tmp/ and closeloop's own closeloop-uidlist
    outbox/             NNNN-KIND-REF.eml: every email the SMTP server accepted, in order

Templates are used in place (see :mod:`daemon.demo.workspace`), never copied.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TextIO

from daemon.app import App
from daemon.config import Settings
from daemon.demo.mailserver import MailServerError, OutboxServer
from daemon.demo.story import START, DemoClock, Story, StoryError
from daemon.demo.timeline import Timeline
from daemon.demo.workspace import Maildir, Workspace, WorkspaceError, config_text, shipped_templates
from daemon.domain.model import TouchKind

__all__ = ["DemoFailed", "WorkspaceError", "run_demo"]


class DemoFailed(Exception):
    """The demo started but could not finish (a runtime failure: exit 1)."""


def run_demo(directory: Path, *, fresh: bool, out: TextIO, environ: Mapping[str, str]) -> None:
    """Prepare ``directory``, tell the story, print the timeline and a summary to ``out``.

    :raises WorkspaceError: the folder cannot be used (not empty without ``fresh``, foreign files, no templates).
    :raises DemoFailed: the SMTP server would not start, or closeloop did not do what the story needed.
    """
    templates = shipped_templates()
    workspace = Workspace.create(directory, fresh=fresh)
    try:
        with OutboxServer(workspace.outbox) as server:
            workspace.config.write_text(config_text(templates, server.port), encoding="utf-8")
            settings = Settings.load(workspace.config, environ)
            clock = DemoClock(START)
            app = App(settings, clock=clock)
            try:
                timeline = Timeline(app, server, out, settings.team.zone)
                _introduce(timeline, workspace, server)
                Story(app, clock, server, timeline, Maildir(workspace.maildir)).tell()
                _summarise(timeline, workspace, server)
            finally:
                app.close()
    except (MailServerError, StoryError) as exc:
        raise DemoFailed(str(exc)) from exc


def _introduce(timeline: Timeline, workspace: Workspace, server: OutboxServer) -> None:
    timeline.print("closeloop demo: a support inbox's first three months, in compressed time")
    timeline.print(f"  config    {_shown(workspace.config)}  (a real one: try it with --config)")
    timeline.print(f"  database  {_shown(workspace.database)}")
    timeline.print(f"  inbox     {_shown(workspace.maildir)}/  (a Maildir, read like IMAP)")
    timeline.print(
        f"  SMTP      {server.host}:{server.port}, embedded; keeps every email in {_shown(workspace.outbox)}/"
    )
    timeline.print(f"  Times are the team's ({timeline.zone}); customers get mail in their own business hours.")


def _summarise(timeline: Timeline, workspace: Workspace, server: OutboxServer) -> None:
    totals = timeline.totals
    loops = timeline.app.service.loops()
    closed = [loop for loop in loops if loop["state"] == "closed"]
    sent = Counter(accepted.kind for accepted in server.accepted)
    kinds = [str(kind) for kind in TouchKind if sent[str(kind)]]
    received = ", ".join(f"{count} {kind}" for kind, count in totals.received.most_common())
    timeline.heading("Summary")
    timeline.print(f"  loops     {len(loops)} opened, {len(closed)} closed")
    for loop in loops:
        reason = totals.closed.get(loop["ref"], loop["state"])
        timeline.print(f"            {loop['ref']}  {loop['customer']['name']:<12} {reason}")
    timeline.print(f"  received  {sum(totals.received.values())} messages: {received}")
    timeline.print(f"  sent      {sum(sent.values())} emails: " + ", ".join(f"{sent[k]} {k}" for k in kinds))
    timeline.print(f"  files     {_shown(workspace.outbox)}/ holds them all, as .eml files in the order sent")
    config = _shown(workspace.config)
    timeline.print(f"  next      closeloop --config {config} loops")
    if loops:
        timeline.print(f"            closeloop --config {config} show {loops[0]['ref']}")


def _shown(path: Path) -> str:
    """``path`` relative to the working folder when it is inside it."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
