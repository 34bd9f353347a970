"""The narrow interface every storage backend implements."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Protocol

from pharos.model.errors import ErrorCode, PharosError

_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def check_uuid(uuid: str) -> str:
    """Attachment names come from the index only, but a path is never built from anything else."""
    if not _UUID.match(uuid):
        raise PharosError(ErrorCode.PARAMETER_OUT_OF_RANGE, f"Not a file UUID: {uuid!r}")
    return uuid


class StorageArea(Protocol):
    """Create, read, read a range, remove. `create` is durable when it returns."""

    def create(self, uuid: str, data: bytes) -> None: ...

    def read(self, uuid: str) -> bytes: ...

    def read_range(self, uuid: str, start: int, end: int) -> bytes: ...

    def remove(self, uuid: str) -> None: ...

    def exists(self, uuid: str) -> bool: ...

    def scan(self) -> Iterator[tuple[str, float]]:
        """Every stored file as (uuid, modification time); for the orphan clean-up."""
        ...

    def remove_temporary_files(self, older_than: float) -> int:
        """Remove writes that never completed; returns how many."""
        ...

    def describe(self) -> str: ...
