"""Answers left to the sender (`pharos.dimse.awaited_answers`), on real loopback associations
from pynetdicom's requestor. Its reactor is made to linger just after passing its checkpoint,
and the sender just after sending, which opens wide the gap in which the reactor used to take
the sender's answer: without the change, the first C-ECHO below waits out the DIMSE timeout
(tried)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace
from typing import Any

from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_ECHO

from pharos.dimse.awaited_answers import keep_answers_for_the_sender
from tests.dimse.loopback import WAIT, Scp, associate

LINGER = 0.02  # seconds the reactor stays between its checkpoint and its read


class _LingeringCheckpoint(threading.Event):
    """A reactor checkpoint that holds the reactor a while once passed: pynetdicom's sender
    closes it meanwhile, sends, and its answer arrives before the reactor reads."""

    def wait(self, timeout: float | None = None) -> bool:
        passed = super().wait(timeout)
        time.sleep(LINGER)
        return passed


def _lingering(assoc: Association) -> Association:
    checkpoint = _LingeringCheckpoint()
    checkpoint.set()
    assoc._reactor_checkpoint = checkpoint
    dimse: Any = assoc.dimse
    send_msg = dimse.send_msg

    def send_then_linger(primitive: Any, context_id: int) -> None:
        send_msg(primitive, context_id)
        time.sleep(2 * LINGER)  # the answer arrives meanwhile, and the reactor reads

    dimse.send_msg = send_then_linger
    return assoc


def test_the_answers_reach_the_sender(scp: Scp) -> None:
    assoc = _lingering(associate(scp))
    assoc.dimse_timeout = 3.0  # a taken answer would fail the echo after this
    try:
        assert keep_answers_for_the_sender(assoc)
        for _ in range(10):
            start = time.monotonic()
            answer = assoc.send_c_echo()
            assert answer.Status == 0x0000
            assert time.monotonic() - start < 2.0
    finally:
        assoc.release()


def test_an_answer_nobody_waits_for_is_not_given_to_the_next_request(scp: Scp) -> None:
    assoc = associate(scp)
    try:
        assert keep_answers_for_the_sender(assoc)
        stale = C_ECHO()
        stale.MessageIDBeingRespondedTo = 999
        stale.Status = 0x0110
        assoc.dimse.msg_queue.put((1, stale))
        deadline = time.monotonic() + WAIT
        while not assoc.dimse.msg_queue.empty():  # the reactor takes it (and drops it)
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert assoc.send_c_echo().Status == 0x0000
    finally:
        assoc.release()


def test_the_end_of_the_association_reaches_the_sender(scp: Scp) -> None:
    """While a send is in progress, the empty item queued when the association ends stays
    for the sender, which then returns at once instead of after the DIMSE timeout."""
    assoc = associate(scp)
    try:
        assert keep_answers_for_the_sender(assoc)
        assoc._reactor_checkpoint.clear()  # as a sender does before sending
        assoc.dimse.msg_queue.put((None, None))
        assert assoc.dimse.get_msg(block=False) == (None, None)  # the reactor's read
        assert assoc.dimse.msg_queue.qsize() == 1
        assert assoc.dimse.get_msg(block=True) == (None, None)  # the sender's
    finally:
        assoc._reactor_checkpoint.set()
        assoc.release()


def test_other_pynetdicom_internals_are_left_alone() -> None:
    def get_msg(block: bool = False) -> Any:
        return None, None

    dimse = SimpleNamespace(msg_queue=[], get_msg=get_msg)
    assoc: Any = SimpleNamespace(dimse=dimse, _reactor_checkpoint=threading.Event())
    assert not keep_answers_for_the_sender(assoc)
    assert dimse.get_msg is get_msg
