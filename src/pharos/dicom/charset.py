"""Character sets: Orthanc's encoding names, DICOM's defined terms, Python's codecs."""

from __future__ import annotations

from collections.abc import Sequence

from pydicom.charset import convert_encodings

# Orthanc's `DefaultEncoding` values and the DICOM defined term each stands for. Windows1251
# has no DICOM term; Python's codec name is used for it (pydicom accepts codec names).
ENCODINGS: dict[str, str] = {
    "Ascii": "ISO_IR 6",
    "Utf8": "ISO_IR 192",
    "Latin1": "ISO_IR 100",
    "Latin2": "ISO_IR 101",
    "Latin3": "ISO_IR 109",
    "Latin4": "ISO_IR 110",
    "Latin5": "ISO_IR 148",
    "Cyrillic": "ISO_IR 144",
    "Windows1251": "cp1251",
    "Arabic": "ISO_IR 127",
    "Greek": "ISO_IR 126",
    "Hebrew": "ISO_IR 138",
    "Thai": "ISO_IR 166",
    "Japanese": "ISO_IR 13",
    "Chinese": "GB18030",
    "JapaneseKanji": "ISO 2022 IR 87",
    "Korean": "ISO 2022 IR 149",
    "SimplifiedChinese": "ISO 2022 IR 58",
}

_BY_LOWER = {name.lower(): name for name in ENCODINGS}


def canonical_encoding(name: str) -> str:
    """The Orthanc spelling of an encoding name given in any case; ValueError if unknown."""
    try:
        return _BY_LOWER[name.strip().lower()]
    except KeyError:
        allowed = ", ".join(ENCODINGS)
        raise ValueError(f"unknown encoding {name!r}; allowed values: {allowed}") from None


def python_codecs(specific_character_set: str | Sequence[str] | None, default: str) -> list[str]:
    """Python codecs for a dataset's (0008,0005) value, or for `default` (an Orthanc name)."""
    if not specific_character_set:
        return _codecs_of_term(ENCODINGS[default])
    terms = (
        [specific_character_set]
        if isinstance(specific_character_set, str)
        else list(specific_character_set)
    )
    try:
        return convert_encodings(terms)
    except (LookupError, ValueError):
        return _codecs_of_term(ENCODINGS[default])


def _codecs_of_term(term: str) -> list[str]:
    try:
        return convert_encodings([term])
    except (LookupError, ValueError):
        return [term]  # a Python codec name such as cp1251
