"""The search part of the SQL index (`SqlIndex.find` and friends), on SQLite and PostgreSQL.

One small hierarchy is stored once per backend (module scope) and searched by every test
that only reads; the tests that write use an index of their own. The expected answers are
written from PS3.4 C.2.2.2 and Orthanc's behaviour, in creation order unless sorted.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from pydicom.datadict import tag_for_keyword

from pharos.dicom.computed import (
    INSTANCE_AVAILABILITY,
    MODALITIES_IN_STUDY,
    NUMBER_OF_PATIENT_RELATED_INSTANCES,
    NUMBER_OF_PATIENT_RELATED_SERIES,
    NUMBER_OF_PATIENT_RELATED_STUDIES,
    NUMBER_OF_SERIES_RELATED_INSTANCES,
    NUMBER_OF_STUDY_RELATED_INSTANCES,
    NUMBER_OF_STUDY_RELATED_SERIES,
    SOP_CLASSES_IN_STUDY,
)
from pharos.dicom.dictionary import dictionary_vr
from pharos.dicom.maintags import MAIN_TAGS, SOP_CLASS_UID
from pharos.dicom.matching import Constraint, parse_constraints
from pharos.index.base import Attachment, NewInstance, Reception, ResourceRef
from pharos.index.base_search import (
    FindQuery,
    LabelsMode,
    MainTagsUpdate,
    SortKey,
    SortSource,
    TagFilter,
)
from pharos.index.postgres import open_postgres_index, postgres_url
from pharos.index.sql import SqlIndex
from pharos.index.sqlite import open_sqlite_index
from pharos.model.ids import ResourceIds
from pharos.model.levels import Level
from tests.index.test_sql import index

__all__ = ["index"]

CT = "1.2.840.10008.5.1.4.1.1.2"
SR = "1.2.840.10008.5.1.4.1.1.88.11"
MR = "1.2.840.10008.5.1.4.1.1.4"

P, ST, SE, INST = Level.PATIENT, Level.STUDY, Level.SERIES, Level.INSTANCE
_COLUMNS = {(level, t.keyword): t.column for level, tags in MAIN_TAGS.items() for t in tags}


def tag(keyword: str) -> int:
    number = tag_for_keyword(keyword)
    assert number is not None, keyword
    return int(number)


# -- the stored hierarchy -----------------------------------------------------------------------


@dataclass
class Item:
    """One instance to store: its name and the names and tags of its ancestors."""

    name: str
    patient: tuple[str, dict[str, str]]
    study: tuple[str, dict[str, str]]
    series: tuple[str, dict[str, str]]
    tags: dict[str, str] = field(default_factory=dict)
    sop_class: str = CT
    expected: int | None = None  # ExpectedNumberOfInstances of a new series


P1 = (
    "P1",
    {"PatientID": "P1", "PatientName": "Doe^John", "PatientSex": "M", "PatientWeight": "70"},
)
P2 = ("P2", {"PatientID": "P2", "PatientName": "Buc^Jérôme", "PatientSex": "F"})
P3 = ("P3", {"PatientID": "3.1", "PatientName": "Äneas^Rüdiger"})  # the UID of ST4, too
P4 = ("P4", {"PatientID": "P4", "PatientName": "Groß^Hans"})

ST1 = (
    "ST1",
    {
        "StudyInstanceUID": "1.1",
        "StudyDate": "20180322",
        "StudyDescription": "Chest CT",
        "AccessionNumber": "ACC-1",
        "InstitutionName": "Hôpital Nord",
        "InstitutionalDepartmentName": "Radiology",  # an extra main tag
    },
)
ST2 = (
    "ST2",
    {
        "StudyInstanceUID": "1.2",
        "StudyDate": "20180324",
        "StudyDescription": "Brain MR",
        "AccessionNumber": "ACC-2",
        "InstitutionalDepartmentName": "Neuro",
    },
)
ST3 = (
    "ST3",
    {
        "StudyInstanceUID": "2.1",
        "StudyDate": "20180326",
        "StudyDescription": "chest xr",
        "AccessionNumber": "ACC-3",
    },
)
ST4 = (
    "ST4",
    {
        "StudyInstanceUID": "3.1",
        "StudyDate": "20180323",
        "StudyDescription": "Knee [left]",
        "AccessionNumber": "acc-1",
    },
)
ST5 = ("ST5", {"StudyInstanceUID": "4.1", "StudyDescription": "100%_x"})  # no StudyDate

SE1 = ("SE1", {"SeriesInstanceUID": "1.1.1", "Modality": "CT", "SeriesNumber": "2"})
SE2 = ("SE2", {"SeriesInstanceUID": "1.1.2", "Modality": "SR", "SeriesNumber": "10"})
SE3 = ("SE3", {"SeriesInstanceUID": "1.2.1", "Modality": "MR", "SeriesNumber": "1"})
SE4 = ("SE4", {"SeriesInstanceUID": "2.1.1", "Modality": "CR"})
SE5 = ("SE5", {"SeriesInstanceUID": "3.1.1", "Modality": "MR"})
SE6 = ("SE6", {"SeriesInstanceUID": "4.1.1", "Modality": "OT"})

# In the order received: I3, the report of ST1, comes last, so that ST1 is the study
# updated last and SE2 the series created last.
ITEMS = [
    Item("I1", P1, ST1, SE1, {"InstanceNumber": "1", "SliceThickness": "1.5"}, expected=2),
    Item("I2", P1, ST1, SE1, {"InstanceNumber": "2", "SliceThickness": "3"}),
    Item("I4", P1, ST2, SE3, {"InstanceNumber": "1"}, MR, expected=10),
    Item("I5", P2, ST3, SE4, {"InstanceNumber": "1"}),
    Item("I6", P3, ST4, SE5, {"InstanceNumber": "1"}, MR),
    Item("I7", P4, ST5, SE6, {}),
    Item("I3", P1, ST1, SE2, {"InstanceNumber": "1"}, SR),
]
INSTANCE_UIDS = {"I1": "1.1.1.1", "I2": "1.1.1.2", "I3": "1.1.2.1", "I4": "1.2.1.1"}
INSTANCE_UIDS.update({"I5": "2.1.1.1", "I6": "3.1.1.1", "I7": "4.1.1.1"})

# Creation order of each level.
PATIENTS = ["P1", "P2", "P3", "P4"]
STUDIES = ["ST1", "ST2", "ST3", "ST4", "ST5"]
SERIES = ["SE1", "SE3", "SE4", "SE5", "SE6", "SE2"]
INSTANCES = ["I1", "I2", "I4", "I5", "I6", "I7", "I3"]


def new_instance(item: Item, now: float) -> NewInstance:
    sop = INSTANCE_UIDS[item.name]
    ids = ResourceIds.compute(
        item.patient[1]["PatientID"],
        item.study[1]["StudyInstanceUID"],
        item.series[1]["SeriesInstanceUID"],
        sop,
    )
    return NewInstance(
        ids=ids,
        tags={
            Level.PATIENT: dict(item.patient[1]),
            Level.STUDY: dict(item.study[1]),
            Level.SERIES: dict(item.series[1]),
            Level.INSTANCE: {"SOPInstanceUID": sop, **item.tags},
        },
        attachment=Attachment(1, str(uuid.uuid4()), 100, 100, 1, "md5", "md5"),
        reception=Reception("RestApi", "", "127.0.0.1"),
        transfer_syntax="1.2.840.10008.1.2.1",
        sop_class_uid=item.sop_class,
        pixel_data_offset=500,
        expected_instances=item.expected,
        index_in_series=int(item.tags.get("InstanceNumber", "0")) or None,
        now=now,
    )


@dataclass
class Stored:
    index: SqlIndex
    refs: dict[str, ResourceRef]  # by name
    names: dict[str, str]  # public id -> name

    def names_of(self, refs: list[ResourceRef]) -> list[str]:
        return [self.names[ref.public_id] for ref in refs]

    def find(self, query: FindQuery, since: int = 0, limit: int | None = None) -> list[str]:
        return self.names_of(self.index.find(query, since, limit))

    def pks(self, *names: str) -> list[int]:
        return [self.refs[name].pk for name in names]


def store_all(opened: SqlIndex) -> Stored:
    start = time.time()
    names: dict[str, str] = {}
    for n, item in enumerate(ITEMS):
        new = new_instance(item, start + n)
        opened.store_instance(new, overwrite=False)
        for level, name in zip(
            Level, (item.patient[0], item.study[0], item.series[0], item.name), strict=True
        ):
            names[new.ids.as_tuple()[level - 1]] = name
    refs = {}
    for public_id, name in names.items():
        ref = opened.lookup(public_id)
        assert ref is not None
        refs[name] = ref
    # Labels (Orthanc 1.12) and user metadata, for the label and order tests.
    for name, labels in {"ST1": ("a", "b"), "ST2": ("a",), "ST3": ("c",)}.items():
        for label in labels:
            opened.add_label(refs[name], label)
    for name, value in {"ST1": "b", "ST2": "a", "ST3": "c"}.items():
        opened.set_metadata(refs[name], 1024, value, None, False)
    return Stored(opened, refs, names)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stored(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stored]:
    """The hierarchy above, stored once per backend for the module's read-only tests."""
    if request.param == "sqlite":
        opened = open_sqlite_index(tmp_path_factory.mktemp("search"))
    else:
        section = request.getfixturevalue("postgres_databases").create()
        opened = open_postgres_index(postgres_url(section))
    try:
        yield store_all(opened)
    finally:
        opened.close()


