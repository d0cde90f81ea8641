"""Progress: one redrawn bar on a terminal, a few plain lines anywhere else."""

from __future__ import annotations

import io
import itertools

import pytest

from daemon.progress import Progress


class Stream(io.StringIO):
    def __init__(self, *, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_plain_output_writes_a_line_per_tenth_of_the_work_not_per_step() -> None:
    stream, clock = Stream(tty=False), Clock()

    with Progress("importing support", total=5000, stream=stream, clock=clock) as progress:
        for _ in range(5000):
            progress.advance()
        clock.now += 12

    lines = stream.getvalue().splitlines()
    assert lines[0] == "importing support: 0/5000 (0%)"
    assert lines[1] == "importing support: 500/5000 (10%)"
    assert "importing support: 1200/5000 (24%)" not in lines
    assert lines[-2] == "importing support: 4500/5000 (90%)"
    assert lines[-1] == "importing support: 5000/5000 (100%), done in 12s"
    assert len(lines) == 11
    assert "\r" not in stream.getvalue()


def test_plain_output_of_slow_work_writes_a_line_every_ten_seconds() -> None:
    stream, clock = Stream(tty=False), Clock()

    with Progress("importing support", total=5000, stream=stream, clock=clock) as progress:
        for _ in range(30):
            clock.now += 1
            progress.advance(40)

    lines = stream.getvalue().splitlines()
    assert lines == [
        "importing support: 0/5000 (0%)",
        "importing support: 400/5000 (8%)",
        "importing support: 800/5000 (16%)",
        "importing support: 1200/5000 (24%)",
        "importing support: 1200/5000 (24%), done in 30s",
    ]


def test_plain_output_says_where_work_stopped_when_it_fails() -> None:
    stream, clock = Stream(tty=False), Clock()

    def migrate() -> None:
        with Progress("migrating", total=10, stream=stream, clock=clock) as progress:
            progress.advance(3)
            clock.now += 65
            raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        migrate()

    assert stream.getvalue().splitlines()[-1] == "migrating: stopped at 3/10 (30%) after 1m05s"


def test_unknown_totals_show_the_count() -> None:
    stream = Stream(tty=False)

    with Progress("checking templates", stream=stream, clock=Clock()) as progress:
        progress.advance(7)

    assert stream.getvalue().splitlines() == ["checking templates: 0", "checking templates: 7, done in 0s"]


def test_a_terminal_gets_one_bar_redrawn_in_place() -> None:
    stream, clock = Stream(tty=True), Clock()

    with Progress("importing support", total=4, stream=stream, clock=clock) as progress:
        for _ in range(4):
            clock.now += 1
            progress.advance()

    output = stream.getvalue()
    assert output.count("\n") == 1 and output.endswith("\n")
    frames = output.rstrip("\n").split("\r")[1:]
    assert frames[0].startswith("importing support [------------------------------] 0/4   0%")
    assert frames[1].startswith("importing support [########----------------------] 1/4  25%  eta 3s")
    assert frames[-1].rstrip() == "importing support [" + "#" * 30 + "] 4/4 100%"


def test_a_terminal_is_not_redrawn_more_than_ten_times_a_second() -> None:
    stream, clock = Stream(tty=True), Clock()

    with Progress("importing support", total=10_000, stream=stream, clock=clock) as progress:
        for _ in range(9_999):
            progress.advance()
        clock.now += 0.5
        progress.advance()

    assert stream.getvalue().count("\r") == 3  # the start, the last step (all done) and the end: nothing between


def test_a_shorter_frame_blanks_out_the_longer_one_before_it() -> None:
    stream, clock = Stream(tty=True), Clock()

    with Progress("reading", stream=stream, clock=clock) as progress:
        progress.advance(123456)
        clock.now += 1
        progress.advance(1)

    frames = stream.getvalue().rstrip("\n").split("\r")[1:]
    assert all(len(later) >= len(earlier) for earlier, later in itertools.pairwise(frames))


def test_a_broken_stream_never_breaks_the_work() -> None:
    stream = Stream(tty=False)
    with Progress("importing support", total=3, stream=stream, clock=Clock()) as progress:
        stream.close()
        progress.advance(3)
    assert progress.done == 3
