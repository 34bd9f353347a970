"""Attribute matching of `/tools/find` queries: DICOM PS3.4 C.2.2.2 with Orthanc's REST rules.

Each query value becomes one or two `Constraint`s, as Orthanc's `DatabaseLookup::
AddRestConstraint` builds them (`DicomTagConstraint`):

- a range `lower-upper` (either side may be empty) for DA, TM and DT: `>=` and `<=` bounds,
  split at the first `-`;
- a list `a\\b\\c`: equal to any item (items are literal: no wildcards inside lists);
- `*` and `?` wildcards for AE, CS, LO, LT, PN, SH, ST, UC, UR and UT (`*` alone asks for
  the tag to be present); wildcards in other VRs are refused;
- otherwise single value matching (equality).

An empty query value is universal matching and produces no constraint. A resource without
the tag never matches (Orthanc's REST constraints are mandatory). Without `case_sensitive`,
the value and the query are both folded to upper case (`fold`, Orthanc's
`ToUpperCaseWithAccents`) before comparing, whatever the VR, as Orthanc's REST API does.

Comparisons are by code point, which is also the byte order of UTF-8: what SQLite's BINARY
and PostgreSQL's "C" collations give, so that SQL and Python decide alike.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache

from pharos.model.errors import ErrorCode, PharosError

RANGE_VRS = frozenset({"DA", "TM", "DT"})
# Orthanc >= 1.6.0 (PS3.4 C.2.2.2.4): the VRs where `*` and `?` are wildcards.
WILDCARD_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UR", "UT"})

_RANGE_BOUNDS = {
    "DA": re.compile(r"\d{8}"),
    "TM": re.compile(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?"),
    "DT": re.compile(r"\d{4}(\d{2}(\d{2}(\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?)?)?)?([+-]\d{4})?"),
}


class Kind(Enum):
    EQUAL = "="
    AT_LEAST = ">="
    AT_MOST = "<="
    WILDCARD = "~"
    LIST = "in"


@dataclass(frozen=True, slots=True)
class Constraint:
    """One condition on the value of one tag. `values` are folded unless case-sensitive."""

    tag: int
    kind: Kind
    values: tuple[str, ...]
    case_sensitive: bool

    @property
    def value(self) -> str:
        return self.values[0]

    def key(self, value: str) -> str:
        """The form of a stored value that this constraint compares."""
        return value if self.case_sensitive else fold(value)

    def matches(self, value: str | None) -> bool:
        if value is None:
            return False
        candidate = self.key(value)
        if self.kind is Kind.EQUAL:
            return candidate == self.values[0]
        if self.kind is Kind.AT_LEAST:
            return candidate >= self.values[0]
        if self.kind is Kind.AT_MOST:
            return candidate <= self.values[0]
        if self.kind is Kind.LIST:
            return candidate in self.values
        return wildcard_regex(self.values[0]).fullmatch(candidate) is not None

    @property
    def is_presence(self) -> bool:
        """`*` alone: any value, as long as the tag is there."""
        return self.kind is Kind.WILDCARD and self.values[0] == "*"


def fold(text: str) -> str:
    """Orthanc's `Toolbox::ToUpperCaseWithAccents`: each character to upper case, accents
    kept, one character for one (so 'ß' stays 'ß', where str.upper() gives 'SS')."""
    if text.isascii():
        return text.upper()
    return "".join(map(_upper_char, text))


@lru_cache(maxsize=4096)
def _upper_char(char: str) -> str:
    upper = char.upper()
    return upper if len(upper) == 1 else char


def parse_constraints(tag: int, vr: str, query: str, case_sensitive: bool) -> list[Constraint]:
    """The constraints of one query value (none for universal matching)."""
    if query == "":
        return []

    def make(kind: Kind, *values: str) -> Constraint:
        folded = values if case_sensitive else tuple(fold(v) for v in values)
        return Constraint(tag, kind, folded, case_sensitive)

    if vr in RANGE_VRS and "-" in query:
        lower, upper = query.split("-", 1)
        for bound in (lower, upper):
            if bound and _RANGE_BOUNDS[vr].fullmatch(bound) is None:
                raise PharosError(
                    ErrorCode.BAD_REQUEST,
                    f"Bad range {query!r} for tag {_format(tag)}: {bound!r} is not a {vr} value",
                )
        constraints = []
        if lower:
            constraints.append(make(Kind.AT_LEAST, lower))
        if upper:
            constraints.append(make(Kind.AT_MOST, upper))
        return constraints
    if "\\" in query:
        # A set, as Orthanc keeps them (duplicates merged, sorted).
        return [make(Kind.LIST, *sorted(set(query.split("\\"))))]
    has_wildcard = "*" in query or "?" in query
    if vr in WILDCARD_VRS and has_wildcard:
        return [make(Kind.WILDCARD, query)]
    if has_wildcard:
        raise PharosError(
            ErrorCode.PARAMETER_OUT_OF_RANGE,
            f"Wildcards are not allowed on tag {_format(tag)} (VR {vr})",
        )
    return [make(Kind.EQUAL, query)]


@lru_cache(maxsize=1024)
def wildcard_regex(pattern: str) -> re.Pattern[str]:
    parts = [".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern]
    return re.compile("".join(parts), re.DOTALL)


def like_pattern(pattern: str) -> str:
    """A wildcard pattern as SQL LIKE with ESCAPE '\\' (PostgreSQL)."""
    out = []
    for char in pattern:
        if char == "*":
            out.append("%")
        elif char == "?":
            out.append("_")
        elif char in "%_\\":
            out.append("\\" + char)
        else:
            out.append(char)
    return "".join(out)


def glob_pattern(pattern: str) -> str:
    """A wildcard pattern as SQLite GLOB: the same wildcards; only '[' needs escaping."""
    return pattern.replace("[", "[[]")


def literal_prefix(pattern: str) -> str:
    """The characters before the first wildcard."""
    for i, char in enumerate(pattern):
        if char in "*?":
            return pattern[:i]
    return pattern


def _format(tag: int) -> str:
    return f"{tag >> 16:04x},{tag & 0xFFFF:04x}"