# -- query helpers ------------------------------------------------------------------------------


def on(
    level: Level, keyword: str, value: str, case_sensitive: bool = False, extra: bool = False
) -> tuple[TagFilter, ...]:
    """The filters of `keyword: value` for a tag of `level` (an extra main tag if `extra`)."""
    number = tag(keyword)
    column = None if extra else _COLUMNS[(level, keyword)]
    constraints = parse_constraints(number, dictionary_vr(number, None), value, case_sensitive)
    return tuple(TagFilter(level, c, column) for c in constraints)


def modality(value: str, case_sensitive: bool = False) -> tuple[Constraint, ...]:
    return tuple(parse_constraints(MODALITIES_IN_STUDY, "CS", value, case_sensitive))


def query(
    level: Level,
    *filters: tuple[TagFilter, ...],
    modalities: tuple[Constraint, ...] = (),
    labels: tuple[str, ...] = (),
    order: tuple[SortKey, ...] = (),
) -> FindQuery:
    flat = tuple(f for group in filters for f in group)
    return FindQuery(level, flat, modalities=modalities, labels=labels, order=order)


# -- everything, paging -------------------------------------------------------------------------


def test_no_constraint_lists_every_resource_in_creation_order(stored: Stored) -> None:
    assert stored.find(FindQuery(P)) == PATIENTS
    assert stored.find(FindQuery(ST)) == STUDIES
    assert stored.find(FindQuery(SE)) == SERIES
    assert stored.find(FindQuery(INST)) == INSTANCES


