"""The DICOM client operations of the REST API, against a recording DicomClient: association
parameters, bodies, identifiers sent (normalization, manufacturers), the query archive,
C-GET storage, and failures (nothing stored, clear errors)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydicom.dataset import Dataset

from pharos.index.base import Reception
from pharos.index.sql import SqlIndex
from pharos.index.sqlite import open_sqlite_index
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.dicom_client import (
    Association,
    FailedInstance,
    FindRequest,
    MoveRequest,
    ReceivedInstance,
    RetrieveReport,
    StoreReport,
    StoreRequest,
)
from pharos.services.dicom_retrieve import RetrieveService
from pharos.services.files import FileService
from pharos.services.modalities import parse_modalities
from pharos.services.options import ServiceOptions
from pharos.services.remote_dicom import RemoteDicomService, ScuSettings
from pharos.services.remote_modalities import ModalityRegistry
from pharos.services.remote_queries import QueryArchive, QueryService
from pharos.services.store import StoreService
from pharos.storage.filesystem import FileSystemStorage
from tests.dicomgen import make_dataset, make_dicom, to_bytes


class RecordingClient:
    """Records every call; answers what the test sets; fails when told to."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Association, Any]] = []
        self.find_answers: list[Dataset] = []
        self.to_send: list[Dataset] = []
        self.failure: PharosError | None = None
        self.refused: set[str] = set()  # SOP instance UIDs the peer refuses to store

    def _record(self, what: str, association: Association, request: Any) -> None:
        self.calls.append((what, association, request))
        if self.failure is not None:
            raise self.failure

    def echo(self, association: Association) -> None:
        self._record("echo", association, None)

    def store(self, association: Association, request: StoreRequest) -> StoreReport:
        self._record("store", association, request)
        report = StoreReport()
        for instance in request.instances:
            request.load(instance)  # the file must be readable
            if instance.sop_instance_uid in self.refused:
                report.failed.append(FailedInstance(instance.sop_instance_uid, "0xA700"))
            else:
                report.sent += 1
        return report

    def find(self, association: Association, request: FindRequest) -> list[Dataset]:
        self._record("find", association, request)
        return list(self.find_answers)

    def move(self, association: Association, request: MoveRequest) -> RetrieveReport:
        self._record("move", association, request)
        return RetrieveReport(completed=len(request.identifiers))

    def get(
        self, association: Association, request: MoveRequest, received: ReceivedInstance
    ) -> RetrieveReport:
        self._record("get", association, request)
        statuses = [received(ds, "1.2.840.10008.1.2.1") for ds in self.to_send]
        return RetrieveReport(completed=statuses.count(0), failed=len(statuses) - statuses.count(0))


MODALITIES = {
    "pacs": {"AET": "PACS", "Host": "127.0.0.1", "Port": 11112, "LocalAet": "MINE"},
    "old": ["OLD", "127.0.0.1", 104, "GenericNoUniversalWildcard"],
    "slow": {"AET": "SLOW", "Host": "127.0.0.1", "Port": 11113, "Timeout": 30},
    "ge": ["GE", "127.0.0.1", 104, "GE"],
}


class World:
    def __init__(self, tmp_path: Path):
        self.index: SqlIndex = open_sqlite_index(tmp_path / "db")
        storage = FileSystemStorage(tmp_path / "files")
        options = ServiceOptions()
        files = FileService(self.index, storage)
        self.store = StoreService(self.index, storage, options)
        declared, _ = parse_modalities(MODALITIES)
        self.registry = ModalityRegistry(declared)
        self.client = RecordingClient()
        self.remote = RemoteDicomService(
            self.registry,
            self.client,
            self.index,
            RetrieveService(self.index, files),
            self.store,
            options,
            ScuSettings(dicom_aet="PHAROS", scu_timeout=10),
        )
        self.queries = QueryService(self.remote, QueryArchive(3))

    def close(self) -> None:
        self.store.close()
        self.index.close()


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    created = World(tmp_path)
    yield created
    created.close()


def body(value: Any) -> bytes:
    return json.dumps(value).encode()


def error_of(call: Any, *args: Any) -> PharosError:
    with pytest.raises(PharosError) as info:
        call(*args)
    return info.value


# -- association parameters -------------------------------------------------------------------


