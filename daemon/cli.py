"""The command line. Nothing else in closeloop parses arguments.

Exit codes: 0 done, 1 runtime failure, 2 bad configuration or usage (the message names the file, key and problem).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from daemon import __version__
from daemon.config import CONFIG_ENV, ConfigError, Settings
from daemon.domain.loop import IllegalTransition
from daemon.domain.model import LoopState, TouchKind
from daemon.logs import configure
from daemon.store.repository import LoopNotFound

log = logging.getLogger("daemon.cli")

OK, FAILED, USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments: exit 2 with the message."""


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="closeloop", description="Close the loop with every customer who writes to your support inbox."
    )
    top.add_argument("--version", action="version", version=f"closeloop {__version__}")
    top.add_argument("--config", type=Path, help=f"the TOML config file (default: ${CONFIG_ENV})")
    top.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="default: [logging] level")
    top.add_argument("--log-format", choices=["auto", "human", "json"], help="default: [logging] format")
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    commands.add_parser("run", help="the daemon: watch every inbox and keep every loop's promises")
    commands.add_parser("once", help="one intake pass over every inbox and one dispatch, then exit (cron)")
    commands.add_parser("check", help="check the configuration, the database and the templates")
    commands.add_parser("migrate", help="apply database migrations (run also happens at every start)")

    listing = commands.add_parser("loops", help="list loops")
    listing.add_argument("--state", choices=[str(s) for s in LoopState])
    listing.add_argument("--json", action="store_true", help="machine-readable output")

    show = commands.add_parser("show", help="one loop's timeline: every message and touch")
    show.add_argument("ref")
    show.add_argument("--json", action="store_true")

    outcome = commands.add_parser("outcome", help="record what came of a loop; the customer is told")
    outcome.add_argument("ref")
    source = outcome.add_mutually_exclusive_group(required=True)
    source.add_argument("--text")
    source.add_argument("--file", type=Path, help="read the outcome from a file ('-' for standard input)")

    close = commands.add_parser("close", help="close a loop; its pending touches are cancelled")
    close.add_argument("ref")
    close.add_argument("--reason", default="closed by staff")

    optout = commands.add_parser("optout", help="record that a customer wants no more automated email")
    optout.add_argument("email")

    stats = commands.add_parser("stats", help="weekly figures: loops, response times, promises kept, check-in replies")
    stats.add_argument("--weeks", type=int, default=8)
    stats.add_argument("--json", action="store_true")

    templates = commands.add_parser("templates", help="work with the templates staff edit")
    templates_commands = templates.add_subparsers(dest="templates_command", required=True, metavar="ACTION")
    templates_commands.add_parser("check", help="render every template against samples and real loops")

    preview = commands.add_parser("preview", help="print the subject and text of a touch, as a customer would get it")
    preview.add_argument("kind", choices=[str(kind) for kind in TouchKind])
    preview.add_argument("--loop", help="render for this loop instead of sample data")
    preview.add_argument("--html", type=Path, help="also write the HTML part to this file")
    preview.add_argument("--language", help="the language to render in (default: the loop's, else the default)")

    demo = commands.add_parser("demo", help="watch three months of closeloop in a few seconds, on embedded defaults")
    demo.add_argument("--dir", type=Path, default=Path("closeloop-demo"), help="its folder (default: %(default)s)")
    demo.add_argument("--fresh", action="store_true", help="replace an earlier demo in --dir")
    return top


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    environ = os.environ if environ is None else environ
    args = parser().parse_args(argv)
    configure(args.log_level or "INFO", args.log_format or "auto")
    try:
        return COMMANDS[args.command](args, environ)
    except (ConfigError, UsageError) as exc:
        print(f"closeloop: {exc}", file=sys.stderr)
        return USAGE
    except LoopNotFound as exc:
        print(f"closeloop: {exc}", file=sys.stderr)
        return FAILED
    except IllegalTransition as exc:
        print(f"closeloop: {exc}", file=sys.stderr)
        return FAILED
    except KeyboardInterrupt:
        return FAILED


