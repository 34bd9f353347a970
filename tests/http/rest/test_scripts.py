"""POST /tools/execute-script on a real server: disabled by default, print capture, errors
that leave the Lua state and the server unharmed, callbacks installed by a script."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Api, ServerProcess
from tests.dicomgen import make_dicom


def start(workdir: Path, **config: object) -> tuple[ServerProcess, Api]:
    workdir.mkdir()
    server = ServerProcess(workdir, dict(config)).start(timeout=120)
    api = Api(base_url=server.url, timeout=60)
    api.server = server
    return server, api


@pytest.fixture
def lua_api(tmp_path: Path) -> Iterator[Api]:
    server, api = start(tmp_path / "enabled", ExecuteLuaEnabled=True)
    yield api
    api.close()
    server.stop()


def test_disabled_by_default(tmp_path: Path) -> None:
    server, api = start(tmp_path / "disabled")
    try:
        answer = api.post("/tools/execute-script", content=b"print(42)")
        assert answer.status_code == 403
        assert "ExecuteLuaEnabled" in answer.json()["Details"]
        assert answer.json()["OrthancStatus"] == 45
    finally:
        api.close()
        server.stop()


def test_print_is_the_answer(lua_api: Api) -> None:
    answer = lua_api.post("/tools/execute-script", content=b"print(42)\nprint('a', 'b')")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    assert answer.text == "42\na, b\n"
    assert lua_api.post("/tools/execute-script", content=b"x = 1").text == ""
    system = lua_api.post(
        "/tools/execute-script", content=b"print(ParseJson(RestApiGet('/system')).Name)"
    )
    assert system.text == "MyOrthanc\n"


def test_errors_leave_the_state_unharmed(lua_api: Api) -> None:
    assert lua_api.post("/tools/execute-script", content=b"kept = 'yes'").status_code == 200
    failed = lua_api.post("/tools/execute-script", content=b"kept = 'changed'; error('boom')")
    assert failed.status_code == 500
    body = failed.json()
    assert body["OrthancStatus"] == 2031
    assert body["Details"] == "execute-script:1: boom"
    syntax = lua_api.post("/tools/execute-script", content=b"this is not Lua")
    assert syntax.status_code == 400
    assert "syntax error" in syntax.json()["Details"]
    # Lua keeps what ran before the error, as Orthanc's state does.
    assert lua_api.post("/tools/execute-script", content=b"print(kept)").text == "changed\n"
    assert lua_api.get("/system").status_code == 200


def test_a_script_installs_callbacks(lua_api: Api) -> None:
    assert lua_api.post("/instances", content=make_dicom(patient_id="A")).status_code == 200
    install = b"function ReceivedInstanceFilter(dicom) return dicom.PatientID ~= 'B' end"
    assert lua_api.post("/tools/execute-script", content=install).status_code == 200
    assert lua_api.post("/instances", content=make_dicom(patient_id="B")).status_code == 403
    assert lua_api.post("/instances", content=make_dicom(patient_id="C")).status_code == 200
    remove = b"ReceivedInstanceFilter = nil"
    assert lua_api.post("/tools/execute-script", content=remove).status_code == 200
    assert lua_api.post("/instances", content=make_dicom(patient_id="B")).status_code == 200
    assert len(lua_api.get("/patients").json()) == 3
