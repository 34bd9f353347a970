"""Lua scripts in a real server: auto-routing to dcmtk's storescp, filters over REST and over
C-STORE, failing callbacks, HTTP request filters and HttpGet to the server itself."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pydicom
import pytest

from pharos.config import load_config
from pharos.context import lua_plugin
from pharos.plugins.lua import LuaPlugin, LuaScriptError
from pharos.plugins.lua.plugin import has_pixel_data
from pharos.plugins.manager import PluginManager
from pharos.plugins.types import IncomingHttpRequest
from tests.conftest import Api, ServerProcess
from tests.dicomgen import make_dataset, make_dicom, to_bytes
from tests.dimse.peers import StoreScp, requires_dcmtk, storescu
from tests.jobs.fakes import wait_for

LuaServer = Callable[..., Api]


@pytest.fixture
def lua_server(tmp_path: Path) -> Iterator[LuaServer]:
    """Start a server (SQLite: Lua never touches the index) whose folder holds `scripts`
    ({file name: source}), listed in LuaScripts by relative path, as Orthanc resolves them."""
    started: list[tuple[ServerProcess, Api]] = []

    def start(scripts: dict[str, str], **config: object) -> Api:
        workdir = tmp_path / f"server{len(started)}"
        workdir.mkdir()
        for name, source in scripts.items():
            (workdir / name).write_text(source)
        server = ServerProcess(workdir, {"LuaScripts": list(scripts), **config}).start(timeout=120)
        api = Api(base_url=server.url, timeout=60)
        api.server = server
        started.append((server, api))
        return api

    yield start
    for server, api in started:
        api.close()
        server.stop()


def ct_and_mr() -> list[bytes]:
    return [
        make_dicom(patient_id="ROUTE", instance_number=1),
        make_dicom(patient_id="ROUTE", instance_number=2),
        to_bytes(make_dataset(patient_id="ROUTE", Modality="MR")),
    ]


AUTOROUTING = """
function OnStoredInstance(instanceId, tags, metadata, origin)
  -- Only CT goes to the PACS, then leaves this server; the rest stays here.
  if tags['Modality'] == 'CT' then
    Delete(SendToModality(instanceId, 'pacs'))
  end
end
"""


@requires_dcmtk
def test_autorouting_ct_to_storescp(lua_server: LuaServer, tmp_path: Path) -> None:
    with StoreScp(tmp_path / "received") as pacs:
        api = lua_server(
            {"autorouting.lua": AUTOROUTING}, DicomModalities={"pacs": pacs.modality()}
        )
        for data in ct_and_mr():
            assert api.post("/instances", content=data).status_code == 200
        wait_for(lambda: len(pacs.complete()) == 2, timeout=60)
        wait_for(lambda: len(api.get("/instances").json()) == 1, timeout=60)
    assert sorted(ds.Modality for ds in pacs.received()) == ["CT", "CT"]
    (left,) = api.get("/instances", params={"expand": ""}).json()
    assert api.get(f"/series/{left['ParentSeries']}").json()["MainDicomTags"]["Modality"] == "MR"


@requires_dcmtk
def test_a_failed_send_deletes_nothing(lua_server: LuaServer) -> None:
    # Nobody listens on this modality's port: the chain stops at the send, the instance stays.
    api = lua_server(
        {"autorouting.lua": AUTOROUTING}, DicomModalities={"pacs": ["NOBODY", "127.0.0.1", 9]}
    )
    api.post("/instances", content=make_dicom()).raise_for_status()
    wait_for(lambda: "SendToModality" in api.server.log() or "store-scu" in api.server.log(), 60)
    assert len(api.get("/instances").json()) == 1


MODIFY_AND_SEND = """
function OnStoredInstance(instanceId, tags, metadata, origin)
  if origin['RequestOrigin'] ~= 'Lua' then  -- not the modified copies: no endless loop
    local replace = {StationName = '0042'}
    Delete(SendToModality(ModifyInstance(instanceId, replace, {'SeriesDescription'}), 'pacs'))
  end