def test_since_and_limit(stored: Stored) -> None:
    assert stored.find(FindQuery(INST), since=2, limit=3) == INSTANCES[2:5]
    assert stored.find(FindQuery(INST), since=5) == INSTANCES[5:]
    assert stored.find(FindQuery(INST), limit=2) == INSTANCES[:2]
    assert stored.find(FindQuery(INST), since=7) == []
    assert stored.find(query(ST, on(P, "PatientID", "P1")), since=1) == ["ST2"]


def test_refs_are_complete(stored: Stored) -> None:
    (ref,) = stored.index.find(query(SE, on(SE, "SeriesInstanceUID", "1.1.2")))
    assert ref == stored.refs["SE2"]
    assert ref.level is SE
    assert ref.parent_pk == stored.refs["ST1"].pk


# -- equality and case ----------------------------------------------------------------------------


def test_equality_is_case_insensitive_by_default(stored: Stored) -> None:
    assert stored.find(query(P, on(P, "PatientName", "doe^john"))) == ["P1"]
    assert stored.find(query(P, on(P, "PatientName", "DOE^JOHN"))) == ["P1"]
    assert stored.find(query(P, on(P, "PatientName", "buc^jérôme"))) == ["P2"]
    assert stored.find(query(P, on(P, "PatientName", "BUC^JÉRÔME"))) == ["P2"]
    assert stored.find(query(P, on(P, "PatientName", "BUC^JEROME"))) == []  # accents kept
    assert stored.find(query(ST, on(ST, "AccessionNumber", "acc-1"))) == ["ST1", "ST4"]


def test_case_sensitive_equality(stored: Stored) -> None:
    assert stored.find(query(P, on(P, "PatientName", "doe^john", True))) == []
    assert stored.find(query(P, on(P, "PatientName", "Doe^John", True))) == ["P1"]
    assert stored.find(query(ST, on(ST, "AccessionNumber", "acc-1", True))) == ["ST4"]
    assert stored.find(query(ST, on(ST, "AccessionNumber", "ACC-1", True))) == ["ST1"]


def test_sharp_s_is_its_own_upper_case(stored: Stored) -> None:
    # Orthanc's ToUpperCaseWithAccents maps one character to one: 'ß' stays 'ß'.
    assert stored.find(query(P, on(P, "PatientName", "groß^hans"))) == ["P4"]
    assert stored.find(query(P, on(P, "PatientName", "GROSS^HANS"))) == []


# -- wildcards ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("doe*", ["P1"]),  # prefix
        ("*^j*", ["P1", "P2"]),  # infix
        ("*rô*", ["P2"]),
        ("*^HANS", ["P4"]),  # suffix
        ("?oe^john", ["P1"]),
        ("???^john", ["P1"]),
        ("??^john", []),
        ("buc^j*", ["P2"]),
        ("äneas*", ["P3"]),
        ("ÄNEAS*", ["P3"]),
        ("*", PATIENTS),  # presence
        ("*x*", []),
    ],
)
def test_case_insensitive_wildcards(stored: Stored, pattern: str, expected: list[str]) -> None:
    assert stored.find(query(P, on(P, "PatientName", pattern))) == expected


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("Doe*", ["P1"]),
        ("doe*", []),
        ("*^J*", ["P1", "P2"]),
        ("*^j*", []),
        ("Äneas*", ["P3"]),
        ("äneas*", []),
        ("?uc^Jérôme", ["P2"]),
    ],
)
def test_case_sensitive_wildcards(stored: Stored, pattern: str, expected: list[str]) -> None:
    assert stored.find(query(P, on(P, "PatientName", pattern, True))) == expected


