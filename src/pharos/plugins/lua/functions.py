"""The functions Orthanc gives Lua scripts: the REST API in-process, HTTP clients, JSON,
the configuration, UIDs, and the auto-routing toolbox (SendToModality, Delete, ...).

The toolbox (SendToModality, SendToPeer, Delete, ModifyInstance, CallSystem) records
operations while a callback runs (Orthanc's `_job`); `ModifyInstance`
returns "" so that the next operation chains on its output, as in Orthanc's Toolbox.lua. The
plugin runs the recorded operations after the callback returns (see plugin.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Protocol

import httpx
import lupa.lua54 as lupa
import orjson
from pydicom.uid import generate_uid

from pharos.plugins.lua.convert import text, to_json, to_lua
from pharos.plugins.lua.runtime import LuaEngine, LuaFailure
from pharos.plugins.types import RestCaller

log = logging.getLogger("pharos.lua")

# Our own PrintRecursive (Orthanc's prints the same "[key] value" lines through print()).
_PRINT_RECURSIVE = b"""
function PrintRecursive(value, limit, indent)
  limit = limit or 100
  indent = indent or ""
  if limit < 1 then print("ERROR: Item limit reached."); return limit - 1 end
  if type(value) ~= "table" then print(indent, type(value), value); return limit - 1 end
  print(indent, "table")
  for k, v in pairs(value) do
    limit = PrintRecursive(v, limit, indent .. "\\t[" .. tostring(k) .. "]")
    if limit < 0 then break end
  end
  return limit
end
"""

UID_LEVELS = ("patient", "study", "series", "instance")


class OriginRestCaller(Protocol):
    """A RestCaller that can mark its requests with Orthanc's RequestOrigin ("Lua")."""

    def with_origin(self, origin: str) -> RestCaller: ...


class Operations:
    """The operations recorded by the toolbox functions, one list per running entry point."""

    def __init__(self) -> None:
        self._frames: list[list[dict[str, Any]]] = []

    def begin(self) -> None:
        self._frames.append([])

    def end(self) -> list[dict[str, Any]]:
        return self._frames.pop()

    def add(self, operation: dict[str, Any]) -> None:
        if not self._frames:
            raise LuaFailure(
                "SendToModality(), Delete() and the like work only inside a callback or a script"
            )
        self._frames[-1].append(operation)


