"""Lua scripting as one Pharos plugin: Orthanc's callbacks on Pharos's hooks.

Filters run the Lua callback at once (the caller waits, as in Orthanc). Listeners are called
by the plugin manager's listener thread; the operations a callback records (SendToModality,
Delete, ...) then run in order on this plugin's own worker thread, through the REST API, like
the job Orthanc submits after each callback. A failing operation stops its chain, so
`Delete(SendToModality(id, 'x'))` never deletes an instance that was not sent.
"""

from __future__ import annotations

import contextlib
import io
import logging
import queue
import subprocess
import tempfile
import threading
import types
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pydicom.filereader
from pydicom.tag import BaseTag

from pharos.dicom.parse import parse_instance
from pharos.model.errors import PharosError
from pharos.plugins.hookspecs import hookimpl
from pharos.plugins.lua.convert import text, to_lua
from pharos.plugins.lua.functions import LuaFunctions, error_details
from pharos.plugins.lua.runtime import TRANSFER_SYNTAX_GROUPS, LuaEngine, LuaScriptError
from pharos.plugins.manager import PluginManager
from pharos.plugins.types import ORIGIN_LUA, IncomingHttpRequest, IncomingInstance, PluginContext

log = logging.getLogger("pharos.lua")

PLUGIN_NAME = "lua"
_PIXEL_TAGS = {0x7FE00008, 0x7FE00009, 0x7FE00010}
_STOP = object()
# Copies made by ModifyInstance() whose OnStoredInstance has not run yet (bounded: a copy
# stored while no OnStoredInstance is defined never claims its entry).
_PENDING_COPIES = 1000

# The hooks Lua implements only while the scripts define one of these callbacks: the manager
# then skips Lua entirely on hot paths (no dataset built for an instance filter nobody has).
HOOK_CALLBACKS: dict[str, tuple[str, ...]] = {
    "pharos_incoming_instance_filter": ("ReceivedInstanceFilter",),
    "pharos_incoming_http_request_filter": ("IncomingHttpRequestFilter",),
    "pharos_incoming_find_filter": ("IncomingFindRequestFilter",),
    "pharos_incoming_worklist_filter": ("IncomingWorklistRequestFilter",),
    "pharos_outgoing_find_filter": ("OutgoingFindRequestFilter",),
    "pharos_accept_transfer_syntax": tuple(
        f"Is{group}TransferSyntaxAccepted" for group in TRANSFER_SYNTAX_GROUPS
    ),
    "pharos_accept_unknown_sop_class": ("IsUnknownSopClassAccepted",),
    "pharos_on_stored_instance": ("OnStoredInstance",),
    "pharos_on_stable": ("OnStablePatient", "OnStableStudy", "OnStableSeries"),
    "pharos_on_change": tuple(
        f"On{event}{level}"
        for event in ("Deleted", "Updated")
        for level in ("Patient", "Study", "Series", "Instance")
    ),
    "pharos_on_job": ("OnJobSubmitted", "OnJobSuccess", "OnJobFailure"),
}
ALWAYS = ("pharos_startup", "pharos_shutdown", "pharos_plugin_info")


class LuaScriptsError(ValueError):
    """A script of LuaScripts cannot be read or fails: the server does not start (Orthanc)."""


