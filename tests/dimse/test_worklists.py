"""Modality worklists served by a real server to dcmtk's `findscu -W`: matching, the options of
the Worklists section, access control, Python and Lua worklist filters."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset

from tests.dimse.peers import PHAROS_AET, dcmtk, dicom_port, findscu, requires_dcmtk
from tests.services.test_worklists import write_worklist

pytestmark = requires_dcmtk

STEP = "ScheduledProcedureStepSequence[0]"

PLUGIN = """
from pharos.plugins import hookimpl


@hookimpl
def pharos_incoming_worklist_filter(query, origin):
    if origin.get("RemoteAet") == "INTRUDER":
        return False
    if query.get("0010,0020") == "ALIAS":
        return {**query, "0010,0020": "2"}
    return None
"""

LUA = """
function IncomingWorklistRequestFilter(query, origin)
  if query['0010,0010'] == 'FROMLUA' and origin['RemoteAet'] == 'FINDSCU' then
    query['0010,0010'] = 'SMITH*'
  end
  return query
end
"""


@pytest.fixture
def backend_config() -> dict[str, object]:
    """These tests are about the network and files, not the index: SQLite only."""
    return {}


@pytest.fixture
def database(tmp_path: Path) -> Path:
    folder = tmp_path / "worklists"
    folder.mkdir()
    write_worklist(folder / "a.wl", "DOE^JOHN", "1", modality="CT", date="20240315")
    write_worklist(folder / "b.wl", "DOE^JANE", "2", modality="MR", date="20240320")
    write_worklist(folder / "c.wl", "SMITH^ANNA", "3", modality="CT", station="SCANNER2")
    (folder / "broken.wl").write_bytes(b"not a worklist\n")
    return folder


def worklists(api: Any, folder: Path, keys: list[str], aet: str = "FINDSCU") -> list[Dataset]:
    out = folder / f"answers-{aet}"
    out.mkdir(exist_ok=True)
    return findscu(api, out, keys, model="-W", aet=aet)


def ids(answers: list[Dataset]) -> list[str]:
    return sorted(str(answer.PatientID) for answer in answers)


def test_worklist_queries(api_factory: Any, database: Path, tmp_path: Path) -> None:
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "worklist_gate.py").write_text(PLUGIN)
    lua = tmp_path / "filter.lua"
    lua.write_text(LUA)
    api = api_factory(
        Worklists={"Enable": True, "Database": str(database)},
        DicomAlwaysAllowFindWorklist=True,
        Plugins=[str(plugins)],
        LuaScripts=[str(lua)],
    )
    keys = ["PatientName", "PatientID", f"{STEP}.Modality", f"{STEP}.ScheduledStationAETitle"]

    everything = worklists(api, tmp_path, keys)
    assert ids(everything) == ["1", "2", "3"]  # the broken file is skipped
    assert "broken.wl skipped" in api.server.log()

    doe = worklists(api, tmp_path, ["PatientName=doe*", "PatientID"])
    assert ids(doe) == ["1", "2"]
    assert "ScheduledProcedureStepSequence" not in doe[0]  # only the keys asked for
    assert set(doe[0].dir()) <= {"PatientName", "PatientID", "SpecificCharacterSet"}

    ct = worklists(api, tmp_path, ["PatientID", f"{STEP}.Modality=CT"])
    assert ids(ct) == ["1", "3"]
    assert {a.ScheduledProcedureStepSequence[0].Modality for a in ct} == {"CT"}

    dates = [
        "PatientID",
        f"{STEP}.ScheduledProcedureStepStartDate=20240316-20240331",
        f"{STEP}.ScheduledProcedureStepStartTime",
    ]
    (march,) = worklists(api, tmp_path, dates)
    assert march.PatientID == "2"
    step = march.ScheduledProcedureStepSequence[0]
    assert step.ScheduledProcedureStepStartDate == "20240320"
    assert step.ScheduledProcedureStepStartTime == "093000"

    # The Python plugin rewrites the query, the Lua callback too; the plugin refuses INTRUDER.
    assert ids(worklists(api, tmp_path, ["PatientID=ALIAS"])) == ["2"]
    assert ids(worklists(api, tmp_path, ["PatientName=FROMLUA", "PatientID"])) == ["3"]
    assert worklists(api, tmp_path, ["PatientID"], aet="INTRUDER") == []
    assert "Worklist C-FIND refused by plugin" in api.server.log()

    # Read at each query: a new file is answered at once.
    write_worklist(database / "d.wl", "NEW^PATIENT", "4")
    assert ids(worklists(api, tmp_path, ["PatientID"])) == ["1", "2", "3", "4"]


def test_filter_issuer_aet_limit_answers_and_access(
    api_factory: Any, database: Path, tmp_path: Path
) -> None:
    api = api_factory(
        Worklists={
            "Enable": True,
            "Database": str(database),
            "FilterIssuerAet": True,
            "LimitAnswers": 1,
        },
        DicomModalities={
            "scanner1": ["SCANNER1", "127.0.0.1", 104],
            "scanner2": ["SCANNER2", "127.0.0.1", 104],
            "viewer": {
                "AET": "VIEWER",
                "Host": "127.0.0.1",
                "Port": 104,
                "AllowFindWorklist": False,
            },
        },
    )
    # SCANNER2 sees its own worklist only; SCANNER1 has two, cut by LimitAnswers.
    assert ids(worklists(api, tmp_path, ["PatientID"], aet="SCANNER2")) == ["3"]
    assert len(worklists(api, tmp_path, ["PatientID"], aet="SCANNER1")) == 1
    assert "more answers than LimitAnswers" in api.server.log()

    # Not allowed: a modality without AllowFindWorklist, an unknown AE title (since
    # DicomAlwaysAllowFindWorklist is false): the association is aborted.
    for aet in ("VIEWER", "STRANGER"):
        result = dcmtk(
            "findscu", "-aet", aet, "-aec", PHAROS_AET, "-W", "-k", "PatientID",
            "127.0.0.1", dicom_port(api),
        )  # fmt: skip
        assert "peer aborted association" in result.stdout.lower(), result.stdout
    log = api.server.log()
    assert 'Refused C-FIND (worklist) from AET "VIEWER"' in log
    assert 'Refused C-FIND (worklist) from AET "STRANGER"' in log


def test_worklist_model_is_refused_when_worklists_are_off(api_factory: Any) -> None:
    api = api_factory(DicomAlwaysAllowFindWorklist=True)
    result = dcmtk(
        "findscu", "-aet", "FINDSCU", "-aec", PHAROS_AET, "-W", "-k", "PatientID",
        "127.0.0.1", dicom_port(api),
    )  # fmt: skip
    assert result.returncode != 0
    assert "no acceptable presentation contexts" in result.stdout.lower(), result.stdout
