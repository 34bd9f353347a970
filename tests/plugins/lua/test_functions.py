"""The functions of Orthanc's Lua API, on a fake REST API (the real one: test_plugin.py)."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest

from pharos.plugins.lua.functions import LuaFunctions
from pharos.plugins.lua.runtime import LuaEngine, LuaScriptError


class FakeRest:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, bytes, dict[str, str], bool]] = []

    def call(
        self, method: str, uri: str, body: bytes, headers: dict[str, str], builtin: bool
    ) -> tuple[int, dict[str, str], bytes]:
        self.calls.append((method, uri, body, headers, builtin))
        if uri.startswith("/missing"):
            return 404, {}, b'{"Details": "Unknown resource: missing"}'
        return 200, {}, b'{"answer": "' + method.encode() + b'"}'


@pytest.fixture
def functions() -> Iterator[LuaFunctions]:
    engine = LuaEngine()
    functions = LuaFunctions(engine, {"Name": "Test", "DicomModalities": {}, "LuaScripts": []})
    functions.install()
    functions.rest = FakeRest()
    yield functions
    functions.close()
    engine.close()


def run(functions: LuaFunctions, source: str) -> str:
    return functions.engine.execute(source.encode(), "test")


def test_parse_and_dump_json_round_trip(functions: LuaFunctions) -> None:
    document = {"a": [1, 2, {"b": "c"}], "d": {"e": True, "f": 1.5}, "g": "text"}
    source = f"print(DumpJson(ParseJson('{orjson.dumps(document).decode()}')))"
    assert orjson.loads(run(functions, source)) == document
    # Keys sorted as Orthanc's JSON writer does; keepStrings keeps "0123".
    assert run(functions, "print(DumpJson({b = '0123', a = 1}))") == '{"a":1,"b":123}\n'
    assert run(functions, "print(DumpJson({b = '0123'}, true))") == '{"b":"0123"}\n'
    assert run(functions, "print(ParseJson('not json'), ParseJson())") == "nil, nil\n"
    assert run(functions, "print(DumpJson({}))") == "[]\n"


def test_print_recursive(functions: LuaFunctions) -> None:
    assert run(functions, "PrintRecursive({a = {b = 1}})") == (
        "table\n\t[a], table\n\t[a]\t[b], number, 1\n"
    )


def test_configuration_and_uids(functions: LuaFunctions) -> None:
    assert run(functions, "print(GetOrthancConfiguration().Name)") == "Test\n"
    uid = run(functions, "print(GenerateDicomUid('study'))").strip()
    assert uid.replace(".", "").isdigit() and len(uid) <= 64
    with pytest.raises(LuaScriptError, match="level must be one of"):
        run(functions, "GenerateDicomUid('galaxy')")


def test_rest_api_functions(functions: LuaFunctions) -> None:
    rest = functions.rest
    assert isinstance(rest, FakeRest)
    output = run(
        functions,
        "print(RestApiGet('/system'))\n"
        "print(RestApiPost('/tools/find', '{}', true))\n"
        "print(RestApiPut('/x', 'body', false, {['X-Test'] = 'yes'}))\n"
        "print(RestApiDelete('/instances/1'))\n"
        "print(RestApiGet('/missing'))\n",
    )
    assert output.splitlines() == [
        '{"answer": "GET"}',
        '{"answer": "POST"}',
        '{"answer": "PUT"}',
        "true",
        "nil",  # an error answers nil (and is logged), as Orthanc
    ]
    assert rest.calls[1] == ("POST", "/tools/find", b"{}", {}, True)
    assert rest.calls[2] == ("PUT", "/x", b"body", {"x-test": "yes"}, False)


def test_rest_api_without_the_server(functions: LuaFunctions) -> None:
    functions.rest = None
    assert run(functions, "print(RestApiGet('/system'))") == "nil\n"


def test_toolbox_records_chained_operations(functions: LuaFunctions) -> None:
    operations = functions.operations

    def recorded(source: str) -> list[dict[str, object]]:
        def work() -> list[dict[str, object]]:
            operations.begin()
            try:
                run(functions, source)
            finally:
                done = operations.end()
            return done

        return functions.engine.run(work)

    assert recorded(
        "Delete(SendToModality(ModifyInstance('id', {StationName = '007'}), 'pacs'))"
    ) == [
        {"Operation": "modify", "Resource": "id", "Replace": {"StationName": "007"}},
        {"Operation": "store-scu", "Resource": "", "Modality": "pacs"},
        {"Operation": "delete", "Resource": ""},
    ]
    assert recorded("SendToModality('id', 'pacs', 'ME', 30) SendToPeer('id', 'peer')") == [
        {
            "Operation": "store-scu",
            "Resource": "id",
            "Modality": "pacs",
            "LocalAet": "ME",
            "Timeout": 30,
        },
        {"Operation": "store-peer", "Resource": "id", "Peer": "peer"},
    ]
    with pytest.raises(LuaScriptError, match="Cannot send a nonexistent resource"):
        recorded("SendToModality(nil, 'pacs')")
    with pytest.raises(LuaScriptError, match="Cannot modify twice"):
        recorded("ModifyInstance(ModifyInstance('id', {}), {})")
    assert recorded("Delete(CallSystem(ModifyInstance('id', {}), 'cmd', {'-v', 42}))") == [
        {"Operation": "modify", "Resource": "id", "Replace": {}},
        {"Operation": "call-system", "Resource": "", "Command": "cmd", "Arguments": ["-v", "42"]},
        {"Operation": "delete", "Resource": ""},
    ]
    assert recorded("CallSystem('id', 'cmd')")[0]["Arguments"] == []
    with pytest.raises(LuaScriptError, match="nonexistent resource"):
        recorded("CallSystem(nil, 'cmd', {})")
    with pytest.raises(LuaScriptError, match="No command was specified"):
        recorded("CallSystem('id', nil, {})")
    with pytest.raises(LuaScriptError, match="a table of strings"):
        recorded("CallSystem('id', 'cmd', {a = {}})")


def test_toolbox_outside_an_entry_point(functions: LuaFunctions) -> None:
    with pytest.raises(LuaScriptError, match="only inside a callback or a script"):
        run(functions, "Delete('x')")


def test_http_functions_reject_bad_arguments(functions: LuaFunctions) -> None:
    assert run(functions, "print(HttpGet(42))") == "nil\n"
    assert run(functions, "SetHttpCredentials('a') SetHttpTimeout('x')") == ""
    # An unreachable server: nil, logged, the script goes on.
    assert run(functions, "SetHttpTimeout(1) print(HttpGet('http://127.0.0.1:9/'))") == "nil\n"
