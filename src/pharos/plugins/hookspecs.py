"""The hooks a Pharos plugin may implement (pluggy project "pharos").

Two kinds (DESIGN.md): *filters* are asked before something happens and may refuse it (every
implementation is asked in turn, the first refusal wins, an exception counts as a refusal as in
Orthanc); *listeners* are told after the fact, on a background thread, in order, and one
failing never affects the others nor the caller.

A plugin is a module or object whose functions carry `@pharos.plugins.hookimpl` and are named
after these specifications; it may implement any subset of them, and each implementation may
take any subset of its specification's arguments (they are passed by name).
"""

from __future__ import annotations

from typing import Any

import pluggy

from pharos.plugins.types import (
    EventSink,
    IncomingHttpRequest,
    IncomingInstance,
    PluginContext,
    StorageFactory,
)

PROJECT = "pharos"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# --- filters ---------------------------------------------------------------------------------


@hookspec
def pharos_incoming_instance_filter(instance: IncomingInstance) -> bool | None:
    """False refuses the instance (nothing is stored; REST 403, C-STORE failure 0xA700-ish)."""


@hookspec
def pharos_incoming_http_request_filter(request: IncomingHttpRequest) -> bool | None:
    """False refuses the HTTP request (403)."""


@hookspec
def pharos_incoming_find_filter(
    query: dict[str, str], origin: dict[str, str]
) -> dict[str, str] | bool | None:
    """A C-FIND request received: a dict replaces the query (tag keywords or "gggg,eeee" →
    value, as Lua's IncomingFindRequestFilter); False refuses it."""


@hookspec
def pharos_incoming_worklist_filter(
    query: dict[str, str], origin: dict[str, str]
) -> dict[str, str] | bool | None:
    """A worklist C-FIND request received (Modality Worklist model): a dict replaces its keys
    ("gggg,eeee" → value, as Lua's IncomingWorklistRequestFilter; sequences are kept as
    received); False refuses it."""


@hookspec
def pharos_outgoing_find_filter(query: dict[str, str], modality: str) -> dict[str, str] | None:
    """A C-FIND about to be sent to `modality`: a dict replaces the query."""


@hookspec
def pharos_accept_transfer_syntax(
    aet: str, ip: str, called_aet: str, syntax_group: str
) -> bool | None:
    """Whether a peer may use transfer syntaxes of `syntax_group` (Orthanc's names: "Deflated",
    "Jpeg", "Jpeg2000", "JpegLossless", "Jpip", "Mpeg2", "Mpeg4", "Rle", "H265", ...). The first
    non-None answer wins; None everywhere keeps the configured choice."""


@hookspec
def pharos_accept_unknown_sop_class(aet: str, ip: str, called_aet: str) -> bool | None:
    """Whether a peer may store SOP classes Pharos does not know. First non-None answer wins."""


# --- listeners -------------------------------------------------------------------------------


@hookspec
def pharos_on_stored_instance(
    instance_id: str,
    simplified_tags: dict[str, Any],
    metadata: dict[str, str],
    origin: dict[str, str],
) -> None:
    """An instance was stored (after the commit)."""


@hookspec
def pharos_on_stable(level: str, resource_id: str, tags: dict[str, Any]) -> None:
    """A patient, study or series ("Patient"/"Study"/"Series") became stable."""


@hookspec
def pharos_on_change(change: dict[str, Any]) -> None:
    """A change was committed: its JSON as in GET /changes."""


@hookspec
def pharos_on_job(event: str, job_id: str, job_type: str) -> None:
    """A job was "Submitted", or ended with "Success" or "Failure"."""


# --- life cycle and extension ----------------------------------------------------------------


@hookspec
def pharos_startup(context: PluginContext) -> None:
    """The server started (its REST API answers through `context.rest`)."""


@hookspec
def pharos_shutdown() -> None:
    """The server is stopping."""


@hookspec
def pharos_routes() -> list[Any] | None:
    """FastAPI APIRouters to include in the app."""


@hookspec
def pharos_storage_areas() -> dict[str, StorageFactory] | None:
    """Storage backends by name; the `StorageBackend` option picks one at start-up. A backend
    implements `pharos.storage.base.StorageArea` (`create` durable when it returns; `read` of a
    missing file raises `PharosError(ErrorCode.INEXISTENT_FILE, ...)`) and is thread-safe."""


@hookspec
def pharos_event_sinks() -> list[EventSink] | None:
    """Sinks to publish the change log to; each follows it with its own durable cursor."""


@hookspec
def pharos_plugin_info() -> dict[str, Any] | None:
    """`ID`, `Version`, `Description`, ... (GET /plugins/{id})."""
