"""Values between Python/JSON and Lua, exactly as Orthanc's LuaContext converts them.

- JSON to Lua (`PushJson`): strings, numbers, booleans; null is nil (so a null member is an
  absent key); arrays are tables indexed from 1; objects are tables keyed by strings.
- Lua to JSON (`GetJson`): a table is an array when its keys, in iteration order, are 1, 2, 3...
  (an empty table is therefore `[]`), else an object with string keys. Unless `keep_strings`,
  strings that Lua reads as numbers become numbers, and integral numbers become integers;
  with `keep_strings`, numbers become strings (Orthanc's `DumpJson(v, true)`).

The runtime runs with `encoding=None`: Lua strings are Python bytes both ways, so binary
bodies (DICOM files) cross unchanged; text is UTF-8.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lupa.lua54 as lupa


def text(value: Any) -> str:
    """A Lua string (bytes) or number as Python text."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float):
        return lua_number_text(value)
    return str(value)


def lua_number_text(value: float) -> str:
    """Lua 5.4's tostring of a float: %.14g, with ".0" when it looks like an integer."""
    if value != value:
        return "nan"
    if value in (float("inf"), float("-inf")):
        return "inf" if value > 0 else "-inf"
    out = f"{value:.14g}"
    if all(c in "-0123456789" for c in out):
        out += ".0"
    return out


def to_lua(runtime: Any, value: Any) -> Any:
    """A JSON-like Python value as a Lua value (tables built in `runtime`)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if value is None or isinstance(value, bool | int | float | bytes):
        return value
    if isinstance(value, dict):
        table = runtime.table()
        for key, item in value.items():
            if item is not None:
                table[str(key).encode("utf-8")] = to_lua(runtime, item)
        return table
    if isinstance(value, list | tuple):
        table = runtime.table()
        for index, item in enumerate(value, start=1):
            if item is not None:
                table[index] = to_lua(runtime, item)
        return table
    return str(value).encode("utf-8")


def to_json(value: Any, keep_strings: bool, tonumber: Callable[[Any], Any]) -> Any:
    """A Lua value as JSON, with Orthanc's rules (see the module docstring). `tonumber` is
    Lua's own (it decides which strings are numbers)."""
    if lupa.lua_type(value) == "table":
        members: dict[str, Any] = {}
        is_array = True
        size = 0
        for key, item in value.items():
            name = text(key)
            members[name] = to_json(item, keep_strings, tonumber)
            size += 1
            if not (name.isdigit() and int(name) == size):
                is_array = False
        if is_array:
            return [members[str(i)] for i in range(1, size + 1)]
        return members
    if value is None:
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return text(value) if keep_strings else _number(value)
    if isinstance(value, bytes):
        if not keep_strings:
            number = tonumber(value)
            if isinstance(number, int | float) and not isinstance(number, bool):
                return _number(number)
        return text(value)
    return None  # functions, userdata: Orthanc warns and gives null


def _number(value: float) -> int | float:
    if isinstance(value, int):
        return value
    if value == value and value not in (float("inf"), float("-inf")) and value.is_integer():
        return int(value)
    return value
