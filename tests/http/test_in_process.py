"""The REST API called in-process (Lua's RestApiGet...), from any kind of thread."""

from __future__ import annotations

import asyncio
import threading

import orjson
import pytest
from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response

from pharos.http.in_process import InProcessCaller


def make_caller() -> InProcessCaller:
    app = FastAPI()

    @app.get("/echo/{name}")
    def echo(name: str, request: Request) -> dict[str, object]:
        state = request.scope.get("state", {})
        return {
            "name": name,
            "query": dict(request.query_params),
            "origin": state.get("request_origin"),
            "header": request.headers.get("x-test"),
        }

    @app.post("/body")
    async def body(request: Request) -> Response:
        return Response(await request.body(), media_type="application/octet-stream")

    plugin = APIRouter()

    @plugin.get("/plugin/hello")
    def hello() -> dict[str, str]:
        return {"from": "plugin"}

    app.include_router(plugin)
    caller = InProcessCaller()
    caller.attach(app, plugin.routes)
    return caller


def test_call_from_a_plain_thread() -> None:
    caller = make_caller()
    status, headers, body = caller.call("GET", "/echo/a%20b?x=1&y=2", b"", {"X-Test": "v"}, False)
    assert status == 200
    assert headers["content-type"] == "application/json"
    assert orjson.loads(body) == {
        "name": "a b",
        "query": {"x": "1", "y": "2"},
        "origin": "Plugins",
        "header": "v",
    }
    status, _, body = caller.with_origin("Lua").call("GET", "/echo/z", b"", {}, False)
    assert orjson.loads(body)["origin"] == "Lua"
    binary = bytes(range(256)) * 10
    assert caller.call("POST", "/body", binary, {}, False)[2] == binary
    assert caller.call("GET", "/nowhere", b"", {}, False)[0] == 404


def test_builtin_calls_do_not_reach_plugin_routes() -> None:
    caller = make_caller()
    assert caller.call("GET", "/plugin/hello", b"", {}, False)[0] == 200
    status, _, body = caller.call("GET", "/plugin/hello", b"", {}, True)
    assert status == 404
    assert orjson.loads(body)["OrthancStatus"] == 17
    assert caller.call("GET", "/echo/x", b"", {}, True)[0] == 200


def test_call_on_the_server_loop_from_another_thread() -> None:
    caller = make_caller()
    loop = asyncio.new_event_loop()
    serving = threading.Thread(target=loop.run_forever, daemon=True)
    serving.start()
    try:
        caller.bind_loop(loop)
        answers: list[int] = []
        workers = [
            threading.Thread(
                target=lambda: answers.append(caller.call("GET", "/echo/t", b"", {}, False)[0])
            )
            for _ in range(4)
        ]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(10)
        assert answers == [200] * 4
    finally:
        loop.call_soon_threadsafe(loop.stop)
        serving.join(10)
        loop.close()


def test_call_from_the_event_loop_thread_itself() -> None:
    """A filter or a start-up hook runs on the loop: the call must not wait for that loop."""
    caller = make_caller()

    async def on_the_loop() -> int:
        caller.bind_loop(asyncio.get_running_loop())
        return caller.call("GET", "/echo/t", b"", {}, False)[0]

    assert asyncio.run(on_the_loop()) == 200


def test_not_attached() -> None:
    with pytest.raises(RuntimeError, match="not available"):
        InProcessCaller().call("GET", "/system", b"", {}, False)


def test_empty_path_components_are_ignored_as_in_orthanc() -> None:
    # The Orthanc Book's AutoroutingModification.lua posts to '/instances/'.
    caller = make_caller()
    for uri in ("/echo/x/", "echo/x", "//echo//x/?a=1"):
        status, _, body = caller.call("GET", uri, b"", {}, False)
        assert status == 200, uri
        assert orjson.loads(body)["name"] == "x"
    assert caller.call("POST", "/body/", b"abc", {}, False)[2] == b"abc"
