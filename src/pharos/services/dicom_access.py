"""Who may talk DICOM to this server, and ask what: Orthanc's application entity filter.

- An association is refused when `DicomCheckCalledAet` is on and the peer called another AE
  title, or when no `DicomAlwaysAllow*` option is on and the calling AE title is not one of
  `DicomModalities` (at the declared host, with `DicomCheckModalityHost`).
- Each request is then allowed if its `DicomAlwaysAllow*` option is on, or else if the
  calling modality is declared and its `Allow*` permission grants it.

Each refusal comes with a sentence saying why, for the log and the peer.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from dataclasses import dataclass

from pharos.services.modalities import DicomRequest, Modalities, Modality
from pharos.services.remote_modalities import ModalityRegistry


@dataclass(frozen=True, slots=True)
class AccessRules:
    aet: str  # DicomAet
    check_called_aet: bool = False  # DicomCheckCalledAet
    check_modality_host: bool = False  # DicomCheckModalityHost
    always_allowed: frozenset[DicomRequest] = frozenset(
        {DicomRequest.ECHO, DicomRequest.STORE}
    )  # the DicomAlwaysAllow* options that are on


class DicomAccess:
    """`modalities` is a fixed set, or the live registry: then every check sees the
    modalities as they are at that moment (REST changes apply at once)."""

    def __init__(self, rules: AccessRules, modalities: Modalities | ModalityRegistry):
        self._rules = rules
        self._source = modalities

    @property
    def modalities(self) -> Modalities:
        """The modalities known now (one consistent snapshot)."""
        if isinstance(self._source, ModalityRegistry):
            return self._source.snapshot()
        return self._source

    def _same_aet(self, first: str, second: str) -> bool:
        return self._source.same_aet(first, second)  # StrictAetComparison, no lookup

    def association_refusal(
        self, calling_aet: str, called_aet: str, address: str
    ) -> tuple[str, str] | None:
        """None if the association may go on, else ("called" or "calling", why)."""
        rules = self._rules
        if rules.check_called_aet and not self._same_aet(called_aet, rules.aet):
            return "called", (
                f'it called the AE title "{called_aet}", not "{rules.aet}" (DicomCheckCalledAet)'
            )
        if rules.always_allowed:
            return None
        known = self.modalities.by_aet(calling_aet)
        if not known:
            return "calling", (
                f'the AE title "{calling_aet}" is not declared in DicomModalities and no '
                "DicomAlwaysAllow* option is on"
            )
        if rules.check_modality_host and not _at_host(known, address):
            return "calling", _wrong_host(calling_aet, address, known)
        return None

    def request_refusal(self, calling_aet: str, address: str, request: DicomRequest) -> str | None:
        """None if `request` is allowed from this peer, else why not."""
        rules = self._rules
        if request in rules.always_allowed:
            return None
        known = self.modalities.by_aet(calling_aet)
        if not known:
            option = _always_option(request)
            # N-ACTION and N-EVENT-REPORT have no such option: the modality must be declared.
            also = f" (and {option} is false)" if option else ""
            return f'the AE title "{calling_aet}" is not declared in DicomModalities{also}'
        if rules.check_modality_host:
            # One of the modalities declared with this AE title at this host must allow it.
            at_host = [m for m in known if _at_host([m], address)]
            if not at_host:
                return _wrong_host(calling_aet, address, known)
            if any(m.allows(request) for m in at_host):
                return None
            forbidding = at_host
        else:
            # Whichever of the modalities with this AE title it is, all must allow it.
            forbidding = [m for m in known if not m.allows(request)]
            if not forbidding:
                return None
        names = ", ".join(f'"{m.name}"' for m in forbidding)
        return f"{request.value} is not allowed for the modality {names} (DicomModalities)"


def _always_option(request: DicomRequest) -> str | None:
    return {
        DicomRequest.ECHO: "DicomAlwaysAllowEcho",
        DicomRequest.STORE: "DicomAlwaysAllowStore",
        DicomRequest.FIND: "DicomAlwaysAllowFind",
        DicomRequest.FIND_WORKLIST: "DicomAlwaysAllowFindWorklist",
        DicomRequest.MOVE: "DicomAlwaysAllowMove",
        DicomRequest.GET: "DicomAlwaysAllowGet",
    }.get(request)


def _wrong_host(aet: str, address: str, known: Iterable[Modality]) -> str:
    hosts = ", ".join(sorted({m.host for m in known}))
    return (
        f'the AE title "{aet}" connects from {address}, but DicomModalities declares it at '
        f"{hosts} (DicomCheckModalityHost)"
    )


def _at_host(modalities: Iterable[Modality], address: str) -> bool:
    """Whether `address` is the host of one of the modalities: the same text (as Orthanc
    compares), or one of the addresses a declared host name resolves to."""
    for modality in modalities:
        if modality.host == address:
            return True
        try:
            infos = socket.getaddrinfo(modality.host, None, proto=socket.IPPROTO_TCP)
        except (OSError, UnicodeError):
            continue
        if any(info[4][0] == address for info in infos):
            return True
    return False
