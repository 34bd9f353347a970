"""The settings of the DICOM server, read and checked from the configuration."""

from __future__ import annotations

from dataclasses import dataclass

from pharos.config import Config
from pharos.dicom.transfer_syntaxes import GROUPS, accepted_transfer_syntaxes

# Orthanc's bounds for MaximumPduLength
MINIMUM_PDU_LENGTH = 4096
MAXIMUM_PDU_LENGTH = 131072


@dataclass(frozen=True, slots=True)
class DicomServerOptions:
    enabled: bool = True
    aet: str = "ORTHANC"
    port: int = 4242
    host: str = ""  # all interfaces, as Orthanc
    # Accepted for storage, in Pharos's order of preference.
    transfer_syntaxes: tuple[str, ...] = ()
    unknown_sop_classes: bool = False  # UnknownSopClassAccepted ("promiscuous mode")
    timeout: float | None = 30.0  # DicomScpTimeout (None: never)
    scu_timeout: float | None = 10.0  # DicomScuTimeout, for the C-MOVE sub-associations
    maximum_pdu_length: int = MAXIMUM_PDU_LENGTH
    threads: int = 4  # DicomThreadsCount
    worklists: bool = False  # Worklists.Enable: the Modality Worklist FIND model is accepted

    @classmethod
    def from_config(cls, config: Config) -> DicomServerOptions:
        """Raises ValueError for a value Orthanc would refuse too."""
        aet = config.get_str("DicomAet")
        if not 0 < len(aet.strip()) <= 16:
            raise ValueError(f"DicomAet must have 1 to 16 characters, not {aet!r}")
        port = config.get_int("DicomPort")
        if not 0 < port < 65536:
            raise ValueError(f"DicomPort must be a TCP port (1 to 65535), not {port}")
        pdu = config.get_int("MaximumPduLength")
        if not MINIMUM_PDU_LENGTH <= pdu <= MAXIMUM_PDU_LENGTH:
            raise ValueError(
                f"MaximumPduLength must be in [{MINIMUM_PDU_LENGTH}, {MAXIMUM_PDU_LENGTH}], "
                f"not {pdu}"
            )
        threads = config.get_int("DicomThreadsCount")
        if threads < 1:
            raise ValueError(f"DicomThreadsCount must be at least 1, not {threads}")
        syntaxes = accepted_transfer_syntaxes(
            config.get_list("AcceptedTransferSyntaxes"),
            {option: config.get_bool(option, None) for option in GROUPS},
        )
        return cls(
            enabled=config.get_bool("DicomServerEnabled"),
            aet=aet.strip(),
            port=port,
            transfer_syntaxes=tuple(syntaxes),
            unknown_sop_classes=config.get_bool("UnknownSopClassAccepted"),
            timeout=_seconds(config.get_int("DicomScpTimeout")),
            scu_timeout=_seconds(config.get_int("DicomScuTimeout")),
            maximum_pdu_length=pdu,
            threads=threads,
            worklists=config.section("Worklists").get_bool("Enable"),
        )


def _seconds(value: int) -> float | None:
    """A timeout option: 0 (or less) means none."""
    return float(value) if value > 0 else None
