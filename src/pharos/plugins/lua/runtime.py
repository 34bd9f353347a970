"""One Lua state for the scripts and every callback, used by one thread at a time (Orthanc's
LuaScripting: "callbacks are invoked in mutual exclusion").

Orthanc guards its state with a recursive mutex: a callback calling the REST API may trigger
another callback (RestApiPost('/instances', ...) runs ReceivedInstanceFilter) on the same
thread. In Pharos the REST call, or an HTTP request to the server itself, is served by other
threads, and lupa forbids entering the state from a second thread while the first one waits
inside it. So the thread owning the state *lends* it while it waits on I/O (`blocking`):
whoever needs Lua meanwhile hands its work to the owner, which runs it nested, exactly where
Orthanc's recursive mutex would have let it run, and returns the answer.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import lupa.lua54 as lupa

from pharos.plugins.lua.convert import text

log = logging.getLogger("pharos.lua")

T = TypeVar("T")

# Orthanc's groups of transfer syntaxes, each with its Is<Group>TransferSyntaxAccepted callback.
TRANSFER_SYNTAX_GROUPS = (
    "Deflated",
    "Jpeg",
    "Jpeg2000",
    "JpegLossless",
    "Jpip",
    "Mpeg2",
    "Mpeg4",
    "Rle",
    "H265",
)

# Orthanc's callbacks (LuaScripting.cpp, ServerContext, DicomServer), looked up by name.
CALLBACKS = (
    "Initialize",
    "Finalize",
    "OnStoredInstance",
    "OnStablePatient",
    "OnStableStudy",
    "OnStableSeries",
    "OnJobSubmitted",
    "OnJobSuccess",
    "OnJobFailure",
    "OnDeletedPatient",
    "OnDeletedStudy",
    "OnDeletedSeries",
    "OnDeletedInstance",
    "OnUpdatedPatient",
    "OnUpdatedStudy",
    "OnUpdatedSeries",
    "OnUpdatedInstance",
    "ReceivedInstanceFilter",
    "IncomingHttpRequestFilter",
    "IncomingFindRequestFilter",
    "IncomingWorklistRequestFilter",
    "OutgoingFindRequestFilter",
    "IsUnknownSopClassAccepted",
    *(f"Is{group}TransferSyntaxAccepted" for group in TRANSFER_SYNTAX_GROUPS),
)

# Turns an exception raised by a Python function into a Lua error carrying its message, so that
# scripts can pcall() our functions and tracebacks read like Lua's.
_WRAP = b"""
return function(f)
  return function(...)
    local r = table.pack(pcall(f, ...))
    if r[1] then return table.unpack(r, 2, r.n) end
    error(tostring(r[2]), 2)
  end
end
"""


class LuaScriptError(Exception):
    """A script or a callback failed: `message` is Lua's error, `traceback` its stack."""

    def __init__(self, message: str, traceback: str = "", syntax: bool = False):
        super().__init__(message)
        self.message = message
        self.traceback = traceback
        self.syntax = syntax  # the chunk does not compile


class LuaFailure(Exception):
    """Raised by our Python functions: becomes a Lua error with this message."""


@dataclass
class _Task:
    work: Callable[[], Any]
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: BaseException | None = None


