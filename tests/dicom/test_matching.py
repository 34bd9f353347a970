"""Attribute matching of /tools/find: DICOM PS3.4 C.2.2.2 as Orthanc's REST API applies it.

The expectations come from the standard and from Orthanc (`DatabaseLookup::
AddDicomConstraintInternal`, `DicomTagConstraint`, `Toolbox::ToUpperCaseWithAccents`), not
from the implementation.
"""

from __future__ import annotations

import re
import sqlite3

import pytest

from pharos.dicom.matching import (
    RANGE_VRS,
    WILDCARD_VRS,
    Constraint,
    Kind,
    fold,
    glob_pattern,
    like_pattern,
    literal_prefix,
    parse_constraints,
    wildcard_regex,
)
from pharos.model.errors import ErrorCode, PharosError

PATIENT_NAME = 0x00100010  # PN
PATIENT_ID = 0x00100020  # LO
STUDY_DATE = 0x00080020  # DA
STUDY_TIME = 0x00080030  # TM
ACQUISITION_DATETIME = 0x0008002A  # DT
STUDY_UID = 0x0020000D  # UI
MODALITY = 0x00080060  # CS
SERIES_NUMBER = 0x00200011  # IS


def one(tag: int, vr: str, query: str, case_sensitive: bool = True) -> Constraint:
    constraints = parse_constraints(tag, vr, query, case_sensitive)
    assert len(constraints) == 1, constraints
    return constraints[0]


# -- universal matching -------------------------------------------------------------------------


@pytest.mark.parametrize("vr", ["PN", "LO", "DA", "TM", "DT", "UI", "CS", "IS"])
def test_an_empty_value_is_universal_matching(vr: str) -> None:
    # PS3.4 C.2.2.2.3: a zero-length value matches everything: no constraint at all.
    assert parse_constraints(PATIENT_NAME, vr, "", case_sensitive=False) == []
    assert parse_constraints(PATIENT_NAME, vr, "", case_sensitive=True) == []


# -- single value matching ----------------------------------------------------------------------


def test_single_value_matching_is_equality() -> None:
    constraint = one(PATIENT_ID, "LO", "ABC-123")  # a '-' outside DA/TM/DT is no range
    assert constraint == Constraint(PATIENT_ID, Kind.EQUAL, ("ABC-123",), True)
    assert constraint.value == "ABC-123"
    assert constraint.matches("ABC-123")
    assert not constraint.matches("ABC-1234")
    assert not constraint.matches("abc-123")  # case-sensitive
    assert not constraint.matches(" ABC-123")
    assert not constraint.matches(None)  # no value: Orthanc's REST constraints are mandatory


def test_single_value_matching_of_a_date_and_a_uid() -> None:
    date = one(STUDY_DATE, "DA", "20180323")
    assert date.kind is Kind.EQUAL
    assert date.matches("20180323")
    assert not date.matches("20180324")
    uid = one(STUDY_UID, "UI", "1.2.840.10008.1")
    assert uid.kind is Kind.EQUAL and uid.matches("1.2.840.10008.1")
    assert not uid.matches("1.2.840.10008.10")


def test_case_insensitive_equality_folds_both_sides() -> None:
    constraint = one(PATIENT_NAME, "PN", "buc^jérôme", case_sensitive=False)
    assert constraint.values == ("BUC^JÉRÔME",)
    assert not constraint.case_sensitive
    assert constraint.matches("Buc^Jérôme")
    assert constraint.matches("BUC^JÉRÔME")
    assert constraint.matches("buc^jérôme")
    assert not constraint.matches("Buc^Jerome")  # accents are kept, not stripped
    # Orthanc's REST API folds whatever the VR when CaseSensitive is false.
    assert one(PATIENT_ID, "LO", "abc", case_sensitive=False).matches("ABC")
    assert one(MODALITY, "CS", "ct", case_sensitive=False).matches("CT")


# -- range matching -----------------------------------------------------------------------------


def test_date_range_with_both_bounds() -> None:
    constraints = parse_constraints(STUDY_DATE, "DA", "20180323-20180325", True)
    assert [(c.kind, c.value) for c in constraints] == [
        (Kind.AT_LEAST, "20180323"),
        (Kind.AT_MOST, "20180325"),
    ]

    def matches(value: str) -> bool:
        return all(c.matches(value) for c in constraints)

    assert [
        d for d in ("20180322", "20180323", "20180324", "20180325", "20180326") if matches(d)
    ] == [
        "20180323",
        "20180324",
        "20180325",
    ]


