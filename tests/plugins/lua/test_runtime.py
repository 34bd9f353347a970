"""The Lua engine: one state, used by one thread at a time, lent while its owner waits."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from pharos.plugins.lua.runtime import LuaEngine, LuaFailure, LuaScriptError


@pytest.fixture
def engine() -> Iterator[LuaEngine]:
    engine = LuaEngine()
    yield engine
    engine.close()


def test_print_is_captured_and_joined_as_orthanc(engine: LuaEngine) -> None:
    assert engine.execute(b"print(42) print('a', 1.5, nil, true)", "t") == "42\na, 1.5, nil, true\n"
    assert engine.execute(b"x = 1", "t") == ""


def test_errors_carry_the_message_and_the_traceback(engine: LuaEngine) -> None:
    with pytest.raises(LuaScriptError) as failed:
        engine.execute(b"local function f() error('boom') end\nf()", "script.lua")
    assert failed.value.message == "script.lua:1: boom"
    assert "stack traceback" in failed.value.traceback
    assert not failed.value.syntax
    with pytest.raises(LuaScriptError) as bad:
        engine.execute(b"this is not Lua", "t")
    assert bad.value.syntax and "syntax error" in bad.value.message


def test_the_state_survives_a_failure(engine: LuaEngine) -> None:
    engine.execute(b"counter = 1", "t")
    with pytest.raises(LuaScriptError):
        engine.execute(b"counter = counter + 1; error('after the change')", "t")
    assert engine.execute(b"print(counter)", "t") == "2\n"


def test_callbacks_are_noticed_when_defined(engine: LuaEngine) -> None:
    assert engine.callbacks == frozenset()
    engine.execute(
        b"function OnStoredInstance() end function IsJpegTransferSyntaxAccepted() end", "t"
    )
    assert engine.callbacks == {"OnStoredInstance", "IsJpegTransferSyntaxAccepted"}
    engine.execute(b"OnStoredInstance = nil", "t")
    assert engine.callbacks == {"IsJpegTransferSyntaxAccepted"}


def test_call_a_global_function(engine: LuaEngine) -> None:
    engine.execute(b"function Double(x) return x * 2, 'ignored' end", "t")
    assert engine.run(lambda: engine.call("Double", 21)) == (True, 42)
    assert engine.run(lambda: engine.call("Missing", 1)) == (False, None)


def test_python_functions_raise_lua_errors(engine: LuaEngine) -> None:
    def fails(*_args: object) -> None:
        raise LuaFailure("clear message")

    def crashes(*_args: object) -> None:
        raise KeyError("x")

    engine.register("Fails", fails)
    engine.register("Crashes", crashes)
    assert engine.execute(b"print(pcall(Fails))", "t") == "false, clear message\n"
    with pytest.raises(LuaScriptError, match=r"Crashes\(\): KeyError"):
        engine.execute(b"Crashes()", "t")


def test_one_thread_at_a_time(engine: LuaEngine) -> None:
    inside = threading.Event()
    release = threading.Event()

    def hold(*_args: object) -> None:
        inside.set()
        release.wait(10)

    engine.register("Hold", hold)
    first = threading.Thread(target=engine.execute, args=(b"Hold()", "t"))
    first.start()
    assert inside.wait(10)
    outputs: list[str] = []
    second = threading.Thread(target=lambda: outputs.append(engine.execute(b"print(2)", "t")))
    second.start()
    second.join(0.5)
    assert second.is_alive()  # waits for the first one
    release.set()
    first.join(10)
    second.join(10)
    assert outputs == ["2\n"]


def test_the_owner_lends_the_state_while_it_waits(engine: LuaEngine) -> None:
    """While a script waits on I/O (e.g. its own REST API), the thread serving that request
    may need Lua (a filter): it gets it, nested in the waiting script, instead of a deadlock."""
    engine.execute(b"function Filter(x) return x + 1 end", "t")

    def request_needing_lua() -> object:
        # What a REST call or an HTTP request to the server does: another thread runs a filter.
        answer: list[object] = []
        worker = threading.Thread(
            target=lambda: answer.append(engine.run(lambda: engine.call("Filter", 41)[1]))
        )
        worker.start()
        worker.join(10)
        return answer[0] if answer else "deadlock"

    engine.register("Request", lambda: engine.blocking(request_needing_lua))
    assert engine.execute(b"print(Request())", "t") == "42\n"
