"""Feeds the plugins' change and stability listeners from the change log (the outbox of
DESIGN.md): only committed changes are told, in sequence order, from the last change at
start-up on (the cursor lives in memory: changes made while the server was down are not
told again)."""

from __future__ import annotations

import logging
import threading
from typing import Any

from pharos.index.base import Index
from pharos.model.changes import Change, ChangeType
from pharos.plugins.manager import PluginManager

log = logging.getLogger(__name__)

_STABLE = {ChangeType.STABLE_PATIENT, ChangeType.STABLE_STUDY, ChangeType.STABLE_SERIES}
_BATCH = 500


class PluginEventFeed:
    def __init__(self, index: Index, plugins: PluginManager, period: float = 0.25):
        self._index = index
        self._plugins = plugins
        self._period = period
        self._cursor = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Follow the change log if a plugin listens to changes or stability."""
        if not (self._plugins.has("pharos_on_change") or self._plugins.has("pharos_on_stable")):
            return
        last = self._index.last_change()
        self._cursor = last.seq if last is not None else 0
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="pharos-plugin-feed", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self.poll()
            except Exception:
                log.exception("Following the change log for plugins failed; retrying")

    def poll(self) -> int:
        """Hand the changes after the cursor to the listeners; how many there were."""
        told = 0
        while not self._stop.is_set():
            changes, done = self._index.changes(self._cursor, _BATCH)
            if not changes:
                self._rewind_if_cleared()
                return told
            for change in changes:
                self._tell(change)
                self._cursor = change.seq
                told += 1
            if done:
                return told
        return told

    def _tell(self, change: Change) -> None:
        self._plugins.notify_change(change.to_json())
        if change.change_type in _STABLE and self._plugins.has("pharos_on_stable"):
            self._plugins.notify_stable(
                change.level.title, change.public_id, self._main_tags(change.public_id)
            )

    def _main_tags(self, public_id: str) -> dict[str, Any]:
        ref = self._index.lookup(public_id)
        if ref is None:  # deleted meanwhile
            return {}
        return dict(self._index.main_tags(ref))

    def _rewind_if_cleared(self) -> None:
        """After DELETE /changes a database may number changes from 1 again."""
        last = self._index.last_change()
        if last is not None and last.seq < self._cursor:
            self._cursor = 0