def test_local_aet_and_timeout_choices(world: World) -> None:
    world.remote.echo("pacs", b"")
    world.remote.echo("pacs", body({"Timeout": 3}))
    world.remote.echo("slow", b"{}")
    world.remote.echo("old", body({"LocalAet": "OTHER", "Timeout": 0}))
    seen = [(a.local_aet, a.timeout, a.modality.aet) for _, a, _ in world.client.calls]
    assert seen == [
        ("MINE", 10.0, "PACS"),  # the modality's LocalAet, DicomScuTimeout
        ("MINE", 3.0, "PACS"),  # Timeout of the body
        ("PHAROS", 30.0, "SLOW"),  # DicomAet, the modality's Timeout
        ("OTHER", None, "OLD"),  # LocalAet of the body; 0 is no timeout
    ]


def test_echo_check_find_sends_a_study_query(world: World) -> None:
    world.remote.echo("pacs", body({"CheckFind": True}))
    kinds = [call[0] for call in world.client.calls]
    assert kinds == ["echo", "find"]
    request = world.client.calls[1][2]
    assert request.level is Level.STUDY and request.identifier.QueryRetrieveLevel == "STUDY"
    assert request.identifier.StudyInstanceUID


@pytest.mark.parametrize(
    ("name", "raw", "code"),
    [
        ("nope", b"{}", ErrorCode.INEXISTENT_ITEM),
        ("pacs", b"[1]", ErrorCode.BAD_FILE_FORMAT),
        ("pacs", b"{bad", ErrorCode.BAD_FILE_FORMAT),
        ("pacs", body({"Timeout": -1}), ErrorCode.BAD_FILE_FORMAT),
        ("pacs", body({"CheckFind": "yes"}), ErrorCode.BAD_FILE_FORMAT),
    ],
)
def test_echo_refuses_bad_requests(world: World, name: str, raw: bytes, code: ErrorCode) -> None:
    assert error_of(world.remote.echo, name, raw).code is code
    assert world.client.calls == []


def test_client_errors_surface(world: World) -> None:
    world.client.failure = PharosError(ErrorCode.NETWORK_PROTOCOL, "connection refused")
    error = error_of(world.remote.echo, "pacs", b"")
    assert error.code is ErrorCode.NETWORK_PROTOCOL and error.details == "connection refused"


# -- C-STORE ----------------------------------------------------------------------------------


def stored_study(world: World, count: int = 2) -> tuple[str, list[str]]:
    study_uid = "1.2.3.4"
    results = [
        world.store.store(
            make_dicom(
                study_uid=study_uid,
                series_uid="1.2.3.4.5",
                sop_uid=f"1.2.3.4.5.{i}",
                instance_number=i,
            ),
            Reception("RestApi"),
        )
        for i in range(count)
    ]
    return results[0].ids.study, [r.ids.instance for r in results]


def test_store_expands_resources_to_instances(world: World) -> None:
    study, instances = stored_study(world)
    answer = world.remote.store("pacs", body({"Resources": [study, instances[0]]}))
    assert answer == {
        "Description": "REST API",
        "FailedInstancesCount": 0,
        "InstancesCount": 2,
        "LocalAet": "MINE",
        "ParentResources": [study, instances[0]],
        "RemoteAet": "PACS",
    }
    request = world.client.calls[0][2]
    assert len(request.instances) == 2 and request.move_originator_id is None
    # a bare ID, a JSON string, a list: the same
    for raw in (study.encode(), body(study), body([study])):
        assert world.remote.store("pacs", raw)["InstancesCount"] == 2


def test_store_move_originator(world: World) -> None:
    study, _ = stored_study(world, 1)
    world.remote.store("pacs", body({"Resources": [study], "MoveOriginatorID": 7}))
    request = world.client.calls[0][2]
    assert (request.move_originator_aet, request.move_originator_id) == ("PHAROS", 7)


