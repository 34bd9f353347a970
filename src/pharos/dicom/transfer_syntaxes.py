"""The transfer syntaxes the C-STORE SCP accepts: Orthanc's list and groups, chosen by the
configuration as Orthanc >= 1.9 chooses them.

`AcceptedTransferSyntaxes` (UIDs with `*` and `?` wildcards) picks from all the known
syntaxes; each `...TransferSyntaxAccepted` option that is set then adds (true) or removes
(false) its whole group. The three uncompressed syntaxes are always usable for the other
services (echo, find, move, get).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

IMPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2"
EXPLICIT_VR_LITTLE_ENDIAN = "1.2.840.10008.1.2.1"
EXPLICIT_VR_BIG_ENDIAN = "1.2.840.10008.1.2.2"

# What Orthanc's SCP proposes first for the non-storage services, in its order of preference.
UNCOMPRESSED = (EXPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN)

_JPEG = "1.2.840.10008.1.2.4."

# The groups of Orthanc's `TransferSyntaxGroup`, by the name of their configuration option.
GROUPS: Mapping[str, tuple[str, ...]] = {
    "DeflatedTransferSyntaxAccepted": ("1.2.840.10008.1.2.1.99",),
    # JPEG processes 1 to 29 (.50 to .66) and 14 SV1 (.70)
    "JpegTransferSyntaxAccepted": tuple(f"{_JPEG}{n}" for n in (*range(50, 67), 70)),
    "Jpeg2000TransferSyntaxAccepted": tuple(f"{_JPEG}{n}" for n in (90, 91, 92, 93)),
    # JPEG-LS, lossless and near-lossless (Orthanc's name for the group)
    "JpegLosslessTransferSyntaxAccepted": (f"{_JPEG}80", f"{_JPEG}81"),
    "JpipTransferSyntaxAccepted": (f"{_JPEG}94", f"{_JPEG}95"),
    "Mpeg2TransferSyntaxAccepted": (f"{_JPEG}100", f"{_JPEG}101"),
    "Mpeg4TransferSyntaxAccepted": tuple(f"{_JPEG}{n}" for n in (102, 103, 104, 105, 106)),
    "H265TransferSyntaxAccepted": (f"{_JPEG}107", f"{_JPEG}108"),
    "RleTransferSyntaxAccepted": ("1.2.840.10008.1.2.5",),
}

# Every transfer syntax Orthanc 1.10 knows, plus the High-Throughput JPEG 2000 ones (2019) and
# encapsulated uncompressed (2022), which Pharos stores as received like any other.
KNOWN: tuple[str, ...] = (
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    EXPLICIT_VR_BIG_ENDIAN,
    *(syntax for group in GROUPS.values() for syntax in group),
    "1.2.840.10008.1.2.1.98",  # Encapsulated Uncompressed Explicit VR Little Endian
    f"{_JPEG}201",  # HTJ2K lossless
    f"{_JPEG}202",  # HTJ2K lossless RPCL
    f"{_JPEG}203",  # HTJ2K
)


def accepted_transfer_syntaxes(
    patterns: Iterable[str], groups: Mapping[str, bool | None]
) -> list[str]:
    """The accepted syntaxes, in the order of `KNOWN`: those matching one of `patterns`, then
    each group set to true added, each set to false removed (None: left as the patterns say).

    Raises ValueError for a pattern that is not a string or a group that is not known."""
    accepted: set[str] = set()
    for pattern in patterns:
        if not isinstance(pattern, str):
            raise ValueError(f"AcceptedTransferSyntaxes must hold strings, not {pattern!r}")
        regex = _wildcard(pattern)
        accepted.update(syntax for syntax in KNOWN if regex.fullmatch(syntax))
    for option, accept in groups.items():
        if option not in GROUPS:
            raise ValueError(f"unknown group of transfer syntaxes: {option}")
        if accept is True:
            accepted.update(GROUPS[option])
        elif accept is False:
            accepted.difference_update(GROUPS[option])
    return [syntax for syntax in KNOWN if syntax in accepted]


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if c == "*" else "." if c == "?" else re.escape(c) for c in pattern)
    )
