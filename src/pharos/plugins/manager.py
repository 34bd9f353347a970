"""The plugin manager: pluggy underneath, typed methods for the callers on top.

Filters are called one implementation at a time (not through pluggy's `hook(...)`) so that
each one's answer and exception is its own: the first refusal wins and names its plugin.
Listeners run on one background thread fed in order, so a slow or failing listener never
delays nor breaks a store, a request or another listener. With no plugin registered every
method is a cheap no-op (the store path calls them for every instance).
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Mapping
from typing import Any, cast

import pluggy

from pharos.plugins import hookspecs
from pharos.plugins.instances import incoming_instance, simplified_tags
from pharos.plugins.types import (
    EventSink,
    IncomingHttpRequest,
    PluginContext,
    Refusal,
    StorageFactory,
)

log = logging.getLogger("pharos.plugins")

_STOP = object()


class PluginManager:
    def __init__(self) -> None:
        self._pm = pluggy.PluginManager(hookspecs.PROJECT)
        self._pm.add_hookspecs(hookspecs)
        self._impls: dict[str, list[pluggy.HookImpl]] = {}
        self._lock = threading.Lock()
        self._events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._listener: threading.Thread | None = None
        self._pending = 0
        self._idle = threading.Condition(self._lock)
        self.failed: dict[str, str] = {}  # plugins that could not be loaded: name -> error

    # --- registration ----------------------------------------------------------------------

    def register(self, plugin: object, name: str) -> None:
        """Register a module or object carrying `@hookimpl` functions under a unique name."""
        if self._pm.has_plugin(name):
            raise ValueError(f"A plugin named {name!r} is already registered")
        self._pm.register(plugin, name)  # checks the arguments of known hooks
        try:
            self._pm.check_pending()  # a misspelt hook name is an error, not silence
        except pluggy.PluginValidationError:
            self._pm.unregister(plugin, name)
            raise
        self._impls = {}  # a new cache: lookups under way keep the old one

    def unregister(self, name: str) -> None:
        plugin = self._pm.get_plugin(name)
        if plugin is not None:
            self._pm.unregister(plugin, name)
            self._impls = {}  # a new cache: lookups under way keep the old one

    def names(self) -> list[str]:
        return sorted(name for name, _ in self._pm.list_name_plugin())

    def has(self, hook: str) -> bool:
        """Whether any plugin implements `hook` (callers skip building arguments otherwise)."""
        return bool(self._hookimpls(hook))

    def _hookimpls(self, hook: str) -> list[pluggy.HookImpl]:
        cache = self._impls
        impls = cache.get(hook)
        if impls is None:
            # pluggy's call order: the last registered first.
            impls = list(reversed(getattr(self._pm.hook, hook).get_hookimpls()))
            cache[hook] = impls
        return impls

    @staticmethod
    def _call(impl: pluggy.HookImpl, kwargs: Mapping[str, Any]) -> Any:
        # An implementation may take any subset of the specification's arguments.
        return impl.function(*(kwargs[name] for name in impl.argnames))

    # --- filters ---------------------------------------------------------------------------

    def filter_instance(
        self, data: bytes, origin: Mapping[str, str], default_encoding: str = "Latin1"
    ) -> Refusal | None:
        """Ask every instance filter about the DICOM file `data`; the first refusal, if any.
        The dataset and its simplified tags are built only when a filter exists."""
        impls = self._hookimpls("pharos_incoming_instance_filter")
        if not impls:
            return None
        try:
            instance = incoming_instance(data, dict(origin), default_encoding)
        except Exception as exc:  # the store path reports unreadable files itself
            log.debug("Instance filters skipped, the file cannot be read: %s", exc)
            return None
        return self._first_refusal(impls, {"instance": instance})

    def filter_http(self, request: IncomingHttpRequest) -> Refusal | None:
        impls = self._hookimpls("pharos_incoming_http_request_filter")
        if not impls:
            return None
        return self._first_refusal(impls, {"request": request})

    def _first_refusal(
        self, impls: list[pluggy.HookImpl], kwargs: Mapping[str, Any]
    ) -> Refusal | None:
        for impl in impls:
            try:
                answer = self._call(impl, kwargs)
            except Exception as exc:
                log.exception("Filter of plugin %s failed: refused", impl.plugin_name)
                return Refusal(impl.plugin_name, f"filter failed: {exc}")
            if answer is False:
                return Refusal(impl.plugin_name, "filtered out")
        return None

    def filter_find(
        self, query: dict[str, str], origin: Mapping[str, str]
    ) -> dict[str, str] | Refusal:
        """An incoming C-FIND query, as the filters rewrite it (each one gets the previous
        one's answer), or the refusal."""
        for impl in self._hookimpls("pharos_incoming_find_filter"):
            try:
                answer = self._call(impl, {"query": dict(query), "origin": dict(origin)})
            except Exception as exc:
                log.exception("C-FIND filter of plugin %s failed: refused", impl.plugin_name)
                return Refusal(impl.plugin_name, f"filter failed: {exc}")
            if answer is False:
                return Refusal(impl.plugin_name, "filtered out")
            if isinstance(answer, dict):
                query = _string_query(answer)
        return query

    def filter_worklist(
        self, query: dict[str, str], origin: Mapping[str, str]
    ) -> dict[str, str] | Refusal:
        """An incoming worklist C-FIND query, as the filters rewrite it (each one gets the
        previous one's answer), or the refusal."""
        for impl in self._hookimpls("pharos_incoming_worklist_filter"):
            try:
                answer = self._call(impl, {"query": dict(query), "origin": dict(origin)})
            except Exception as exc:
                log.exception("Worklist filter of plugin %s failed: refused", impl.plugin_name)
                return Refusal(impl.plugin_name, f"filter failed: {exc}")
            if answer is False:
                return Refusal(impl.plugin_name, "filtered out")
            if isinstance(answer, dict):
                query = _string_query(answer)
        return query

    def filter_outgoing_find(self, query: dict[str, str], modality: str) -> dict[str, str]:
        """An outgoing C-FIND query, as the filters rewrite it. A failing filter is logged and
        leaves the query as it was (there is nobody to refuse to)."""
        for impl in self._hookimpls("pharos_outgoing_find_filter"):
            try:
                answer = self._call(impl, {"query": dict(query), "modality": modality})
            except Exception:
                log.exception("Outgoing C-FIND filter of plugin %s failed", impl.plugin_name)
                continue
            if isinstance(answer, dict):
                query = _string_query(answer)
        return query

    def accepts_syntax(self, aet: str, ip: str, called_aet: str, syntax_group: str) -> bool | None:
        kwargs = {"aet": aet, "ip": ip, "called_aet": called_aet, "syntax_group": syntax_group}
        return self._first_answer("pharos_accept_transfer_syntax", kwargs)

    def accepts_unknown_sop_class(self, aet: str, ip: str, called_aet: str) -> bool | None:
        kwargs = {"aet": aet, "ip": ip, "called_aet": called_aet}
        return self._first_answer("pharos_accept_unknown_sop_class", kwargs)

    def _first_answer(self, hook: str, kwargs: Mapping[str, Any]) -> bool | None:
        for impl in self._hookimpls(hook):
            try:
                answer = self._call(impl, kwargs)
            except Exception:
                log.exception("%s of plugin %s failed: ignored", hook, impl.plugin_name)
                continue
            if answer is not None:
                return bool(answer)
        return None

    # --- listeners -------------------------------------------------------------------------

    def notify_stored(
        self,
        instance_id: str,
        data: bytes,
        metadata: Mapping[str, str],
        origin: Mapping[str, str],
        default_encoding: str = "Latin1",
    ) -> None:
        """An instance was committed; its simplified tags are computed on the listener thread."""
        if not self._hookimpls("pharos_on_stored_instance"):
            return

        def arguments() -> dict[str, Any]:
            return {
                "instance_id": instance_id,
                "simplified_tags": simplified_tags(data, default_encoding),
                "metadata": dict(metadata),
                "origin": dict(origin),
            }

        self._enqueue("pharos_on_stored_instance", arguments)

    def notify_stable(self, level: str, resource_id: str, tags: Mapping[str, Any]) -> None:
        if self._hookimpls("pharos_on_stable"):
            kwargs = {"level": level, "resource_id": resource_id, "tags": dict(tags)}
            self._enqueue("pharos_on_stable", lambda: kwargs)

    def notify_change(self, change: Mapping[str, Any]) -> None:
        if self._hookimpls("pharos_on_change"):
            kwargs = {"change": dict(change)}
            self._enqueue("pharos_on_change", lambda: kwargs)

    def notify_job(self, event: str, job_id: str, job_type: str) -> None:
        if self._hookimpls("pharos_on_job"):
            kwargs = {"event": event, "job_id": job_id, "job_type": job_type}
            self._enqueue("pharos_on_job", lambda: kwargs)

    def _enqueue(self, hook: str, arguments: Callable[[], dict[str, Any]]) -> None:
        with self._lock:
            if self._listener is None:
                self._listener = threading.Thread(
                    target=self._listen, daemon=True, name="pharos-plugin-listeners"
                )
                self._listener.start()
            self._pending += 1
        self._events.put((hook, arguments))

    def _listen(self) -> None:
        while True:
            item = self._events.get()
            if item is _STOP:
                return
            if isinstance(item, threading.Event):  # a flush mark: what came before is done
                item.set()
                continue
            hook, arguments = cast(tuple[str, Callable[[], dict[str, Any]]], item)
            try:
                self._dispatch(hook, arguments)
            finally:
                with self._lock:
                    self._pending -= 1
                    if self._pending == 0:
                        self._idle.notify_all()

    def _dispatch(self, hook: str, arguments: Callable[[], dict[str, Any]]) -> None:
        try:
            kwargs = arguments()
        except Exception:
            log.exception("Cannot prepare the %s event for plugins", hook)
            return
        for impl in self._hookimpls(hook):
            try:
                self._call(impl, kwargs)
            except Exception:
                log.exception("Listener %s of plugin %s failed", hook, impl.plugin_name)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the listener events queued so far were handed to the listeners, even
        while more keep coming (unlike `wait_idle`)."""
        mark = threading.Event()
        with self._lock:
            if self._listener is None:
                return True  # nothing was ever queued
            self._events.put(mark)
        return mark.wait(timeout)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until every event queued so far was handed to the listeners (tests, shutdown)."""
        with self._lock:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    # --- life cycle and extension ----------------------------------------------------------

    def startup(self, context: PluginContext) -> None:
        """Each plugin's start-up; one failing is logged and does not stop the others."""
        for impl in self._hookimpls("pharos_startup"):
            try:
                self._call(impl, {"context": context})
            except Exception:
                log.exception("Start-up of plugin %s failed", impl.plugin_name)

    def shutdown(self, timeout: float = 10.0) -> None:
        """Drain the listeners' queue (bounded), then each plugin's shutdown."""
        self.wait_idle(timeout)
        for impl in self._hookimpls("pharos_shutdown"):
            try:
                self._call(impl, {})
            except Exception:
                log.exception("Shutdown of plugin %s failed", impl.plugin_name)
        with self._lock:
            listener, self._listener = self._listener, None
        if listener is not None:
            self._events.put(_STOP)
            listener.join(timeout)

    def routers(self) -> list[Any]:
        out: list[Any] = []
        for impl in self._hookimpls("pharos_routes"):
            try:
                out.extend(self._call(impl, {}) or [])
            except Exception:
                log.exception("Routes of plugin %s failed: none added", impl.plugin_name)
        return out

    def storage_areas(self) -> dict[str, StorageFactory]:
        """The storage backends plugins offer, by name (two plugins offering one name: the
        first registered keeps it, the other is logged)."""
        out: dict[str, StorageFactory] = {}
        for impl in reversed(self._hookimpls("pharos_storage_areas")):
            try:
                offered = self._call(impl, {}) or {}
            except Exception:
                log.exception("Storage backends of plugin %s failed: none added", impl.plugin_name)
                continue
            for name, factory in dict(offered).items():
                if name in out:
                    log.error(
                        "Storage backend %r of plugin %s ignored: already offered",
                        name,
                        impl.plugin_name,
                    )
                elif not callable(factory):
                    log.error(
                        "Storage backend %r of plugin %s is not callable", name, impl.plugin_name
                    )
                else:
                    out[str(name)] = factory
        return out

    def event_sinks(self) -> list[EventSink]:
        """The event sinks plugins offer, in registration order; one without a usable `name`
        or `publish` is logged and left out."""
        out: list[EventSink] = []
        for impl in reversed(self._hookimpls("pharos_event_sinks")):
            try:
                offered = list(self._call(impl, {}) or [])
            except Exception:
                log.exception("Event sinks of plugin %s failed: none added", impl.plugin_name)
                continue
            for sink in offered:
                name = getattr(sink, "name", None)
                if (
                    not isinstance(name, str)
                    or not name
                    or not callable(getattr(sink, "publish", None))
                ):
                    log.error(
                        "Event sink %r of plugin %s ignored: it needs a `name` and `publish`",
                        sink,
                        impl.plugin_name,
                    )
                    continue
                out.append(sink)
        return out

    def infos(self) -> dict[str, dict[str, Any]]:
        """Orthanc's GET /plugins/{id} of every registered plugin, by ID."""
        given: dict[str, dict[str, Any]] = {}
        for impl in self._hookimpls("pharos_plugin_info"):
            try:
                info = self._call(impl, {})
            except Exception:
                log.exception("Information of plugin %s failed", impl.plugin_name)
                continue
            if isinstance(info, dict):
                given[impl.plugin_name] = info
        out: dict[str, dict[str, Any]] = {}
        for name in self.names():
            info = given.get(name, {})
            plugin_id = str(info.get("ID") or name)
            out[plugin_id] = {
                **info,
                "ID": plugin_id,
                "Version": str(info.get("Version") or _version_of(self._pm.get_plugin(name))),
            }
        return out


def _string_query(answer: Mapping[Any, Any]) -> dict[str, str]:
    return {str(k): "" if v is None else str(v) for k, v in answer.items()}


def _version_of(plugin: object) -> str:
    return str(getattr(plugin, "__version__", "") or getattr(plugin, "VERSION", "") or "")
