"""The jobs part of the index interface: the jobs engine's saved jobs (`SaveJobs`).

Each job is kept under its ID as the JSON text of its record; what the record holds belongs to
the jobs engine (`pharos.jobs.records`), not to the index. Processes sharing the index each
see only their own jobs (`owner`: their DatabaseServerIdentifier).
"""

from __future__ import annotations

from typing import Protocol


class JobIndex(Protocol):
    def saved_jobs(self, owner: str) -> list[tuple[str, str]]:
        """The jobs saved by this server: (ID, record), in the order of their positions."""
        ...

    def save_job(self, owner: str, job_id: str, position: int, record: str) -> None:
        """Create or replace (an upsert)."""
        ...

    def delete_job(self, job_id: str) -> None: ...
