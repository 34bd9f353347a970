"""The body of POST /tools/find: Orthanc's checks, field by field, and where each constraint
goes (the index, a computed value, the files, or nowhere)."""

from __future__ import annotations

from typing import Any

import pytest

from pharos.dicom.computed import (
    MODALITIES_IN_STUDY,
    NUMBER_OF_PATIENT_RELATED_STUDIES,
    NUMBER_OF_SERIES_RELATED_INSTANCES,
    NUMBER_OF_STUDY_RELATED_INSTANCES,
    NUMBER_OF_STUDY_RELATED_SERIES,
    SOP_CLASSES_IN_STUDY,
)
from pharos.dicom.extra_tags import NO_EXTRA_TAGS, ExtraMainTags
from pharos.dicom.matching import Constraint, Kind
from pharos.dicom.orthanc_json import TagFormat
from pharos.index.base_search import LabelsMode, SortKey, SortSource, TagFilter
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.find_request import (
    FindRequest,
    Source,
    locate_tag,
    parse_find_request,
    parse_format,
    parse_requested_tags,
    parse_requested_tags_argument,
)

PATIENT_NAME = 0x00100010
PATIENT_ID = 0x00100020
STUDY_DATE = 0x00080020
STUDY_DESCRIPTION = 0x00081030
MODALITY = 0x00080060
SERIES_DESCRIPTION = 0x0008103E
SOP_INSTANCE_UID = 0x00080018
INSTANCE_NUMBER = 0x00200013
IMAGE_ORIENTATION = 0x00200037
SLICE_THICKNESS = 0x00180050
DEPARTMENT = 0x00081040  # InstitutionalDepartmentName
PATIENT_WEIGHT = 0x00101030

EXTRA = ExtraMainTags(
    {
        Level.PATIENT: (PATIENT_WEIGHT,),
        Level.STUDY: (DEPARTMENT,),
        Level.INSTANCE: (SLICE_THICKNESS,),
    }
)


def parse(
    body: Any,
    extra: ExtraMainTags = NO_EXTRA_TAGS,
    case_sensitive: bool = False,
    storage_access: str = "Always",
    user_metadata: dict[str, Any] | None = None,
) -> FindRequest:
    return parse_find_request(body, extra, case_sensitive, storage_access, user_metadata or {})


def refused(body: Any, **kwargs: Any) -> PharosError:
    with pytest.raises(PharosError) as caught:
        parse(body, **kwargs)
    assert caught.value.http_status == 400, caught.value
    return caught.value


# -- validation of the body ---------------------------------------------------------------------


@pytest.mark.parametrize("body", [[], "Study", 42, None, True, [{"Level": "Study"}]])
def test_the_body_must_be_an_object(body: Any) -> None:
    error = refused(body)
    assert error.code is ErrorCode.BAD_REQUEST
    assert "JSON object" in (error.details or "")


@pytest.mark.parametrize("body", [{"Query": {}}, {"Level": 2, "Query": {}}, {"Level": None}])
def test_level_is_required_and_a_string(body: dict[str, Any]) -> None:
    error = refused(body)
    assert error.code is ErrorCode.BAD_REQUEST
    assert '"Level"' in (error.details or "")


@pytest.mark.parametrize("level", ["Foo", "", "Patientz", "Equipment"])
def test_an_unknown_level_is_out_of_range(level: str) -> None:
    error = refused({"Level": level, "Query": {}})
    assert error.code is ErrorCode.PARAMETER_OUT_OF_RANGE


@pytest.mark.parametrize(
    ("name", "level"),
    [
        ("Patient", Level.PATIENT),
        ("patients", Level.PATIENT),
        ("Study", Level.STUDY),
        ("Studies", Level.STUDY),
        ("STUDY", Level.STUDY),
        ("Series", Level.SERIES),
        ("Instance", Level.INSTANCE),
        ("Instances", Level.INSTANCE),
        ("Image", Level.INSTANCE),
    ],
)
def test_level_names_singular_and_plural(name: str, level: Level) -> None:
    assert parse({"Level": name, "Query": {}}).level is level


def test_query_is_required_and_an_object() -> None:
    # Orthanc: 'Field "Query" is missing, or should be a JSON object'.
    for body in (
        {"Level": "Study"},
        {"Level": "Study", "Query": []},
        {"Level": "Study", "Query": "x"},
    ):
        error = refused(body)
        assert error.code is ErrorCode.BAD_REQUEST
        assert '"Query"' in (error.details or "")
    assert parse({"Level": "Study", "Query": None}).query.filters == ()