def test_wildcards_escape_sql_pattern_characters(stored: Stored) -> None:
    description = "StudyDescription"
    assert stored.find(query(ST, on(ST, description, "100%_x"))) == ["ST5"]
    assert stored.find(query(ST, on(ST, description, "100%*"))) == ["ST5"]
    assert stored.find(query(ST, on(ST, description, "100_*"))) == []  # '_' is literal
    assert stored.find(query(ST, on(ST, description, "*%*"))) == ["ST5"]
    assert stored.find(query(ST, on(ST, description, "%*"))) == []  # '%' is literal
    assert stored.find(query(ST, on(ST, description, "*[left]"))) == ["ST4"]  # '[' is literal
    assert stored.find(query(ST, on(ST, description, "*[l]*"))) == []
    assert stored.find(query(ST, on(ST, description, "chest*"))) == ["ST1", "ST3"]
    assert stored.find(query(ST, on(ST, description, "chest*", True))) == ["ST3"]


def test_presence_on_a_column(stored: Stored) -> None:
    assert stored.find(query(ST, on(ST, "InstitutionName", "*"))) == ["ST1"]
    assert stored.find(query(ST, on(ST, "StudyDate", ""))) == STUDIES  # universal
    assert stored.find(query(SE, on(SE, "SeriesNumber", ""))) == SERIES


# -- ranges and lists ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("20180323-20180325", ["ST2", "ST4"]),
        ("20180323-", ["ST2", "ST3", "ST4"]),
        ("-20180323", ["ST1", "ST4"]),
        ("-20991231", ["ST1", "ST2", "ST3", "ST4"]),  # ST5 has no date: never matches
        ("20180326-20180326", ["ST3"]),
        ("20180327-", []),
        ("20180322", ["ST1"]),
    ],
)
def test_date_ranges(stored: Stored, value: str, expected: list[str]) -> None:
    assert stored.find(query(ST, on(ST, "StudyDate", value))) == expected
    assert stored.find(query(ST, on(ST, "StudyDate", value, True))) == expected


def test_lists(stored: Stored) -> None:
    assert stored.find(query(SE, on(SE, "Modality", "CT\\MR"))) == ["SE1", "SE3", "SE5"]
    assert stored.find(query(SE, on(SE, "Modality", "ct\\mr"))) == ["SE1", "SE3", "SE5"]
    assert stored.find(query(SE, on(SE, "Modality", "ct\\mr", True))) == []
    assert stored.find(query(ST, on(ST, "StudyInstanceUID", "1.1\\2.1\\9.9"))) == ["ST1", "ST3"]
    assert stored.find(query(ST, on(ST, "StudyDate", "20180322\\20180326"))) == ["ST1", "ST3"]


# -- tags of the levels above ---------------------------------------------------------------------


def test_tags_of_upper_levels(stored: Stored) -> None:
    assert stored.find(query(INST, on(P, "PatientID", "P1"))) == ["I1", "I2", "I4", "I3"]
    assert stored.find(query(SE, on(ST, "StudyDate", "20180322"))) == ["SE1", "SE2"]
    assert stored.find(query(SE, on(P, "PatientName", "buc*"))) == ["SE4"]
    assert stored.find(query(ST, on(P, "PatientName", "doe*"))) == ["ST1", "ST2"]
    assert stored.find(query(INST, on(ST, "StudyDate", "20180323-"))) == ["I4", "I5", "I6"]
    assert stored.find(query(INST, on(SE, "Modality", "MR"))) == ["I4", "I6"]


def test_constraints_on_several_levels_are_all_met(stored: Stored) -> None:
    found = stored.find(
        query(
            INST,
            on(P, "PatientName", "doe*"),
            on(ST, "StudyDate", "-20180323"),
            on(SE, "Modality", "CT"),
            on(INST, "InstanceNumber", "2"),
        )
    )
    assert found == ["I2"]
    assert stored.find(query(INST, on(P, "PatientID", "P1"), on(SE, "Modality", "CR"))) == []


def test_modalities_in_study(stored: Stored) -> None:
    assert stored.find(query(ST, modalities=modality("SR"))) == ["ST1"]
    assert stored.find(query(ST, modalities=modality("sr"))) == ["ST1"]
    assert stored.find(query(ST, modalities=modality("sr", True))) == []
    assert stored.find(query(ST, modalities=modality("CR\\SR"))) == ["ST1", "ST3"]
    assert stored.find(query(ST, modalities=modality("M*"))) == ["ST2", "ST4"]
    assert stored.find(query(ST, modalities=modality("US"))) == []
    combined = query(ST, on(P, "PatientID", "P1"), modalities=modality("MR"))
    assert stored.find(combined) == ["ST2"]


