"""Background upkeep: stability of resources, and files left behind by a crash."""

from __future__ import annotations

import logging
import threading
import time
from itertools import islice

from pharos.index.base import Index
from pharos.storage.base import StorageArea

log = logging.getLogger(__name__)


class StabilityMonitor:
    """Marks resources stable after StableAge seconds without a new instance.

    The state lives in the index, so it survives restarts and is shared by every process
    on one PostgreSQL database: each resource turns stable (and is logged) exactly once.
    """

    def __init__(self, index: Index, stable_age: float, period: float = 1.0):
        self._index = index
        self._stable_age = stable_age
        self._period = period
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pharos-stability", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()

    def check_now(self) -> int:
        now = time.time()
        return self._index.mark_stable(now - self._stable_age, now)

    def _run(self) -> None:
        while not self._stop.wait(self._period):
            try:
                self.check_now()
            except Exception:
                log.exception("Stability check failed; retrying")


def remove_orphan_files(index: Index, storage: StorageArea, older_than: float) -> int:
    """Remove stored files that no index row references and that are older than `older_than`.

    Files are written before the index commit, so a crash between the two leaves such a
    file. Younger files may belong to a store that another process is about to commit.
    """
    removed = storage.remove_temporary_files(older_than)
    candidates = (uuid for uuid, mtime in storage.scan() if mtime < older_than)
    while batch := list(islice(candidates, 1000)):
        for uuid in index.unknown_files(batch):
            storage.remove(uuid)
            removed += 1
    if removed:
        log.warning("Removed %d orphan files from the storage area", removed)
    return removed