end
"""


@requires_dcmtk
def test_modify_send_and_delete_the_copy(lua_server: LuaServer, tmp_path: Path) -> None:
    with StoreScp(tmp_path / "received") as pacs:
        api = lua_server({"modify.lua": MODIFY_AND_SEND}, DicomModalities={"pacs": pacs.modality()})
        original = api.post("/instances", content=make_dicom()).json()["ID"]
        wait_for(lambda: len(pacs.complete()) == 1, timeout=60)
        # The modified copy was stored (origin Lua), sent, then deleted; the original stays.
        wait_for(lambda: api.get("/instances").json() == [original], timeout=60)
    (sent,) = pacs.received()
    assert sent.StationName == "0042"  # a string, not the number Orthanc would make of it
    assert "SeriesDescription" not in sent
    assert sent.PatientID == "P1"


FILTER = """
function ReceivedInstanceFilter(dicom, origin, info)
  lastOrigin = origin['RequestOrigin']
  lastInfo = DumpJson(info)
  return dicom.PatientID ~= 'BLOCKED'
end
"""


@requires_dcmtk
def test_received_instance_filter_over_rest_and_c_store(
    lua_server: LuaServer, tmp_path: Path
) -> None:
    api = lua_server({"filter.lua": FILTER}, ExecuteLuaEnabled=True)
    refused = api.post("/instances", content=make_dicom(patient_id="BLOCKED"))
    assert refused.status_code == 403, refused.text
    assert "lua" in refused.json()["Details"]
    assert api.post("/instances", content=make_dicom(patient_id="FINE")).status_code == 200
    seen = api.post("/tools/execute-script", content=b"print(lastOrigin) print(lastInfo)").text
    assert seen.splitlines() == [
        "RestApi",
        '{"HasPixelData":true,"TransferSyntaxUID":"1.2.840.10008.1.2.1"}',
    ]

    for patient in ("BLOCKED", "ALSO-FINE"):
        path = tmp_path / f"{patient}.dcm"
        make_dataset(patient_id=patient).save_as(path, enforce_file_format=True)
        result = storescu(api, [path])
        if patient == "BLOCKED":
            assert "Received Store Response (Success)" not in result.stdout, result.stdout
        else:
            assert "Received Store Response (Success)" in result.stdout, result.stdout
    patients = {p["MainDicomTags"]["PatientID"] for p in api.get("/patients?expand").json()}
    assert patients == {"FINE", "ALSO-FINE"}
    origin = api.post("/tools/execute-script", content=b"print(lastOrigin)").text
    assert origin == "DicomProtocol\n"


def test_failing_callbacks_lose_nothing(lua_server: LuaServer) -> None:
    api = lua_server(
        {
            "broken.lua": "function OnStoredInstance() calls = (calls or 0) + 1; error('oops') end",
            "second.lua": "function OnStableSeries(id) error('also broken') end",
        },
        ExecuteLuaEnabled=True,
        StableAge=1,
    )
    ids = [api.post("/instances", content=make_dicom()).json()["ID"] for _ in range(2)]
    wait_for(lambda: "oops" in api.server.log(), timeout=60)
    wait_for(lambda: "also broken" in api.server.log(), timeout=60)
    assert sorted(api.get("/instances").json()) == sorted(ids)
    assert api.post("/tools/execute-script", content=b"print(calls)").text == "2\n"
    assert "stack traceback" in api.server.log()
    assert api.get("/system").status_code == 200


def test_a_failing_script_stops_the_start_up(tmp_path: Path) -> None:
    (tmp_path / "bad.lua").write_text("function Initialize( end")
    server = ServerProcess(tmp_path, {"LuaScripts": ["bad.lua"]})
    with pytest.raises(RuntimeError, match=r"bad\.lua"):
        server.start(timeout=120)
    assert server.process is not None and server.process.returncode == 2


HTTP_FILTER = """
function IncomingHttpRequestFilter(method, uri, ip, username, headers)
  if uri == '/patients' then
    return headers['x-secret'] == 'open sesame'
  end
  return method ~= 'DELETE'
