"""SQLite write turns: the daemon's threads take the one write lock in the order they asked for it."""

from __future__ import annotations

import signal
import threading
import time
from types import FrameType

import pytest

from daemon.store.repository import WriteTurns


def test_a_thread_that_asks_gets_the_next_turn_even_from_a_thread_taking_them_back_to_back() -> None:
    turns = WriteTurns()
    taken: list[str] = []
    stop = threading.Event()

    def dispatcher() -> None:  # one short transaction after the other, as dispatch runs
        while not stop.is_set():
            with turns.turn():
                taken.append("dispatch")
                time.sleep(0.002)

    thread = threading.Thread(target=dispatcher)
    thread.start()
    time.sleep(0.02)
    asked = len(taken)
    with turns.turn():
        waited_for = len(taken) - asked
    stop.set()
    thread.join()
    assert waited_for <= 2  # the turn in progress, and at most the one it was handing over


def test_a_write_turn_inside_another_on_the_same_thread_is_refused() -> None:
    turns = WriteTurns()
    with turns.turn(), pytest.raises(RuntimeError, match="inside another"), turns.turn():
        pass


def test_a_thread_that_stops_waiting_does_not_hold_up_the_turns_after_it() -> None:
    turns = WriteTurns()
    holding, release = threading.Event(), threading.Event()

    def holder() -> None:
        with turns.turn():
            holding.set()
            release.wait(5)

    thread = threading.Thread(target=holder)
    thread.start()
    holding.wait(5)

    def interrupt(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.05)
        with pytest.raises(KeyboardInterrupt), turns.turn():
            pass  # never reached: interrupted while waiting
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    release.set()
    thread.join()
    got = threading.Event()

    def later() -> None:
        with turns.turn():
            got.set()

    threading.Thread(target=later).start()
    assert got.wait(5)


def test_a_kept_turn_runs_several_transactions_before_a_waiting_thread_gets_its_turn() -> None:
    turns = WriteTurns()
    taken: list[str] = []
    kept = threading.Event()

    def watcher() -> None:
        kept.wait(5)
        with turns.turn():
            taken.append("intake")

    thread = threading.Thread(target=watcher)
    thread.start()
    with turns.keep():
        kept.set()
        deadline = time.monotonic() + 5
        while turns._issued < 2 and time.monotonic() < deadline:  # until the watcher holds a ticket and waits
            time.sleep(0.001)
        for _ in range(3):
            with turns.turn():
                taken.append("dispatch")
    thread.join(5)
    assert taken == ["dispatch", "dispatch", "dispatch", "intake"]


def test_inside_a_kept_turn_transactions_still_cannot_nest() -> None:
    turns = WriteTurns()
    with turns.keep(), turns.turn(), pytest.raises(RuntimeError, match="inside another"), turns.turn():
        pass
    with turns.keep(), pytest.raises(RuntimeError, match="inside another"), turns.keep():
        pass
    with turns.turn(), pytest.raises(RuntimeError, match="inside another"), turns.keep():
        pass
