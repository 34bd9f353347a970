"""Lua tables <-> JSON with Orthanc's rules (LuaContext::PushJson / GetJson)."""

from __future__ import annotations

from typing import Any

import lupa.lua54 as lupa
import pytest

from pharos.plugins.lua.convert import lua_number_text, text, to_json, to_lua


@pytest.fixture
def lua() -> Any:
    return lupa.LuaRuntime(encoding=None, unpack_returned_tuples=True)


def json_of(lua: Any, source: str, keep_strings: bool = False) -> Any:
    return to_json(lua.execute(source.encode()), keep_strings, lua.globals()[b"tonumber"])


def test_arrays_objects_and_the_empty_table(lua: Any) -> None:
    assert json_of(lua, "return {1, 2, 3}") == [1, 2, 3]
    assert json_of(lua, "return {a = 1, b = {2, 'x'}}") == {"a": 1, "b": [2, "x"]}
    assert json_of(lua, "return {}") == []  # Orthanc: an empty table is an array
    assert json_of(lua, "return {[1] = 'a', [3] = 'c'}") == {"1": "a", "3": "c"}  # a hole
    assert json_of(lua, "return {[2] = 'b'}") == {"2": "b"}


def test_numbers_and_numeric_strings(lua: Any) -> None:
    assert json_of(lua, "return {1.0, 1.5, '42', '0123', 'abc', true}") == [
        1,
        1.5,
        42,
        123,  # Orthanc's well-known trap: numeric strings become numbers...
        "abc",
        True,
    ]
    # ... unless keepStrings, which also turns numbers into strings.
    assert json_of(lua, "return {1, 1.5, '0123', true}", keep_strings=True) == [
        "1",
        "1.5",
        "0123",
        True,
    ]


def test_nil_and_functions(lua: Any) -> None:
    assert json_of(lua, "return nil") is None
    assert json_of(lua, "return {f = print}") == {"f": None}


def test_json_to_lua(lua: Any) -> None:
    value = to_lua(lua, {"a": [1, "two", {"b": None}], "c": None, "d": 1.5, "e": False})
    check = lua.eval(
        b"function(t) return t.a[1] == 1 and t.a[2] == 'two' and next(t.a[3]) == nil "
        b"and t.c == nil and t.d == 1.5 and t.e == false and #t.a == 3 end"
    )
    assert check(value) is True


def test_round_trip_of_nested_values(lua: Any) -> None:
    original = {"ID": "abc", "List": [1, 2, [3, 4]], "Map": {"x": "y"}, "Flag": True}
    back = to_json(to_lua(lua, original), True, lua.globals()[b"tonumber"])
    assert back == {"ID": "abc", "List": ["1", "2", ["3", "4"]], "Map": {"x": "y"}, "Flag": True}


def test_text_of_lua_values() -> None:
    assert text(b"caf\xc3\xa9") == "café"
    assert text(3) == "3"
    assert lua_number_text(3.0) == "3.0"
    assert lua_number_text(0.1) == "0.1"
    assert lua_number_text(1e20) == "1e+20"
