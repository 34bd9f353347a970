"""The durable cursors of the event sinks in the SQL index: `SqlIndex` inherits these.

Each sink's cursor is one row of `properties` (name `EventCursor:<sink>`, no schema change):
JSON `{"Seq": last published change, "Owner": process, "LeaseUntil": epoch seconds}`. A process
publishes for a sink only while it holds the lease; the lease is taken, renewed, moved forward
and released by compare-and-set on the whole row value (UPDATE ... WHERE value = <what was
read>), which is atomic on SQLite and on PostgreSQL alike, so processes sharing one
PostgreSQL index never publish the same change concurrently.

PostgreSQL hands out change numbers before commit, so a change may become visible after a
later one: `write_horizon` / `horizon_passed` let the follower tell a gap that may still fill
(a transaction in progress) from one that never will (a rolled-back transaction).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, func, select, text

from pharos.index.schema import changes, properties
from pharos.index.writes import insert_for

T = TypeVar("T")

_PREFIX = "EventCursor:"
# properties.name is String(64).
MAX_SINK_NAME = 64 - len(_PREFIX)


@dataclass(frozen=True, slots=True)
class CursorState:
    seq: int
    owner: str
    lease_until: float

    def dump(self) -> str:
        return json.dumps({"Seq": self.seq, "Owner": self.owner, "LeaseUntil": self.lease_until})

    @staticmethod
    def load(value: str) -> CursorState:
        data = json.loads(value)
        return CursorState(int(data["Seq"]), str(data["Owner"]), float(data["LeaseUntil"]))


def cursor_key(sink: str) -> str:
    if not sink or len(sink) > MAX_SINK_NAME:
        raise ValueError(f"An event sink name has 1 to {MAX_SINK_NAME} characters: {sink!r}")
    return _PREFIX + sink


def reset_event_cursors(conn: Connection) -> None:
    """The change log was cleared (DELETE /changes): on SQLite, which then numbers changes
    from 1 again, every sink follows the new log from its start (PostgreSQL's sequence goes
    on: the cursors stay valid). Called in the clearing transaction."""
    if conn.dialect.name == "postgresql":
        return
    rows = conn.execute(
        select(properties.c.name, properties.c.value).where(properties.c.name.startswith(_PREFIX))
    )
    for name, value in list(rows):
        state = CursorState.load(value)
        reset = CursorState(0, state.owner, state.lease_until)
        conn.execute(
            properties.update().where(properties.c.name == name).values(value=reset.dump())
        )


class EventCursorsMixin:
    if TYPE_CHECKING:
        _dialect: str

        def _read(self, work: Callable[[Connection], T]) -> T: ...

        def _write(self, work: Callable[[Connection], T]) -> T: ...

    def event_cursor(self, sink: str) -> CursorState | None:
        key = cursor_key(sink)
        query = select(properties.c.value).where(properties.c.name == key)
        value = self._read(lambda conn: conn.execute(query).scalar())
        return None if value is None else CursorState.load(value)

    def claim_event_cursor(self, sink: str, owner: str, now: float, lease: float) -> int | None:
        """Take or renew the sink's lease for `owner`; the cursor if held, None if another
        process holds it. A new sink starts at the last change (the log may be long: a sink
        added later publishes from then on). Renews only past half of the lease, so that an
        idle follower reads without writing."""
        key = cursor_key(sink)
        current = self.event_cursor(sink)
        if current is None:

            def create(conn: Connection) -> int | None:
                last = conn.execute(select(func.max(changes.c.seq))).scalar() or 0
                state = CursorState(int(last), owner, now + lease)
                statement = (
                    insert_for(self._dialect, properties)
                    .values(name=key, value=state.dump())
                    .on_conflict_do_nothing(index_elements=[properties.c.name])
                )
                created = conn.execute(statement).rowcount == 1
                return state.seq if created else None

            return self._write(create)
        if current.owner != owner and current.lease_until > now:
            return None
        if current.owner == owner and current.lease_until - now > lease / 2:
            return current.seq
        renewed = CursorState(current.seq, owner, now + lease)
        return current.seq if self._swap(key, current, renewed) else None

    def advance_event_cursor(
        self, sink: str, owner: str, seq: int, now: float, lease: float
    ) -> bool:
        """Move the cursor to `seq` (and renew the lease) if `owner` still holds the lease;
        False if it lost it meanwhile (then another process publishes from the stored cursor)."""
        key = cursor_key(sink)
        current = self.event_cursor(sink)
        if current is None or current.owner != owner:
            return False
        return self._swap(key, current, CursorState(seq, owner, now + lease))

    def release_event_cursor(self, sink: str, owner: str) -> None:
        """Give the lease up (at shutdown) so that another process takes over at once."""
        key = cursor_key(sink)
        current = self.event_cursor(sink)
        if current is not None and current.owner == owner:
            self._swap(key, current, CursorState(current.seq, owner, 0.0))

    def _swap(self, key: str, old: CursorState, new: CursorState) -> bool:
        statement = (
            properties.update()
            .where(properties.c.name == key, properties.c.value == old.dump())
            .values(value=new.dump())
        )
        return bool(self._write(lambda conn: conn.execute(statement).rowcount == 1))

    def write_horizon(self) -> Any:
        """An opaque mark such that every transaction that could still commit a change numbered
        below the changes visible now has started before it; None when changes always become
        visible in number order (SQLite: one writer)."""
        if self._dialect != "postgresql":
            return None
        # The txid_* forms (64-bit, with epoch) exist on every PostgreSQL release in use.
        query = text("SELECT txid_snapshot_xmax(txid_current_snapshot())")
        return int(self._read(lambda conn: conn.execute(query).scalar_one()))

    def horizon_passed(self, horizon: Any) -> bool:
        """Whether every transaction that had started at `horizon` has ended (committed or
        rolled back): a gap in the change numbers seen before it is then final."""
        if horizon is None:
            return True
        query = text("SELECT txid_snapshot_xmin(txid_current_snapshot()) >= :h")
        return bool(self._read(lambda conn: conn.execute(query, {"h": int(horizon)}).scalar_one()))
