"""Loop references and which loop a message belongs to."""

from __future__ import annotations

import pytest

from daemon.domain.model import Address, InboundMessage, LoopState
from daemon.domain.reference import loop_id_for, ref_for, ref_from_plus_tag, refs_in_subject
from daemon.domain.threading import LoopSummary, find_loop

LOOP = LoopSummary(id=5, ref=ref_for(5), customer_email="jane@example.com", state=LoopState.ACKNOWLEDGED)
OTHER = LoopSummary(id=9, ref=ref_for(9), customer_email="joe@example.com", state=LoopState.ACKNOWLEDGED)
STAFF = frozenset({"sam@example.org"})


def message(sender: str = "jane@example.com", **kwargs: object) -> InboundMessage:
    return InboundMessage(fingerprint="f", message_id="new@example.com", sender=Address(email=sender), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("loop_id", [1, 2, 31, 32, 1000, 32**4 - 1, 32**4, 32**5 + 17, 10**9])
def test_reference_round_trips(loop_id: int) -> None:
    ref = ref_for(loop_id)
    assert ref.startswith("CL-") and len(ref) >= 7
    assert loop_id_for(ref) == loop_id
    assert loop_id_for(ref.lower()) == loop_id


def test_references_are_unique_and_not_sequential_looking() -> None:
    refs = [ref_for(i) for i in range(1, 20001)]
    assert len(set(refs)) == len(refs)
    assert refs[0][:5] != refs[1][:5]


@pytest.mark.parametrize("junk", ["", "CL-", "CL-IO01", "CL-12", "hello", "CL-0000"])
def test_junk_is_no_reference(junk: str) -> None:
    assert loop_id_for(junk) is None or ref_for(loop_id_for(junk) or 1) == junk.upper()


def test_references_in_subjects() -> None:
    assert refs_in_subject("Re: Invoice [cl-4680] and [CL-80MN]") == ("CL-4680", "CL-80MN")
    assert refs_in_subject("CL-4680 without brackets") == ()


def test_reference_in_a_plus_tag() -> None:
    assert ref_from_plus_tag("cl-4680") == "CL-4680"
    assert ref_from_plus_tag("unsubscribe") is None
    assert ref_from_plus_tag(None) is None


def test_in_reply_to_wins() -> None:
    msg = message(in_reply_to=("ours@x",), references=("theirs@x",))
    found = find_loop(msg, plus_tag=None, by_message_id={"ours@x": LOOP, "theirs@x": OTHER}, by_ref={}, staff=STAFF)
    assert found == LOOP


def test_newest_reference_wins() -> None:
    msg = message(references=("old@x", "new@x"))
    found = find_loop(msg, plus_tag=None, by_message_id={"old@x": OTHER, "new@x": LOOP}, by_ref={}, staff=STAFF)
    assert found == LOOP


def test_subject_reference_is_the_fallback_for_the_loops_customer() -> None:
    msg = message(subject=f"Re: help [{LOOP.ref}]")
    assert find_loop(msg, plus_tag=None, by_message_id={}, by_ref={LOOP.ref: LOOP}, staff=STAFF) == LOOP


def test_staff_may_use_the_subject_reference() -> None:
    msg = message(sender="sam@example.org", subject=f"Outcome [{LOOP.ref}]")
    assert find_loop(msg, plus_tag=None, by_message_id={}, by_ref={LOOP.ref: LOOP}, staff=STAFF) == LOOP


def test_a_stranger_cannot_write_into_someone_elses_loop_by_reference() -> None:
    msg = message(sender="mallory@example.net", subject=f"Re: [{LOOP.ref}]")
    assert find_loop(msg, plus_tag=None, by_message_id={}, by_ref={LOOP.ref: LOOP}, staff=STAFF) is None


def test_plus_address_reference() -> None:
    msg = message()
    found = find_loop(msg, plus_tag=LOOP.ref.lower(), by_message_id={}, by_ref={LOOP.ref: LOOP}, staff=STAFF)
    assert found == LOOP


def test_no_clue_means_a_new_conversation() -> None:
    assert find_loop(message(), plus_tag=None, by_message_id={}, by_ref={}, staff=STAFF) is None
