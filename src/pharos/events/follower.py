"""Follows the change log (the outbox of DESIGN.md) and hands batches of changes to sinks.

One thread per sink, so that a sink that is down (retried with backoff) never delays the
others. Each sink has a durable cursor in the index (`index/event_cursors.py`): the last
change it published. A round claims the sink's lease, reads the changes after the cursor,
publishes them, and only then moves the cursor: a crash or a failing `publish` means the same
changes are published again (at least once, never lost), and a change is published only once
its transaction committed (it is read from the log). With several processes on one
PostgreSQL index, the lease (compare-and-set on the cursor row) makes one process at a time
publish for a sink; another takes over when the lease expires (or at once after a clean stop).

Change numbers are allocated before commit on PostgreSQL, so change 11 may be visible before
change 10 commits: a round stops at such a gap until the transactions that could fill it have
ended (`horizon_passed`), then steps over it if it is still empty (a rolled-back transaction).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, Protocol

from pharos.model.changes import Change
from pharos.plugins.types import EventSink

log = logging.getLogger(__name__)

BATCH = 500
LEASE = 30.0  # seconds a process holds a sink after its last renewal


class FollowedIndex(Protocol):
    """What the follower needs of the index (`SqlIndex` has it all)."""

    def changes(self, since: int, limit: int) -> tuple[list[Change], bool]: ...

    def claim_event_cursor(self, sink: str, owner: str, now: float, lease: float) -> int | None: ...

    def advance_event_cursor(
        self, sink: str, owner: str, seq: int, now: float, lease: float
    ) -> bool: ...

    def release_event_cursor(self, sink: str, owner: str) -> None: ...

    def write_horizon(self) -> Any: ...

    def horizon_passed(self, horizon: Any) -> bool: ...


def process_owner() -> str:
    """A name for this process's leases, unique even for two processes of one host."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class _Gap:
    first: int  # the first missing change number
    horizon: Any  # write_horizon() just after it was seen


class SinkFollower:
    """One sink's follower: `step` publishes one batch; `run` loops until stopped."""

    def __init__(
        self,
        index: FollowedIndex,
        sink: EventSink,
        owner: str,
        *,
        period: float = 0.25,
        lease: float = LEASE,
        # Capped well below the lease: the process retrying a sink that is down keeps it.
        backoff: tuple[float, float] = (0.5, 10.0),
        batch: int = BATCH,
    ):
        self.index = index
        self.sink = sink
        self.name = sink.name
        self.owner = owner
        self.period = period
        self.lease = lease
        self.backoff = backoff
        self.batch = batch
        self._gap: _Gap | None = None

    def step(self) -> int:
        """Publish the next batch if this process holds the sink; how many changes it
        published. Raises what `publish` raised (the cursor then stays where it was)."""
        cursor = self.index.claim_event_cursor(self.name, self.owner, time.time(), self.lease)
        if cursor is None:
            return 0  # another process publishes for this sink
        # Before reading: a gap still empty in a read made after this is final.
        gap_final = self._gap is not None and self.index.horizon_passed(self._gap.horizon)
        rows, _ = self.index.changes(cursor, self.batch)
        if not rows:
            return 0
        ready: list[Change] = []
        expected = cursor + 1
        for change in rows:
            if change.seq != expected and not self._step_over(expected, change.seq, gap_final):
                break
            ready.append(change)
            expected = change.seq + 1
        if not ready:
            return 0
        if self._gap is not None and ready[-1].seq >= self._gap.first:
            self._gap = None  # it filled: no more asking whether it is final
        self.sink.publish([change.to_json() for change in ready])
        if not self.index.advance_event_cursor(
            self.name, self.owner, ready[-1].seq, time.time(), self.lease
        ):
            log.warning(
                "Event sink %s: the lease passed to another process during a publish; "
                "changes up to %d may be published twice",
                self.name,
                ready[-1].seq,
            )
        return len(ready)

    def _step_over(self, first: int, next_seq: int, gap_final: bool) -> bool:
        """Whether the changes first..next_seq-1, not in the log, can be passed over."""
        if self._gap is not None and self._gap.first == first:
            if not gap_final:
                return False
            self._gap = None
            log.debug("Event sink %s: changes %d-%d never committed", self.name, first, next_seq)
            return True
        horizon = self.index.write_horizon()
        if horizon is None:  # changes become visible in number order: the gap is final
            return True
        self._gap = _Gap(first, horizon)
        return False

    def run(self, stop: threading.Event) -> None:
        failures = 0
        while not stop.is_set():
            try:
                published = self.step()
            except Exception:
                failures += 1
                delay = min(self.backoff[0] * 2 ** (failures - 1), self.backoff[1])
                log.exception(
                    "Event sink %s failed (attempt %d); retrying in %.1f s",
                    self.name,
                    failures,
                    delay,
                )
                stop.wait(delay)
                continue
            if failures:
                log.warning("Event sink %s publishes again", self.name)
                failures = 0
            if not published:
                stop.wait(self.period)


class EventFollower:
    """The followers of every sink, started and stopped with the server."""

    def __init__(
        self,
        index: FollowedIndex,
        sinks: list[EventSink],
        owner: str | None = None,
        **options: Any,
    ):
        self.index = index
        self.owner = owner or process_owner()
        self.followers: list[SinkFollower] = []
        names: set[str] = set()
        for sink in sinks:
            if sink.name in names:
                log.error("Event sink %s ignored: another sink has that name", sink.name)
                continue
            names.add(sink.name)
            self.followers.append(SinkFollower(index, sink, self.owner, **options))
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Claim every sink once now (a new sink's cursor starts at the last change, so the
        changes made from here on are all published), then follow in the background."""
        self._stop.clear()
        for follower in self.followers:
            try:
                follower.index.claim_event_cursor(
                    follower.name, self.owner, time.time(), follower.lease
                )
            except ValueError as exc:  # a name that cannot key a cursor
                log.error("Event sink %s ignored: %s", follower.name, exc)
                continue
            thread = threading.Thread(
                target=follower.run,
                args=(self._stop,),
                name=f"pharos-events-{follower.name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        threads, self._threads = self._threads, []
        for thread in threads:
            thread.join(timeout)
        for follower in self.followers:
            try:
                self.index.release_event_cursor(follower.name, self.owner)
            except Exception:
                log.exception("Cannot release the lease of event sink %s", follower.name)