end
"""


def test_http_request_filter_and_http_get_to_the_server_itself(lua_server: LuaServer) -> None:
    api = lua_server({"http.lua": HTTP_FILTER}, ExecuteLuaEnabled=True)
    assert api.get("/patients").status_code == 403
    assert api.get("/patients", headers={"X-Secret": "open sesame"}).status_code == 200
    instance = api.post("/instances", content=make_dicom()).json()["ID"]
    assert api.delete(f"/instances/{instance}").status_code == 403
    # The script waits on an HTTP request whose filter needs Lua: no deadlock.
    script = f"""
    local patients = HttpGet('{api.server.url}/patients', {{['X-Secret'] = 'open sesame'}})
    print(#ParseJson(patients))
    print(HttpGet('{api.server.url}/patients'))
    print(HttpDelete('{api.server.url}/instances/{instance}'))
    """
    answer = api.post("/tools/execute-script", content=script.encode())
    assert answer.status_code == 200, answer.text
    assert answer.text.splitlines() == ["1", "nil", "nil"]
    # In-process calls are not HTTP requests: no filter, as in Orthanc.
    script = f"print(RestApiDelete('/instances/{instance}'))"
    assert api.post("/tools/execute-script", content=script.encode()).text == "true\n"
    assert api.get("/instances").json() == []


def test_rest_api_calls_store_as_lua(lua_server: LuaServer) -> None:
    """RestApiPost('/instances') from a callback: stored with origin Lua, its filter runs."""
    script = """
    function ReceivedInstanceFilter(dicom, origin)
      origins = (origins or '') .. origin['RequestOrigin'] .. ' '
      return true
    end
    function OnStoredInstance(id, tags, metadata, origin)
      if origin['RequestOrigin'] ~= 'Lua' then
        local file = RestApiGet('/instances/' .. id .. '/file')
        RestApiDelete('/instances/' .. id)
        copy = ParseJson(RestApiPost('/instances', file))['ID']
      end
    end
    """
    api = lua_server({"copy.lua": script}, ExecuteLuaEnabled=True)
    data = make_dicom()
    instance = api.post("/instances", content=data).json()["ID"]

    def copied() -> bool:
        return api.post("/tools/execute-script", content=b"print(copy)").text != "nil\n"

    wait_for(copied, timeout=60)
    assert api.post("/tools/execute-script", content=b"print(origins)").text == "RestApi Lua \n"
    assert api.get("/instances").json() == [instance]  # the same file, the same ID
    metadata = api.get(f"/instances/{instance}/metadata?expand").json()
    assert metadata["Origin"] == "Lua"
    assert (
        pydicom.dcmread(
            __import__("io").BytesIO(api.get(f"/instances/{instance}/file").content)
        ).PatientID
        == "P1"
    )


# --- the hooks, in-process ----------------------------------------------------------------


@pytest.fixture
def plugin() -> Iterator[LuaPlugin]:
    plugin = LuaPlugin({"Name": "Test"}, [])
    yield plugin
    plugin.pharos_shutdown()


def run(plugin: LuaPlugin, source: str) -> str:
    return plugin.execute_script(source.encode())


def test_registration_follows_the_callbacks(plugin: LuaPlugin) -> None:
    manager = PluginManager()
    plugin.attach(manager)
    assert manager.names() == ["lua"]
    assert manager.has("pharos_startup")
    assert not manager.has("pharos_incoming_instance_filter")  # the store path skips Lua
    run(plugin, "function ReceivedInstanceFilter() return false end")
    assert manager.has("pharos_incoming_instance_filter")
    assert not manager.has("pharos_on_stored_instance")
    run(plugin, "ReceivedInstanceFilter = nil function OnJobSuccess() end")
    assert not manager.has("pharos_incoming_instance_filter")
    assert manager.has("pharos_on_job")
    assert manager.infos()["lua"]["Version"] == "Lua 5.4"


def test_find_filters(plugin: LuaPlugin) -> None:
    run(
        plugin,
        """
        function IncomingFindRequestFilter(query, origin)
          query['PatientID'] = query['PatientID'] .. '*'
          query['Origin'] = origin['RemoteAet']
          return query
        end
        function OutgoingFindRequestFilter(query, modality)
          return {}
        end
        """,
    )
    rewritten = plugin.pharos_incoming_find_filter({"PatientID": "0123"}, {"RemoteAet": "SCU"})
    assert rewritten == {"PatientID": "0123*", "Origin": "SCU"}  # strings stay strings
    assert plugin.pharos_outgoing_find_filter({"PatientID": "1"}, "pacs") == {}
    run(plugin, "function IncomingFindRequestFilter() return 42 end")
    with pytest.raises(LuaScriptError, match="must return the query"):
        plugin.pharos_incoming_find_filter({}, {})


def test_association_callbacks(plugin: LuaPlugin) -> None:
    assert plugin.pharos_accept_transfer_syntax("SCU", "1.2.3.4", "ME", "Jpeg") is None
    run(
        plugin,
        """
        function IsJpegTransferSyntaxAccepted(aet, ip) return aet == 'GOOD' end
        function IsUnknownSopClassAccepted(aet, ip, called) return called == 'ME' end
        function IsRleTransferSyntaxAccepted() return 'yes' end
        """,
    )
    assert plugin.pharos_accept_transfer_syntax("GOOD", "1.2.3.4", "ME", "Jpeg") is True
    assert plugin.pharos_accept_transfer_syntax("BAD", "1.2.3.4", "ME", "Jpeg") is False
    assert plugin.pharos_accept_transfer_syntax("BAD", "1.2.3.4", "ME", "Mpeg2") is None
    assert plugin.pharos_accept_unknown_sop_class("SCU", "1.2.3.4", "ME") is True
    with pytest.raises(LuaScriptError, match="must return true or false"):
        plugin.pharos_accept_transfer_syntax("X", "1.2.3.4", "ME", "Rle")


def test_listeners(plugin: LuaPlugin) -> None:
    run(
        plugin,
        """
        events = ''
        function OnJobSubmitted(id) events = events .. 'submitted ' .. id .. ';' end
        function OnJobFailure(id) events = events .. 'failure ' .. id .. ';' end
        function OnDeletedInstance(id) events = events .. 'deleted ' .. id .. ';' end
        function OnUpdatedStudy(id) events = events .. 'updated ' .. id .. ';' end
        function OnJobSuccess(id) error('a failing listener') end
        """,
    )
    plugin.pharos_on_job("Submitted", "j1", "DicomModalityStore")
    plugin.pharos_on_job("Success", "j1", "DicomModalityStore")  # fails: logged only
    plugin.pharos_on_job("Failure", "j2", "DicomModalityStore")
    plugin.pharos_on_change({"ChangeType": "Deleted", "ResourceType": "Instance", "ID": "i"})
    plugin.pharos_on_change({"ChangeType": "UpdatedMetadata", "ResourceType": "Study", "ID": "s"})
    plugin.pharos_on_change({"ChangeType": "NewSeries", "ResourceType": "Series", "ID": "x"})
    assert run(plugin, "print(events)") == ("submitted j1;failure j2;deleted i;updated s;\n")


def test_http_request_filter_arguments(plugin: LuaPlugin) -> None:
    run(
        plugin,
        """
        function IncomingHttpRequestFilter(method, uri, ip, username, headers)
          seen = table.concat({method, uri, ip, username, headers['authorization']}, '|')
          return username == 'admin'
        end
        """,
    )
    request = IncomingHttpRequest(
        "GET", "/patients", "10.0.0.1", "alice", {"authorization": "Basic x"}, {}
    )
    assert plugin.pharos_incoming_http_request_filter(request) is False
    assert run(plugin, "print(seen)") == "GET|/patients|10.0.0.1|alice|Basic x\n"


def test_has_pixel_data() -> None:
    assert has_pixel_data(make_dicom()) is True
    without = make_dataset()
    del without.PixelData
    assert has_pixel_data(to_bytes(without)) is False
    assert has_pixel_data(b"not DICOM") is False


def test_runtime_scripts_keep_the_change_listeners() -> None:
    manager = PluginManager()
    plugin = LuaPlugin({}, [], scripts_at_runtime=True)
    try:
        plugin.attach(manager)
        assert manager.has("pharos_on_change") and manager.has("pharos_on_stable")
    finally:
        plugin.pharos_shutdown()


def test_lua_scripts_are_relative_to_the_configuration_file(tmp_path: Path) -> None:
    folder = tmp_path / "etc"
    folder.mkdir()
    (folder / "here.lua").write_text("function OnStoredInstance() end")
    (folder / "config.json").write_text('{"LuaScripts": ["here.lua"]}')
    plugin = lua_plugin(load_config([folder / "config.json"]), tmp_path / "elsewhere")
    assert plugin is not None
    try:
        assert plugin.engine.callbacks == {"OnStoredInstance"}
    finally:
        plugin.pharos_shutdown()
    assert lua_plugin(load_config([]), tmp_path) is None  # nothing to run: no Lua at all
    (folder / "config.json").write_text('{"LuaScripts": ["missing.lua"]}')
    with pytest.raises(ValueError, match="cannot read"):
        lua_plugin(load_config([folder / "config.json"]), tmp_path)