class LuaFunctions:
    """Installs the functions into an engine; the REST caller arrives at start-up."""

    def __init__(self, engine: LuaEngine, config: dict[str, Any]) -> None:
        self.engine = engine
        self.config = config
        self.rest: RestCaller | None = None
        self.operations = Operations()
        self._credentials: tuple[str, str] | None = None
        self._timeout: float | None = None  # Orthanc: no timeout unless SetHttpTimeout
        self._http = httpx.Client(follow_redirects=False)

    def install(self) -> None:
        engine = self.engine
        for name, function in self._functions().items():
            engine.register(name, function)
        engine.runtime.execute(_PRINT_RECURSIVE)

    def _functions(self) -> dict[str, Callable[..., Any]]:
        return {
            "RestApiGet": lambda uri, *rest: self._rest("GET", uri, None, *rest),
            "RestApiPost": lambda uri, body=None, *rest: self._rest("POST", uri, body, *rest),
            "RestApiPut": lambda uri, body=None, *rest: self._rest("PUT", uri, body, *rest),
            "RestApiDelete": lambda uri, *rest: self._rest("DELETE", uri, None, *rest),
            "HttpGet": lambda url, headers=None: self._http_call("GET", url, None, headers),
            "HttpPost": lambda url, body=None, headers=None: self._http_call(
                "POST", url, body, headers
            ),
            "HttpPut": lambda url, body=None, headers=None: self._http_call(
                "PUT", url, body, headers
            ),
            "HttpDelete": lambda url, headers=None: self._http_call("DELETE", url, None, headers),
            "SetHttpCredentials": self._set_credentials,
            "SetHttpTimeout": self._set_timeout,
            "ParseJson": self._parse_json,
            "DumpJson": self._dump_json,
            "GetOrthancConfiguration": lambda: to_lua(self.engine.runtime, self.config),
            "GenerateDicomUid": self._generate_uid,
            "SendToModality": self._send_to_modality,
            "SendToPeer": self._send_to_peer,
            "Delete": self._delete,
            "ModifyInstance": self._modify,
            "ModifyResource": self._modify,
            "CallSystem": self._call_system,
        }

    # --- JSON ------------------------------------------------------------------------------

    def json_of(self, value: Any, keep_strings: bool) -> Any:
        return to_json(value, keep_strings, self.engine.tonumber)

    def _parse_json(self, *args: Any) -> Any:
        if len(args) != 1 or not isinstance(args[0], bytes | int | float):
            return None
        source = args[0] if isinstance(args[0], bytes) else text(args[0]).encode()
        try:
            return to_lua(self.engine.runtime, orjson.loads(source))
        except orjson.JSONDecodeError:
            return None

    def _dump_json(self, *args: Any) -> Any:
        if len(args) not in (1, 2) or (len(args) == 2 and not isinstance(args[1], bool)):
            return None
        keep_strings = len(args) == 2 and args[1] is True
        return orjson.dumps(self.json_of(args[0], keep_strings), option=orjson.OPT_SORT_KEYS)

    # --- the REST API, in-process ----------------------------------------------------------

    def _rest(self, method: str, uri: Any, body: Any, *rest: Any) -> Any:
        name = {"GET": "RestApiGet", "POST": "RestApiPost", "PUT": "RestApiPut"}.get(
            method, "RestApiDelete"
        )
        if not isinstance(uri, bytes) or (method in ("POST", "PUT") and body is None):
            log.error("Lua: Bad parameters to %s()", name)
            return None
        builtin = bool(rest[0]) if rest and rest[0] is not None else False
        headers = self._headers(rest[1] if len(rest) > 1 else None, lower=True)
        caller = self.rest
        if caller is None:
            log.error("Lua: The REST API is unavailable (the server is not started yet)")
            return None
        payload = body if isinstance(body, bytes) else text(body).encode() if body else b""
        target = text(uri)
        try:
            status, _, answer = self.engine.blocking(
                lambda: caller.call(method, target, payload, headers, builtin)
            )
        except Exception as exc:
            log.error("Lua: Error in %s() for URI %s: %s", name, target, exc)
            return None
        if status != 200:
            log.error(
                "Lua: Error in %s() for URI %s: HTTP %d %s",
                name,
                target,
                status,
                error_details(answer),
            )
            return None
        return True if method == "DELETE" else answer

    def _headers(self, table: Any, lower: bool) -> dict[str, str]:
        if lupa.lua_type(table) != "table":
            return {}
        given = self.json_of(table, keep_strings=True)
        if not isinstance(given, dict):
            return {}
        return {(k.lower() if lower else k): _as_text(v) for k, v in given.items()}

    # --- HTTP clients ----------------------------------------------------------------------

    def _http_call(self, method: str, url: Any, body: Any, headers: Any) -> Any:
        name = {"GET": "HttpGet", "POST": "HttpPost", "PUT": "HttpPut"}.get(method, "HttpDelete")
        if not isinstance(url, bytes):
            log.error("Lua: Bad parameters to %s()", name)
            return None
        target = text(url)
        content = body if isinstance(body, bytes) else text(body).encode() if body else b""
        given = self._headers(headers, lower=False)
        auth = self._credentials
        timeout = self._timeout

        def send() -> httpx.Response:
            return self._http.request(
                method, target, content=content, headers=given, auth=auth, timeout=timeout
            )

        try:
            response = self.engine.blocking(send)
        except httpx.HTTPError as exc:
            log.error("Lua: Error in %s() for URL %s: %s", name, target, exc)
            return None
        if not response.is_success:
            log.error("Lua: Error in %s() for URL %s: HTTP %d", name, target, response.status_code)
            return None
        return b"SUCCESS" if method == "DELETE" else response.content

    def _set_credentials(self, *args: Any) -> None:
        if len(args) != 2 or not all(isinstance(a, bytes) for a in args):
            log.error("Lua: Bad parameters to SetHttpCredentials()")
            return
        self._credentials = (text(args[0]), text(args[1]))

    def _set_timeout(self, *args: Any) -> None:
        if len(args) != 1 or not isinstance(args[0], int | float) or isinstance(args[0], bool):
            log.error("Lua: Bad parameters to SetHttpTimeout()")
            return
        seconds = int(args[0])
        self._timeout = float(seconds) if seconds > 0 else None  # 0: no timeout, as curl

    # --- UIDs ------------------------------------------------------------------------------

    def _generate_uid(self, level: Any = b"instance") -> bytes:
        name = text(level).lower() if level is not None else "instance"
        if name not in UID_LEVELS:
            raise LuaFailure(f"GenerateDicomUid(): level must be one of {', '.join(UID_LEVELS)}")
        return str(generate_uid()).encode()

    # --- the auto-routing toolbox ----------------------------------------------------------

    def _send_to_modality(
        self, resource: Any = None, modality: Any = None, local_aet: Any = None, timeout: Any = None
    ) -> Any:
        if resource is None:
            raise LuaFailure("Cannot send a nonexistent resource")
        if not isinstance(modality, bytes):
            raise LuaFailure("SendToModality(): the symbolic name of a modality is required")
        operation: dict[str, Any] = {
            "Operation": "store-scu",
            "Resource": text(resource),
            "Modality": text(modality),
        }
        if local_aet is not None:
            operation["LocalAet"] = text(local_aet)
        if isinstance(timeout, int | float) and not isinstance(timeout, bool):
            operation["Timeout"] = int(timeout)
        self.operations.add(operation)
        return resource

    def _send_to_peer(self, resource: Any = None, peer: Any = None) -> Any:
        if resource is None:
            raise LuaFailure("Cannot send a nonexistent resource")
        if not isinstance(peer, bytes):
            raise LuaFailure("SendToPeer(): the symbolic name of a peer is required")
        self.operations.add(
            {"Operation": "store-peer", "Resource": text(resource), "Peer": text(peer)}
        )
        return resource

    def _delete(self, resource: Any = None) -> None:
        if resource is None:
            raise LuaFailure("Cannot delete a nonexistent resource")
        self.operations.add({"Operation": "delete", "Resource": text(resource)})
        return None  # forbids chaining, as Orthanc

    def _modify(
        self,
        resource: Any = None,
        replacements: Any = None,
        removals: Any = None,
        remove_private_tags: Any = None,
    ) -> bytes:
        if resource is None:
            raise LuaFailure("Cannot modify a nonexistent resource")
        if resource == b"":
            raise LuaFailure("Cannot modify twice a resource")
        operation: dict[str, Any] = {"Operation": "modify", "Resource": text(resource)}
        # Strings kept as strings: Orthanc turns "0123" into 123 here, a known trap.
        if replacements is not None:
            # An empty Lua table reads as the JSON array []: here it means "nothing to replace".
            operation["Replace"] = self.json_of(replacements, keep_strings=True) or {}
        if removals is not None:
            operation["Remove"] = self.json_of(removals, keep_strings=True)
        if remove_private_tags is not None:
            operation["RemovePrivateTags"] = bool(remove_private_tags)
        self.operations.add(operation)
        return b""  # chains with the next operation

    def _call_system(self, resource: Any = None, command: Any = None, args: Any = None) -> Any:
        """Orthanc's CallSystem(instance, command, args): runs `command` with `args` then the
        path of a temporary copy of the instance's file (no shell involved)."""
        if resource is None:
            raise LuaFailure("Cannot execute a system call on a nonexistent resource")
        if not isinstance(command, bytes) or not command:
            raise LuaFailure("No command was specified for system call")
        arguments = [] if args is None else self.json_of(args, keep_strings=True)
        if not isinstance(arguments, list) or not all(isinstance(a, str) for a in arguments):
            raise LuaFailure("CallSystem(): the arguments must be a table of strings")
        self.operations.add(
            {
                "Operation": "call-system",
                "Resource": text(resource),
                "Command": text(command),
                "Arguments": arguments,
            }
        )
        return resource

    def close(self) -> None:
        self._http.close()


def _as_text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return orjson.dumps(value).decode()


def error_details(answer: bytes) -> str:
    """The Message/Details of an Orthanc error JSON, else the start of the body."""
    try:
        value = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return answer[:200].decode("utf-8", errors="replace")
    if isinstance(value, dict):
        return str(value.get("Details") or value.get("Message") or value)
    return str(value)[:200]
