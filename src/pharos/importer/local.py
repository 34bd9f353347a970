"""The local store as a sender: files stored in this process, as `pharos serve` stores them."""

from __future__ import annotations

from pharos.config import Config
from pharos.context import ServerContext
from pharos.importer.outcomes import ALREADY_STORED, STORED, Outcome, UsageError
from pharos.index.base import Reception, StoreStatus
from pharos.model.errors import PharosError

# Orthanc's RequestOrigin for instances stored by code running inside the server (as its
# folder indexer plugin does): there is no network peer to name.
LOCAL_RECEPTION = Reception(origin="Plugins")


class LocalSender:
    """The store service of a `ServerContext` built in this process, as `pharos serve` would
    build it. No start-up tasks run (stability monitor, orphan clean-up): a server sharing the
    storage may be running, and its files just written would look like orphans."""

    def __init__(self, config: Config):
        try:
            self._context = ServerContext(config)
        except Exception as exc:  # database unreachable, storage not writable...
            raise UsageError(f"cannot open the local store: {exc}") from None
        self._store = self._context.services.store

    def describe(self) -> str:
        index, storage = self._context.index.describe(), self._context.storage.describe()
        return f"local store (index: {index}, storage: {storage})"

    def send(self, data: bytes) -> Outcome:
        try:
            result = self._store.store(data, LOCAL_RECEPTION)
        except PharosError as exc:
            return Outcome.failed(exc.details or exc.code.description)
        except Exception as exc:  # database or disk trouble: that file fails, like a 500
            return Outcome.failed(f"{type(exc).__name__}: {exc}")
        return ALREADY_STORED if result.status is StoreStatus.ALREADY_STORED else STORED

    def close(self) -> None:
        self._context.stop()
