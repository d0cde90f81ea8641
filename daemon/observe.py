"""Metrics and health over HTTP: ``GET /metrics`` (Prometheus text format) and ``GET /healthz``.

Built on the official ``prometheus_client`` with a registry of its own per :class:`Metrics` (never the global
``REGISTRY``), so tests and several apps in one process never share counters. The database figures (touches due,
loops open, …) are not kept in memory: a collector calls ``figures()`` at every scrape, so they are as fresh as
the database and survive restarts. The server is the stdlib's ``ThreadingHTTPServer`` in a daemon thread: two
read-only routes do not need a framework.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import cast

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

from daemon.domain.model import Classification, TouchKind

log = logging.getLogger(__name__)

Figures = Callable[[], Mapping[str, float]]
Health = Callable[[], list[str]]

# From a quick acknowledgement (a fraction of a second after intake) to an outcome weeks later.
MINUTE, HOUR, DAY = 60.0, 3600.0, 86400.0
LATENCY_BUCKETS = (
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    MINUTE, 5 * MINUTE, 15 * MINUTE, 30 * MINUTE,
    HOUR, 2 * HOUR, 4 * HOUR, 8 * HOUR, 12 * HOUR,
    DAY, 2 * DAY, 3 * DAY, 5 * DAY, 7 * DAY, 14 * DAY, 21 * DAY, 30 * DAY,
)  # fmt: skip

# Send failures are counted by class, never by message, so the label stays bounded.
FAILURE_REASONS = ("transient", "permanent", "gave-up", "template", "smtp-down")

# What ``figures()`` may return, and the gauge each key becomes.
FIGURES = {
    "touches_due": "Planned touches whose due time has come (they go out at the next dispatch).",
    "touches_overdue": "Planned touches due for longer than the overdue threshold: dispatch is not keeping up.",
    "loops_open": "Loops not closed yet.",
    "loops_closed": "Loops closed, all time.",
}


class Metrics:
    """closeloop's instruments, named from the domain, in a registry of their own."""

    def __init__(self, figures: Figures | None = None, *, process: bool = True) -> None:
        self.registry = CollectorRegistry()
        if process:
            ProcessCollector(registry=self.registry)
        r = self.registry
        self._received = Counter(
            "closeloop_messages_received",
            "Inbound messages recorded, by classification.",
            ["classification"],
            registry=r,
        )
        self._sent = Counter("closeloop_emails_sent", "Emails sent, by touch kind.", ["kind"], registry=r)
        self._failed = Counter(
            "closeloop_send_failures",
            f"Touches not sent, by kind and reason class ({', '.join(FAILURE_REASONS)}, other).",
            ["kind", "reason"],
            registry=r,
        )
        self._acknowledgement = Histogram(
            "closeloop_acknowledgement_seconds",
            "Time from receiving a customer's message to sending its acknowledgement.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._outcome = Histogram(
            "closeloop_outcome_seconds",
            "Time from receiving a customer's message to sending the outcome.",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self._inbox_up = Gauge(
            "closeloop_inbox_up",
            "1 while the inbox's mailbox is connected and readable, else 0.",
            ["inbox"],
            registry=r,
        )
        self._polled = Gauge(
            "closeloop_inbox_last_poll_timestamp_seconds",
            "When the inbox was last read successfully (unix time).",
            ["inbox"],
            registry=r,
        )
        if figures is not None:
            r.register(_FiguresCollector(figures))
        for classification in Classification:
            self._received.labels(classification=str(classification))
        for kind in TouchKind:
            self._sent.labels(kind=str(kind))

    def received(self, classification: str, count: int = 1) -> None:
        """Inbound messages recorded (``IntakeReport.classes`` has the counts of a batch)."""
        self._received.labels(classification=classification).inc(count)

    def sent(self, kind: str, latency_seconds: float | None = None) -> None:
        """One email sent; ``latency_seconds`` (since the customer's message) feeds the kind's histogram."""
        self._sent.labels(kind=kind).inc()
        if latency_seconds is None:
            return
        if kind == TouchKind.ACKNOWLEDGEMENT:
            self._acknowledgement.observe(max(latency_seconds, 0.0))
        elif kind == TouchKind.OUTCOME:
            self._outcome.observe(max(latency_seconds, 0.0))

    def send_failed(self, kind: str, reason: str) -> None:
        """A touch not sent; ``reason`` is one of :data:`FAILURE_REASONS` (anything else counts as ``other``)."""
        self._failed.labels(kind=kind, reason=reason if reason in FAILURE_REASONS else "other").inc()

    def inbox_up(self, inbox: str, up: bool) -> None:
        self._inbox_up.labels(inbox=inbox).set(1 if up else 0)

    def polled(self, inbox: str, at: datetime) -> None:
        """The inbox was read successfully at ``at`` (aware)."""
        self._polled.labels(inbox=inbox).set(at.timestamp())

    def exposition(self) -> bytes:
        """Everything in the Prometheus text format."""
        return generate_latest(self.registry)


class _FiguresCollector:
    """Gauges read from the database at scrape time; a failing read is reported, not raised."""

    def __init__(self, figures: Figures) -> None:
        self.figures = figures

    def describe(self) -> Iterable[Metric]:
        """Names only, so registering does not query the database."""
        yield from self._families()
        yield GaugeMetricFamily("closeloop_figures_ok", "")

    def collect(self) -> Iterable[Metric]:
        try:
            values = dict(self.figures())
        except Exception:
            log.exception("could not read the figures for /metrics")
            values = None
        for family in self._families():
            key = family.name.removeprefix("closeloop_")
            if values is not None and key in values:
                family.add_metric([], float(values[key]))
                yield family
        ok = GaugeMetricFamily("closeloop_figures_ok", "1 when the database figures were read at this scrape.")
        ok.add_metric([], 0.0 if values is None else 1.0)
        yield ok

    def _families(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(f"closeloop_{key}", text) for key, text in FIGURES.items()]


class HttpEndpoint:
    """``/healthz`` and ``/metrics`` on ``listen`` (``host:port``, ``[v6]:port``; port 0 picks a free one)."""

    def __init__(self, listen: str, metrics: Metrics, health: Health) -> None:
        self.host, self._port = parse_listen(listen)
        self.metrics, self.health = metrics, health
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for).

        :raises RuntimeError: before :meth:`start`.
        """
        if self._server is None:
            raise RuntimeError("the HTTP endpoint is not started")
        return int(self._server.server_address[1])

    def start(self) -> None:
        """Bind and serve in a daemon thread.

        :raises OSError: when the address cannot be bound (in use, not local).
        """
        if self._server is not None:
            return
        server_class = _Server6 if ":" in self.host else _Server
        self._server = server_class((self.host, self._port), _Handler)
        self._server.endpoint = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="http-endpoint", daemon=True)
        self._thread.start()
        log.info("health and metrics endpoint listening", extra={"host": self.host, "port": self.port})

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def problems(self) -> list[str]:
        try:
            return list(self.health())
        except Exception as exc:
            log.exception("the health check failed")
            return [f"the health check itself failed: {type(exc).__name__}: {exc}"]


def parse_listen(listen: str) -> tuple[str, int]:
    """``"127.0.0.1:8025"`` → ``("127.0.0.1", 8025)``; ``"[::1]:8025"`` → ``("::1", 8025)``.

    :raises ValueError: naming the expected shape.
    """
    host, sep, port = listen.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError(f"expected HOST:PORT such as 127.0.0.1:8025 or [::1]:8025 (got {listen!r})")
    return host, int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    endpoint: HttpEndpoint


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server_version = "closeloop"
    sys_version = ""
    timeout = 10  # a client that stalls mid-request does not hold a thread for long

    def do_GET(self) -> None:
        endpoint = cast(_Server, self.server).endpoint
        path = self.path.partition("?")[0]
        if path == "/healthz":
            problems = endpoint.problems()
            status = HTTPStatus.SERVICE_UNAVAILABLE if problems else HTTPStatus.OK
            self._reply(status, "text/plain; charset=utf-8", ("\n".join(problems) or "ok").encode() + b"\n")
        elif path == "/metrics":
            self._reply(HTTPStatus.OK, CONTENT_TYPE_LATEST, endpoint.metrics.exposition())
        else:
            self._reply(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found: try /healthz or /metrics\n")

    def _reply(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("http: " + format, *args)