@pytest.mark.parametrize("value", [1, None, True, ["Doe"], {"a": "b"}, 1.5])
def test_query_values_must_be_strings(value: Any) -> None:
    error = refused({"Level": "Patient", "Query": {"PatientName": value}})
    assert error.code is ErrorCode.BAD_REQUEST
    assert "PatientName" in (error.details or "")


@pytest.mark.parametrize("name", ["NoSuchTag", "Patient Name", "0010,001", "zzzz,zzzz", ""])
def test_an_unknown_tag_name_is_a_bad_request(name: str) -> None:
    error = refused({"Level": "Patient", "Query": {name: "x"}})
    assert error.code is ErrorCode.UNKNOWN_DICOM_TAG


def test_tags_by_name_or_number() -> None:
    for name in ("PatientName", "0010,0010", "00100010", "0010-0010"):
        request = parse({"Level": "Patient", "Query": {name: "Doe"}})
        assert [f.constraint.tag for f in request.query.filters] == [PATIENT_NAME]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("CaseSensitive", "true"),
        ("CaseSensitive", 1),
        ("Limit", "10"),
        ("Limit", 1.5),
        ("Limit", True),
        ("Since", "0"),
        ("Since", None),
        ("Expand", "yes"),
        ("RequestedTags", "PatientName"),
        ("RequestedTags", [1]),
        ("RequestedTags", ["NoSuchTag"]),
        ("Labels", "teaching"),
        ("Labels", [1]),
        ("LabelsConstraint", ["All"]),
        ("LabelsConstraint", "Some"),
        ("LabelsConstraint", "all"),
        ("Full", "true"),
        ("Short", 1),
        ("OrderBy", {"Type": "DicomTag", "Key": "PatientName"}),
    ],
)
def test_badly_typed_fields_are_bad_requests(field: str, value: Any) -> None:
    refused({"Level": "Study", "Query": {}, field: value})


@pytest.mark.parametrize("field", ["Limit", "Since"])
def test_negative_counts_are_out_of_range(field: str) -> None:
    error = refused({"Level": "Study", "Query": {}, field: -1})
    assert error.code is ErrorCode.PARAMETER_OUT_OF_RANGE


@pytest.mark.parametrize("label", ["", "with space", "x" * 65, "café", "a.b", "semi;colon"])
def test_invalid_labels_are_refused(label: str) -> None:
    error = refused({"Level": "Study", "Query": {}, "Labels": [label]})
    assert error.code is ErrorCode.PARAMETER_OUT_OF_RANGE


@pytest.mark.parametrize(
    "order",
    [
        [{"Type": "DicomTag"}],
        [{"Type": "DicomTag", "Key": 16}],
        [{"Type": "DicomTag", "Key": "PatientName", "Direction": "UP"}],
        [{"Type": "DicomTag", "Key": "PatientName", "Direction": "asc"}],
        [{"Type": "Tag", "Key": "PatientName"}],
        [{"Key": "PatientName"}],
        [{"Type": "DicomTag", "Key": "NoSuchTag"}],
        [{"Type": "DicomTag", "Key": "Modality"}],  # a tag of a lower level
        [{"Type": "DicomTag", "Key": "SliceThickness"}],  # not in the index
        [{"Type": "Metadata", "Key": "NoSuchMetadata"}],
        [{"Type": "Metadata", "Key": "99999999999999999999"}],  # no such metadata type
        [{"Type": "Metadata", "Key": "0"}],
        [{"Type": "Metadata", "Key": "²"}],  # a digit to str.isdigit(), not to int()
        ["PatientName"],
    ],
)
def test_bad_order_by(order: Any) -> None:
    error = refused({"Level": "Study", "Query": {}, "OrderBy": order})
    assert error.code in (ErrorCode.BAD_REQUEST, ErrorCode.UNKNOWN_DICOM_TAG)


def test_wildcards_on_a_date_and_bad_ranges_are_refused() -> None:
    error = refused({"Level": "Study", "Query": {"StudyDate": "2018*"}})
    assert error.code is ErrorCode.PARAMETER_OUT_OF_RANGE
    refused({"Level": "Study", "Query": {"StudyDate": "2018-2019"}})
    error = refused({"Level": "Series", "Query": {"SeriesInstanceUID": "1.2.*"}})
    assert error.code is ErrorCode.PARAMETER_OUT_OF_RANGE


# -- defaults and simple fields -----------------------------------------------------------------


def test_defaults() -> None:
    request = parse({"Level": "Study", "Query": {}})
    assert request.level is Level.STUDY
    assert request.query.filters == ()
    assert request.query.modalities == ()
    assert request.query.labels == ()
    assert request.query.labels_mode is LabelsMode.ALL
    assert request.query.order == ()
    assert request.post_filters == ()
    assert request.never is False
    assert request.expand is False
    assert request.since == 0
    assert request.limit is None
    assert request.fmt is TagFormat.SIMPLIFY
    assert request.requested == ()


