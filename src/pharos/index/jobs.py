"""The saved jobs in the SQL index: `SqlIndex` inherits these."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Connection, select

from pharos.index.schema import jobs
from pharos.index.writes import insert_for

T = TypeVar("T")


class JobsMixin:
    if TYPE_CHECKING:
        _dialect: str

        def _read(self, work: Callable[[Connection], T]) -> T: ...

        def _write(self, work: Callable[[Connection], T]) -> T: ...

    def saved_jobs(self, owner: str) -> list[tuple[str, str]]:
        query = (
            select(jobs.c.id, jobs.c.record)
            .where(jobs.c.owner == owner)
            .order_by(jobs.c.position, jobs.c.id)
        )
        return self._read(lambda conn: [(row[0], row[1]) for row in conn.execute(query)])

    def save_job(self, owner: str, job_id: str, position: int, record: str) -> None:
        statement = (
            insert_for(self._dialect, jobs)
            .values(id=job_id, owner=owner, position=position, record=record)
            .on_conflict_do_update(
                index_elements=[jobs.c.id], set_={"position": position, "record": record}
            )
        )
        self._write(lambda conn: conn.execute(statement))

    def delete_job(self, job_id: str) -> None:
        statement = jobs.delete().where(jobs.c.id == job_id)
        self._write(lambda conn: conn.execute(statement))
