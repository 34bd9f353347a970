"""The Orthanc Book's Lua scripts and Orthanc's Lua samples, run unchanged (but for the
modality name and the target folder) against a real server and dcmtk's storescp."""

from __future__ import annotations

import sys
from pathlib import Path

import pydicom
import pytest

from tests.dicomgen import make_dataset, make_dicom
from tests.dimse.peers import StoreScp, requires_dcmtk, storescu
from tests.jobs.fakes import wait_for
from tests.plugins.lua.test_plugin import LuaServer, lua_server

__all__ = ["lua_server"]  # the fixture, shared with test_plugin.py

# lua.rst, "Auto-routing of DICOM images": modify, send, delete the copy and the original.
BOOK_MODIFY_AND_ROUTE = """
function OnStoredInstance(instanceId, tags, metadata)
   -- Ignore the instances that result from a modification to avoid
   -- infinite loops
   if (metadata['ModifiedFrom'] == nil and
       metadata['AnonymizedFrom'] == nil) then

     -- The tags to be replaced
      local replace = {}
      replace['StationName'] = 'My Medical Device'

     -- The tags to be removed
      local remove = { 'MilitaryRank' }

     -- Modify the instance, send it, then delete the modified instance
      Delete(SendToModality(ModifyInstance(instanceId, replace, remove, true), 'sample'))

     -- Delete the original instance
      Delete(instanceId)
   end
end
"""


@requires_dcmtk
def test_book_modify_then_route(lua_server: LuaServer, tmp_path: Path) -> None:
    with StoreScp(tmp_path / "received") as pacs:
        api = lua_server(
            {"route.lua": BOOK_MODIFY_AND_ROUTE}, DicomModalities={"sample": pacs.modality()}
        )
        api.post("/instances", content=make_dicom(MilitaryRank="Major")).raise_for_status()
        wait_for(lambda: len(pacs.complete()) == 1, timeout=60)
        wait_for(lambda: api.get("/instances").json() == [], timeout=60)
    (sent,) = pacs.received()
    assert sent.StationName == "My Medical Device"
    assert "MilitaryRank" not in sent
    assert "failed" not in api.server.log()


# The copy made by ModifyInstance() must reach OnStoredInstance with its ModifiedFrom
# metadata, which the script above relies on to stop: without it this one never ends.
MODIFIED_FROM = """
function OnStoredInstance(instanceId, tags, metadata, origin)
  if metadata['ModifiedFrom'] == nil then
    ModifyInstance(instanceId, {StationName = 'Copy'}, {}, true)
  else
    seen = (seen or '') .. metadata['ModifiedFrom'] .. ' ' .. origin['RequestOrigin'] .. ';'
  end
end
"""


def test_modify_instance_copies_carry_modified_from(lua_server: LuaServer) -> None:
    api = lua_server({"copy.lua": MODIFIED_FROM}, ExecuteLuaEnabled=True)
    original = api.post("/instances", content=make_dicom()).json()["ID"]

    def seen() -> str:
        return api.post("/tools/execute-script", content=b"print(seen)").text

    wait_for(lambda: seen() != "nil\n", timeout=60)
    assert seen() == f"{original} Lua;\n"
    instances = api.get("/instances", params={"expand": ""}).json()
    assert len(instances) == 2
    (copy,) = [i for i in instances if i["ID"] != original]
    assert api.get(f"/instances/{copy['ID']}/simplified-tags").json()["StationName"] == "Copy"


# Orthanc's AutoroutingModification.lua, through the REST API: note '/instances/' and the bare
# ID posted to /modalities/sample/store. (Its private tag '0031-1020' is left out: Pharos asks
# for a PrivateCreator to add a private tag.)
BOOK_REST_MODIFICATION = """
function OnStoredInstance(instanceId, tags, metadata, origin)
   -- Ignore the instances that result from the present Lua script to
   -- avoid infinite loops
   if origin['RequestOrigin'] ~= 'Lua' then

      -- The tags to be replaced
      local replace = {}
      replace['StationName'] = 'My Medical Device'

      -- The tags to be removed
      local remove = { 'MilitaryRank' }

      -- Modify the instance
      local command = {}
      command['Replace'] = replace
      command['Remove'] = remove
      local modifiedFile = RestApiPost('/instances/' .. instanceId .. '/modify', DumpJson(command, true))

      -- Upload the modified instance to the Orthanc database so that
      -- it can be sent by Orthanc to other modalities
      local modifiedId = ParseJson(RestApiPost('/instances/', modifiedFile)) ['ID']

      -- Send the modified instance to another modality
      RestApiPost('/modalities/sample/store', modifiedId)

      -- Delete the original and the modified instances
      RestApiDelete('/instances/' .. instanceId)
      RestApiDelete('/instances/' .. modifiedId)
   end
end
"""  # noqa: E501 (the sample's long lines, unchanged)