# -- extra main tags ----------------------------------------------------------------------------


def test_extra_main_tags(stored: Stored) -> None:
    department = "InstitutionalDepartmentName"
    assert stored.find(query(ST, on(ST, department, "radio*", extra=True))) == ["ST1"]
    assert stored.find(query(ST, on(ST, department, "radio*", True, extra=True))) == []
    assert stored.find(query(ST, on(ST, department, "*", extra=True))) == ["ST1", "ST2"]
    assert stored.find(query(ST, on(ST, department, "Neuro\\Radiology", extra=True))) == [
        "ST1",
        "ST2",
    ]
    # From lower levels, through the study.
    assert stored.find(query(SE, on(ST, department, "NEURO", extra=True))) == ["SE3"]
    assert stored.find(query(INST, on(ST, department, "radiology", extra=True))) == [
        "I1",
        "I2",
        "I3",
    ]
    # A patient's extra tag, from the study's copy at lower levels.
    weight = on(P, "PatientWeight", "70", extra=True)
    assert stored.find(query(P, weight)) == ["P1"]
    assert stored.find(query(ST, weight)) == ["ST1", "ST2"]
    assert stored.find(query(INST, weight)) == ["I1", "I2", "I4", "I3"]
    # An instance's.
    assert stored.find(query(INST, on(INST, "SliceThickness", "1.5", extra=True))) == ["I1"]
    thickness = on(INST, "SliceThickness", "1.5\\3", extra=True)
    assert stored.find(query(INST, thickness)) == ["I1", "I2"]


# -- labels -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("labels", "mode", "expected"),
    [
        (("a",), LabelsMode.ALL, ["ST1", "ST2"]),
        (("a", "b"), LabelsMode.ALL, ["ST1"]),
        (("a", "c"), LabelsMode.ALL, []),
        (("b", "c"), LabelsMode.ANY, ["ST1", "ST3"]),
        (("zzz",), LabelsMode.ANY, []),
        (("a",), LabelsMode.NONE, ["ST3", "ST4", "ST5"]),
        (("a", "c"), LabelsMode.NONE, ["ST4", "ST5"]),
        ((), LabelsMode.NONE, STUDIES),
    ],
)
def test_labels(
    stored: Stored, labels: tuple[str, ...], mode: LabelsMode, expected: list[str]
) -> None:
    assert stored.find(FindQuery(ST, labels=labels, labels_mode=mode)) == expected


def test_labels_are_those_of_the_query_level(stored: Stored) -> None:
    assert stored.find(FindQuery(SE, labels=("a",))) == []
    assert stored.find(FindQuery(P, labels=("a",), labels_mode=LabelsMode.NONE)) == PATIENTS
    found = stored.find(query(ST, on(P, "PatientID", "P1"), labels=("b",)))
    assert found == ["ST1"]


# -- order --------------------------------------------------------------------------------------


def sort(
    source: SortSource, level: Level, key: str | int, descending: bool = False
) -> tuple[SortKey, ...]:
    return (SortKey(source, level, key, descending),)


def test_order_by_a_column(stored: Stored) -> None:
    by_name = sort(SortSource.COLUMN, P, "patient_name")
    # Byte order of the values: 'Ä' (U+00C4) after the ASCII letters; ties in creation order.
    assert stored.find(FindQuery(ST, order=by_name)) == ["ST3", "ST1", "ST2", "ST5", "ST4"]
    by_name_desc = sort(SortSource.COLUMN, P, "patient_name", True)
    assert stored.find(FindQuery(ST, order=by_name_desc)) == ["ST4", "ST5", "ST1", "ST2", "ST3"]
    by_date = sort(SortSource.COLUMN, ST, "study_date")
    # No value first when ascending, last when descending.
    assert stored.find(FindQuery(ST, order=by_date)) == ["ST5", "ST1", "ST4", "ST2", "ST3"]
    by_date_desc = sort(SortSource.COLUMN, ST, "study_date", True)
    assert stored.find(FindQuery(ST, order=by_date_desc)) == ["ST3", "ST2", "ST4", "ST1", "ST5"]


def test_order_by_several_keys_with_paging(stored: Stored) -> None:
    order = sort(SortSource.COLUMN, P, "patient_name") + sort(
        SortSource.COLUMN, ST, "study_date", True
    )
    assert stored.find(FindQuery(ST, order=order)) == ["ST3", "ST2", "ST1", "ST5", "ST4"]
    assert stored.find(FindQuery(ST, order=order), since=1, limit=2) == ["ST2", "ST1"]
    by_date_desc = sort(SortSource.COLUMN, ST, "study_date", True)
    assert stored.find(FindQuery(ST, order=by_date_desc), since=1, limit=2) == ["ST2", "ST4"]


