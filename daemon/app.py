"""The composition root: builds the store, renderer, mail clients and scheduler, and reads the clock.

``App.once()`` is one intake pass over every inbox and one dispatch of what is due. ``App.run(stop)`` is the
daemon: a watcher thread per inbox (IMAP IDLE, polling when the server has no IDLE) records new mail and wakes
the dispatcher; APScheduler (3.x) runs the dispatch tick and housekeeping in-process. Months-ahead touches live
in the touches table, never in a scheduler job store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from daemon.config import Inbox, Settings
from daemon.dispatch import DispatchReport
from daemon.intake import IntakeReport
from daemon.mail.imap import ImapMailbox, MailboxError
from daemon.mail.maildir import MaildirSource
from daemon.mail.smtp import SmtpSender
from daemon.observe import HttpEndpoint, Metrics
from daemon.quarantine import report_quarantine
from daemon.render import Renderer
from daemon.service import Closeloop, PassReport
from daemon.store.repository import Store
from daemon.store.stats import current_figures
from daemon.templates_watch import TemplatesWatch

log = logging.getLogger(__name__)

HOUSEKEEPING_SECONDS = 600
RECONNECT_FIRST_SECONDS = 2.0
RECONNECT_MAX_SECONDS = 300.0


def utc_now() -> datetime:
    """The one place closeloop reads the clock."""
    return datetime.now(UTC)


Mailbox = ImapMailbox | MaildirSource


def mailbox_for(inbox: Inbox) -> Mailbox:
    """The intake source of an inbox: IMAP, or a Maildir on the mail host."""
    if inbox.maildir is not None:
        return MaildirSource(inbox.name, inbox.maildir.path, inbox.maildir.folder)
    assert inbox.imap is not None
    return ImapMailbox(inbox.name, inbox.imap)


def wait_seconds(inbox: Inbox) -> float:
    """How long a watcher waits for news before reading again (IDLE renewal, or the Maildir's poll)."""
    if inbox.maildir is not None:
        return inbox.maildir.wait_seconds
    assert inbox.imap is not None
    return inbox.imap.idle_renew_minutes * 60


@dataclass(kw_only=True)
class OnceReport:
    passes: list[PassReport] = field(default_factory=list)
    dispatched: list[DispatchReport] = field(default_factory=list)
    closed: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    quarantine_reported: int = 0

    @property
    def sent(self) -> int:
        return sum(d.sent for d in self.dispatched)


class App:
    """closeloop, wired."""

    def __init__(self, settings: Settings, *, clock: Callable[[], datetime] = utc_now, migrate: bool = True) -> None:
        self.settings, self.clock = settings, clock
        self.store = Store(settings.database.url, echo=settings.database.echo)
        if migrate:
            self.store.migrate()
        self.renderer = Renderer(
            settings.templates.dir,
            max_output_chars=settings.templates.max_output_chars,
            time_limit=settings.templates.time_limit_seconds,
            default_language=settings.templates.language,
        )
        self.metrics = Metrics(self.figures)
        self.service = Closeloop(settings, self.store, self.renderer, metrics=self.metrics)
        self.templates = TemplatesWatch(settings, self.store, self.renderer)

    def figures(self) -> dict[str, float]:
        """Database figures for ``/metrics``, read at each scrape."""
        overdue = timedelta(minutes=self.settings.http.overdue_after_minutes)
        with self.store.reading() as tx:
            return current_figures(tx.db, now=self.clock(), overdue_after=overdue)

    def close(self) -> None:
        self.store.close()

    # one pass ----------------------------------------------------------------------------------------------

    def once(self) -> OnceReport:
        """Read every inbox once, close what is due to close, then send everything that is due."""
        report = OnceReport()
        for inbox in self.settings.inboxes:
            try:
                report.passes.append(self.read(inbox))
            except MailboxError as exc:
                log.error("inbox pass failed", extra={"inbox": inbox.name, "error": exc.reason})
                report.failures.append(str(exc))
        report.closed = self.service.housekeeping(self.clock())
        report.quarantine_reported = report_quarantine(self.store, self.settings, self.clock())
        self.templates.look(self.clock(), tell_staff=False)  # logs problems; releases held touches once they pass
        report.dispatched = self.dispatch_all()
        return report

    def read(self, inbox: Inbox, on_batch: Callable[[IntakeReport], None] = lambda _: None) -> PassReport:
        mailbox = mailbox_for(inbox)
        try:
            mailbox.open()
            return self.service.read_inbox(inbox, mailbox, self.clock, on_batch)
        finally:
            mailbox.close()

    def dispatch_all(self, stop: Callable[[], bool] = lambda: False) -> list[DispatchReport]:
        """Dispatch in batches until nothing is due, the SMTP server is unreachable, or ``stop()`` (asked between
        touches)."""
        reports = []
        limit = self.settings.daemon.dispatch_batch
        with SmtpSender(self.settings.smtp) as sender:
            while True:
                report = self.service.dispatch_due(sender, self.clock(), limit=limit, stop=stop)
                reports.append(report)
                if report.smtp_down:
                    log.error("SMTP server unreachable; will retry", extra={"error": report.smtp_down})
                    break
                if sum(report.results.values()) < limit:
                    break
        return reports

    # the daemon ------------------------------------------------------------------------------------------

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set; the step in progress finishes first."""
        daemon = Daemon(self, stop)
        daemon.start()
        stop.wait()
        daemon.shutdown()


class Daemon:
    """The long-running parts: inbox watchers and the scheduler."""

    def __init__(self, app: App, stop: threading.Event) -> None:
        self.app, self.stop = app, stop
        self.wake_pending = threading.Event()
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(2)},
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self.watchers = [
            threading.Thread(target=self._watch, args=(inbox,), name=f"inbox-{inbox.name}", daemon=True)
            for inbox in app.settings.inboxes
        ]
        self.health: dict[str, str | None] = {inbox.name: "starting" for inbox in app.settings.inboxes}
        listen = app.settings.http.listen
        self.endpoint = HttpEndpoint(listen, app.metrics, self.problems) if listen else None

    def problems(self) -> list[str]:
        """What keeps the daemon from being healthy: ``/healthz`` answers 503 with these."""
        found = [f"inbox {name}: {problem}" for name, problem in self.health.items() if problem]
        database = self.app.store.healthy()
        return [*found, database] if database else found

    def start(self) -> None:
        tick = self.app.settings.daemon.tick_seconds
        now = self.app.clock()
        self.app.templates.look(now, tell_staff=False)  # the start-up check; the first dispatch mails the team
        self.scheduler.add_job(self._dispatch, "interval", seconds=tick, id="dispatch", next_run_time=now)
        self.scheduler.add_job(
            self._housekeeping, "interval", seconds=HOUSEKEEPING_SECONDS, id="housekeeping", next_run_time=now
        )
        self.scheduler.start()
        if self.endpoint is not None:
            self.endpoint.start()
        for watcher in self.watchers:
            watcher.start()
        log.info("closeloop running", extra={"inboxes": len(self.watchers), "tick_s": tick})

    def shutdown(self) -> None:
        log.info("stopping: finishing the current step")
        for watcher in self.watchers:
            watcher.join(timeout=60)
        self.scheduler.shutdown(wait=True)
        if self.endpoint is not None:
            self.endpoint.stop()
        log.info("stopped")

    def recorded(self, report: IntakeReport) -> None:
        for classification, count in report.classes.items():
            self.app.metrics.received(classification, count)
        self.wake()

    def wake(self) -> None:
        """Dispatch now (after intake recorded mail), or again right after the run in progress."""
        self.wake_pending.set()
        if self.scheduler.running and not self.stop.is_set():
            self.scheduler.modify_job("dispatch", next_run_time=datetime.now(UTC))

    def _dispatch(self) -> None:
        while not self.stop.is_set():
            self.wake_pending.clear()
            try:
                self.app.templates.look(self.app.clock())
                reports = self.app.dispatch_all(stop=self.stop.is_set)
            except Exception:
                log.exception("dispatch failed; will retry on the next tick")
                return
            if (reports and reports[-1].smtp_down) or not self.wake_pending.is_set():
                return

    def _housekeeping(self) -> None:
        try:
            self.app.service.housekeeping(self.app.clock())
            report_quarantine(self.app.store, self.app.settings, self.app.clock())
        except Exception:
            log.exception("housekeeping failed; will retry")

    def _watch(self, inbox: Inbox) -> None:
        """Read the inbox, then wait for news (IDLE) and read again; reconnect with backoff on failure."""
        delay = RECONNECT_FIRST_SECONDS
        while not self.stop.is_set():
            mailbox = mailbox_for(inbox)
            metrics = self.app.metrics
            try:
                mailbox.open()
                self.health[inbox.name] = None
                metrics.inbox_up(inbox.name, True)
                delay = RECONNECT_FIRST_SECONDS
                while not self.stop.is_set():
                    self.app.service.read_inbox(inbox, mailbox, self.app.clock, self.recorded, self.stop.is_set)
                    metrics.polled(inbox.name, self.app.clock())
                    mailbox.wait(wait_seconds(inbox), self.stop)
            except MailboxError as exc:
                metrics.inbox_up(inbox.name, False)
                self.health[inbox.name] = exc.reason
                log.error(
                    "inbox connection lost; reconnecting",
                    extra={"inbox": inbox.name, "error": exc.reason, "retry_in_s": delay},
                )
            except Exception:
                metrics.inbox_up(inbox.name, False)
                self.health[inbox.name] = "intake failed"
                log.exception("intake failed; retrying", extra={"inbox": inbox.name, "retry_in_s": delay})
            finally:
                mailbox.close()
            self.stop.wait(delay)
            delay = min(delay * 2, RECONNECT_MAX_SECONDS)
