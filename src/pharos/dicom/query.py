"""C-FIND, C-MOVE and C-GET identifiers (PS3.4 C.4), and the data sets of C-FIND answers.

An identifier is read as Orthanc reads it: its text values decoded with its own Specific
Character Set (the default encoding when it has none), the elements of groups below 0008 and
the group lengths left out (PS3.4 C.4.1.1.3), sequences kept as keys to return but never
matched. Answers hold text as the index keeps it (values joined by backslashes) and are
encoded in the default encoding when it can hold them, in UTF-8 otherwise.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from pydicom.charset import python_encoding
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.sequence import Sequence
from pydicom.valuerep import PersonName

from pharos.dicom.charset import (
    CHARACTER_SET_TERMS,
    ENCODINGS,
    TextDecoder,
    canonical_encoding,
)
from pharos.dicom.dictionary import (
    KNOWN_VRS,
    NUMBER_VRS,
    SPECIFIC_CHARACTER_SET,
    STRING_VRS,
    dictionary_vr,
    normalise_vr,
)
from pharos.dicom.values import cstring, main_tag_value, text_of

QUERY_RETRIEVE_LEVEL = 0x00080052
RETRIEVE_AE_TITLE = 0x00080054
UTF8_TERM = "ISO_IR 192"

# The Specific Character Set term of each default encoding that one term can declare (not
# the ISO 2022 code extensions, which need a default repertoire beside them).
_TERMS = {
    name: term for name, term in CHARACTER_SET_TERMS.items() if not term.startswith("ISO 2022")
}


@dataclass(frozen=True, slots=True)
class QueryKey:
    """One attribute of an identifier: a matching key and a key to return."""

    tag: int
    vr: str
    # The value to match ("" is universal matching); None for sequences and binary values,
    # which are returned but never matched.
    value: str | None

    @property
    def is_sequence(self) -> bool:
        return self.vr == "SQ"


@dataclass(frozen=True, slots=True)
class Identifier:
    level: str | None  # QueryRetrieveLevel as sent, None when absent
    keys: tuple[QueryKey, ...]

    def value(self, tag: int) -> str | None:
        """The text of the key `tag`, None if the identifier has no such text key."""
        for key in self.keys:
            if key.tag == tag:
                return key.value
        return None


def parse_identifier(dataset: Dataset, default_encoding: str) -> Identifier:
    decoder = TextDecoder.for_terms(charset_terms(dataset), default_encoding)
    level: str | None = None
    keys: list[QueryKey] = []
    # keys(), not the data set itself: iterating would convert every element
    for tag in sorted(int(t) for t in dataset.keys()):  # noqa: SIM118
        element = dataset.get_item(tag)
        if element is None:
            continue
        vr = element_vr(tag, element)
        if tag == QUERY_RETRIEVE_LEVEL:
            level = element_text(tag, element, vr, decoder)
            continue
        if tag >> 16 < 0x0008 or tag & 0xFFFF == 0 or tag == SPECIFIC_CHARACTER_SET:
            continue
        value = None if vr == "SQ" else element_text(tag, element, vr, decoder)
        keys.append(QueryKey(tag, vr, value))
    return Identifier(level.strip() if level is not None else None, tuple(keys))


def charset_terms(dataset: Dataset) -> list[str] | None:
    """The terms of (0008,0005), or None when the data set has none."""
    element = dataset.get_item(SPECIFIC_CHARACTER_SET)
    if element is None:
        return None
    value: Any = element.value
    if isinstance(value, bytes | bytearray | memoryview):
        return cstring(bytes(value), b" ").decode("latin-1").split("\\")
    return text_of(value).split("\\")


def element_vr(tag: int, element: DataElement | RawDataElement) -> str:
    """The VR of an element; the dictionary's when implicit or UN (as pydicom reads)."""
    vr = element.VR
    if not vr or vr == "UN":
        return dictionary_vr(tag, None)
    vr = normalise_vr(str(vr))
    return vr if vr in KNOWN_VRS else "UN"


def element_text(
    tag: int, element: DataElement | RawDataElement, vr: str, decoder: TextDecoder
) -> str | None:
    """The value of a string or number element as text (values joined by backslashes), as
    the index keeps main tags; None for other VRs."""
    value: Any = element.value
    if isinstance(element, RawDataElement) and isinstance(value, bytes | bytearray | memoryview):
        little_endian = True if element.is_little_endian is None else element.is_little_endian
        return main_tag_value(tag, vr, bytes(value), little_endian, decoder)
    if vr not in STRING_VRS and vr not in NUMBER_VRS:
        return None
    return text_of(value)


# -- answers ------------------------------------------------------------------------------


def answer_element(tag: int, vr: str, text: str | None) -> DataElement:
    """An element of an answer holding `text`, or empty (zero length) when None or when the
    text is not a valid value of the VR."""
    if vr == "SQ":
        return DataElement(tag, vr, Sequence())
    if vr not in STRING_VRS and vr not in NUMBER_VRS:
        return DataElement(tag, vr, None)  # binary values are never answered (as Orthanc)
    if not text:
        return DataElement(tag, vr, None if vr in NUMBER_VRS else "")
    try:
        if vr in NUMBER_VRS:
            number = float if vr in ("FL", "FD") else int
            return DataElement(tag, vr, [number(part) for part in text.split("\\")])
        return DataElement(tag, vr, text)
    except (ValueError, OverflowError):
        return DataElement(tag, vr, None if vr in NUMBER_VRS else "")


def set_answer_charset(dataset: Dataset, default_encoding: str) -> None:
    """Declare (and so encode in) the default encoding when every text of the answer fits
    in it, UTF-8 otherwise."""
    name = canonical_encoding(default_encoding)
    term = _TERMS.get(name)
    if term is not None:
        codec = "ascii" if ENCODINGS[name] is None else python_encoding[term]
        if not all(_fits(text, codec) for text in _texts(dataset)):
            term = None
    dataset.SpecificCharacterSet = term or UTF8_TERM


def _fits(text: str, codec: str) -> bool:
    try:
        text.encode(codec)
    except UnicodeEncodeError:
        return False
    return True


def _texts(dataset: Dataset) -> Iterator[str]:
    for element in dataset:  # converts the raw elements of items copied from files
        value: Any = element.value
        if isinstance(value, Sequence):
            for item in value:
                yield from _texts(item)
        else:
            yield from _strings(value)


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, PersonName):
        return (str(value),)
    if isinstance(value, list | tuple | MultiValue):
        return [text for item in value for text in _strings(item)]
    return ()