def test_order_by_tags_of_upper_levels(stored: Stored) -> None:
    order = sort(SortSource.COLUMN, P, "patient_name", True)
    found = stored.find(FindQuery(INST, order=order))
    assert found == ["I6", "I7", "I1", "I2", "I4", "I3", "I5"]
    by_date = sort(SortSource.COLUMN, ST, "study_date", True)
    assert stored.find(query(SE, on(P, "PatientID", "P1"), order=by_date)) == [
        "SE3",
        "SE1",
        "SE2",
    ]
    # Text sorts as text: "10" before "2".
    by_number = sort(SortSource.COLUMN, SE, "series_number")
    assert stored.find(query(SE, on(ST, "StudyInstanceUID", "1.1\\1.2"), order=by_number)) == [
        "SE3",
        "SE2",
        "SE1",
    ]


def test_order_by_an_extra_tag(stored: Stored) -> None:
    department = tag("InstitutionalDepartmentName")
    order = sort(SortSource.EXTRA_TAG, ST, department)
    assert stored.find(FindQuery(ST, order=order)) == ["ST3", "ST4", "ST5", "ST2", "ST1"]
    order_desc = sort(SortSource.EXTRA_TAG, ST, department, True)
    assert stored.find(FindQuery(ST, order=order_desc)) == ["ST1", "ST2", "ST3", "ST4", "ST5"]
    assert stored.find(FindQuery(SE, order=order_desc)) == [
        "SE1",
        "SE2",
        "SE3",
        "SE4",
        "SE5",
        "SE6",
    ]


def test_order_by_metadata(stored: Stored) -> None:
    order = sort(SortSource.METADATA, ST, 1024)
    assert stored.find(FindQuery(ST, order=order)) == ["ST4", "ST5", "ST2", "ST1", "ST3"]
    order_desc = sort(SortSource.METADATA, ST, 1024, True)
    assert stored.find(FindQuery(ST, order=order_desc)) == ["ST3", "ST1", "ST2", "ST4", "ST5"]


def test_order_by_metadata_columns(stored: Stored) -> None:
    # Built-in metadata kept in columns: IndexInSeries is a number, sorted as one.
    order = sort(SortSource.COLUMN, INST, "index_in_series", True)
    found = stored.find(query(INST, on(P, "PatientID", "P1"), order=order))
    assert found == ["I2", "I1", "I4", "I3"]


def test_order_by_numeric_metadata_columns(stored: Stored) -> None:
    # ExpectedNumberOfInstances is a number (2 before 10), the series without one first.
    order = sort(SortSource.COLUMN, SE, "expected_instances")
    assert stored.find(FindQuery(SE, order=order)) == ["SE4", "SE5", "SE6", "SE2", "SE1", "SE3"]
    order_desc = sort(SortSource.COLUMN, SE, "expected_instances", True)
    assert stored.find(FindQuery(SE, order=order_desc)) == [
        "SE3",
        "SE1",
        "SE4",
        "SE5",
        "SE6",
        "SE2",
    ]
    offset = sort(SortSource.COLUMN, INST, "pixel_data_offset")
    assert stored.find(FindQuery(INST, order=offset)) == INSTANCES


def test_order_by_last_update(stored: Stored) -> None:
    # ST1 received its last instance (I3) after every other study.
    order = sort(SortSource.LAST_UPDATE, ST, "LastUpdate", True)
    assert stored.find(FindQuery(ST, order=order)) == ["ST1", "ST5", "ST4", "ST3", "ST2"]
    ascending = sort(SortSource.LAST_UPDATE, P, "LastUpdate")
    assert stored.find(FindQuery(P, order=ascending)) == ["P2", "P3", "P4", "P1"]


# -- /tools/lookup ------------------------------------------------------------------------------


def test_lookup_identifier(stored: Stored) -> None:
    def lookup(value: str) -> list[str]:
        return stored.names_of(stored.index.lookup_identifier(value))

    assert lookup("P1") == ["P1"]
    assert lookup("p1") == ["P1"]  # identifiers are compared upper-cased, as Orthanc stores them
    assert lookup(" 1.1 ") == ["ST1"]
    assert lookup("1.1.2") == ["SE2"]
    assert lookup("1.1.1.2") == ["I2"]
    assert lookup("3.1") == ["P3", "ST4"]  # a PatientID equal to a StudyInstanceUID
    assert lookup("1.") == []
    assert lookup("Doe^John") == []  # not an identifier
    assert lookup("") == []
    assert lookup("P1\x00") == []  # PostgreSQL cannot even compare such text


def test_lookup_identifier_at_one_level(stored: Stored) -> None:
    def lookup(value: str, level: Level) -> list[str]:
        return stored.names_of(stored.index.lookup_identifier(value, level))

    assert lookup("3.1", P) == ["P3"]  # a PatientID equal to a StudyInstanceUID
    assert lookup("3.1", ST) == ["ST4"]
    assert lookup("3.1", SE) == []
    assert lookup("1.1.1.2", INST) == ["I2"]
    assert lookup("1.1.1.2", SE) == []