def test_counts_expand_and_formats() -> None:
    request = parse({"Level": "Study", "Query": {}, "Since": 3, "Limit": 5, "Expand": True})
    assert (request.since, request.limit, request.expand) == (3, 5, True)
    # "Limit": 0 means no limit (as Orthanc 1.12.4).
    assert parse({"Level": "Study", "Query": {}, "Limit": 0}).limit is None
    assert parse({"Level": "Study", "Query": {}, "Expand": 1}).expand is True
    assert parse({"Level": "Study", "Query": {}, "Expand": 0}).expand is False
    assert parse({"Level": "Study", "Query": {}, "Full": True}).fmt is TagFormat.FULL
    assert parse({"Level": "Study", "Query": {}, "Short": True}).fmt is TagFormat.SHORT
    assert parse({"Level": "Study", "Query": {}, "Full": False}).fmt is TagFormat.SIMPLIFY


def test_parse_format_precedence() -> None:
    # Orthanc's GetDicomFormat: "Simplify" first, then "Short", then "Full".
    assert parse_format({"Full": True, "Short": True}) is TagFormat.SHORT
    assert parse_format({"Full": True, "Simplify": True}) is TagFormat.SIMPLIFY
    assert parse_format({}, TagFormat.FULL) is TagFormat.FULL


def test_labels_and_constraint() -> None:
    request = parse(
        {"Level": "Study", "Query": {}, "Labels": ["b", "a_1"], "LabelsConstraint": "Any"}
    )
    assert request.query.labels == ("b", "a_1")
    assert request.query.labels_mode is LabelsMode.ANY
    none = parse({"Level": "Study", "Query": {}, "Labels": ["x"], "LabelsConstraint": "None"})
    assert none.query.labels_mode is LabelsMode.NONE


def test_requested_tags() -> None:
    request = parse(
        {
            "Level": "Study",
            "Query": {},
            "RequestedTags": ["ModalitiesInStudy", "0010,0010", "PatientName", "StudyDate"],
        }
    )
    assert request.requested == (MODALITIES_IN_STUDY, PATIENT_NAME, STUDY_DATE)
    assert parse_requested_tags([]) == ()
    assert parse_requested_tags_argument(None) == ()
    assert parse_requested_tags_argument("PatientName;0008,0020; ;StudyDate") == (
        PATIENT_NAME,
        STUDY_DATE,
    )
    with pytest.raises(PharosError) as caught:
        parse_requested_tags_argument("PatientName;Nope")
    assert caught.value.http_status == 400


# -- where constraints go -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "level", "place"),
    [
        (PATIENT_NAME, Level.PATIENT, Level.PATIENT),
        (PATIENT_NAME, Level.STUDY, Level.PATIENT),
        (PATIENT_ID, Level.INSTANCE, Level.PATIENT),
        (STUDY_DATE, Level.STUDY, Level.STUDY),
        (STUDY_DATE, Level.SERIES, Level.STUDY),
        (STUDY_DATE, Level.INSTANCE, Level.STUDY),
        (MODALITY, Level.SERIES, Level.SERIES),
        (MODALITY, Level.INSTANCE, Level.SERIES),
        (SOP_INSTANCE_UID, Level.INSTANCE, Level.INSTANCE),
        (IMAGE_ORIENTATION, Level.SERIES, Level.SERIES),
        (IMAGE_ORIENTATION, Level.INSTANCE, Level.INSTANCE),  # a main tag of both levels
        # Main tags of a lower level: nothing matches (Orthanc 1.12.5's ResourceFinder).
        (STUDY_DATE, Level.PATIENT, "below"),
        (MODALITY, Level.STUDY, "below"),
        (INSTANCE_NUMBER, Level.SERIES, "below"),
        # Computed tags: at their own level only.
        (NUMBER_OF_STUDY_RELATED_SERIES, Level.STUDY, "computed"),
        (NUMBER_OF_STUDY_RELATED_INSTANCES, Level.STUDY, "computed"),
        (SOP_CLASSES_IN_STUDY, Level.STUDY, "computed"),
        (NUMBER_OF_PATIENT_RELATED_STUDIES, Level.PATIENT, "computed"),
        (NUMBER_OF_SERIES_RELATED_INSTANCES, Level.SERIES, "computed"),
        (NUMBER_OF_STUDY_RELATED_SERIES, Level.SERIES, "below"),
        (NUMBER_OF_SERIES_RELATED_INSTANCES, Level.STUDY, "below"),
        # Anything else is only in the files.
        (SLICE_THICKNESS, Level.INSTANCE, "file"),
        (SLICE_THICKNESS, Level.STUDY, "file"),
        (DEPARTMENT, Level.STUDY, "file"),
    ],
)
def test_locate_tag_without_extra_tags(tag: int, level: Level, place: Level | str) -> None:
    assert locate_tag(tag, level, NO_EXTRA_TAGS) == place