def settings_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Settings:
    path = args.config or environ.get(CONFIG_ENV)
    if not path:
        raise UsageError(
            f"no configuration: pass --config PATH or set {CONFIG_ENV} (see config/closeloop.example.toml)"
        )
    return Settings.load(path, environ)


def app_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Any:
    from daemon.app import App

    return App(settings_from(args, environ))


def utc_now() -> Any:
    from daemon.app import utc_now as now

    return now()


# commands ----------------------------------------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    app = app_from(args, environ)
    stop = threading.Event()

    def finish(signum: int, _frame: FrameType | None) -> None:
        log.info("signal received; stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, finish)
    signal.signal(signal.SIGINT, finish)
    try:
        app.run(stop)
    finally:
        app.close()
    return OK


def cmd_once(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    app = app_from(args, environ)
    try:
        report = app.once()
    finally:
        app.close()
    recorded = sum(p.recorded for p in report.passes)
    opened = sum(len(p.opened) for p in report.passes)
    print(f"recorded {recorded} messages, opened {opened} loops, sent {report.sent} emails")
    if report.quarantine_reported:
        print(f"quarantined, not answered: {report.quarantine_reported} (the staff were told by email)")
    for failure in report.failures:
        print(f"failed: {failure}", file=sys.stderr)
    smtp_down = any(d.smtp_down for d in report.dispatched)
    return FAILED if report.failures or smtp_down else OK


def cmd_check(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from daemon.app import mailbox_for
    from daemon.mail.imap import MailboxError
    from daemon.mail.smtp import SendError, SmtpSender

    settings = settings_from(args, environ)
    print(f"configuration: ok ({settings.source})")
    app = app_from(args, environ)
    failures = 0
    try:
        problem = app.store.healthy()
        print(f"database: {problem or 'ok'}")
        failures += problem is not None
        for inbox in settings.inboxes:
            mailbox = mailbox_for(inbox)
            try:
                mailbox.open()
                print(f"inbox {inbox.name}: ok")
            except MailboxError as exc:
                print(f"inbox {inbox.name}: {exc.reason}")
                failures += 1
            finally:
                mailbox.close()
        try:
            SmtpSender(settings.smtp).check()
            print("smtp: ok")
        except SendError as exc:
            print(f"smtp: {exc}")
            failures += 1
        problems = app.service.check_templates(utc_now())
    finally:
        app.close()
    for template_problem in problems:
        print(template_problem)
    print(f"templates: {'ok' if not problems else f'{len(problems)} problems'}")
    return FAILED if failures or problems else OK


def cmd_migrate(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    app_from(args, environ).close()
    print("database: up to date")
    return OK


def cmd_loops(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    app = app_from(args, environ)
    try:
        loops = app.service.loops(LoopState(args.state) if args.state else None)
    finally:
        app.close()
    if args.json:
        print(json.dumps(loops, indent=2, ensure_ascii=False))
        return OK
    for loop in loops:
        customer = loop["customer"]["name"] or loop["customer"]["email"]
        print(f"{loop['ref']:<10} {loop['state']:<13} {customer:<28.28} {loop['subject']:.60}")
    return OK


def cmd_show(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    app = app_from(args, environ)
    try:
        timeline = app.service.timeline(args.ref.upper())
    finally:
        app.close()
    if args.json:
        print(json.dumps(timeline, indent=2, ensure_ascii=False))
        return OK
    customer = timeline["customer"]
    print(f"{timeline['ref']}  {timeline['subject']}")
    print(f"  customer: {customer['name']} <{customer['email']}>   owner: {timeline['owner']}")
    print(f"  state: {timeline['state']}   promised by: {timeline['promised_by'] or '-'}")
    if timeline["outcome"]:
        print(f"  outcome: {timeline['outcome']}")
    for event in timeline["events"]:
        detail = event.get("kind") or event.get("classification")
        who = event.get("to") or event.get("from")
        reason = f"  ({event['reason']})" if event.get("reason") else ""
        print(f"  {event['at'][:19]}  {event['what']:<16} {detail:<18} {who}{reason}")
    return OK


def cmd_outcome(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    text = args.text if args.text is not None else _read_text(args.file)
    if not text.strip():
        raise UsageError("the outcome is empty; write what was done or learned")
    app = app_from(args, environ)
    try:
        loop = app.service.record_outcome(args.ref.upper(), text, utc_now())
    finally:
        app.close()
    print(f"{loop.ref}: outcome recorded; the customer is told in business hours")
    return OK


def cmd_close(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    app = app_from(args, environ)
    try:
        loop = app.service.close(args.ref.upper(), args.reason, utc_now())
    finally:
        app.close()
    print(f"{loop.ref}: closed ({args.reason})")
    return OK


def cmd_optout(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    app = app_from(args, environ)
    try:
        known = app.service.opt_out(args.email, utc_now(), via="closeloop optout")
    finally:
        app.close()
    if not known:
        print(f"closeloop: no customer {args.email}", file=sys.stderr)
        return FAILED
    print(f"{args.email}: opted out; no more automated email")
    return OK


def cmd_stats(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    if args.weeks < 1:
        raise UsageError("--weeks must be at least 1")
    from daemon.store.stats import format_table, to_json, weekly_stats

    app = app_from(args, environ)
    try:
        with app.store.reading() as tx:
            weeks = weekly_stats(tx.db, weeks=args.weeks, now=utc_now())
    finally:
        app.close()
    if args.json:
        print(json.dumps(to_json(weeks), indent=2))
    else:
        print(format_table(weeks), end="")
    return OK


def cmd_templates(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    app = app_from(args, environ)
    try:
        problems = app.service.check_templates(utc_now())
    finally:
        app.close()
    for problem in problems:
        print(problem)
    print(f"templates: {'ok' if not problems else f'{len(problems)} problems'}", file=sys.stderr)
    return FAILED if problems else OK


def cmd_preview(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from daemon.render import TemplateError

    app = app_from(args, environ)
    try:
        rendered = app.service.preview(
            args.kind, utc_now(), ref=args.loop and args.loop.upper(), language=args.language
        )
    except TemplateError as exc:
        print(exc, file=sys.stderr)
        return FAILED
    finally:
        app.close()
    print(f"Subject: {rendered.subject}\n")
    print(rendered.text)
    print(f"-- rendered from {rendered.template} (version {rendered.version})", file=sys.stderr)
    if args.html is not None:
        if rendered.html is None:
            print("closeloop: this touch has no HTML template", file=sys.stderr)
            return FAILED
        args.html.write_text(rendered.html, encoding="utf-8")
        print(f"-- HTML written to {args.html}", file=sys.stderr)
    return OK


def cmd_demo(args: argparse.Namespace, environ: Mapping[str, str]) -> int:
    from daemon.demo import DemoFailed, WorkspaceError, run_demo

    configure(args.log_level or "WARNING", args.log_format or "auto")  # the timeline is the demo's output
    try:
        run_demo(args.dir, fresh=args.fresh, out=sys.stdout, environ=environ)
    except WorkspaceError as exc:
        raise UsageError(str(exc)) from exc
    except DemoFailed as exc:
        print(f"closeloop demo: {exc}", file=sys.stderr)
        return FAILED
    return OK


def _read_text(path: Path) -> str:
    if str(path) == "-":
        return sys.stdin.read()
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror}") from exc


COMMANDS: dict[str, Callable[[argparse.Namespace, Mapping[str, str]], int]] = {
    "run": cmd_run,
    "once": cmd_once,
    "check": cmd_check,
    "migrate": cmd_migrate,
    "loops": cmd_loops,
    "show": cmd_show,
    "outcome": cmd_outcome,
    "close": cmd_close,
    "optout": cmd_optout,
    "stats": cmd_stats,
    "templates": cmd_templates,
    "preview": cmd_preview,
    "demo": cmd_demo,
}
