"""C-STORE requests assembled and decoded by hand.

pynetdicom 3 decodes each command set into a pydicom data set, then copies it element by
element into the request primitive: about 0.1 ms per C-STORE (measured in process: 143 us per
0.5 MB request with its assembly, 41 us this way), in the DUL thread, under the GIL the other
associations wait for.

`assemble_store_requests(assoc)` makes one association's DIMSE provider do it here instead:
the fragments are kept as they came (views of the received PDUs) and joined once; a C-STORE-RQ
command set (PS3.7 9.3.1.1: a handful of elements of fixed types, always Implicit VR Little
Endian) is read directly, through pynetdicom's setters. Anything else goes to pynetdicom,
fragment by fragment, as it would have: other messages, a command this does not read the same
way (other elements, a UID or AE title out of the plain form), fragments out of order,
handlers bound to EVT_DIMSE_RECV, or pynetdicom told to write received data sets to files.
One difference: fragments that follow the end of a message in the same P-DATA-TF start the
next message, where pynetdicom drops them.
"""

from __future__ import annotations

import logging
import re
import struct
from collections.abc import Callable
from io import BytesIO
from typing import Any

from pynetdicom import _config, evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA

from pharos.dimse.store_response import NO_DATA_SET

log = logging.getLogger(__name__)

C_STORE_RQ = 0x0001  # Command Field
_ELEMENT = struct.Struct("<HHL")  # group, element, value length
_US = struct.Struct("<H")
# The elements of a C-STORE-RQ: the command group length (UL), then by element number.
_GROUP_LENGTH = 0x0000
_SOP_CLASS, _SOP_INSTANCE = 0x0002, 0x1000  # UI
_COMMAND_FIELD, _MESSAGE_ID, _PRIORITY, _DATA_SET_TYPE = 0x0100, 0x0110, 0x0700, 0x0800  # US
_MOVE_ORIGINATOR_AET, _MOVE_ORIGINATOR_ID = 0x1030, 0x1031  # AE, US
_REQUIRED = frozenset(
    (_SOP_CLASS, _SOP_INSTANCE, _COMMAND_FIELD, _MESSAGE_ID, _PRIORITY, _DATA_SET_TYPE)
)
_KNOWN = _REQUIRED | {_GROUP_LENGTH, _MOVE_ORIGINATOR_AET, _MOVE_ORIGINATOR_ID}
_PLAIN_UID = re.compile(rb"[0-9.]{1,64}\x00?")  # as pydicom reads it: the padding dropped
_PLAIN_AET = re.compile(rb" *[!-\[\]-~][ !-\[\]-~]{0,15}")  # printable, no backslash

Fragment = tuple[int, Any]  # (presentation context ID, value with its control header)


def store_request(command: bytes, context_id: int) -> C_STORE | None:
    """The C-STORE request primitive of an encoded command set, as pynetdicom would make it
    (without its data set); None when the command is not a C-STORE-RQ with a data set, or
    holds what this does not read the same way."""
    values: dict[int, bytes] = {}
    offset, end = 0, len(command)
    while offset < end:
        if end - offset < _ELEMENT.size:
            return None
        group, element, length = _ELEMENT.unpack_from(command, offset)
        start = offset + _ELEMENT.size
        offset = start + length
        if group != 0x0000 or element not in _KNOWN or element in values or offset > end:
            return None
        values[element] = command[start:offset]
    if not _REQUIRED.issubset(values):
        return None
    numbers = {}
    for element in (_COMMAND_FIELD, _MESSAGE_ID, _PRIORITY, _DATA_SET_TYPE, _MOVE_ORIGINATOR_ID):
        if element in values:
            if len(values[element]) != _US.size:
                return None
            (numbers[element],) = _US.unpack(values[element])
    if numbers[_COMMAND_FIELD] != C_STORE_RQ or numbers[_DATA_SET_TYPE] == NO_DATA_SET:
        return None
    if _GROUP_LENGTH in values and len(values[_GROUP_LENGTH]) != 4:  # a UL, if present
        return None
    uids = [values[_SOP_CLASS], values[_SOP_INSTANCE]]
    if not all(_PLAIN_UID.fullmatch(uid) for uid in uids):
        return None
    move_aet = values.get(_MOVE_ORIGINATOR_AET)
    if move_aet is not None and not _PLAIN_AET.fullmatch(move_aet):
        return None
    request = C_STORE()
    try:  # through pynetdicom's setters: the same checks as when it decodes
        request.MessageID = numbers[_MESSAGE_ID]
        request.AffectedSOPClassUID = uids[0].rstrip(b"\x00").decode()
        request.AffectedSOPInstanceUID = uids[1].rstrip(b"\x00").decode()
        request.Priority = numbers[_PRIORITY]
        if move_aet is not None:
            request.MoveOriginatorApplicationEntityTitle = move_aet.decode().strip()
        if _MOVE_ORIGINATOR_ID in numbers:
            request.MoveOriginatorMessageID = numbers[_MOVE_ORIGINATOR_ID]
    except (TypeError, ValueError):
        return None  # pynetdicom refuses it: let it, its way
    request._context_id = context_id
    return request