@pytest.mark.parametrize(
    ("raw", "code", "words"),
    [
        (body({"Resources": ["0" * 8 + "-" + "0" * 8 + "-" + "0" * 8 + "-" + "0" * 8 + "-"
               + "0" * 8]}), ErrorCode.UNKNOWN_RESOURCE, "Unknown resource"),
        (body({"Resources": ["nope"]}), ErrorCode.BAD_FILE_FORMAT, "not a valid Orthanc"),
        (body({"Resources": "x"}), ErrorCode.BAD_FILE_FORMAT, "must contain an array"),
        (body({"Other": 1}), ErrorCode.BAD_FILE_FORMAT, "Resources"),
        (body(3), ErrorCode.BAD_FILE_FORMAT, "JSON object"),
        (body({"Resources": [], "Synchronous": "no"}), ErrorCode.BAD_FILE_FORMAT, "Synchronous"),
        (body({"Resources": [], "Priority": "high"}), ErrorCode.BAD_FILE_FORMAT, "Priority"),
        (body({"Resources": [], "StorageCommitment": "yes"}), ErrorCode.BAD_FILE_FORMAT,
         "StorageCommitment"),
    ],
)  # fmt: skip
def test_store_refuses_bad_bodies(world: World, raw: bytes, code: ErrorCode, words: str) -> None:
    error = error_of(world.remote.store, "pacs", raw)
    assert error.code is code and words in (error.details or "")
    assert world.client.calls == []


def test_store_failures_unless_permissive(world: World) -> None:
    study, _ = stored_study(world)
    world.client.refused = {"1.2.3.4.5.0"}
    error = error_of(world.remote.store, "pacs", body([study]))
    assert error.code is ErrorCode.NETWORK_PROTOCOL and "1 of 2 instances" in (error.details or "")
    assert "1.2.3.4.5.0: 0xA700" in (error.details or "")
    answer = world.remote.store("pacs", body({"Resources": [study], "Permissive": True}))
    assert (answer["InstancesCount"], answer["FailedInstancesCount"]) == (2, 1)


def test_echo_unregistered(world: World) -> None:
    world.remote.echo_unregistered(
        body({"AET": "X", "Host": "10.0.0.1", "Port": 104, "Timeout": 2, "CheckFind": True})
    )
    (_, association, _), (kind, _, _) = world.client.calls
    assert (association.modality.aet, association.local_aet, association.timeout) == (
        "X",
        "PHAROS",
        2.0,
    )
    assert kind == "find"
    for bad in (b"", b"[]", body({"AET": "X", "Host": "h"}), body({"AET": "X", "Port": "p"})):
        assert error_of(world.remote.echo_unregistered, bad).code is ErrorCode.BAD_FILE_FORMAT
    assert len(world.client.calls) == 2


def test_store_straight(world: World) -> None:
    dataset = make_dataset(sop_uid="1.2.3.9")
    answer = world.remote.store_straight("pacs", to_bytes(dataset))
    assert answer == {"SOPClassUID": str(dataset.SOPClassUID), "SOPInstanceUID": "1.2.3.9"}
    request = world.client.calls[0][2]
    assert request.allow_transcoding is False
    assert request.load(request.instances[0]).SOPInstanceUID == "1.2.3.9"
    assert error_of(world.remote.store_straight, "pacs", b"junk").code is ErrorCode.BAD_FILE_FORMAT


# -- queries ----------------------------------------------------------------------------------


def answer(**keys: str) -> Dataset:
    ds = Dataset()
    for keyword, value in keys.items():
        setattr(ds, keyword, value)
    return ds


