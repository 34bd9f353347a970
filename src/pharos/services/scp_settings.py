"""What the DICOM server accepts, changeable while it runs (Orthanc's
/tools/accepted-transfer-syntaxes and /tools/unknown-sop-class-accepted): read by the server
at each association request, so a change applies from the next association on."""

from __future__ import annotations

import threading
from collections.abc import Iterable

from pharos.dicom.transfer_syntaxes import KNOWN, accepted_transfer_syntaxes
from pharos.model.errors import ErrorCode, PharosError


class ScpSettings:
    def __init__(self, transfer_syntaxes: Iterable[str] = (), unknown_sop_classes: bool = False):
        self._lock = threading.Lock()
        # Immutable values swapped whole: readers need no lock.
        self.transfer_syntaxes: tuple[str, ...] = tuple(transfer_syntaxes)
        self.unknown_sop_classes = unknown_sop_classes

    def configure(self, transfer_syntaxes: Iterable[str], unknown_sop_classes: bool) -> None:
        """The values of the configuration, when the DICOM server is built."""
        with self._lock:
            self.transfer_syntaxes = tuple(transfer_syntaxes)
            self.unknown_sop_classes = unknown_sop_classes

    def set_transfer_syntaxes(self, patterns: Iterable[object]) -> tuple[str, ...]:
        """Accept exactly the known syntaxes matching `patterns` (UIDs, `*` and `?` allowed).
        A pattern that is not a string or matches no known syntax changes nothing."""
        patterns = list(patterns)
        for pattern in patterns:
            if not isinstance(pattern, str) or not pattern.strip():
                raise PharosError(
                    ErrorCode.BAD_FILE_FORMAT,
                    f"A transfer syntax must be a non-empty string, not {pattern!r}",
                )
            if not accepted_transfer_syntaxes([pattern.strip()], {}):
                raise PharosError(
                    ErrorCode.PARAMETER_OUT_OF_RANGE,
                    f"Unknown transfer syntax: {pattern!r} (none of the {len(KNOWN)} known "
                    "transfer syntaxes matches)",
                )
        accepted = accepted_transfer_syntaxes([str(p).strip() for p in patterns], {})
        with self._lock:
            self.transfer_syntaxes = tuple(accepted)
        return self.transfer_syntaxes

    def set_unknown_sop_classes(self, accepted: bool) -> None:
        with self._lock:
            self.unknown_sop_classes = accepted
