"""The benchmark (``bench/``) runs end to end with tiny numbers, so it cannot rot unnoticed.

It asserts what the benchmark found correct — every customer acknowledged exactly once, every section
measured on both databases, the JSON written — and never how fast anything was.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TINY = ["--n", "12", "--rate", "4", "--seconds", "1.5", "--idle", "0.5"]
TINY += ["--touches", "40", "--loops", "300", "--due", "10", "--big", "25"]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from bench import run

    written = tmp_path_factory.mktemp("bench") / "results.json"
    code = run.main([*TINY, "--json", str(written)])
    found: dict[str, object] = json.loads(written.read_text())
    assert code == 0, found["problems"]
    return found


def test_every_section_is_measured_on_both_databases(results: dict[str, dict[str, object]]) -> None:
    for section in ("startup", "once", "latency", "dispatch", "memory"):
        assert set(results[section]) == {"sqlite", "postgresql"}, section
    assert {"cpu", "cores"} <= set(results["machine"])
    assert {"python", "sqlalchemy", "postgresql", "sqlite", "dovecot"} <= set(results["versions"])
    assert results["floor"]["messages"] == 12


def test_every_customer_is_acknowledged_exactly_once(results: dict[str, dict[str, dict[str, object]]]) -> None:
    assert results["problems"] == []
    for backend in ("sqlite", "postgresql"):
        once = results["once"][backend]
        assert once["sent"] == {"acknowledgement": 12, "staff-notification": 12}
        assert once["problems"] == []
        assert results["latency"][backend]["messages"] == 6
        assert results["latency"][backend]["problems"] == []
        assert results["memory"][backend]["problems"] == []


def test_dispatch_sends_every_due_touch_once(results: dict[str, dict[str, dict[str, dict[str, object]]]]) -> None:
    for backend in ("sqlite", "postgresql"):
        dispatch = results["dispatch"][backend]
        assert dispatch["pass"]["distinct_recipients"] == 40
        assert dispatch["pass_large"]["touches"] == 10
        assert dispatch["claim"]["plans"] and dispatch["claim_large"]["plans"]
