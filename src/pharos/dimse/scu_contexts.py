"""Presentation contexts for sending instances (C-STORE as SCU, C-MOVE and C-GET
sub-operations as SCP), and the choice, per instance, of the transfer syntax it goes in.

Each SOP class is proposed with its stored transfer syntaxes: a compressed one alone (so that
the peer accepts or refuses it by itself), the uncompressed ones together with the two little
endian ones as fallbacks, which pynetdicom converts between. When transcoding is allowed, the
fallbacks are proposed for compressed instances too, and an instance whose syntax the peer
refused is transcoded to one it accepted.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pydicom.uid import UID
from pynetdicom import build_context, build_role
from pynetdicom.pdu_primitives import SCP_SCU_RoleSelectionNegotiation
from pynetdicom.presentation import PresentationContext

from pharos.dicom.transcode import TranscodingError, can_transcode, transcode
from pharos.dicom.transfer_syntaxes import (
    EXPLICIT_VR_BIG_ENDIAN,
    EXPLICIT_VR_LITTLE_ENDIAN,
    IMPLICIT_VR_LITTLE_ENDIAN,
    UNCOMPRESSED,
)

log = logging.getLogger(__name__)

# A presentation context request may hold 128 contexts at most (PS3.8 9.3.2.2).
MAXIMUM_CONTEXTS = 128
# Proposed besides an uncompressed stored syntax: pynetdicom converts between them.
FALLBACK = (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN)
# What a transcoded instance goes in, by preference, among the syntaxes the peer accepted.
_PREFERRED_TARGETS = (EXPLICIT_VR_LITTLE_ENDIAN, IMPLICIT_VR_LITTLE_ENDIAN, EXPLICIT_VR_BIG_ENDIAN)

# Received by C-GET (we are the storage SCP of its sub-operations): the uncompressed syntaxes
# first (any peer can produce them), then the compressed ones a peer may hold.
GET_TRANSFER_SYNTAXES = (
    *FALLBACK,
    EXPLICIT_VR_BIG_ENDIAN,
    "1.2.840.10008.1.2.1.99",  # Deflated Explicit VR Little Endian
    "1.2.840.10008.1.2.4.50",  # JPEG Baseline
    "1.2.840.10008.1.2.4.51",  # JPEG Extended
    "1.2.840.10008.1.2.4.57",  # JPEG Lossless
    "1.2.840.10008.1.2.4.70",  # JPEG Lossless SV1
    "1.2.840.10008.1.2.4.80",  # JPEG-LS Lossless
    "1.2.840.10008.1.2.4.81",  # JPEG-LS Near-Lossless
    "1.2.840.10008.1.2.4.90",  # JPEG 2000 Lossless
    "1.2.840.10008.1.2.4.91",  # JPEG 2000
    "1.2.840.10008.1.2.5",  # RLE Lossless
)


@dataclass(frozen=True, slots=True)
class StorageContexts:
    contexts: list[PresentationContext]
    # (SOP class, transfer syntax) pairs left without a context by the limit of 128
    left_out: frozenset[tuple[str, str]]


def storage_contexts(
    wanted: Iterable[tuple[str, str]], allow_transcoding: bool = False
) -> StorageContexts:
    """The contexts to propose for sending instances of the (SOP class, stored transfer
    syntax) pairs of `wanted`, in the order they first appear, 128 at most."""
    by_class: dict[str, list[str]] = {}
    for sop_class, syntax in wanted:
        syntaxes = by_class.setdefault(sop_class, [])
        if syntax not in syntaxes:
            syntaxes.append(syntax)
    # Each context, with the pairs it serves.
    planned: list[tuple[PresentationContext, list[tuple[str, str]]]] = []
    for sop_class, syntaxes in by_class.items():
        compressed = [syntax for syntax in syntaxes if syntax not in UNCOMPRESSED]
        for syntax in compressed:
            planned.append((build_context(sop_class, [syntax]), [(sop_class, syntax)]))
        native = [syntax for syntax in syntaxes if syntax in UNCOMPRESSED]
        if native or allow_transcoding:
            fallback = [syntax for syntax in FALLBACK if syntax not in native]
            served = [(sop_class, syntax) for syntax in native]
            if allow_transcoding:
                served += [(sop_class, syntax) for syntax in compressed]
            planned.append((build_context(sop_class, native + fallback), served))
    kept = planned[:MAXIMUM_CONTEXTS]
    served_pairs = {pair for _, pairs in kept for pair in pairs}
    left_out = {pair for _, pairs in planned[MAXIMUM_CONTEXTS:] for pair in pairs} - served_pairs
    return StorageContexts([context for context, _ in kept], frozenset(left_out))


def get_contexts(
    query_model: str, storage_classes: Sequence[str]
) -> tuple[list[PresentationContext], list[SCP_SCU_RoleSelectionNegotiation]]:
    """The contexts of a C-GET association: the query/retrieve model, and each storage SOP
    class in the SCP role (we receive the C-STORE sub-operations), 128 contexts at most."""
    contexts = [build_context(query_model, list(UNCOMPRESSED))]
    roles = []
    for uid in storage_classes[: MAXIMUM_CONTEXTS - 1]:
        context = build_context(uid, list(GET_TRANSFER_SYNTAXES))
        context.scu_role = False
        context.scp_role = True
        contexts.append(context)
        roles.append(build_role(uid, scp_role=True))
    return contexts, roles


class CannotSend(Exception):
    """An instance cannot be sent on this association (the reason in the message)."""


def prepare(
    dataset: Dataset,
    stored_syntax: str,
    accepted: Sequence[PresentationContext],
    allow_transcoding: bool,
) -> Dataset:
    """`dataset` as it can go on an association that accepted `accepted`: as it is when the
    peer accepted its syntax (or one pynetdicom converts it to), else transcoded."""
    sop_class = str(dataset.get("SOPClassUID", ""))
    syntaxes = [
        str(cx.transfer_syntax[0])
        for cx in accepted
        if cx.abstract_syntax == sop_class and cx.as_scu and cx.transfer_syntax
    ]
    if not syntaxes:
        reason = f"the peer accepted no presentation context for {_name(sop_class)}"
        if stored_syntax in UNCOMPRESSED or allow_transcoding:
            raise CannotSend(reason)  # the SOP class itself, in any syntax
        raise CannotSend(
            f"{reason} in {_name(stored_syntax)}, and transcoding is disabled for this modality"
        )
    if stored_syntax in syntaxes or any(_convertible(stored_syntax, s) for s in syntaxes):
        return dataset
    offered = ", ".join(_name(syntax) for syntax in syntaxes)
    if not allow_transcoding:
        raise CannotSend(
            f"the peer accepts {_name(sop_class)} only in {offered}, not in "
            f"{_name(stored_syntax)}, and transcoding is disabled for this modality"
        )
    targets = [s for s in _PREFERRED_TARGETS if s in syntaxes]
    targets += [s for s in syntaxes if s not in targets]
    reasons = []
    for target in targets:
        if not can_transcode(stored_syntax, target):
            reasons.append(f"{_name(target)}: encoding not supported")
            continue
        try:
            converted = transcode(dataset, target)
        except TranscodingError as exc:
            reasons.append(str(exc))
            continue
        log.debug(
            "Instance %s transcoded from %s to %s",
            dataset.get("SOPInstanceUID", "?"),
            stored_syntax,
            target,
        )
        return converted
    raise CannotSend(
        f"the peer accepts {_name(sop_class)} only in {offered} and the instance, in "
        f"{_name(stored_syntax)}, cannot be transcoded: {'; '.join(reasons)}"
    )


def _convertible(stored: str, accepted: str) -> bool:
    """Whether pynetdicom converts `stored` to `accepted` itself when sending (implicit and
    explicit VR, deflated and not, in the same byte order)."""
    source, target = UID(stored), UID(accepted)
    if source.is_compressed or target.is_compressed:
        return False
    return bool(source.is_little_endian == target.is_little_endian)


def _name(uid: str) -> str:
    name = UID(uid).name
    return f"{name} ({uid})" if name and name != uid else uid