def test_query_normalizes_and_keeps_answers(world: World) -> None:
    world.client.find_answers = [
        answer(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2", PatientName="A^B"),
        answer(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.3", PatientName="C^D"),
    ]
    created = world.queries.query(
        "pacs",
        body({"Level": "Study", "Query": {"PatientName": "A*", "Modality": "CT", "0008,0020": ""}}),
    )
    assert created["Path"] == f"/queries/{created['ID']}"
    request = world.client.calls[0][2]
    sent = request.identifier
    assert request.study_root and sent.QueryRetrieveLevel == "STUDY"
    assert sent.PatientName == "A*" and "Modality" not in sent  # a series tag: dropped
    assert sent.StudyInstanceUID == "" and sent.AccessionNumber == "" and sent.PatientID == ""
    query_id = created["ID"]
    assert world.queries.answers(query_id, False, world_format("full")) == ["0", "1"]
    content = world.queries.answer_content(query_id, 1, world_format("simplify"))
    assert content["StudyInstanceUID"] == "1.3"
    assert world.queries.answer_operations(query_id, 0) == [
        "content", "retrieve", "query-series", "query-instances",
    ]  # fmt: skip
    assert error_of(world.queries.answer_content, query_id, 2, world_format("full")).code is (
        ErrorCode.PARAMETER_OUT_OF_RANGE
    )


def world_format(name: str) -> Any:
    from pharos.dicom.orthanc_json import TagFormat

    return {"full": TagFormat.FULL, "simplify": TagFormat.SIMPLIFY, "short": TagFormat.SHORT}[name]


def test_query_without_normalization_and_wildcard_fix(world: World) -> None:
    world.queries.query(
        "old", body({"Level": "Series", "Query": {"Modality": "*", "StudyDate": "*"}})
    )
    world.queries.query(
        "old",
        body({"Level": "Patient", "Normalize": False, "Query": {"StudyDate": "*"}}),
    )
    first, second = (call[2].identifier for call in world.client.calls)
    assert first.Modality == "" and first.StudyDate == ""  # GenericNoUniversalWildcard
    assert second.StudyDate == "*" and second.QueryRetrieveLevel == "PATIENT"
    assert world.client.calls[1][2].study_root is False


def test_query_to_ge_uses_universal_wildcards(world: World) -> None:
    world.queries.query("ge", body({"Level": "Series", "Query": {"Modality": "CT"}}))
    sent = world.client.calls[0][2].identifier
    assert (sent.StudyInstanceUID, sent.SeriesInstanceUID, sent.Modality) == ("*", "*", "CT")


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (body({"Query": {}}), ErrorCode.BAD_FILE_FORMAT),
        (body({"Level": "Nope"}), ErrorCode.PARAMETER_OUT_OF_RANGE),
        (body({"Level": "Study", "Query": []}), ErrorCode.BAD_FILE_FORMAT),
        (body({"Level": "Study", "Query": {"NoSuchTag": "x"}}), ErrorCode.UNKNOWN_DICOM_TAG),
        (body({"Level": "Study", "Query": {"PatientName": 3}}), ErrorCode.BAD_FILE_FORMAT),
        (body({"Level": "Study", "Normalize": "yes"}), ErrorCode.BAD_FILE_FORMAT),
    ],
)
def test_query_refuses_bad_bodies(world: World, raw: bytes, code: ErrorCode) -> None:
    assert error_of(world.queries.query, "pacs", raw).code is code
    assert world.client.calls == [] and world.queries.archive.ids() == []


def test_archive_keeps_the_most_recent(world: World) -> None:
    ids = [world.queries.query("pacs", body({"Level": "Patient"}))["ID"] for _ in range(3)]
    world.queries.archive.get(ids[0])  # used: now the most recent
    newest = world.queries.query("pacs", body({"Level": "Patient"}))["ID"]
    assert world.queries.archive.ids() == [ids[2], ids[0], newest]
    world.queries.archive.remove(newest)
    assert error_of(world.queries.archive.get, newest).code is ErrorCode.UNKNOWN_RESOURCE


