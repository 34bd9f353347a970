"""The modalities part of the index interface: the modalities of DicomModalitiesInDatabase,
and the log of the resources sent to modalities (`LogExportedResources`, read by `/exports`).

Each modality is kept under its symbolic name as the JSON text of its object form; parsing
and validation belong to the services (`pharos.services.modalities`), not to the index.
"""

from __future__ import annotations

from typing import Protocol


class ModalityIndex(Protocol):
    def stored_modalities(self) -> dict[str, str]:
        """Every stored modality: symbolic name -> JSON definition."""
        ...

    def stored_modality(self, name: str) -> str | None: ...

    def put_modality(self, name: str, definition: str) -> None:
        """Create or replace (an upsert: concurrent writers never collide)."""
        ...

    def delete_modality(self, name: str) -> bool:
        """False when there was no such modality."""
        ...

    def log_exports(self, public_ids: list[str], remote_modality: str) -> None:
        """Log resources as sent to a modality (unknown IDs are skipped)."""
        ...