class LuaPlugin:
    """The Lua engine and its callbacks, registered with the plugin manager as "lua"."""

    def __init__(
        self, config: dict[str, Any], scripts: list[Path], scripts_at_runtime: bool = False
    ) -> None:
        """`scripts_at_runtime` (ExecuteLuaEnabled): callbacks may appear after start-up, so
        the change and stability listeners stay registered (the change log is followed only
        when someone listens at start-up)."""
        self.engine = LuaEngine()
        self.functions = LuaFunctions(self.engine, config)
        self.functions.install()
        self._events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None
        self._manager: PluginManager | None = None
        self._hooks: frozenset[str] = frozenset()
        self._registration = threading.Lock()
        # ModifyInstance() copies: new instance ID -> its source (ModifiedFrom, see _copy).
        self._copies: OrderedDict[str, str] = OrderedDict()
        self._copies_lock = threading.Lock()
        self._always = ALWAYS + (
            ("pharos_on_change", "pharos_on_stable") if scripts_at_runtime else ()
        )
        for path in scripts:
            self.load(path)
        self.engine.refresh_callbacks()

    def load(self, path: Path) -> None:
        """Run a script file of LuaScripts (it defines the callbacks)."""
        try:
            source = path.read_bytes()
        except OSError as exc:
            raise LuaScriptsError(f"LuaScripts: cannot read {path}: {exc}") from None
        log.info("Installing the Lua script %s", path)
        try:
            self._entry(lambda: self.engine.execute(source, path.name), f"script {path.name}")
        except LuaScriptError as exc:
            raise LuaScriptsError(f"LuaScripts: {path}: {exc.message}") from None

    def execute_script(self, source: bytes) -> str:
        """POST /tools/execute-script: run `source`, answer what it printed. LuaScriptError
        (logged with its traceback) if it fails; the state stays usable."""
        try:
            return str(
                self._entry(lambda: self.engine.execute(source, "execute-script"), "execute-script")
            )
        finally:
            self._register()  # the script may have defined or removed callbacks

    # --- registration with the plugin manager ----------------------------------------------

    def attach(self, manager: PluginManager) -> None:
        """Register with `manager` as "lua", with the hooks the scripts' callbacks need."""
        self._manager = manager
        self._register()

    def _register(self) -> None:
        manager = self._manager
        if manager is None:
            return
        callbacks = self.engine.callbacks
        hooks = frozenset(self._always) | {
            hook for hook, names in HOOK_CALLBACKS.items() if not callbacks.isdisjoint(names)
        }
        with self._registration:
            if hooks == self._hooks:
                return
            facade = types.SimpleNamespace(**{hook: getattr(self, hook) for hook in hooks})
            if self._hooks:
                manager.unregister(PLUGIN_NAME)
            manager.register(facade, PLUGIN_NAME)
            self._hooks = hooks

    # --- running Lua -----------------------------------------------------------------------

    def _entry(self, work: Callable[[], Any], what: str) -> Any:
        """Run `work` with the Lua state to itself, with a fresh list of toolbox operations,
        which are queued once it returned. Failures are logged with the Lua traceback."""
        operations = self.functions.operations

        def session() -> tuple[Any, list[dict[str, Any]]]:
            operations.begin()
            try:
                return work(), operations.end()
            except BaseException:
                operations.end()
                raise

        try:
            result, recorded = self.engine.run(session)
        except LuaScriptError as exc:
            log.error("Lua: %s failed: %s\n%s", what, exc.message, exc.traceback)
            raise
        if recorded:
            self._submit(lambda: self._run_operations(recorded, what))
        return result

    def _call(self, name: str, *args: Any) -> Any:
        """Call the callback `name` (if the scripts define it) with JSON-like arguments."""
        if not self.engine.has_function(name):
            return None
        runtime = self.engine.runtime

        def work() -> Any:
            called, result = self.engine.call(name, *(to_lua(runtime, a) for a in args))
            return self.functions.json_of(result, keep_strings=True) if called else None

        return self._entry(work, name)

    def _listener(self, name: str, *args: Any) -> None:
        with contextlib.suppress(LuaScriptError):  # logged; a failing listener affects nothing
            self._call(name, *args)

    def _predicate(self, name: str, *args: Any) -> bool | None:
        """A filter callback: None when absent, else its boolean (anything else is an error,
        Orthanc's NotLuaPredicate)."""
        if not self.engine.has_function(name):
            return None
        answer = self._call(name, *args)
        if not isinstance(answer, bool):
            raise LuaScriptError(f"{name}() must return true or false, not {answer!r}")
        return answer

    # --- the worker: Initialize, Finalize and the recorded operations, in order -------------

    def _submit(self, work: Callable[[], None]) -> None:
        with self._registration:
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, daemon=True, name="pharos-lua")
                self._worker.start()
        self._events.put(work)

    def _work(self) -> None:
        while True:
            item = self._events.get()
            if item is _STOP:
                return
            try:
                item()  # type: ignore[operator]
            except Exception:
                log.exception("Lua: an event failed")

    def _run_operations(self, operations: list[dict[str, Any]], what: str) -> None:
        """Orthanc's LuaJob: each operation takes its Resource, or ("") the previous output."""
        previous: str | None = None
        for operation in operations:
            resource = operation.get("Resource") or previous
            kind = operation["Operation"]
            if not resource:
                log.error("Lua: %s: %s has no resource to work on: stopped", what, kind)
                return
            try:
                previous = self._operation(kind, resource, operation)
            except Exception as exc:
                log.error("Lua: %s: %s of %s failed: %s", what, kind, resource, exc)
                return

    def _operation(self, kind: str, resource: str, operation: dict[str, Any]) -> str | None:
        if kind == "store-scu":
            body: dict[str, Any] = {"Resources": [resource], "Synchronous": True}
            for key in ("LocalAet", "Timeout"):
                if key in operation:
                    body[key] = operation[key]
            self._rest("POST", f"/modalities/{operation['Modality']}/store", body)
            return resource
        if kind == "store-peer":
            body = {"Resources": [resource], "Synchronous": True}
            self._rest("POST", f"/peers/{operation['Peer']}/store", body)
            return resource
        if kind == "delete":
            self._rest("DELETE", f"/instances/{resource}", None)
            return None
        if kind == "modify":
            keys = ("Replace", "Remove", "RemovePrivateTags")
            command = {k: operation[k] for k in keys if operation.get(k) is not None}
            modified = self._rest("POST", f"/instances/{resource}/modify", command)
            return self._store_copy(modified, resource)
        if kind == "call-system":
            self._call_system(resource, operation["Command"], operation["Arguments"])
            return resource
        raise ValueError(f"unknown operation {kind!r}")

    def _call_system(self, resource: str, command: str, arguments: list[str]) -> None:
        """Orthanc's SystemCallOperation: the command gets the arguments, then the path of a
        temporary copy of the instance (deleted afterwards). A non-zero exit is a failure."""
        data = self._rest("GET", f"/instances/{resource}/file", None)
        with tempfile.TemporaryDirectory(prefix="pharos-lua-") as folder:
            path = Path(folder) / f"{resource}.dcm"
            path.write_bytes(data)
            try:
                done = subprocess.run(
                    [command, *arguments, str(path)],
                    stdin=subprocess.DEVNULL,
                    capture_output=True,
                    check=False,
                )
            except OSError as exc:
                raise RuntimeError(f"cannot run {command!r}: {exc}") from None
        for line in done.stdout.decode("utf-8", "replace").splitlines():
            log.info("Lua: %s says: %s", command, line)
        if done.returncode != 0:
            error = done.stderr.decode("utf-8", "replace").strip()[-500:]
            raise RuntimeError(f"{command!r} exited with status {done.returncode}: {error}")

    def _store_copy(self, modified: bytes, source: str) -> str:
        """Store the output of ModifyInstance(). Orthanc stores it with its ModifiedFrom
        metadata, which OnStoredInstance sees (the Orthanc Book's scripts test it to skip
        their own copies: without it they loop forever). The REST API cannot write that
        metadata, so the copy's ID, known before it is stored, is noted and its
        OnStoredInstance told (see pharos_on_stored_instance)."""
        encoding = str(self.functions.config.get("DefaultEncoding") or "Latin1")
        try:
            copy_id = parse_instance(modified, encoding).ids.instance
        except PharosError as exc:
            raise RuntimeError(f"the modified instance is not valid DICOM: {exc}") from None
        with self._copies_lock:
            self._copies[copy_id] = source
            while len(self._copies) > _PENDING_COPIES:
                self._copies.popitem(last=False)
        stored: dict[str, Any] = {}
        try:
            stored = orjson.loads(self._rest("POST", "/instances", modified))
        finally:
            if stored.get("Status") != "Success":  # no OnStoredInstance will claim it
                with self._copies_lock:
                    self._copies.pop(copy_id, None)
        return str(stored["ID"])

    def _rest(self, method: str, uri: str, body: Any) -> bytes:
        rest = self.functions.rest
        if rest is None:
            raise RuntimeError("the REST API is unavailable")
        payload = body if isinstance(body, bytes) else b"" if body is None else orjson.dumps(body)
        status, _, answer = rest.call(method, uri, payload, {}, False)
        if status != 200:
            raise RuntimeError(f"{method} {uri}: HTTP {status}: {error_details(answer)}")
        return answer

    # --- life cycle ------------------------------------------------------------------------

    @hookimpl
    def pharos_startup(self, context: PluginContext) -> None:
        rest = context.rest
        with_origin = getattr(rest, "with_origin", None)
        self.functions.rest = with_origin(ORIGIN_LUA) if callable(with_origin) else rest
        self._submit(lambda: self._listener("Initialize"))

    @hookimpl
    def pharos_shutdown(self) -> None:
        self._submit(lambda: self._listener("Finalize"))
        self._events.put(_STOP)
        if self._worker is not None:
            self._worker.join(timeout=30)
        self.functions.close()
        self.engine.close()

    @hookimpl
    def pharos_plugin_info(self) -> dict[str, Any]:
        return {
            "ID": PLUGIN_NAME,
            "Version": text(self.engine.runtime.lua_implementation),
            "Description": "Orthanc-compatible Lua scripting (LuaScripts, /tools/execute-script)",
        }

    # --- filters ---------------------------------------------------------------------------

    @hookimpl
    def pharos_incoming_instance_filter(self, instance: IncomingInstance) -> bool | None:
        if not self.engine.has_function("ReceivedInstanceFilter"):
            return None
        info: dict[str, Any] = {"HasPixelData": has_pixel_data(instance.data)}
        syntax = getattr(getattr(instance.dataset, "file_meta", None), "TransferSyntaxUID", None)
        if syntax:
            info["TransferSyntaxUID"] = str(syntax)
        return self._predicate(
            "ReceivedInstanceFilter", instance.simplified_tags, instance.origin, info
        )

    @hookimpl
    def pharos_incoming_http_request_filter(self, request: IncomingHttpRequest) -> bool | None:
        return self._predicate(
            "IncomingHttpRequestFilter",
            request.method,
            request.uri,
            request.ip,
            request.username,
            request.headers,
        )

    @hookimpl
    def pharos_incoming_find_filter(
        self, query: dict[str, str], origin: dict[str, str]
    ) -> dict[str, str] | None:
        return self._query_filter("IncomingFindRequestFilter", query, origin)

    @hookimpl
    def pharos_incoming_worklist_filter(
        self, query: dict[str, str], origin: dict[str, str]
    ) -> dict[str, str] | None:
        return self._query_filter("IncomingWorklistRequestFilter", query, origin)

    @hookimpl
    def pharos_outgoing_find_filter(
        self, query: dict[str, str], modality: str
    ) -> dict[str, str] | None:
        return self._query_filter("OutgoingFindRequestFilter", query, modality)

    def _query_filter(self, name: str, query: dict[str, str], other: Any) -> dict[str, str] | None:
        if not self.engine.has_function(name):
            return None
        answer = self._call(name, query, other)
        if answer == []:  # an empty Lua table: no key left
            return {}
        if not isinstance(answer, dict):
            raise LuaScriptError(f"{name}() must return the query as a table, not {answer!r}")
        return {str(k): "" if v is None else str(v) for k, v in answer.items()}

    @hookimpl
    def pharos_accept_transfer_syntax(
        self, aet: str, ip: str, called_aet: str, syntax_group: str
    ) -> bool | None:
        return self._predicate(f"Is{syntax_group}TransferSyntaxAccepted", aet, ip, called_aet)

    @hookimpl
    def pharos_accept_unknown_sop_class(self, aet: str, ip: str, called_aet: str) -> bool | None:
        return self._predicate("IsUnknownSopClassAccepted", aet, ip, called_aet)

    # --- listeners -------------------------------------------------------------------------

    @hookimpl
    def pharos_on_stored_instance(
        self,
        instance_id: str,
        simplified_tags: dict[str, Any],
        metadata: dict[str, str],
        origin: dict[str, str],
    ) -> None:
        with self._copies_lock:
            source = self._copies.pop(instance_id, None)
        if source is not None and "ModifiedFrom" not in metadata:
            metadata = {**metadata, "ModifiedFrom": source}
        self._listener("OnStoredInstance", instance_id, simplified_tags, metadata, origin)

    @hookimpl
    def pharos_on_stable(self, level: str, resource_id: str, tags: dict[str, Any]) -> None:
        name = f"OnStable{level}"
        if not self.engine.has_function(name):
            return
        metadata: dict[str, Any] = {}
        try:
            plural = {"Patient": "patients", "Study": "studies", "Series": "series"}[level]
            answer = self._rest("GET", f"/{plural}/{resource_id}/metadata?expand", None)
            metadata = orjson.loads(answer)
        except Exception as exc:  # e.g. deleted meanwhile: Orthanc skips the callback
            log.warning("Lua: %s(%s) skipped: %s", name, resource_id, exc)
            return
        self._listener(name, resource_id, tags, metadata)

    @hookimpl
    def pharos_on_change(self, change: dict[str, Any]) -> None:
        kind = change.get("ChangeType")
        level = str(change.get("ResourceType", ""))
        if kind == "Deleted":
            self._listener(f"OnDeleted{level}", str(change.get("ID", "")))
        elif kind in ("UpdatedAttachment", "UpdatedMetadata"):
            self._listener(f"OnUpdated{level}", str(change.get("ID", "")))

    @hookimpl
    def pharos_on_job(self, event: str, job_id: str, job_type: str) -> None:
        if event in ("Submitted", "Success", "Failure"):
            self._listener(f"OnJob{event}", job_id)


def has_pixel_data(data: bytes) -> bool:
    """Whether the file has pixel data, reading its header up to the pixels only."""
    seen = False

    def stop(tag: BaseTag, _vr: str | None, _length: int) -> bool:
        nonlocal seen
        if int(tag) in _PIXEL_TAGS:
            seen = True
            return True
        return False

    try:
        pydicom.filereader.read_partial(io.BytesIO(data), stop_when=stop, force=True)
    except Exception:
        return seen
    return seen
