"""The known DICOM modalities (`DicomModalities`), read as Orthanc 1.10 reads them.

Each entry maps a symbolic name to either the array form `["AET", "host", port]` (with an
optional fourth item, the manufacturer) or the object form with `AET`, `Host`, `Port`,
`Manufacturer`, the `Allow*` permissions (all true by default), `AllowTranscoding`,
`UseDicomTls`, `LocalAet` and `Timeout`. The port may be a number or a numeric string.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

log = logging.getLogger(__name__)


class DicomRequest(Enum):
    """The DICOM commands a modality may be allowed to send (Orthanc's DicomRequestType)."""

    ECHO = "C-ECHO"
    STORE = "C-STORE"
    FIND = "C-FIND"
    FIND_WORKLIST = "C-FIND (worklist)"
    MOVE = "C-MOVE"
    GET = "C-GET"
    N_ACTION = "N-ACTION"
    N_EVENT_REPORT = "N-EVENT-REPORT"


# The "Allow..." keys of the object form, and what each one allows.
_ALLOW_KEYS: Mapping[str, tuple[DicomRequest, ...]] = {
    "AllowEcho": (DicomRequest.ECHO,),
    "AllowFind": (DicomRequest.FIND,),
    "AllowFindWorklist": (DicomRequest.FIND_WORKLIST,),
    "AllowGet": (DicomRequest.GET,),
    "AllowMove": (DicomRequest.MOVE,),
    "AllowStore": (DicomRequest.STORE,),
    "AllowNAction": (DicomRequest.N_ACTION,),
    "AllowEventReport": (DicomRequest.N_EVENT_REPORT,),
    # an alias of the two above (Orthanc >= 1.6.0); applied after them, as Orthanc does
    "AllowStorageCommitment": (DicomRequest.N_ACTION, DicomRequest.N_EVENT_REPORT),
}
_OTHER_KEYS = frozenset(
    {"AET", "Host", "Port", "Manufacturer", "AllowTranscoding", "UseDicomTls", "LocalAet"}
    | {"Timeout"}
)

# Orthanc 1.10's ModalityManufacturer values; the obsolete names it still reads, and what
# they stand for now.
MANUFACTURERS = frozenset(
    {"Generic", "GenericNoWildcardInDates", "GenericNoUniversalWildcard", "Vitrea", "GE"}
)
_OBSOLETE_MANUFACTURERS = {
    "AgfaImpax": "GenericNoWildcardInDates",
    "SyngoVia": "GenericNoWildcardInDates",
    "EFilm2": "Generic",
    "MedInria": "Generic",
}


class ModalityError(ValueError):
    """A `DicomModalities` entry that cannot be used."""


@dataclass(frozen=True, slots=True)
class Modality:
    name: str
    aet: str
    host: str
    port: int
    manufacturer: str = "Generic"
    allowed: frozenset[DicomRequest] = frozenset(DicomRequest)
    allow_transcoding: bool = True
    use_dicom_tls: bool = False
    local_aet: str | None = None
    timeout: int = 0  # seconds; 0: the global DicomScuTimeout

    def allows(self, request: DicomRequest) -> bool:
        return request in self.allowed


def parse_modality(name: str, value: Any) -> tuple[Modality, list[str]]:
    """One entry of `DicomModalities`, and warnings about what it holds that is ignored."""
    if isinstance(value, list):
        return _parse_array(name, value), []
    if isinstance(value, dict):
        return _parse_object(name, value)
    raise ModalityError(
        f'modality "{name}": expected ["AET", "host", port] or an object, not {value!r}'
    )


def parse_modalities(section: Mapping[str, Any]) -> tuple[list[Modality], list[str]]:
    """All the entries of `DicomModalities` (ModalityError on the first bad one)."""
    modalities: list[Modality] = []
    warnings: list[str] = []
    for name, value in section.items():
        modality, notes = parse_modality(name, value)
        modalities.append(modality)
        warnings.extend(notes)
    return modalities, warnings


def _parse_array(name: str, value: list[Any]) -> Modality:
    if len(value) not in (3, 4) or not all(isinstance(item, str) for item in value[:2]):
        raise ModalityError(
            f'modality "{name}": the array form is ["AET", "host", port] or '
            f'["AET", "host", port, "manufacturer"], not {value!r}'
        )
    manufacturer = "Generic"
    if len(value) == 4:
        if not isinstance(value[3], str):
            raise ModalityError(f'modality "{name}": the manufacturer must be a string')
        manufacturer = _manufacturer(name, value[3])
    return Modality(
        name=name,
        aet=value[0],
        host=value[1],
        port=_port(name, value[2]),
        manufacturer=manufacturer,
    )


def _parse_object(name: str, value: dict[str, Any]) -> tuple[Modality, list[str]]:
    for key in ("AET", "Host"):
        if not isinstance(value.get(key), str):
            raise ModalityError(f'modality "{name}": "{key}" is missing or is not a string')
    if "Port" not in value:
        raise ModalityError(f'modality "{name}": "Port" is missing')
    allowed = set(DicomRequest)
    for key, requests in _ALLOW_KEYS.items():
        if key in value:
            if _boolean(name, value, key):
                allowed.update(requests)
            else:
                allowed.difference_update(requests)
    local_aet = value.get("LocalAet")
    if local_aet is not None and not isinstance(local_aet, str):
        raise ModalityError(f'modality "{name}": "LocalAet" must be a string')
    timeout = value.get("Timeout", 0)
    if not isinstance(timeout, int) or isinstance(timeout, bool) or timeout < 0:
        raise ModalityError(f'modality "{name}": "Timeout" must be a positive integer')
    manufacturer = value.get("Manufacturer", "Generic")
    if not isinstance(manufacturer, str):
        raise ModalityError(f'modality "{name}": "Manufacturer" must be a string')
    unknown = sorted(set(value) - _OTHER_KEYS - set(_ALLOW_KEYS))
    warnings = [f'modality "{name}": unknown option "{key}" ignored' for key in unknown]
    modality = Modality(
        name=name,
        aet=value["AET"],
        host=value["Host"],
        port=_port(name, value["Port"]),
        manufacturer=_manufacturer(name, manufacturer),
        allowed=frozenset(allowed),
        allow_transcoding=_boolean(name, value, "AllowTranscoding", True),
        use_dicom_tls=_boolean(name, value, "UseDicomTls", False),
        local_aet=local_aet or None,
        timeout=timeout,
    )
    return modality, warnings


def _boolean(name: str, value: Mapping[str, Any], key: str, default: bool = True) -> bool:
    flag = value.get(key, default)
    if not isinstance(flag, bool):
        raise ModalityError(f'modality "{name}": "{key}" must be true or false')
    return flag


def _port(name: str, value: Any) -> int:
    """A TCP port as Orthanc reads it: a number, or a string holding one; 1 to 65534."""
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise ModalityError(f'modality "{name}": the port must be a number, not {value!r}')
    if not 0 < value < 65535:
        raise ModalityError(
            f'modality "{name}": a TCP port number must be in range [1..65534], not {value}'
        )
    return value


def _manufacturer(name: str, value: str) -> str:
    if value in MANUFACTURERS:
        return value
    if value in _OBSOLETE_MANUFACTURERS:
        replacement = _OBSOLETE_MANUFACTURERS[value]
        log.warning(
            'modality "%s": the manufacturer "%s" is obsolete, read as "%s"',
            name,
            value,
            replacement,
        )
        return replacement
    allowed = ", ".join(sorted(MANUFACTURERS))
    raise ModalityError(f'modality "{name}": unknown manufacturer "{value}" (allowed: {allowed})')


@dataclass(frozen=True)
class Modalities:
    """The known modalities, looked up by symbolic name or by AE title. AE titles compare
    case-insensitively unless `strict_aet` (Orthanc's `StrictAetComparison`)."""

    modalities: tuple[Modality, ...] = ()
    strict_aet: bool = False
    _by_name: dict[str, Modality] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_by_name", {m.name: m for m in self.modalities})

    @classmethod
    def of(cls, modalities: Iterable[Modality], strict_aet: bool = False) -> Modalities:
        return cls(tuple(modalities), strict_aet)

    def __iter__(self) -> Iterator[Modality]:
        return iter(self.modalities)

    def __len__(self) -> int:
        return len(self.modalities)

    def get(self, name: str) -> Modality | None:
        return self._by_name.get(name)

    def same_aet(self, first: str, second: str) -> bool:
        if self.strict_aet:
            return first == second
        return first.lower() == second.lower()

    def by_aet(self, aet: str) -> list[Modality]:
        """The modalities declared with this AE title (several may share one)."""
        return [m for m in self.modalities if self.same_aet(m.aet, aet)]
