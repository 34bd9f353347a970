"""The change log (`/changes`) and the log of exported resources (`/exports`)."""

from __future__ import annotations

from typing import Any

from pharos.index.base import Index


class ChangeLogService:
    def __init__(self, index: Index):
        self._index = index

    def changes_json(self, since: int, limit: int) -> dict[str, Any]:
        items, done = self._index.changes(since, limit)
        return {
            "Changes": [change.to_json() for change in items],
            "Done": done,
            "Last": items[-1].seq if items else since,
        }

    def last_change_json(self) -> dict[str, Any]:
        change = self._index.last_change()
        return {
            "Changes": [] if change is None else [change.to_json()],
            "Done": True,
            "Last": 0 if change is None else change.seq,
        }

    def clear_changes(self) -> None:
        self._index.clear_changes()

    def exports_json(self, since: int, limit: int) -> dict[str, Any]:
        items, done = self._index.exports(since, limit)
        return {
            "Exports": [item.to_json() for item in items],
            "Done": done,
            "Last": items[-1].seq if items else since,
        }

    def last_export_json(self) -> dict[str, Any]:
        export = self._index.last_export()
        return {
            "Exports": [] if export is None else [export.to_json()],
            "Done": True,
            "Last": 0 if export is None else export.seq,
        }

    def clear_exports(self) -> None:
        self._index.clear_exports()