# -- computed tags, tag values, one instance ----------------------------------------------------


def test_computed_tags_of_studies(stored: Stored) -> None:
    wanted = frozenset(
        {
            NUMBER_OF_STUDY_RELATED_SERIES,
            NUMBER_OF_STUDY_RELATED_INSTANCES,
            MODALITIES_IN_STUDY,
            SOP_CLASSES_IN_STUDY,
            NUMBER_OF_SERIES_RELATED_INSTANCES,  # not a study's: left out
        }
    )
    pk1, pk2, pk5 = stored.pks("ST1", "ST2", "ST5")
    values = stored.index.computed_tags(ST, [pk1, pk2, pk5], wanted)
    assert values[pk1] == {
        NUMBER_OF_STUDY_RELATED_SERIES: "2",
        NUMBER_OF_STUDY_RELATED_INSTANCES: "3",
        MODALITIES_IN_STUDY: "CT\\SR",
        SOP_CLASSES_IN_STUDY: f"{CT}\\{SR}",
    }
    assert values[pk2] == {
        NUMBER_OF_STUDY_RELATED_SERIES: "1",
        NUMBER_OF_STUDY_RELATED_INSTANCES: "1",
        MODALITIES_IN_STUDY: "MR",
        SOP_CLASSES_IN_STUDY: MR,
    }
    assert values[pk5][MODALITIES_IN_STUDY] == "OT"
    only = stored.index.computed_tags(ST, [pk1], frozenset({MODALITIES_IN_STUDY}))
    assert only == {pk1: {MODALITIES_IN_STUDY: "CT\\SR"}}
    counted = stored.index.computed_tags(ST, [pk1], frozenset({NUMBER_OF_STUDY_RELATED_INSTANCES}))
    assert counted == {pk1: {NUMBER_OF_STUDY_RELATED_INSTANCES: "3"}}


def test_computed_tags_of_the_other_levels(stored: Stored) -> None:
    patient_tags = frozenset(
        {
            NUMBER_OF_PATIENT_RELATED_STUDIES,
            NUMBER_OF_PATIENT_RELATED_SERIES,
            NUMBER_OF_PATIENT_RELATED_INSTANCES,
        }
    )
    p1, p2 = stored.pks("P1", "P2")
    assert stored.index.computed_tags(P, [p1, p2], patient_tags) == {
        p1: {
            NUMBER_OF_PATIENT_RELATED_STUDIES: "2",
            NUMBER_OF_PATIENT_RELATED_SERIES: "3",
            NUMBER_OF_PATIENT_RELATED_INSTANCES: "4",
        },
        p2: {
            NUMBER_OF_PATIENT_RELATED_STUDIES: "1",
            NUMBER_OF_PATIENT_RELATED_SERIES: "1",
            NUMBER_OF_PATIENT_RELATED_INSTANCES: "1",
        },
    }
    se1, se2 = stored.pks("SE1", "SE2")
    series_tags = frozenset({NUMBER_OF_SERIES_RELATED_INSTANCES, NUMBER_OF_STUDY_RELATED_SERIES})
    assert stored.index.computed_tags(SE, [se1, se2], series_tags) == {
        se1: {NUMBER_OF_SERIES_RELATED_INSTANCES: "2"},
        se2: {NUMBER_OF_SERIES_RELATED_INSTANCES: "1"},
    }
    (i1,) = stored.pks("I1")
    assert stored.index.computed_tags(INST, [i1], frozenset({INSTANCE_AVAILABILITY})) == {
        i1: {INSTANCE_AVAILABILITY: "ONLINE"}
    }
    assert stored.index.computed_tags(ST, [], frozenset({MODALITIES_IN_STUDY})) == {}


def test_sop_class_uids_of_instances_in_one_call(stored: Stored) -> None:
    # What DICOMweb's instance-level QIDO answers: the SOPClassUID column of each instance.
    i1, i3, i4 = stored.pks("I1", "I3", "I4")
    wanted = frozenset({SOP_CLASS_UID, INSTANCE_AVAILABILITY})
    assert stored.index.computed_tags(INST, [i1, i3, i4], wanted) == {
        i1: {SOP_CLASS_UID: CT, INSTANCE_AVAILABILITY: "ONLINE"},
        i3: {SOP_CLASS_UID: SR, INSTANCE_AVAILABILITY: "ONLINE"},
        i4: {SOP_CLASS_UID: MR, INSTANCE_AVAILABILITY: "ONLINE"},
    }
    assert stored.index.computed_tags(SE, stored.pks("SE1"), frozenset({SOP_CLASS_UID})) == {
        stored.pks("SE1")[0]: {}
    }