class _Assembler:
    """The DIMSE messages of one association, from the P-DATA primitives its DUL thread
    hands up (all in that thread)."""

    def __init__(self, assoc: Association, receive_primitive: Callable[[P_DATA], None]):
        self._assoc = assoc
        self._dimse: Any = assoc.dimse
        self._pynetdicom = receive_primitive  # the provider's own
        self._fragments: list[Fragment] = []  # of the message in progress, as received
        self._request: C_STORE | None = None  # its command, once whole

    def receive_primitive(self, primitive: P_DATA) -> None:
        for fragment in primitive.presentation_data_value_list:
            self._receive(fragment)

    def _receive(self, fragment: Fragment) -> None:
        if self._dimse.message is not None:  # pynetdicom is assembling this message
            self._hand_over([fragment])
            return
        control = fragment[1][0]  # the message control header (PS3.8 E.2)
        is_command = bool(control & 1)
        if is_command != (self._request is None):  # a command where data is due, or reverse
            self._hand_over([*self._fragments, fragment])
            return
        self._fragments.append(fragment)
        if not control & 2:  # not the last fragment of the command or data set
            return
        if self._request is None:
            self._request = self._read_command(fragment[0])
            if self._request is None:
                self._hand_over(self._fragments)
        else:
            self._deliver()

    def _read_command(self, context_id: int) -> C_STORE | None:
        if _config.STORE_RECV_CHUNKED_DATASET:  # pynetdicom writes the data set to a file
            return None
        command = b"".join(value[1:] for _context_id, value in self._fragments)
        return store_request(command, context_id)

    def _deliver(self) -> None:
        """The request is whole: queue it for the association thread, as pynetdicom does."""
        if self._assoc.get_handlers(evt.EVT_DIMSE_RECV):  # they expect pynetdicom's message
            self._hand_over(self._fragments)
            return
        request = self._request
        assert request is not None
        data = [value[1:] for _context_id, value in self._fragments if not value[0] & 1]
        request.DataSet = BytesIO(b"".join(data))
        request._dataset_path = None
        request._dataset_file = None
        self._fragments, self._request = [], None
        self._dimse.msg_queue.put((request._context_id, request))

    def _hand_over(self, fragments: list[Fragment]) -> None:
        """Give `fragments` to pynetdicom, one P-DATA each (so that none after the end of a
        message is dropped, as several in one would be), and forget them here."""
        self._fragments, self._request = [], None
        for fragment in fragments:
            primitive = P_DATA()
            primitive._presentation_data_value_list = [fragment]
            self._pynetdicom(primitive)


def assemble_store_requests(assoc: Association) -> bool:
    """Make `assoc` assemble and decode its C-STORE requests by hand; whether it was done
    (False: pynetdicom's internals are not those expected)."""
    dimse = assoc.dimse
    if (
        not hasattr(dimse, "receive_primitive")
        or not hasattr(dimse, "message")
        or not hasattr(dimse, "msg_queue")
        or not hasattr(P_DATA(), "_presentation_data_value_list")
        or not hasattr(_config, "STORE_RECV_CHUNKED_DATASET")
    ):
        log.debug("pynetdicom internals not as expected: DIMSE messages left to it")
        return False
    assembler = _Assembler(assoc, dimse.receive_primitive)
    setattr(dimse, "receive_primitive", assembler.receive_primitive)  # noqa: B010 - this one
    return True
