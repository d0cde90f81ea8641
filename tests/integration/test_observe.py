"""The health and metrics endpoint, over real HTTP on loopback."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from prometheus_client.parser import text_string_to_metric_families

from daemon.observe import HttpEndpoint, Metrics, parse_listen

pytestmark = pytest.mark.integration


class Figures:
    """A stand-in for the database: counts its calls, can fail."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing = False
        self.values = {"touches_due": 4.0, "touches_overdue": 1.0, "loops_open": 12.0, "loops_closed": 30.0}

    def __call__(self) -> dict[str, float]:
        self.calls += 1
        if self.failing:
            raise RuntimeError("database unreachable")
        return self.values


@pytest.fixture
def figures() -> Figures:
    return Figures()


@pytest.fixture
def problems() -> list[str]:
    return []


@pytest.fixture
def metrics(figures: Figures) -> Metrics:
    return Metrics(figures)


@pytest.fixture
def endpoint(metrics: Metrics, problems: list[str]) -> Iterator[HttpEndpoint]:
    server = HttpEndpoint("127.0.0.1:0", metrics, lambda: list(problems))
    server.start()
    yield server
    server.stop()


def get(endpoint: HttpEndpoint, path: str) -> tuple[int, str, str]:
    """Status, content type and body; error statuses are answers too."""
    url = f"http://127.0.0.1:{endpoint.port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.headers["Content-Type"], response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers["Content-Type"], error.read().decode()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_healthz_flips_between_ok_and_the_problems(endpoint: HttpEndpoint, problems: list[str]) -> None:
    assert get(endpoint, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")

    problems += ["inbox support: LOGIN failed", "database unreachable"]
    status, _, body = get(endpoint, "/healthz")
    assert status == 503
    assert body == "inbox support: LOGIN failed\ndatabase unreachable\n"

    problems.clear()
    assert get(endpoint, "/healthz")[0] == 200


def test_a_health_check_that_raises_is_a_503_not_a_crash(metrics: Metrics) -> None:
    def broken() -> list[str]:
        raise RuntimeError("boom")

    server = HttpEndpoint("127.0.0.1:0", metrics, broken)
    server.start()
    try:
        status, _, body = get(server, "/healthz")
    finally:
        server.stop()
    assert status == 503
    assert "RuntimeError: boom" in body


def test_metrics_carry_the_domain_events_with_their_labels(endpoint: HttpEndpoint, metrics: Metrics) -> None:
    metrics.received("customer")
    metrics.received("customer")
    metrics.received("bounce", 3)
    metrics.sent("acknowledgement", latency_seconds=0.3)
    metrics.sent("outcome", latency_seconds=2 * 86400)
    metrics.sent("thank-you")
    metrics.send_failed("check-in", "permanent")
    metrics.send_failed("check-in", "550 5.1.1 <x@example.com>: no such user")
    metrics.inbox_up("support", True)
    metrics.inbox_up("sales", False)
    metrics.polled("support", datetime(2026, 11, 24, 9, 30, tzinfo=UTC))

    status, content_type, body = get(endpoint, "/metrics")

    assert status == 200
    assert content_type.startswith("text/plain; version=")
    found = samples(body)
    assert found["closeloop_messages_received_total", (("classification", "customer"),)] == 2
    assert found["closeloop_messages_received_total", (("classification", "bounce"),)] == 3
    assert found["closeloop_messages_received_total", (("classification", "staff"),)] == 0
    assert found["closeloop_emails_sent_total", (("kind", "acknowledgement"),)] == 1
    assert found["closeloop_emails_sent_total", (("kind", "thank-you"),)] == 1
    assert found["closeloop_send_failures_total", (("kind", "check-in"), ("reason", "permanent"))] == 1
    assert found["closeloop_send_failures_total", (("kind", "check-in"), ("reason", "other"))] == 1
    assert found["closeloop_acknowledgement_seconds_bucket", (("le", "0.25"),)] == 0
    assert found["closeloop_acknowledgement_seconds_bucket", (("le", "0.5"),)] == 1
    assert found["closeloop_acknowledgement_seconds_count", ()] == 1
    assert found["closeloop_outcome_seconds_bucket", (("le", "86400.0"),)] == 0
    assert found["closeloop_outcome_seconds_bucket", (("le", "172800.0"),)] == 1
    assert found["closeloop_outcome_seconds_bucket", (("le", "2.592e+06"),)] == 1
    assert found["closeloop_inbox_up", (("inbox", "support"),)] == 1
    assert found["closeloop_inbox_up", (("inbox", "sales"),)] == 0
    assert found["closeloop_inbox_last_poll_timestamp_seconds", (("inbox", "support"),)] == 1795512600.0


def test_figures_are_read_from_the_database_at_each_scrape(endpoint: HttpEndpoint, figures: Figures) -> None:
    calls = figures.calls

    found = samples(get(endpoint, "/metrics")[2])

    assert figures.calls == calls + 1
    assert found["closeloop_touches_due", ()] == 4
    assert found["closeloop_touches_overdue", ()] == 1
    assert found["closeloop_loops_open", ()] == 12
    assert found["closeloop_loops_closed", ()] == 30
    assert found["closeloop_figures_ok", ()] == 1

    figures.values = {**figures.values, "loops_open": 13.0}
    assert samples(get(endpoint, "/metrics")[2])["closeloop_loops_open", ()] == 13
    assert figures.calls == calls + 2


def test_a_failing_database_read_still_serves_the_other_metrics(endpoint: HttpEndpoint, figures: Figures) -> None:
    figures.failing = True

    status, _, body = get(endpoint, "/metrics")

    assert status == 200
    found = samples(body)
    assert found["closeloop_figures_ok", ()] == 0
    assert ("closeloop_loops_open", ()) not in found
    assert found["closeloop_emails_sent_total", (("kind", "outcome"),)] == 0


def test_registering_the_figures_does_not_read_the_database() -> None:
    figures = Figures()
    Metrics(figures)
    assert figures.calls == 0


def test_each_metrics_object_has_its_own_registry() -> None:
    one, other = Metrics(process=False), Metrics(process=False)
    one.received("customer")
    assert b'closeloop_messages_received_total{classification="customer"} 1.0' in one.exposition()
    assert b'closeloop_messages_received_total{classification="customer"} 0.0' in other.exposition()


def test_anything_else_is_not_found(endpoint: HttpEndpoint) -> None:
    assert get(endpoint, "/")[0] == 404
    assert get(endpoint, "/metrics/extra")[0] == 404
    assert get(endpoint, "/healthz?verbose=1")[0] == 200


def test_stop_releases_the_port(metrics: Metrics) -> None:
    server = HttpEndpoint("127.0.0.1:0", metrics, list)
    server.start()
    port = server.port
    server.stop()
    again = HttpEndpoint(f"127.0.0.1:{port}", metrics, list)
    again.start()
    try:
        assert get(again, "/healthz")[0] == 200
    finally:
        again.stop()
    with pytest.raises(RuntimeError):
        _ = server.port


def test_ipv6_loopback(metrics: Metrics) -> None:
    server = HttpEndpoint("[::1]:0", metrics, list)
    try:
        server.start()
    except OSError:
        pytest.skip("no IPv6 loopback on this machine")
    try:
        with urllib.request.urlopen(f"http://[::1]:{server.port}/healthz", timeout=5) as response:
            assert response.read() == b"ok\n"
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("listen", "expected"),
    [("127.0.0.1:8025", ("127.0.0.1", 8025)), ("[::1]:9", ("::1", 9)), ("0.0.0.0:0", ("0.0.0.0", 0))],
)
def test_listen_addresses(listen: str, expected: tuple[str, int]) -> None:
    assert parse_listen(listen) == expected


@pytest.mark.parametrize("listen", ["8025", "localhost", ":8025", "host:http", "host:70000"])
def test_bad_listen_addresses_say_what_is_expected(listen: str) -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_listen(listen)