class LuaEngine:
    """The Lua state, its lock (with lending, see the module docstring) and what scripts print."""

    def __init__(self, io_threads: int = 16) -> None:
        self.runtime = lupa.LuaRuntime(
            encoding=None, unpack_returned_tuples=True, register_eval=False
        )
        self._globals = self.runtime.globals()
        self._cond = threading.Condition()
        self._owner: int | None = None
        self._lending = 0
        self._mailbox: deque[_Task] = deque()
        self._outputs: list[list[str]] = []
        self._io = ThreadPoolExecutor(max_workers=io_threads, thread_name_prefix="pharos-lua-io")
        self._tonumber = self._globals[b"tonumber"]
        self._tostring = self._globals[b"tostring"]
        self._load = self._globals[b"load"]
        self._xpcall = self.runtime.eval(
            b"function(f, ...) return xpcall(f, debug.traceback, ...) end"
        )
        self._wrap = self.runtime.execute(_WRAP)
        self._globals[b"print"] = self._print
        self.callbacks: frozenset[str] = frozenset()

    # --- exclusive use ---------------------------------------------------------------------

    def run(self, work: Callable[[], T]) -> T:
        """Run `work` (which uses the Lua state) with the state to itself: on this thread once
        no other thread owns the state, or on the owner's thread while the owner lends it."""
        me = threading.get_ident()
        task: _Task | None = None
        with self._cond:
            if self._owner == me:
                mode = "nested"
            else:
                while self._owner is not None and not self._lending:
                    self._cond.wait()
                if self._owner is None:
                    self._owner = me
                    mode = "own"
                else:
                    task = _Task(work)
                    self._mailbox.append(task)
                    self._cond.notify_all()
                    mode = "lent"
        if mode == "nested":
            return work()
        if mode == "own":
            try:
                return work()
            finally:
                with self._cond:
                    self._owner = None
                    self._cond.notify_all()
        assert task is not None
        task.done.wait()
        if task.error is not None:
            raise task.error
        return task.result

    def blocking(self, io: Callable[[], T]) -> T:
        """Called from Lua (a function of ours doing I/O): run `io` on an I/O thread while this
        thread, the owner, serves the Lua work others hand over meanwhile."""
        if self._owner != threading.get_ident():
            return io()
        future: Future[T] = self._io.submit(io)
        with self._cond:
            self._lending += 1
            self._cond.notify_all()
        future.add_done_callback(self._wake)
        while True:
            with self._cond:
                while not self._mailbox and not future.done():
                    self._cond.wait()
                if not self._mailbox:
                    self._lending -= 1
                    break
                task = self._mailbox.popleft()
            self._serve(task)
        return future.result()

    def _wake(self, _future: Future[Any]) -> None:
        with self._cond:
            self._cond.notify_all()

    @staticmethod
    def _serve(task: _Task) -> None:
        try:
            task.result = task.work()
        except BaseException as exc:
            task.error = exc
        finally:
            task.done.set()

    # --- running Lua (inside `run`) --------------------------------------------------------

    def execute(self, source: bytes, name: str) -> str:
        """Run a chunk; what it printed. LuaScriptError if it does not compile or fails."""

        def work() -> str:
            self._outputs.append([])
            try:
                chunk, error = self._compile(source, name)
                if chunk is None:
                    raise LuaScriptError(text(error), syntax=True)
                self._protected(chunk)
            finally:
                printed = self._outputs.pop()
                self.refresh_callbacks()
            return "".join(printed)

        return self.run(work)

    def call(self, name: str, *args: Any) -> tuple[bool, Any]:
        """Call the global function `name` if it exists: (False, None) if it does not, else
        (True, its first result). LuaScriptError if it fails. Use inside `run`."""
        function = self._globals[name.encode()]
        if lupa.lua_type(function) != "function":
            return False, None
        results = self._protected(function, *args)
        return True, results[0] if results else None

    def has_function(self, name: str) -> bool:
        return name in self.callbacks

    def refresh_callbacks(self) -> None:
        """Note which callbacks the scripts define (the hot paths skip Lua when absent)."""
        self.callbacks = frozenset(
            name for name in CALLBACKS if lupa.lua_type(self._globals[name.encode()]) == "function"
        )

    def _compile(self, source: bytes, name: str) -> tuple[Any, Any]:
        result = self._load(source, b"=" + name.encode())
        if isinstance(result, tuple):
            return result[0], result[1] if len(result) > 1 else None
        return result, None

    def _protected(self, function: Any, *args: Any) -> tuple[Any, ...]:
        result = self._xpcall(function, *args)
        results = result if isinstance(result, tuple) else (result,)
        if results[0] is True:
            return tuple(results[1:])
        error = results[1] if len(results) > 1 else None
        message = text(error) if isinstance(error, bytes) else text(self._tostring(error))
        head, _, stack = message.partition("\nstack traceback:\n")
        raise LuaScriptError(head, "stack traceback:\n" + stack if stack else "")

    # --- what scripts see ------------------------------------------------------------------

    def register(self, name: str, function: Callable[..., Any]) -> None:
        """Expose a Python function to Lua as a global; its exceptions become Lua errors."""

        def guarded(*args: Any) -> Any:
            try:
                return function(*args)
            except LuaFailure:
                raise
            except LuaScriptError as exc:
                raise LuaFailure(exc.message) from exc
            except Exception as exc:
                log.debug("Lua: %s() failed", name, exc_info=True)
                raise LuaFailure(f"{name}(): {type(exc).__name__}: {exc}") from exc

        self._globals[name.encode()] = self._wrap(guarded)

    def set_global(self, name: str, value: Any) -> None:
        self._globals[name.encode()] = value

    def tonumber(self, value: Any) -> Any:
        return self._tonumber(value)

    def tostring(self, value: Any) -> str:
        return text(self._tostring(value))

    def _print(self, *args: Any) -> None:
        # Orthanc's PrintToLog: arguments through tostring, joined by ", ", to the log and to
        # the output of /tools/execute-script.
        line = ""
        for arg in args:
            piece = self.tostring(arg)
            if line:
                line += ", "
            line += piece
        log.warning("Lua says: %s", line)
        if self._outputs:
            self._outputs[-1].append(line + "\n")

    def close(self) -> None:
        self._io.shutdown(wait=False, cancel_futures=True)
