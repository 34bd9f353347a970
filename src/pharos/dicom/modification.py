"""Modification and anonymization of one dataset, as Orthanc's `/modify` and `/anonymize`
do it: the request read into a `Modification`, then applied to each instance with one
`IdentifierMap` per operation, so that new UIDs are consistent across its instances.

Pure functions over pydicom datasets. `remap_uids` and `IdentifierMap` are general (any
operation that gives instances new UIDs and must keep their references, e.g. split/merge).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pydicom.datadict import dictionary_VR, private_dictionary_VR, tag_for_keyword
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import BaseTag, Tag
from pydicom.uid import generate_uid

from pharos import __version__
from pharos.dicom import anonymization as profile
from pharos.dicom.anonymization import Action
from pharos.dicom.create import typed_value
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level

PATIENT_ID = Tag(0x0010, 0x0020)
PATIENT_NAME = Tag(0x0010, 0x0010)
STUDY_UID = Tag(0x0020, 0x000D)
SERIES_UID = Tag(0x0020, 0x000E)
SOP_UID = Tag(0x0008, 0x0018)
DEIDENTIFICATION_METHOD = Tag(0x0012, 0x0063)
PATIENT_IDENTITY_REMOVED = Tag(0x0012, 0x0062)
SPECIFIC_CHARACTER_SET = Tag(0x0008, 0x0005)
PIXEL_DATA = Tag(0x7FE0, 0x0010)
# The identifiers of the hierarchy: touching them needs "Force" (Orthanc's rule).
IDENTIFIERS = {PATIENT_ID: Level.PATIENT, STUDY_UID: Level.STUDY, SERIES_UID: Level.SERIES}
IDENTIFIERS[SOP_UID] = Level.INSTANCE
_LEVEL_UIDS = ((Level.STUDY, STUDY_UID), (Level.SERIES, SERIES_UID), (Level.INSTANCE, SOP_UID))
_HEX_TAG = re.compile(r"^\(?([0-9A-Fa-f]{4})[,-]?([0-9A-Fa-f]{4})\)?$")
_PATH_STEP = re.compile(r"^(.+?)\[(\*|[0-9]+)\]$")
_MAX_DEPTH = 64
_BINARY_VRS = frozenset({"OB", "OD", "OF", "OL", "OV", "OW", "UN"})


def bad_request(details: str) -> PharosError:
    return PharosError(ErrorCode.BAD_REQUEST, details)


# -- tags and paths ------------------------------------------------------------------------


def parse_tag(text: Any) -> BaseTag:
    """A keyword, "gggg,eeee", "gggg-eeee" or "ggggeeee"; 400 otherwise."""
    if not isinstance(text, str):
        raise bad_request(f"A DICOM tag must be given as a string, not {text!r}")
    name = text.strip()
    match = _HEX_TAG.match(name)
    if match is not None:
        return Tag(int(match.group(1), 16), int(match.group(2), 16))
    number = tag_for_keyword(name)
    if number is None:
        raise bad_request(f"Unknown DICOM tag: {text!r}")
    return Tag(number)


@dataclass(frozen=True, slots=True)
class TagPath:
    """A tag, possibly inside sequence items (Orthanc 1.9.4+): "Seq[0].Tag", "Seq[*].Tag"."""

    parents: tuple[tuple[BaseTag, int | None], ...]  # (sequence, item index or None: all)
    tag: BaseTag
    text: str

    @property
    def nested(self) -> bool:
        return bool(self.parents)


def parse_path(text: Any) -> TagPath:
    if not isinstance(text, str):
        raise bad_request(f"A DICOM tag must be given as a string, not {text!r}")
    parts = text.split(".")
    parents: list[tuple[BaseTag, int | None]] = []
    for part in parts[:-1]:
        match = _PATH_STEP.match(part.strip())
        if match is None:
            raise bad_request(f"Bad tag path {text!r}: each parent must be Sequence[index]")
        index = None if match.group(2) == "*" else int(match.group(2))
        parents.append((parse_tag(match.group(1)), index))
    if len(parents) > _MAX_DEPTH:
        raise bad_request(f"Tag path {text!r} is too deep")
    return TagPath(tuple(parents), parse_tag(parts[-1]), text)


def _items(ds: Dataset, parents: tuple[tuple[BaseTag, int | None], ...]) -> Iterator[Dataset]:
    """The datasets a path's parents lead to (existing items only)."""
    if not parents:
        yield ds
        return
    (tag, index), rest = parents[0], parents[1:]
    element = ds.get(tag)
    if element is None or element.VR != "SQ" or not element.value:
        return
    items = list(element.value)
    chosen = items if index is None else items[index : index + 1]
    for item in chosen:
        yield from _items(item, rest)