def test_open_date_ranges() -> None:
    # PS3.4 C.2.2.2.5.1: "<date1>-" is on or after date1, "-<date1>" on or before.
    after = one(STUDY_DATE, "DA", "20180323-")
    assert (after.kind, after.value) == (Kind.AT_LEAST, "20180323")
    assert after.matches("20180323") and after.matches("20190101")
    assert not after.matches("20180322")
    before = one(STUDY_DATE, "DA", "-20180325")
    assert (before.kind, before.value) == (Kind.AT_MOST, "20180325")
    assert before.matches("20180325") and before.matches("19991231")
    assert not before.matches("20180326")
    assert not before.matches(None)


def test_a_lone_dash_constrains_nothing() -> None:
    assert parse_constraints(STUDY_DATE, "DA", "-", True) == []


@pytest.mark.parametrize(
    ("vr", "tag", "query", "inside", "outside"),
    [
        ("TM", STUDY_TIME, "10-12", ["10", "103000", "115959"], ["095959", "120001"]),
        ("TM", STUDY_TIME, "101010.5-", ["101010.5", "101011"], ["101010"]),
        (
            "DT",
            ACQUISITION_DATETIME,
            "20180323101010-20180324",
            ["20180323101010", "20180323235959"],
            ["20180323101009", "20180324000000"],
        ),
    ],
)
def test_time_and_datetime_ranges(
    vr: str, tag: int, query: str, inside: list[str], outside: list[str]
) -> None:
    constraints = parse_constraints(tag, vr, query, True)
    assert constraints
    for value in inside:
        assert all(c.matches(value) for c in constraints), value
    for value in outside:
        assert not all(c.matches(value) for c in constraints), value


@pytest.mark.parametrize(
    ("vr", "query"),
    [
        ("DA", "2018-"),  # not a DA value
        ("DA", "abc-def"),
        ("DA", "20180323-2018032"),
        ("DA", "2018/03/23-"),
        ("TM", "1-"),
        ("TM", "10:10-"),
        ("DT", "2018032310101-"),
        ("DA", "2018*-20190101"),
    ],
)
def test_a_malformed_range_is_refused(vr: str, query: str) -> None:
    with pytest.raises(PharosError) as caught:
        parse_constraints(STUDY_DATE, vr, query, True)
    assert caught.value.http_status == 400
    assert caught.value.code in (ErrorCode.BAD_REQUEST, ErrorCode.PARAMETER_OUT_OF_RANGE)


def test_ranges_exist_only_for_dates_and_times() -> None:
    # PS3.4 C.2.2.2.5: "Range matching is not defined for types of Attributes other than
    # dates and times": elsewhere the '-' is a character of the value.
    assert frozenset({"DA", "TM", "DT"}) == RANGE_VRS
    for vr, tag in (("LO", PATIENT_ID), ("SH", 0x00080050), ("IS", SERIES_NUMBER)):
        constraint = one(tag, vr, "1-2")
        assert (constraint.kind, constraint.value) == (Kind.EQUAL, "1-2")


# -- list of UID / value matching ---------------------------------------------------------------


def test_a_list_matches_any_of_its_items() -> None:
    constraint = one(STUDY_UID, "UI", "1.2.3\\1.2.4")
    assert constraint.kind is Kind.LIST
    assert set(constraint.values) == {"1.2.3", "1.2.4"}
    assert constraint.matches("1.2.3") and constraint.matches("1.2.4")
    assert not constraint.matches("1.2.5")
    assert not constraint.matches("1.2.3\\1.2.4")
    assert not constraint.matches(None)


def test_list_items_are_literal_and_merged() -> None:
    # Orthanc's List constraint keeps a std::set of literal values: no wildcards inside.
    constraint = one(MODALITY, "CS", "CT\\M*\\CT")
    assert sorted(constraint.values) == ["CT", "M*"]
    assert constraint.matches("M*")
    assert not constraint.matches("MR")
    # Lists are recognised before wildcards, whatever the VR.
    dates = one(STUDY_DATE, "DA", "20180101\\20180102")
    assert dates.kind is Kind.LIST and dates.matches("20180102")