@pytest.mark.parametrize(
    ("tag", "level", "place"),
    [
        (SLICE_THICKNESS, Level.INSTANCE, Level.INSTANCE),
        (SLICE_THICKNESS, Level.SERIES, "below"),
        (DEPARTMENT, Level.STUDY, Level.STUDY),
        (DEPARTMENT, Level.INSTANCE, Level.STUDY),
        (DEPARTMENT, Level.PATIENT, "below"),
        (PATIENT_WEIGHT, Level.PATIENT, Level.PATIENT),
        (PATIENT_WEIGHT, Level.SERIES, Level.PATIENT),
        (PATIENT_NAME, Level.SERIES, Level.PATIENT),
    ],
)
def test_locate_tag_with_extra_main_tags(tag: int, level: Level, place: Level | str) -> None:
    assert locate_tag(tag, level, EXTRA) == place


def test_a_main_tag_of_an_upper_level_stays_there_when_also_extra_below() -> None:
    # Orthanc's book: with StudyDescription as an extra tag of the series, a series search
    # on StudyDescription still uses the study's value.
    extra = ExtraMainTags({Level.SERIES: (STUDY_DESCRIPTION,)})
    assert locate_tag(STUDY_DESCRIPTION, Level.SERIES, extra) is Level.STUDY
    assert locate_tag(STUDY_DESCRIPTION, Level.INSTANCE, extra) is Level.STUDY


def test_constraints_on_main_tags_go_to_the_index() -> None:
    request = parse(
        {
            "Level": "Instance",
            "Query": {
                "PatientName": "doe*",
                "StudyDate": "20180323-20180325",
                "Modality": "CT\\MR",
                "SOPInstanceUID": "1.2.3",
                "SeriesDescription": "",  # universal: no constraint
            },
        }
    )
    assert request.query.level is Level.INSTANCE
    assert set(request.query.filters) == {
        TagFilter(
            Level.PATIENT, Constraint(PATIENT_NAME, Kind.WILDCARD, ("DOE*",), False), "patient_name"
        ),
        TagFilter(
            Level.STUDY,
            Constraint(STUDY_DATE, Kind.AT_LEAST, ("20180323",), False),
            "study_date",
        ),
        TagFilter(
            Level.STUDY,
            Constraint(STUDY_DATE, Kind.AT_MOST, ("20180325",), False),
            "study_date",
        ),
        TagFilter(Level.SERIES, Constraint(MODALITY, Kind.LIST, ("CT", "MR"), False), "modality"),
        TagFilter(
            Level.INSTANCE,
            Constraint(SOP_INSTANCE_UID, Kind.EQUAL, ("1.2.3",), False),
            "sop_instance_uid",
        ),
    }
    assert request.post_filters == ()
    assert request.never is False


def test_case_sensitivity_default_and_override() -> None:
    body = {"Level": "Patient", "Query": {"PatientName": "Doe"}}
    (insensitive,) = parse(body).query.filters
    assert not insensitive.constraint.case_sensitive
    assert insensitive.constraint.values == ("DOE",)
    (sensitive,) = parse({**body, "CaseSensitive": True}).query.filters
    assert sensitive.constraint.case_sensitive
    assert sensitive.constraint.values == ("Doe",)
    # The server-wide default (CaseSensitivePN) applies when the body says nothing.
    (default,) = parse(body, case_sensitive=True).query.filters
    assert default.constraint.case_sensitive
    (explicit,) = parse({**body, "CaseSensitive": False}, case_sensitive=True).query.filters
    assert not explicit.constraint.case_sensitive


def test_extra_main_tags_go_to_the_index() -> None:
    request = parse(
        {"Level": "Series", "Query": {"InstitutionalDepartmentName": "radio*"}}, extra=EXTRA
    )
    (tag_filter,) = request.query.filters
    assert tag_filter.level is Level.STUDY
    assert tag_filter.column is None  # an extra tag has no column
    assert tag_filter.constraint == Constraint(DEPARTMENT, Kind.WILDCARD, ("RADIO*",), False)
    assert request.post_filters == ()