def test_child_query_and_retrieve(world: World) -> None:
    world.client.find_answers = [answer(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2")]
    parent = world.queries.query("pacs", body({"Level": "Study", "Timeout": 5}))["ID"]
    child = world.queries.child_query(parent, 0, Level.SERIES, body({"Query": {"Modality": "MR"}}))[
        "ID"
    ]
    sent = world.client.calls[1][2].identifier
    assert sent.StudyInstanceUID == "1.2" and sent.Modality == "MR"
    assert world.client.calls[1][1].timeout == 5.0  # inherited
    assert world.queries.archive.get(child).level is Level.SERIES
    assert error_of(world.queries.child_query, parent, 0, Level.STUDY, b"{}").code is (
        ErrorCode.UNKNOWN_RESOURCE
    )
    result = world.queries.retrieve(parent, None, b"TARGET")
    move = world.client.calls[-1][2]
    assert move.target_aet == "TARGET" and move.level is Level.STUDY
    assert [m.StudyInstanceUID for m in move.identifiers] == ["1.2"]
    assert result["Query"] == [{"0008,0052": "STUDY", "0020,000d": "1.2"}]
    assert (result["LocalAet"], result["RemoteAet"]) == ("MINE", "PACS")
    world.queries.retrieve(parent, 0, body({"TargetAet": "OTHER", "Timeout": 1}))
    assert world.client.calls[-1][2].target_aet == "OTHER"
    assert world.client.calls[-1][1].timeout == 1.0
    world.queries.retrieve(parent, 0, b"")
    assert world.client.calls[-1][2].target_aet == "PHAROS"


def test_retrieve_needs_the_unique_keys(world: World) -> None:
    world.client.find_answers = [answer(QueryRetrieveLevel="SERIES", SeriesInstanceUID="1.2")]
    parent = world.queries.query("pacs", body({"Level": "Series"}))["ID"]
    calls = len(world.client.calls)
    error = error_of(world.queries.retrieve, parent, None, b"")
    assert error.code is ErrorCode.BAD_REQUEST and "0020,000d" in (error.details or "")
    assert len(world.client.calls) == calls


# -- C-MOVE and C-GET of identifiers ----------------------------------------------------------


def test_move_resources(world: World) -> None:
    assert (
        world.remote.move_resources(
            "pacs", body({"Level": "Study", "Resources": [{"StudyInstanceUID": "1.2"}]})
        )
        == {}
    )
    request = world.client.calls[0][2]
    assert request.target_aet == "PHAROS" and request.identifiers[0].QueryRetrieveLevel == "STUDY"
    for bad in ({"Level": "Study"}, {"Resources": []}, {"Level": "X", "Resources": []}):
        assert error_of(world.remote.move_resources, "pacs", body(bad)).code in (
            ErrorCode.BAD_FILE_FORMAT,
            ErrorCode.PARAMETER_OUT_OF_RANGE,
        )
    bad_priority = {"Level": "Study", "Resources": [], "Asynchronous": True, "Priority": 1.5}
    assert error_of(world.remote.move_resources, "pacs", body(bad_priority)).code is (
        ErrorCode.BAD_FILE_FORMAT
    )
    assert len(world.client.calls) == 1


def test_get_stores_what_is_received(world: World) -> None:
    world.client.to_send = [make_dataset(sop_uid="1.2.3.7"), Dataset()]
    answer_json = world.remote.get_resources(
        "pacs", body({"Level": "Instance", "Resources": [{"SOPInstanceUID": "1.2.3.7"}]})
    )
    assert answer_json["RemoteAet"] == "PACS"
    ids = world.index.list_public_ids(Level.INSTANCE, 0, None)
    assert len(ids) == 1  # the empty data set was refused, not stored
    ref = world.index.lookup(ids[0])
    assert ref is not None
    metadata = {k: v.value for k, v in world.index.all_metadata(ref).items()}
    assert "DicomProtocol" in metadata.values() and "PACS" in metadata.values()


def test_get_failure_stores_nothing(world: World) -> None:
    world.client.failure = PharosError(ErrorCode.NETWORK_PROTOCOL, "refused")
    world.client.to_send = [make_dataset()]
    raw = body({"Level": "Study", "Resources": [{"StudyInstanceUID": "1"}]})
    assert error_of(world.remote.get_resources, "pacs", raw).code is ErrorCode.NETWORK_PROTOCOL
    assert world.index.list_public_ids(Level.INSTANCE, 0, None) == []


# -- the deprecated find routes ---------------------------------------------------------------


def test_find_study_needs_a_narrow_query(world: World) -> None:
    assert world.remote.find_level("pacs", Level.STUDY, body({"StudyDate": "2024*"})) == []
    assert world.client.calls == []
    world.client.find_answers = [answer(QueryRetrieveLevel="STUDY", StudyInstanceUID="1.2")]
    found = world.remote.find_level("pacs", Level.STUDY, body({"PatientID": "P123"}))
    assert found == [{"QueryRetrieveLevel": "STUDY", "StudyInstanceUID": "1.2"}]
    sent = world.client.calls[0][2].identifier
    assert sent.PatientID == "P123" and "StudyDescription" in sent


def test_find_hierarchy(world: World) -> None:
    world.client.find_answers = [
        answer(QueryRetrieveLevel="X", PatientID="P123", StudyInstanceUID="1.2")
    ]
    result = world.remote.find_hierarchy("pacs", body({}))
    assert result[0]["Studies"][0]["Series"][0]["PatientID"] == "P123"
    assert [call[2].level for call in world.client.calls] == [
        Level.PATIENT, Level.STUDY, Level.SERIES,
    ]  # fmt: skip