def test_a_case_insensitive_list_folds_its_items() -> None:
    constraint = one(MODALITY, "CS", "ct\\Mr", case_sensitive=False)
    assert sorted(constraint.values) == ["CT", "MR"]
    assert constraint.matches("mr") and constraint.matches("CT")
    assert not constraint.matches("CR")
    sensitive = one(MODALITY, "CS", "ct\\Mr", case_sensitive=True)
    assert not sensitive.matches("MR") and sensitive.matches("Mr")


# -- wild card matching -------------------------------------------------------------------------


def test_the_vrs_allowing_wildcards() -> None:
    # PS3.4 C.2.2.2.4 (and Orthanc >= 1.6.0).
    assert frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"}) == WILDCARD_VRS


@pytest.mark.parametrize("vr", ["AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"])
def test_wildcards_are_accepted_on_text_vrs(vr: str) -> None:
    constraint = one(PATIENT_NAME, vr, "Do?*")
    assert (constraint.kind, constraint.value) == (Kind.WILDCARD, "Do?*")


@pytest.mark.parametrize(
    ("vr", "query"),
    [
        ("DA", "2018*"),
        ("TM", "10?000"),
        ("DT", "2018*"),
        ("UI", "1.2.*"),
        ("IS", "1?"),
        ("DS", "1.5*"),
        ("US", "1*"),
    ],
)
def test_wildcards_elsewhere_are_refused(vr: str, query: str) -> None:
    # Orthanc's DicomTagConstraint: "Wildcards are not allowed on tag ...".
    with pytest.raises(PharosError) as caught:
        parse_constraints(STUDY_DATE, vr, query, False)
    assert caught.value.code is ErrorCode.PARAMETER_OUT_OF_RANGE
    assert caught.value.http_status == 400
    assert "0008,0020" in (caught.value.details or "")


def test_star_matches_any_sequence_including_none() -> None:
    prefix = one(PATIENT_NAME, "PN", "Doe*")
    assert prefix.matches("Doe") and prefix.matches("Doe^John")
    assert not prefix.matches("John^Doe") and not prefix.matches("doe")
    infix = one(PATIENT_NAME, "PN", "*oh*")
    assert infix.matches("Doe^John") and infix.matches("oh")
    assert not infix.matches("Doe^Jon")
    suffix = one(PATIENT_NAME, "PN", "*^John")
    assert suffix.matches("Doe^John") and not suffix.matches("Doe^Johnny")


def test_question_mark_matches_exactly_one_character() -> None:
    constraint = one(PATIENT_ID, "LO", "P?1")
    assert constraint.matches("PA1") and constraint.matches("P-1")
    assert not constraint.matches("P1") and not constraint.matches("PAB1")
    accented = one(PATIENT_NAME, "PN", "J?r?me")
    assert accented.matches("Jérôme")  # one character, not one byte
    assert accented.matches("Jerome")


def test_a_lone_star_asks_for_presence() -> None:
    constraint = one(PATIENT_NAME, "PN", "*")
    assert constraint.is_presence
    assert constraint.matches("") and constraint.matches("anything")
    assert not constraint.matches(None)
    assert not one(PATIENT_NAME, "PN", "**x").is_presence
    assert not one(PATIENT_NAME, "PN", "Doe").is_presence


def test_other_characters_of_a_pattern_are_literal() -> None:
    constraint = one(PATIENT_ID, "LO", "a.b+(c)[d]*")
    assert constraint.matches("a.b+(c)[d]")
    assert constraint.matches("a.b+(c)[d]-tail")
    assert not constraint.matches("axb+(c)[d]")
    assert not constraint.matches("a.bb(c)d")
    multiline = one(PATIENT_ID, "LT", "first*last")
    assert multiline.matches("first\nand\nlast")


def test_case_insensitive_wildcards() -> None:
    constraint = one(PATIENT_NAME, "PN", "buc^j*", case_sensitive=False)
    assert constraint.values == ("BUC^J*",)
    assert constraint.matches("Buc^Jérôme")
    assert not one(PATIENT_NAME, "PN", "buc^j*", case_sensitive=True).matches("Buc^Jérôme")
    assert one(PATIENT_NAME, "PN", "*é*", case_sensitive=False).matches("JÉRÔME")
    assert one(PATIENT_NAME, "PN", "äneas*", case_sensitive=False).matches("Äneas^Rüdiger")
    assert one(PATIENT_NAME, "PN", "ÄNEAS*", case_sensitive=False).matches("Äneas^Rüdiger")
    assert one(PATIENT_NAME, "PN", "διον*", case_sensitive=False).matches("Διονυσιος")
    assert one(PATIENT_NAME, "PN", "*山田*", case_sensitive=False).matches(
        "Yamada^Tarou=山田^太郎=やまだ^たろう"
    )