# -- the request -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Modification:
    """A modification or anonymization request, checked."""

    level: Level  # which of the Study/Series/SOP Instance UIDs get new values
    anonymize: bool
    replace: tuple[tuple[TagPath, Any], ...] = ()
    remove: tuple[TagPath, ...] = ()
    keep: frozenset[BaseTag] = frozenset()  # kept at every depth
    keep_paths: tuple[TagPath, ...] = ()  # kept in the items a path leads to
    remove_private: bool = False
    private_creator: str = ""
    force: bool = False
    version: str = profile.DEFAULT_VERSION
    transcode: str | None = None
    keep_source: bool = True
    permissive: bool = False

    def replaced(self, tag: BaseTag) -> bool:
        return any(path.tag == tag and not path.nested for path, _ in self.replace)

    def maps_level_uid(self, level: Level) -> bool:
        """Whether this operation gives new values to the UID of `level`."""
        tag = dict(_LEVEL_UIDS)[level]
        if self.replaced(tag) or tag in self.keep:
            return False
        return self.anonymize or level >= self.level


def _flag(body: dict[str, Any], name: str, default: bool) -> bool:
    value = body.get(name, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise bad_request(f'"{name}" must be true or false')
    return value


def _list(body: dict[str, Any], name: str) -> list[Any]:
    value = body.get(name, [])
    if not isinstance(value, list):
        raise bad_request(f'"{name}" must be an array of DICOM tags')
    return value


def parse_request(body: dict[str, Any], level: Level, anonymize: bool) -> Modification:
    """Orthanc 1.10's fields: Replace, Remove, Keep, Force, KeepPrivateTags (anonymize),
    RemovePrivateTags (modify), DicomVersion, PrivateCreator, Transcode, KeepSource,
    Permissive. Every tag is checked here, before anything is changed."""
    force = _flag(body, "Force", False)
    replace_raw = body.get("Replace", {})
    if not isinstance(replace_raw, dict):
        raise bad_request('"Replace" must be a JSON object of tags and values')
    replace = tuple((parse_path(name), value) for name, value in replace_raw.items())
    remove = tuple(parse_path(name) for name in _list(body, "Remove"))
    keep_paths = [parse_path(name) for name in _list(body, "Keep")]
    keep = frozenset(path.tag for path in keep_paths if not path.nested)
    creator = body.get("PrivateCreator", "")
    if not isinstance(creator, str):
        raise bad_request('"PrivateCreator" must be a string')
    transcode = body.get("Transcode")
    if transcode is not None and (not isinstance(transcode, str) or not transcode.strip()):
        raise bad_request('"Transcode" must be a transfer syntax UID')
    try:
        version = profile.profile_version(body.get("DicomVersion"))
    except ValueError as exc:
        raise bad_request(str(exc)) from None
    if anonymize:
        remove_private = not _flag(body, "KeepPrivateTags", False)
    else:
        remove_private = _flag(body, "RemovePrivateTags", False)
    modification = Modification(
        level=level,
        anonymize=anonymize,
        replace=replace,
        remove=remove,
        keep=keep,
        keep_paths=tuple(path for path in keep_paths if path.nested),
        remove_private=remove_private,
        private_creator=creator,
        force=force,
        version=version,
        transcode=transcode.strip() if transcode else None,
        keep_source=_flag(body, "KeepSource", True),
        permissive=_flag(body, "Permissive", False),
    )
    _check(modification, [path for path, _ in replace], remove, keep_paths)
    return modification


def _check(
    modification: Modification,
    replaced: list[TagPath],
    removed: tuple[TagPath, ...],
    kept: list[TagPath],
) -> None:
    seen: dict[str, str] = {}
    for verb, paths in (("replaced", replaced), ("removed", removed), ("kept", kept)):
        for path in paths:
            key = path.text if path.nested else str(path.tag)
            if key in seen and seen[key] != verb:
                raise bad_request(f"Tag {path.text!r} cannot be both {seen[key]} and {verb}")
            seen[key] = verb
            if path.tag == PIXEL_DATA and verb != "kept":
                raise bad_request("The pixel data cannot be replaced or removed")
            if path.tag == SPECIFIC_CHARACTER_SET and verb != "kept":
                raise bad_request("SpecificCharacterSet cannot be replaced or removed here")
            if path.nested or path.tag not in IDENTIFIERS or modification.force:
                continue
            # Modifying a patient means giving it a new PatientID: allowed without Force.
            patient = (
                not modification.anonymize
                and modification.level is Level.PATIENT
                and path.tag == PATIENT_ID
                and verb == "replaced"
            )
            if not patient:
                raise bad_request(
                    f'Marking tag {path.text!r} as to be {verb} requires "Force": true'
                )
    if (
        not modification.anonymize
        and modification.level is Level.PATIENT
        and not modification.replaced(PATIENT_ID)
    ):
        raise bad_request('When modifying a patient, "Replace" must give a new PatientID')
    for path, value in modification.replace:
        _check_value(path, value, modification.private_creator)


def _check_value(path: TagPath, value: Any, creator: str) -> None:
    """Builds the element once on a scratch dataset: bad values fail before any change."""
    element_of(path.tag, value, creator, Dataset())


# -- values ------------------------------------------------------------------------------


def vr_of(tag: BaseTag, creator: str, value: Any) -> str:
    if not tag.is_private:
        try:
            return str(dictionary_VR(tag)).split(" or ")[0]
        except KeyError:
            raise bad_request(f"Unknown DICOM tag: {tag.group:04x},{tag.element:04x}") from None
    if tag.is_private_creator:
        return "LO"
    if not creator:
        raise bad_request(
            f"Private tag {tag.group:04x},{tag.element:04x} needs a private creator: "
            'give "PrivateCreator"'
        )
    try:
        return str(private_dictionary_VR(tag, creator)).split(" or ")[0]
    except KeyError:
        return "SQ" if isinstance(value, list) else "LO"


def element_of(tag: BaseTag, value: Any, creator: str, ds: Dataset, depth: int = 0) -> DataElement:
    """The element a JSON value of "Replace" gives: a string (or null: empty), or an array of
    objects for a sequence."""
    name = f"({tag.group:04X},{tag.element:04X})"
    if tag.is_private and not tag.is_private_creator:
        _reserve_block(ds, tag, creator)
    vr = vr_of(tag, creator, value)
    if vr == "SQ":
        if not isinstance(value, list):
            raise bad_request(f"Tag {name} is a sequence: its value must be an array of objects")
        if depth > _MAX_DEPTH:
            raise bad_request(f"Sequence {name} is nested too deeply")
        items = []
        for item in value:
            if not isinstance(item, dict):
                raise bad_request(f"The items of sequence {name} must be JSON objects")
            child = Dataset()
            for key, member in item.items():
                child_tag = parse_tag(key)
                child[child_tag] = element_of(child_tag, member, creator, child, depth + 1)
            items.append(child)
        return DataElement(tag, vr, Sequence(items))
    if value is None:
        return DataElement(tag, vr, None)
    if isinstance(value, list | dict | bool):
        raise bad_request(f"Tag {name} is not a sequence: its value must be a string")
    text = value if isinstance(value, str) else str(value)
    if vr in _BINARY_VRS:
        payload = text.encode("utf-8")
        return DataElement(tag, vr, payload + b"\0" * (len(payload) % 2))
    return DataElement(tag, vr, typed_value(text, vr, name))


def _reserve_block(ds: Dataset, tag: BaseTag, creator: str) -> None:
    if not creator:
        return  # vr_of refuses it
    if tag.element >> 8 < 0x10:
        raise bad_request(f"Private tag {tag.group:04x},{tag.element:04x} has no private block")
    slot = Tag(tag.group, tag.element >> 8)
    if slot in ds:
        if str(ds[slot].value).strip() != creator:
            raise bad_request(
                f"Private block {slot.group:04x},{slot.element:04x} belongs to "
                f"{ds[slot].value!r}, not to {creator!r}"
            )
        return
    ds.add_new(slot, "LO", creator)


# -- identifiers ---------------------------------------------------------------------------


@dataclass(slots=True)
class IdentifierMap:
    """The new identifiers of one operation: old UID -> new UID, old PatientID -> new one.
    Serializable (a job keeps it in its saved state, so a resumed job stays consistent)."""

    uids: dict[str, str] = field(default_factory=dict)
    patients: dict[str, str] = field(default_factory=dict)

    def uid(self, old: str) -> str:
        new = self.uids.get(old)
        if new is None:
            new = self.uids[old] = str(generate_uid())
        return new

    def patient(self, old: str) -> str:
        new = self.patients.get(old)
        if new is None:
            new = self.patients[old] = str(uuid.uuid4())
        return new

    def to_json(self) -> dict[str, Any]:
        return {"Uids": dict(self.uids), "Patients": dict(self.patients)}

    @staticmethod
    def from_json(value: dict[str, Any]) -> IdentifierMap:
        uids = {str(k): str(v) for k, v in value.get("Uids", {}).items()}
        patients = {str(k): str(v) for k, v in value.get("Patients", {}).items()}
        return IdentifierMap(uids, patients)


def _text(element: DataElement) -> list[str]:
    value = element.value
    if value is None or value == "":
        return []
    values = [value] if isinstance(value, str | bytes) else list(value)
    return [str(v).strip().rstrip("\0") for v in values]


def _set_uids(element: DataElement, values: list[str]) -> None:
    if not values:
        return
    element.value = values[0] if len(values) == 1 else values


def remap_uids(
    ds: Dataset,
    mapping: dict[str, str],
    depth: int = 0,
    kept: set[tuple[int, BaseTag]] | None = None,
) -> None:
    """Every UI value of `ds`, at every depth, that `mapping` knows is replaced by its new
    value: references to the operation's instances, series, studies and frames of reference
    follow them. Elements `kept` (by id of their item and tag: nested "Keep") stay as they
    are."""
    if depth > _MAX_DEPTH * 4:
        raise PharosError(ErrorCode.BAD_FILE_FORMAT, "Sequences are nested too deeply")
    for element in ds:
        if element.VR == "SQ":
            for item in element.value or ():
                remap_uids(item, mapping, depth + 1, kept)
        elif kept and (id(ds), element.tag) in kept:
            continue
        elif element.VR == "UI" and element.value:
            values = _text(element)
            if any(v in mapping for v in values):
                _set_uids(element, [mapping.get(v, v) for v in values])


# -- applying ------------------------------------------------------------------------------


def deidentification_method(version: str) -> str:
    return f"Pharos {__version__} - PS 3.15-{version} Table E.1-1"[:64]


def apply(ds: Dataset, modification: Modification, ids: IdentifierMap) -> None:
    """Modify (or anonymize) `ds` in place. Order: private tags, the profile (anonymization),
    removals, identifiers, replacements, then references remapped."""
    keep = modification.keep
    if modification.remove_private:
        _remove_private(ds, keep)
    # Nested "Keep" paths (Orthanc 1.9.4+): what they name keeps its value, through the
    # profile (anonymization) and the remapping of UIDs (both).
    kept: set[tuple[int, BaseTag]] = set()
    through: set[tuple[int, BaseTag]] = set()
    for path in modification.keep_paths:
        _protect(ds, path, path.parents, kept, through)
    if modification.anonymize:
        _anonymize(ds, modification, ids, _Protected(kept, through), depth=0)
        _anonymized_patient(ds, modification, ids)
    for path in modification.remove:
        for item in _items(ds, path.parents):
            if path.tag in item:
                del item[path.tag]
    for level, tag in _LEVEL_UIDS:
        if modification.anonymize:
            break  # U attributes of the profile: mapped already
        if modification.maps_level_uid(level) and tag in ds and ds[tag].value:
            ds[tag].value = ids.uid(str(ds[tag].value).strip().rstrip("\0"))
    for path, value in modification.replace:
        for item in _items(ds, path.parents):
            item[path.tag] = element_of(path.tag, value, modification.private_creator, item)
    remap_uids(ds, _without_kept(ids.uids, ds, keep), kept=kept)
    if modification.anonymize:
        ds[DEIDENTIFICATION_METHOD] = DataElement(
            DEIDENTIFICATION_METHOD, "LO", deidentification_method(modification.version)
        )
        ds[PATIENT_IDENTITY_REMOVED] = DataElement(PATIENT_IDENTITY_REMOVED, "CS", "YES")


def _without_kept(uids: dict[str, str], ds: Dataset, keep: frozenset[BaseTag]) -> dict[str, str]:
    """A kept UID attribute keeps its value; its value is not remapped elsewhere either."""
    kept = {str(ds[tag].value) for tag in keep if tag in ds and ds[tag].VR == "UI"}
    if not kept:
        return uids
    return {old: new for old, new in uids.items() if old not in kept}


def _remove_private(ds: Dataset, keep: frozenset[BaseTag], depth: int = 0) -> None:
    kept_groups = {(tag.group, tag.element >> 8) for tag in keep if tag.is_private}
    for element in list(ds):
        tag = element.tag
        if tag.is_private:
            block = (tag.group, tag.element) if tag.is_private_creator else None
            if tag in keep or (block is not None and block in kept_groups):
                continue
            del ds[tag]
        elif element.VR == "SQ" and depth < _MAX_DEPTH * 4:
            for item in element.value or ():
                _remove_private(item, keep, depth + 1)


@dataclass(frozen=True, slots=True)
class _Protected:
    """What nested "Keep" paths protect, by (id of the item, tag): `kept` elements are left
    alone; the sequences `through` which a path goes are kept, their items anonymized."""

    kept: set[tuple[int, BaseTag]]
    through: set[tuple[int, BaseTag]]


def _protect(
    ds: Dataset,
    path: TagPath,
    parents: tuple[tuple[BaseTag, int | None], ...],
    kept: set[tuple[int, BaseTag]],
    through: set[tuple[int, BaseTag]],
) -> None:
    if not parents:
        kept.add((id(ds), path.tag))
        return
    (tag, index), rest = parents[0], parents[1:]
    element = ds.get(tag)
    if element is None or element.VR != "SQ" or not element.value:
        return
    through.add((id(ds), tag))
    items = list(element.value)
    for item in items if index is None else items[index : index + 1]:
        _protect(item, path, rest, kept, through)


def _anonymize(
    ds: Dataset,
    modification: Modification,
    ids: IdentifierMap,
    protected: _Protected,
    depth: int,
) -> None:
    if depth > _MAX_DEPTH * 4:
        raise PharosError(ErrorCode.BAD_FILE_FORMAT, "Sequences are nested too deeply")
    keep = modification.keep
    for element in list(ds):
        tag = element.tag
        if tag in keep or (id(ds), tag) in protected.kept:
            continue
        if depth == 0 and (modification.replaced(tag) or tag in (PATIENT_ID, PATIENT_NAME)):
            continue  # replaced below (by the request, or by the anonymized patient)
        action = None if (id(ds), tag) in protected.through else profile.action_of(tag)
        if action is Action.REMOVE:
            del ds[tag]
            continue
        if action is Action.EMPTY:
            ds[tag] = DataElement(tag, element.VR, Sequence() if element.VR == "SQ" else None)
        elif action is Action.DUMMY:
            dummy = profile.DUMMY_VALUES.get(element.VR)
            if element.VR == "UI":
                dummy = ids.uid(str(element.value)) if element.value else None
            value: Any = Sequence() if element.VR == "SQ" else dummy
            ds[tag] = DataElement(tag, element.VR, value)
        elif action is Action.UID and element.VR == "UI":
            values = _text(element)
            _set_uids(element, [ids.uid(v) for v in values])
        elif element.VR == "SQ":
            for item in element.value or ():
                _anonymize(item, modification, ids, protected, depth + 1)


def _anonymized_patient(ds: Dataset, modification: Modification, ids: IdentifierMap) -> None:
    """A new PatientID per original patient of the operation; the name is that ID."""
    if modification.replaced(PATIENT_ID) or PATIENT_ID in modification.keep:
        new_id = str(ds.get(PATIENT_ID).value) if PATIENT_ID in ds else ""
    else:
        old = str(ds[PATIENT_ID].value) if PATIENT_ID in ds and ds[PATIENT_ID].value else ""
        new_id = ids.patient(old)
        ds[PATIENT_ID] = DataElement(PATIENT_ID, "LO", new_id)
    if not modification.replaced(PATIENT_NAME) and PATIENT_NAME not in modification.keep:
        ds[PATIENT_NAME] = DataElement(PATIENT_NAME, "PN", new_id)


def level_uids_to_map(modification: Modification) -> list[tuple[Level, BaseTag]]:
    """The (level, tag) of the hierarchy UIDs this operation gives new values to."""
    return [(level, tag) for level, tag in _LEVEL_UIDS if modification.maps_level_uid(level)]
