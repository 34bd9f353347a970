"""C-STORE responses encoded by hand.

pynetdicom 3 sends a response by filling a pydicom data set with the command elements,
encoding it once to learn the group length and once more to send it: a tenth of the server's
CPU time for a C-STORE. The C-STORE-RSP command set (PS3.7 9.3.1.2) has a handful of elements
of fixed types, always in Implicit VR Little Endian (PS3.7 6.3.1); it is written here directly.

`send_store_responses_directly(assoc)` makes one association's DIMSE provider encode its
C-STORE responses this way. A response it cannot write the same way (an Offending Element, a
non-ASCII comment, a command longer than a PDU, handlers bound to the DIMSE events) goes
pynetdicom's way.

With `to_socket`, the response's P-DATA-TF PDU is also sent from the association thread
itself, when nothing waits in the DUL's queues and nobody listens to the PDU events: a
handover to the DUL thread fewer per instance (which, woken, then waits for the GIL), and a
turn of its state machine that does nothing but send (Sta6 + Evt9, DT-1, back to Sta6). The
caller must make the socket's sends exclusive (`reactor.EventDrivenSocket.send`) and not ask
for it over TLS, whose connection is not to be written and read by two threads at once.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any

from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.pdu_primitives import P_DATA

from pharos.dicom.file_meta import text_value, uid_value
from pharos.dimse.pdu_reader import p_data_tf

log = logging.getLogger(__name__)

C_STORE_RSP = 0x8001  # Command Field
NO_DATA_SET = 0x0101  # Command Data Set Type
_LAST_COMMAND_FRAGMENT = b"\x03"  # message control header: command, last fragment
_PDV_OVERHEAD = 6  # a PDV item's length (4) and context ID (1), and the control header (1)
_ELEMENT = struct.Struct("<HHL")  # group, element, value length
_US = struct.Struct("<H")
_UL = struct.Struct("<L")


def _element(element: int, value: bytes) -> bytes:
    return _ELEMENT.pack(0x0000, element, len(value)) + value


def _uid(element: int, uid: str | None) -> bytes:
    if not uid:
        return b""  # absent: optional in a response
    return _element(element, uid_value(uid))


def store_response_command(response: C_STORE) -> bytes | None:
    """The encoded command set of a C-STORE response, as pynetdicom would encode it; None
    when the response holds what this does not write (an Offending Element, a comment
    that is not ASCII) or misses what it must hold."""
    if response.MessageIDBeingRespondedTo is None or response.Status is None:
        return None
    if response.OffendingElement is not None:
        return None
    comment = response.ErrorComment
    if comment is not None and not comment.isascii():
        return None
    body = b"".join(
        (
            _uid(0x0002, response.AffectedSOPClassUID),
            _element(0x0100, _US.pack(C_STORE_RSP)),
            _element(0x0120, _US.pack(response.MessageIDBeingRespondedTo)),
            _element(0x0800, _US.pack(NO_DATA_SET)),
            _element(0x0900, _US.pack(response.Status)),
            _element(0x0902, text_value(comment)) if comment else b"",
            _uid(0x1000, response.AffectedSOPInstanceUID),
        )
    )
    return _element(0x0000, _UL.pack(len(body))) + body


def send_store_responses_directly(assoc: Association, to_socket: bool = False) -> bool:
    """Make `assoc` encode its C-STORE responses by hand, and with `to_socket` send them
    itself when it can (see above); whether it was done (False: pynetdicom's internals are
    not those expected)."""
    dimse = assoc.dimse
    if not hasattr(dimse, "send_msg") or not hasattr(P_DATA(), "_presentation_data_value_list"):
        log.debug("pynetdicom internals not as expected: C-STORE responses left to it")
        return False
    dul = getattr(dimse, "dul", None)
    if to_socket and not all(
        hasattr(dul, name)
        for name in ("state_machine", "to_provider_queue", "event_queue", "socket")
    ):
        log.debug("pynetdicom internals not as expected: C-STORE responses sent by the DUL")
        to_socket = False
    setattr(dimse, "send_msg", _sender(assoc, dimse.send_msg, to_socket))  # noqa: B010
    return True


def _sender(
    assoc: Association, send_msg: Callable[[Any, int], None], to_socket: bool
) -> Callable[[Any, int], None]:
    dimse: Any = assoc.dimse
    dul: Any = dimse.dul

    def socket_free() -> bool:
        """Whether this thread may send a P-DATA-TF itself: the association is established
        and nothing sent before waits in the DUL (it would go after), nobody listens."""
        return (
            dul.state_machine.current_state == "Sta6"
            and dul.to_provider_queue.empty()
            and dul.event_queue.empty()
            and dul.socket is not None
            and not assoc.get_handlers(evt.EVT_PDU_SENT)
            and not assoc.get_handlers(evt.EVT_DATA_SENT)
        )

    def send(primitive: Any, context_id: int) -> None:
        if (
            type(primitive) is C_STORE
            and primitive.MessageIDBeingRespondedTo is not None
            and not assoc.get_handlers(evt.EVT_DIMSE_SENT)
        ):
            command = store_response_command(primitive)
            limit = dimse.maximum_pdu_size
            if command is not None and (not limit or len(command) + _PDV_OVERHEAD <= limit):
                value = _LAST_COMMAND_FRAGMENT + command
                if to_socket and socket_free():
                    dul.socket.send(p_data_tf(context_id, value))
                    return
                pdata = P_DATA()
                pdata._presentation_data_value_list = [(context_id, value)]
                dul.send_pdu(pdata)
                return
        send_msg(primitive, context_id)

    return send
