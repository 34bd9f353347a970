"""Answers to our requests left to the thread that waits for them.

On an association that Pharos opens, pynetdicom 3 runs a reactor thread that takes incoming
messages off the DIMSE queue (every millisecond) to serve the peer's requests, while another
thread sends our request and waits on the same queue for its answers. The two take turns by a
handshake with a gap: the reactor can pass its checkpoint just before the sender closes it,
then take the sender's answer and drop it as an "unexpected service message". The sender then
waits out the DIMSE timeout, and on a reused idle association Pharos sends the request again,
as if the association had gone stale (most likely what made a C-MOVE twice in one test run,
under load; `tests/dimse/test_awaited_answers.py` widens the gap to show it).

`keep_answers_for_the_sender(assoc)` makes the reactor's reads (the non-blocking ones) take
nothing while a send is in progress (the checkpoint closed), deciding under the queue's lock:
an answer, which can only be queued after its request was sent, hence after the checkpoint
closed, is then always left to the sender. With the checkpoint open they take what comes, as
before, so that an answer nobody waits for does not reach the next request.
"""

from __future__ import annotations

import logging
import queue
import threading
from typing import Any

from pynetdicom.association import Association

log = logging.getLogger(__name__)


def keep_answers_for_the_sender(assoc: Association) -> bool:
    """Make `assoc`'s reactor leave the answers awaited by a sender; whether it was done
    (False: pynetdicom's internals are not those expected)."""
    dimse: Any = assoc.dimse
    checkpoint = getattr(assoc, "_reactor_checkpoint", None)
    messages = getattr(dimse, "msg_queue", None)
    if (
        not isinstance(checkpoint, threading.Event)
        or not isinstance(messages, queue.Queue)
        or not hasattr(dimse, "get_msg")
    ):
        log.debug("pynetdicom internals not as expected: answers left to its reactor")
        return False
    get_msg = dimse.get_msg

    def get_msg_leaving_answers(block: bool = False) -> Any:
        if block:  # a sender's own read
            return get_msg(block=True)
        with messages.mutex:
            if not checkpoint.is_set() or not messages.queue:
                return None, None  # a sender is at work: what comes is for it
            item = messages.queue.popleft()
            messages.not_full.notify()
        return item

    setattr(dimse, "get_msg", get_msg_leaving_answers)  # noqa: B010 - this association only
    return True
