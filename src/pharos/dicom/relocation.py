"""Rewrite a stored instance for its move into another study (split and merge of studies).

The copy gets the StudyInstanceUID of the target study, new Series and SOP Instance UIDs,
the patient and study module tags asked for (set or removed), and every UID reference to
another moved series or instance, at any depth of sequences, made to follow its new UID. The
pixel data and the transfer syntax are kept as they are (nothing is re-encoded).
"""

from __future__ import annotations

import copy
import io
from collections.abc import Mapping
from dataclasses import dataclass, field

import pydicom
from pydicom.charset import convert_encodings
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.multival import MultiValue
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from pharos.model.errors import ErrorCode, PharosError

STUDY_INSTANCE_UID = 0x0020000D
SERIES_INSTANCE_UID = 0x0020000E
SOP_INSTANCE_UID = 0x00080018
SOP_CLASS_UID = 0x00080016
SPECIFIC_CHARACTER_SET = 0x00080005
REFERENCED_SERIES_SEQUENCE = 0x00081115
_TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "PN", "SH", "ST", "UC", "UT"})
_UTF8 = "ISO_IR 192"


@dataclass(frozen=True, slots=True)
class Relocation:
    """What is done to every instance moved by one split or merge."""

    study_uid: str  # StudyInstanceUID of the target study
    uid_map: Mapping[str, str]  # old Series/SOP Instance UIDs of the moved instances -> new
    replacements: Dataset = field(default_factory=Dataset)  # elements set in each copy
    removals: frozenset[int] = frozenset()


def relocate(data: bytes, relocation: Relocation) -> bytes:
    """The Part 10 file of the copy of instance `data` moved as `relocation` says."""
    try:
        dataset = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:
        raise PharosError(ErrorCode.CORRUPTED_FILE, f"Cannot read a stored file: {exc}") from None
    syntax = _transfer_syntax(dataset)
    old_sop = str(dataset.get("SOPInstanceUID", "") or "")
    old_series = str(dataset.get("SeriesInstanceUID", "") or "")
    if old_sop not in relocation.uid_map or old_series not in relocation.uid_map:
        raise PharosError(
            ErrorCode.INTERNAL_ERROR, f"Instance {old_sop} is not one of the moved instances"
        )
    for tag in relocation.removals:
        if tag in dataset:
            del dataset[tag]
    for element in relocation.replacements:
        dataset[element.tag] = copy.deepcopy(element)
    dataset.StudyInstanceUID = relocation.study_uid
    _remap(dataset, relocation.uid_map, relocation.study_uid, top_level=True)
    _keep_encodable(dataset, relocation.replacements)
    dataset.file_meta = _file_meta(dataset, syntax)
    buffer = io.BytesIO()
    try:
        dataset.save_as(buffer, enforce_file_format=True)
    except Exception as exc:
        raise PharosError(
            ErrorCode.BAD_FILE_FORMAT, f"Cannot write the moved copy of {old_sop}: {exc}"
        ) from None
    return buffer.getvalue()


def _remap(item: Dataset, uid_map: Mapping[str, str], study_uid: str, top_level: bool) -> None:
    """Follow the UID map in every UI element (its values one by one), recursively."""
    for element in item:  # iterating converts raw elements: values are decoded
        if element.VR == "SQ":
            for child in element.value:
                _remap(child, uid_map, study_uid, top_level=False)
        elif element.VR == "UI" and not (top_level and element.tag == STUDY_INSTANCE_UID):
            _remap_value(element, uid_map)
    if not top_level and STUDY_INSTANCE_UID in item:
        _follow_study(item, uid_map, study_uid)


def _remap_value(element: DataElement, uid_map: Mapping[str, str]) -> None:
    value = element.value
    if isinstance(value, MultiValue | list):
        if any(str(v) in uid_map for v in value):
            element.value = [uid_map.get(str(v), str(v)) for v in value]
    elif value and str(value) in uid_map:
        element.value = uid_map[str(value)]


def _follow_study(item: Dataset, uid_map: Mapping[str, str], study_uid: str) -> None:
    """A reference item naming a study and its series (e.g. the evidence of a key object or
    an SR) moves with them when every series it lists was moved."""
    series = item.get(REFERENCED_SERIES_SEQUENCE)
    if series is None or not series.value:
        return
    moved = set(uid_map.values())
    if all(str(child.get("SeriesInstanceUID", "")) in moved for child in series.value):
        item.StudyInstanceUID = study_uid


def _keep_encodable(dataset: Dataset, replacements: Dataset) -> None:
    """Text set from elsewhere (a request, another study) may not fit the character set of
    the copy: it is then rewritten wholly in UTF-8."""
    texts = [
        str(v)
        for element in replacements.iterall()
        if element.VR in _TEXT_VRS and element.value is not None
        for v in (element.value if isinstance(element.value, MultiValue) else [element.value])
    ]
    if all(text.isascii() for text in texts):
        return
    charset = dataset.get("SpecificCharacterSet", "")
    terms = [str(t) for t in charset] if isinstance(charset, MultiValue) else [str(charset)]
    if terms == [_UTF8]:
        return
    if len(terms) == 1 and terms[0] not in ("", "ISO_IR 6") and "2022" not in terms[0]:
        try:  # one character set without code extensions: a plain codec
            codec = convert_encodings(terms)[0]
            for text in texts:
                text.encode(codec)
            return
        except (UnicodeEncodeError, LookupError):
            pass
    for _ in dataset.iterall():  # decode every text value in the current character set
        pass
    dataset.SpecificCharacterSet = _UTF8
    for element in dataset.iterall():
        if element.VR == "SQ":
            for child in element.value:
                if SPECIFIC_CHARACTER_SET in child:
                    child.SpecificCharacterSet = _UTF8


def _transfer_syntax(dataset: Dataset) -> UID:
    meta = getattr(dataset, "file_meta", None)
    if meta is not None and meta.get("TransferSyntaxUID"):
        return UID(str(meta.TransferSyntaxUID))
    implicit, little = dataset.original_encoding
    if little is False:
        return ExplicitVRBigEndian
    return ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian


def _file_meta(dataset: Dataset, syntax: UID) -> FileMetaDataset:
    old = getattr(dataset, "file_meta", None)
    meta = FileMetaDataset()
    sop_class = dataset.get("SOPClassUID") or (old.get("MediaStorageSOPClassUID") if old else None)
    if not sop_class:
        raise PharosError(ErrorCode.BAD_FILE_FORMAT, "A moved instance has no SOP Class UID")
    meta.MediaStorageSOPClassUID = UID(str(sop_class))
    meta.MediaStorageSOPInstanceUID = UID(str(dataset.SOPInstanceUID))
    meta.TransferSyntaxUID = syntax
    if old is not None:
        for keyword in (
            "ImplementationClassUID",
            "ImplementationVersionName",
            "SourceApplicationEntityTitle",
        ):
            if keyword in old:
                setattr(meta, keyword, old.get(keyword))
    return meta