def test_modalities_in_study_at_the_study_level() -> None:
    request = parse({"Level": "Study", "Query": {"ModalitiesInStudy": "CT\\MR"}})
    assert request.query.filters == ()
    assert request.query.modalities == (
        Constraint(MODALITIES_IN_STUDY, Kind.LIST, ("CT", "MR"), False),
    )
    assert not request.never
    # Elsewhere ModalitiesInStudy is not a tag of the resources: nothing matches.
    assert parse({"Level": "Series", "Query": {"ModalitiesInStudy": "CT"}}).never


def test_computed_tags_are_post_filters() -> None:
    request = parse({"Level": "Study", "Query": {"NumberOfStudyRelatedSeries": "2"}})
    (post,) = request.post_filters
    assert post.source is Source.COMPUTED
    assert post.constraint == Constraint(NUMBER_OF_STUDY_RELATED_SERIES, Kind.EQUAL, ("2",), False)
    assert parse({"Level": "Series", "Query": {"NumberOfStudyRelatedSeries": "2"}}).never


def test_tags_only_in_files_depend_on_storage_access() -> None:
    body = {"Level": "Instance", "Query": {"SliceThickness": "1.5", "PatientID": "P1"}}
    always = parse(body, storage_access="Always")
    (post,) = always.post_filters
    assert post.source is Source.FILE
    assert post.constraint.tag == SLICE_THICKNESS
    assert not always.never
    assert len(always.query.filters) == 1
    for mode in ("Answers", "Never"):
        request = parse(body, storage_access=mode)
        assert request.never, mode
        assert request.post_filters == ()
    # Indexed as an extra main tag, it needs no file whatever the mode.
    indexed = parse(body, extra=EXTRA, storage_access="Never")
    assert not indexed.never and indexed.post_filters == ()
    assert {f.constraint.tag for f in indexed.query.filters} == {SLICE_THICKNESS, PATIENT_ID}


def test_a_tag_of_a_lower_level_matches_nothing() -> None:
    assert parse({"Level": "Study", "Query": {"Modality": "CT"}}).never
    assert parse({"Level": "Patient", "Query": {"StudyDate": "20180323"}}).never
    # ... but a universal value there constrains nothing.
    assert not parse({"Level": "Study", "Query": {"Modality": ""}}).never


# -- OrderBy ------------------------------------------------------------------------------------


def test_order_by_tags_and_metadata() -> None:
    request = parse(
        {
            "Level": "Series",
            "Query": {},
            "OrderBy": [
                {"Type": "DicomTag", "Key": "PatientName", "Direction": "ASC"},
                {"Type": "DicomTag", "Key": "StudyDate", "Direction": "DESC"},
                {"Type": "DicomTag", "Key": "SeriesNumber"},
                {"Type": "DicomTag", "Key": "InstitutionalDepartmentName", "Direction": "DESC"},
                {"Type": "Metadata", "Key": "LastUpdate", "Direction": "DESC"},
                {"Type": "Metadata", "Key": "RemoteAET"},
                {"Type": "Metadata", "Key": "my-metadata"},
                {"Type": "Metadata", "Key": "1025"},
            ],
        },
        extra=EXTRA,
        user_metadata={"my-metadata": 1024},
    )
    assert request.query.order == (
        SortKey(SortSource.COLUMN, Level.PATIENT, "patient_name", False),
        SortKey(SortSource.COLUMN, Level.STUDY, "study_date", True),
        SortKey(SortSource.COLUMN, Level.SERIES, "series_number", False),
        SortKey(SortSource.EXTRA_TAG, Level.STUDY, DEPARTMENT, True),
        SortKey(SortSource.LAST_UPDATE, Level.SERIES, "LastUpdate", True),
        SortKey(SortSource.COLUMN, Level.SERIES, "remote_aet", False),
        SortKey(SortSource.METADATA, Level.SERIES, 1024, False),
        SortKey(SortSource.METADATA, Level.SERIES, 1025, False),
    )


def test_order_by_builtin_metadata_without_a_column() -> None:
    request = parse(
        {"Level": "Study", "Query": {}, "OrderBy": [{"Type": "Metadata", "Key": "ModifiedFrom"}]}
    )
    assert request.query.order == (SortKey(SortSource.METADATA, Level.STUDY, 5, False),)


def test_a_nul_character_matches_nothing() -> None:
    # No stored DICOM value holds a NUL; PostgreSQL text cannot even be compared with one.
    for value in ("Doe\x00", "Do\x00*", "CT\\M\x00R"):
        request = parse({"Level": "Series", "Query": {"PatientName": value, "Modality": "CT"}})
        assert request.never, value
    refused({"Level": "Series", "Query": {"NoSuchTag": "\x00"}})