def test_wildcard_regex_is_anchored() -> None:
    regex = wildcard_regex("A?C*")
    assert isinstance(regex, re.Pattern)
    assert regex.fullmatch("ABCDEF") and regex.fullmatch("AXC")
    assert not regex.fullmatch("AC")
    assert wildcard_regex("A?C*") is regex  # compiled once


# -- case folding -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "folded"),
    [
        ("doe^john", "DOE^JOHN"),
        ("Jérôme", "JÉRÔME"),
        ("é", "É"),
        ("äneas^rüdiger", "ÄNEAS^RÜDIGER"),
        ("διονυσιος", "ΔΙΟΝΥΣΙΟΣ"),
        ("Διονυσιος", "ΔΙΟΝΥΣΙΟΣ"),
        ("люксембург", "ЛЮКСЕМБУРГ"),
        ("ß", "ß"),  # one character for one: not 'SS' as str.upper() gives
        ("Groß^hans", "GROß^HANS"),
        ("ﬁle", "ﬁLE"),  # the ligature has no one-character upper case
        ("山田^太郎", "山田^太郎"),  # no case: unchanged
        ("A1-b2_*?", "A1-B2_*?"),
        ("", ""),
    ],
)
def test_fold_is_orthanc_upper_case_with_accents(text: str, folded: str) -> None:
    assert fold(text) == folded
    assert len(fold(text)) == len(text)


def test_fold_is_idempotent() -> None:
    for text in ("Buc^Jérôme", "Groß", "Äneas", "Διονυσιος", "ǆemal"):
        assert fold(fold(text)) == fold(text)


# -- SQL patterns -------------------------------------------------------------------------------


def test_like_pattern_translates_wildcards_and_escapes_like_characters() -> None:
    assert like_pattern("Doe*") == "Doe%"
    assert like_pattern("?oe") == "_oe"
    assert like_pattern("100%_x\\y*") == "100\\%\\_x\\\\y%"
    assert like_pattern("plain") == "plain"


def test_glob_pattern_escapes_brackets_only() -> None:
    assert glob_pattern("Doe*") == "Doe*"
    assert glob_pattern("a?[b]*") == "a?[[]b]*"
    assert glob_pattern("100%_x") == "100%_x"


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("Doe*", "Doe^John", True),
        ("Doe*", "doe^John", False),
        ("a?[b]*", "aX[b]tail", True),
        ("a?[b]*", "aXb", False),
        ("100%_x", "100%_x", True),
        ("100%_x", "100abx", False),
        ("J?r?me", "Jérôme", True),
    ],
)
def test_sqlite_glob_agrees_with_python(pattern: str, value: str, expected: bool) -> None:
    constraint = one(PATIENT_ID, "LO", pattern)
    assert constraint.matches(value) is expected
    with sqlite3.connect(":memory:") as conn:
        row = conn.execute("SELECT ? GLOB ?", (value, glob_pattern(pattern))).fetchone()
    assert bool(row[0]) is expected


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("Doe*", "Doe^John", True),
        ("100%_x*", "100%_x-tail", True),
        ("100%_x*", "100abx", False),
        ("J?r?me", "Jérôme", True),
    ],
)
def test_like_pattern_agrees_with_python(pattern: str, value: str, expected: bool) -> None:
    assert one(PATIENT_ID, "LO", pattern).matches(value) is expected
    with sqlite3.connect(":memory:") as conn:
        conn.execute("PRAGMA case_sensitive_like = ON")
        row = conn.execute("SELECT ? LIKE ? ESCAPE '\\'", (value, like_pattern(pattern))).fetchone()
    assert bool(row[0]) is expected


def test_literal_prefix() -> None:
    assert literal_prefix("Doe*") == "Doe"
    assert literal_prefix("Do?e*") == "Do"
    assert literal_prefix("*Doe") == ""
    assert literal_prefix("Doe") == "Doe"
