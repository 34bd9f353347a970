"""Delete resources: the index first (one transaction), then the files."""

from __future__ import annotations

import logging
from typing import Any

from pharos.index.base import Index, ResourceRef
from pharos.model.errors import unknown_resource
from pharos.storage.base import StorageArea

log = logging.getLogger(__name__)


class DeletionService:
    def __init__(self, index: Index, storage: StorageArea):
        self._index = index
        self._storage = storage

    def delete(self, ref: ResourceRef) -> dict[str, Any]:
        """Delete a resource and its descendants, and parents left empty; Orthanc's answer."""
        outcome = self._index.delete_resource(ref)
        if not outcome.deleted:
            raise unknown_resource(ref.public_id)
        self._remove_files(outcome.removed_files)
        if outcome.remaining_ancestor is None:
            return {"RemainingAncestor": None}
        level, public_id = outcome.remaining_ancestor
        return {
            "RemainingAncestor": {
                "ID": public_id,
                "Path": level.path(public_id),
                "Type": level.title,
            }
        }

    def _remove_files(self, uuids: list[str]) -> None:
        # The index no longer references them: a failure here only leaves an orphan, which
        # the start-up clean-up removes.
        for file_uuid in uuids:
            try:
                self._storage.remove(file_uuid)
            except Exception:
                log.exception("Could not remove file %s", file_uuid)