def test_tag_values_of_an_instance_and_its_ancestors(stored: Stored) -> None:
    i1, i7 = stored.pks("I1", "I7")
    values = stored.index.tag_values(INST, [i1, i7])
    assert set(values) == {i1, i7}
    first = values[i1]
    assert first[P] == {
        tag("PatientID"): "P1",
        tag("PatientName"): "Doe^John",
        tag("PatientSex"): "M",
        tag("PatientWeight"): "70",
    }
    assert first[ST][tag("StudyDate")] == "20180322"
    assert first[ST][tag("InstitutionName")] == "Hôpital Nord"
    assert first[ST][tag("InstitutionalDepartmentName")] == "Radiology"
    assert first[SE] == {
        tag("SeriesInstanceUID"): "1.1.1",
        tag("Modality"): "CT",
        tag("SeriesNumber"): "2",
    }
    assert first[INST] == {
        tag("SOPInstanceUID"): "1.1.1.1",
        tag("InstanceNumber"): "1",
        tag("SliceThickness"): "1.5",
    }
    assert tag("StudyDate") not in values[i7][ST]  # absent tags are left out
    assert values[i7][INST] == {tag("SOPInstanceUID"): "4.1.1.1"}


def test_tag_values_of_studies_and_patients(stored: Stored) -> None:
    st1, st2, st3 = stored.pks("ST1", "ST2", "ST3")
    values = stored.index.tag_values(ST, [st1, st2, st3])
    assert set(values[st1]) <= {P, ST}
    assert values[st1][P][tag("PatientWeight")] == "70"  # the study's copy
    assert values[st2][ST][tag("InstitutionalDepartmentName")] == "Neuro"
    assert tag("InstitutionalDepartmentName") not in values[st3].get(ST, {})
    p1, p2 = stored.pks("P1", "P2")
    patients = stored.index.tag_values(P, [p1, p2])
    assert patients[p1][P][tag("PatientWeight")] == "70"
    assert patients[p2][P] == {
        tag("PatientID"): "P2",
        tag("PatientName"): "Buc^Jérôme",
        tag("PatientSex"): "F",
    }
    assert stored.index.tag_values(SE, []) == {}


def test_one_instance(stored: Stored) -> None:
    refs = [stored.refs[name] for name in ("P1", "ST2", "SE1", "SE2", "I5")]
    found = stored.index.one_instance(refs)
    assert {stored.names[r.public_id]: stored.names[found[r.pk].public_id] for r in refs} == {
        "P1": "I1",  # the first received
        "ST2": "I4",
        "SE1": "I1",
        "SE2": "I3",
        "I5": "I5",
    }
    assert all(found[r.pk].level is INST for r in refs)
    assert stored.index.one_instance([]) == {}


# -- rewriting main tags (/reconstruct) ---------------------------------------------------------


def test_set_main_tags_replaces_tags_and_extra_tags(index: SqlIndex) -> None:
    stored = store_all(index)
    st1, i1 = stored.refs["ST1"], stored.refs["I1"]
    index.set_main_tags(
        [
            MainTagsUpdate(
                st1.pk,
                ST,
                {"StudyInstanceUID": "1.1", "StudyDate": "20200101", "StudyComments": "new"},
                {"PatientID": "P1", "PatientName": "Doe^Jane"},
            ),
            MainTagsUpdate(i1.pk, INST, {"SOPInstanceUID": "1.1.1.1", "InstanceNumber": "9"}),
        ]
    )
    assert stored.find(query(ST, on(ST, "StudyDate", "20200101"))) == ["ST1"]
    assert stored.find(query(ST, on(ST, "StudyDate", "20180322"))) == []
    assert stored.find(query(ST, on(ST, "StudyComments", "NEW", extra=True))) == ["ST1"]
    # The extra tags it had and the new values lack are gone; the folded twins follow.
    department = "InstitutionalDepartmentName"
    assert stored.find(query(ST, on(ST, department, "*", extra=True))) == ["ST2"]
    assert stored.find(query(ST, on(P, "PatientWeight", "70", extra=True))) == ["ST2"]
    assert stored.find(query(ST, on(P, "PatientName", "doe^jane"))) == ["ST1"]
    assert stored.find(query(INST, on(INST, "InstanceNumber", "9"))) == ["I1"]
    assert stored.find(query(INST, on(INST, "SliceThickness", "1.5\\3", extra=True))) == ["I2"]
    values = index.tag_values(ST, [st1.pk])[st1.pk]
    assert tag("StudyDescription") not in values[ST]
    assert values[ST][tag("StudyComments")] == "new"  # an extra tag
    main_only = index.tag_values(ST, [st1.pk], extras=False)[st1.pk]
    assert tag("StudyComments") not in main_only[ST]
    assert main_only[ST][tag("StudyDate")] == "20200101"
    assert values[P] == {tag("PatientID"): "P1", tag("PatientName"): "Doe^Jane"}
    # The patient's own row is untouched (its update comes separately).
    assert stored.find(query(P, on(P, "PatientName", "Doe^John"))) == ["P1"]