@requires_dcmtk
def test_book_modification_through_the_rest_api(lua_server: LuaServer, tmp_path: Path) -> None:
    with StoreScp(tmp_path / "received") as pacs:
        api = lua_server(
            {"rest.lua": BOOK_REST_MODIFICATION}, DicomModalities={"sample": pacs.modality()}
        )
        api.post("/instances", content=make_dicom(MilitaryRank="Major")).raise_for_status()
        wait_for(lambda: len(pacs.complete()) == 1, timeout=60)
        wait_for(lambda: api.get("/instances").json() == [], timeout=60)
    (sent,) = pacs.received()
    assert sent.StationName == "My Medical Device"
    assert "MilitaryRank" not in sent
    assert "Error in RestApi" not in api.server.log()


# Orthanc's ClassifyUsingAet.lua (like WriteToDisk.lua): files by sending AET, with io and os.
CLASSIFY_USING_AET = """
TARGET = '%s'

function ToAscii(s)
   return s:gsub('[^a-zA-Z0-9-/-: ]', '_')
end

function GetFromTable(t, key, defaultValue)
   local result = t[key]
   if result == nil or result == '' then
      return defaultValue
   else
      return result
   end
end

function OnStoredInstance(instanceId, tags, metadata, origin)
   local dicom = RestApiGet('/instances/' .. instanceId .. '/file')
   local tags = ParseJson(RestApiGet('/instances/' .. instanceId .. '/tags?simplify'))
   local metadata = ParseJson(RestApiGet('/instances/' .. instanceId .. '/metadata?expand'))

   local path = ToAscii(TARGET .. '/' ..
                           GetFromTable(metadata, 'RemoteAET', 'None') .. '/'..
                           GetFromTable(tags, 'StudyDate', '') .. '/' ..
                           GetFromTable(tags, 'PatientID', '') .. ' - ' ..
                           GetFromTable(tags, 'PatientName', '') .. ' - ' ..
                           GetFromTable(tags, 'StudyDescription', '') .. '/' ..
                           GetFromTable(tags, 'Modality', '') .. ' - ' ..
                           GetFromTable(tags, 'SeriesDescription', ''))

   -- Create the subdirectory (CAUTION: For Linux demo only, this is insecure!)
   os.execute('mkdir -p "' .. path .. '"')

   -- Write to the file
   local target = assert(io.open(path .. '/' .. GetFromTable(tags, 'SOPInstanceUID', 'none') .. '.dcm', 'wb'))
   target:write(dicom)
   target:close()

   -- Optional step: Remove the DICOM instance from Orthanc
   RestApiDelete('/instances/' .. instanceId)
end
"""  # noqa: E501 (the sample's long lines, unchanged)


@requires_dcmtk
@pytest.mark.skipif(sys.platform == "win32", reason="the script runs mkdir -p")
def test_classify_using_aet_writes_to_disk(lua_server: LuaServer, tmp_path: Path) -> None:
    target = tmp_path / "classified"
    api = lua_server({"classify.lua": CLASSIFY_USING_AET % target})
    path = tmp_path / "in.dcm"
    dataset = make_dataset(patient_id="AET-1", SeriesDescription="Axial")
    dataset.save_as(path, enforce_file_format=True)
    result = storescu(api, [path], aet="CT-ROOM-2")
    assert "Received Store Response (Success)" in result.stdout, result.stdout
    wait_for(lambda: api.get("/instances").json() == [], timeout=60)
    (written,) = target.rglob("*.dcm")
    relative = written.relative_to(target)
    assert relative.parts[:2] == ("CT-ROOM-2", "20240131")
    assert relative.name == f"{dataset.SOPInstanceUID}.dcm"
    assert pydicom.dcmread(written).PatientID == "AET-1"


CALL_SYSTEM = """
function OnStoredInstance(instanceId, tags, metadata, origin)
  Delete(CallSystem(instanceId, [[%s]], { [[%s]], [[%s]] }))
end
"""

# Copies its last argument (the instance's file) to the folder given first.
COPY_TO = "import shutil, sys; shutil.copy(sys.argv[-1], sys.argv[1])"


def test_call_system_runs_the_command_on_the_instance(
    lua_server: LuaServer, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    script = CALL_SYSTEM % (sys.executable, "-c", COPY_TO.replace("sys.argv[1]", repr(str(out))))
    api = lua_server({"call.lua": script})
    data = make_dicom()
    api.post("/instances", content=data).raise_for_status()
    wait_for(lambda: api.get("/instances").json() == [], timeout=60)  # then Delete() ran
    (copied,) = out.iterdir()
    assert copied.read_bytes() == data


def test_a_failing_system_call_stops_the_chain(lua_server: LuaServer) -> None:
    script = CALL_SYSTEM % (sys.executable, "-c", "import sys; sys.exit(3)")
    api = lua_server({"call.lua": script})
    instance = api.post("/instances", content=make_dicom()).json()["ID"]
    wait_for(lambda: "exited with status 3" in api.server.log(), timeout=60)
    assert api.get("/instances").json() == [instance]  # not deleted: the call failed
