"""The values handed to plugin hooks (see hookspecs.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from pydicom import Dataset

# Orthanc's RequestOrigin values.
ORIGIN_REST = "RestApi"
ORIGIN_DICOM = "DicomProtocol"
ORIGIN_LUA = "Lua"
ORIGIN_PLUGINS = "Plugins"


def origin_dict(
    request_origin: str,
    remote_ip: str | None = None,
    remote_aet: str | None = None,
    called_aet: str | None = None,
    http_username: str | None = None,
) -> dict[str, str]:
    """Orthanc's origin JSON (Lua `origin` argument): only the keys that are known."""
    out = {"RequestOrigin": request_origin}
    for key, value in (
        ("RemoteIp", remote_ip),
        ("RemoteAet", remote_aet),
        ("CalledAet", called_aet),
        ("HttpUsername", http_username),
    ):
        if value:
            out[key] = value
    return out


@dataclass(frozen=True, slots=True)
class IncomingInstance:
    """An instance about to be stored. `dataset` is read without pixel data; do not modify it."""

    dataset: Dataset
    simplified_tags: dict[str, Any]
    origin: dict[str, str]
    # The received bytes (e.g. to forward them); the dataset is parsed from these.
    data: bytes = field(repr=False, default=b"")


@dataclass(frozen=True, slots=True)
class IncomingHttpRequest:
    method: str
    uri: str
    ip: str
    username: str
    headers: dict[str, str]  # lower-case names, as Orthanc hands them to filters
    get: dict[str, str]


@dataclass(frozen=True, slots=True)
class Refusal:
    """A filter said no (or failed, which Orthanc treats as no): who and why."""

    plugin: str
    reason: str

    def message(self, what: str) -> str:
        return f"{what} refused by plugin {self.plugin}: {self.reason}"


class RestCaller(Protocol):
    """Pharos's own REST API, called in-process (Orthanc's RestApiGet/Post/Put/Delete).

    `builtin=True` bypasses routes added by plugins (Orthanc's `RestApiGet(uri, builtin)`).
    Answers (HTTP status, headers, body); it never raises for an HTTP error status."""

    def call(
        self, method: str, uri: str, body: bytes, headers: dict[str, str], builtin: bool
    ) -> tuple[int, dict[str, str], bytes]: ...


@dataclass(frozen=True, slots=True)
class PluginContext:
    """What a plugin receives at start-up."""

    config: dict[str, Any]  # the whole configuration, as JSON
    rest: RestCaller
    data_dir: Path  # the storage directory: a plugin keeps its own files under it


class EventSink(Protocol):
    """Where the change log is published (a message broker, a webhook, ...).

    `publish` gets the next committed changes in sequence order, each as its JSON in GET
    /changes (`Seq`, `ChangeType`, `ResourceType`, `ID`, `Path`, `Date`). It returns once they
    are safely handed over; raising means "not published": the same changes come again later
    (with backoff), so delivery is at least once and a sink should be idempotent on `Seq`.
    `name` keys the sink's durable cursor in the index: keep it stable across releases."""

    @property
    def name(self) -> str: ...

    def publish(self, events: list[dict[str, Any]]) -> None: ...


class StorageFactory(Protocol):
    """Builds a storage area from the whole configuration (as JSON) and the folder named by
    StorageDirectory (resolved; the backend may use it or not). The object returned implements
    `pharos.storage.base.StorageArea` (checked at start-up: plugins and storage are sibling
    layers, so the type is not named here)."""

    def __call__(self, config: dict[str, Any], storage_dir: Path) -> object: ...
