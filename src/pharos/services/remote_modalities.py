"""The live registry of DICOM modalities: `DicomModalities`, and with
`DicomModalitiesInDatabase` those defined through the REST API and kept in the index.

Without the database, `PUT`/`DELETE /modalities/{id}` change this process's set only (lost at
restart, as Orthanc). With it, the index holds them, shared by every process using the same
PostgreSQL; each lookup reads the index, so a change made by any process is seen at once by
the REST API and by the DICOM server's access control. A stored modality overrides a
configured one of the same name.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping
from typing import Any

from pharos.index.base_modalities import ModalityIndex
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.modalities import (
    DicomRequest,
    Modalities,
    Modality,
    ModalityError,
    parse_modality,
)

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 255  # the `modalities.name` column of the index


def modality_json(modality: Modality) -> dict[str, Any]:
    """Orthanc's object form of a modality (RemoteModalityParameters::Serialize, advanced)."""
    allowed = modality.allowed
    return {
        "AET": modality.aet,
        "Host": modality.host,
        "Port": modality.port,
        "Manufacturer": modality.manufacturer,
        "AllowEcho": DicomRequest.ECHO in allowed,
        "AllowStore": DicomRequest.STORE in allowed,
        "AllowFind": DicomRequest.FIND in allowed,
        "AllowFindWorklist": DicomRequest.FIND_WORKLIST in allowed,
        "AllowGet": DicomRequest.GET in allowed,
        "AllowMove": DicomRequest.MOVE in allowed,
        "AllowNAction": DicomRequest.N_ACTION in allowed,
        "AllowEventReport": DicomRequest.N_EVENT_REPORT in allowed,
        "AllowTranscoding": modality.allow_transcoding,
        "UseDicomTls": modality.use_dicom_tls,
        "LocalAet": modality.local_aet or "",
        "Timeout": modality.timeout,
    }


def unknown_modality(name: str) -> PharosError:
    return PharosError(ErrorCode.INEXISTENT_ITEM, f"No modality with symbolic name: {name}")


class ModalityRegistry:
    """The modalities known now; thread-safe. Offers the `Modalities` interface (`get`,
    `by_aet`, `same_aet`, iteration) that the DICOM server's access control uses."""

    def __init__(
        self,
        configured: Mapping[str, Modality] | list[Modality],
        strict_aet: bool = False,
        index: ModalityIndex | None = None,
    ):
        items = configured.values() if isinstance(configured, Mapping) else configured
        self._configured = {m.name: m for m in items}
        self.strict_aet = strict_aet
        self._index = index  # set when DicomModalitiesInDatabase is true
        self._lock = threading.Lock()

    @property
    def in_database(self) -> bool:
        return self._index is not None

    # -- reading ----------------------------------------------------------------------------

    def snapshot(self) -> Modalities:
        """Every modality known now, by name (a stored one overrides a configured one)."""
        with self._lock:
            merged = dict(self._configured)
        if self._index is not None:
            for name, definition in self._index.stored_modalities().items():
                modality = _from_stored(name, definition)
                if modality is not None:
                    merged[name] = modality
        ordered = [merged[name] for name in sorted(merged)]
        return Modalities.of(ordered, strict_aet=self.strict_aet)

    def get(self, name: str) -> Modality | None:
        if self._index is not None:
            definition = self._index.stored_modality(name)
            if definition is not None:
                return _from_stored(name, definition)
        with self._lock:
            return self._configured.get(name)

    def require(self, name: str) -> Modality:
        modality = self.get(name)
        if modality is None:
            raise unknown_modality(name)
        return modality

    def names(self) -> list[str]:
        return [m.name for m in self.snapshot()]

    def __iter__(self) -> Iterator[Modality]:
        return iter(self.snapshot())

    def __len__(self) -> int:
        return len(self.snapshot())

    def same_aet(self, first: str, second: str) -> bool:
        if self.strict_aet:
            return first == second
        return first.lower() == second.lower()

    def by_aet(self, aet: str) -> list[Modality]:
        return self.snapshot().by_aet(aet)

    # -- changing ---------------------------------------------------------------------------

    def put(self, name: str, value: Any) -> Modality:
        """Define or replace a modality from the array or object form (400 if invalid)."""
        if not name or "/" in name or len(name) > MAX_NAME_LENGTH:
            raise PharosError(
                ErrorCode.BAD_REQUEST,
                f"A modality name is 1 to {MAX_NAME_LENGTH} characters without '/', not {name!r}",
            )
        try:
            modality, warnings = parse_modality(name, value)
        except ModalityError as exc:
            raise PharosError(ErrorCode.BAD_FILE_FORMAT, str(exc)) from None
        for warning in warnings:  # ignored, as Orthanc ignores unknown keys
            log.warning("PUT /modalities/%s: %s", name, warning)
        if self._index is not None:
            self._index.put_modality(name, json.dumps(modality_json(modality), sort_keys=True))
        else:
            with self._lock:
                self._configured[name] = modality
        log.warning(
            "Modality %r defined: %s at %s:%d", name, modality.aet, modality.host, modality.port
        )
        return modality

    def delete(self, name: str) -> None:
        """Forget a modality (404 if unknown). A configured one stays forgotten by this
        process only until its restart."""
        removed = self._index.delete_modality(name) if self._index is not None else False
        with self._lock:
            removed = self._configured.pop(name, None) is not None or removed
        if not removed:
            raise PharosError(
                ErrorCode.INEXISTENT_ITEM, f"Unknown DICOM modality with symbolic name: {name}"
            )
        log.warning("Modality %r deleted", name)


def _from_stored(name: str, definition: str) -> Modality | None:
    try:
        return parse_modality(name, json.loads(definition))[0]
    except (ValueError, ModalityError) as exc:  # written by us: only a manual edit gets here
        log.error("Stored modality %r is unusable, ignored: %s", name, exc)
        return None
