"""A shorter way for the P-DATA-TF PDUs of an established association to reach DIMSE.

pynetdicom 3 handles each PDU it reads the same way: it copies the bytes twice, triggers two
notification events, decodes a PDU object, queues an event for its state machine and the PDU
beside it, and on the next turn of its loop, the state machine (Sta6 + Evt10, DT-2) turns the
PDU into a P-DATA primitive for the DIMSE provider. With the standard logging handlers and
the response (`store_response.py`), that was about a third of the server's Python time for a
C-STORE of a 0.5 MB instance (5 PDUs at Pharos's default `MaximumPduLength` of 128 KB; 32 at
Orthanc's 16 KB), under the GIL that the other associations wait for.

`read_data_directly(assoc)` replaces the DUL's `_read_pdu_data` of one association. A P-DATA-TF
PDU received in Sta6, with nothing queued for the state machine and no handler bound to the
PDU events, is split into its presentation data values (views of the PDU's buffer, no copy)
and given to the DIMSE provider at once: what DT-2 does, in the same thread, without the
detour. Anything else (other PDUs and states, malformed items) goes pynetdicom's way, with
the events and errors it would give.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable
from typing import Any

from pynetdicom import evt
from pynetdicom._handlers import (
    standard_dimse_recv_handler,
    standard_dimse_sent_handler,
    standard_pdu_recv_handler,
    standard_pdu_sent_handler,
)
from pynetdicom.association import Association
from pynetdicom.pdu_primitives import P_DATA

log = logging.getLogger(__name__)

_P_DATA_TF = 0x04  # the PDU type
_KNOWN_PDU_TYPES = frozenset(range(0x01, 0x08))
_HEADER = struct.Struct(">BxL")  # PDU type, reserved, length
_ITEM_LENGTH = struct.Struct(">L")
_ITEM_HEADER = struct.Struct(">LB")  # item length, presentation context ID


def split_items(body: memoryview) -> list[tuple[int, memoryview]] | None:
    """The presentation data values of a P-DATA-TF PDU's body, as (context ID, value with its
    message control header) pairs; None if the items do not fill the body exactly or one
    is shorter than its two mandatory bytes (PS3.8 9.3.5.1)."""
    items = []
    offset, end = 0, len(body)
    while offset < end:
        if end - offset < 6:
            return None
        (length,) = _ITEM_LENGTH.unpack_from(body, offset)
        start = offset + 4
        offset = start + length
        if length < 2 or offset > end:
            return None
        items.append((body[start], body[start + 1 : offset]))
    return items or None


def p_data_tf(context_id: int, value: bytes) -> bytes:
    """A P-DATA-TF PDU of one presentation data value (PS3.8 9.3.5), `value` starting with
    its message control header: what `split_items` reads."""
    item = _ITEM_HEADER.pack(len(value) + 1, context_id) + value
    return _HEADER.pack(_P_DATA_TF, len(item)) + item


_STANDARD_LOGGING = (
    (evt.EVT_DIMSE_RECV, standard_dimse_recv_handler),
    (evt.EVT_DIMSE_SENT, standard_dimse_sent_handler),
    (evt.EVT_PDU_RECV, standard_pdu_recv_handler),
    (evt.EVT_PDU_SENT, standard_pdu_sent_handler),
)


def drop_unheard_logging(assoc: Association) -> None:
    """Unbind pynetdicom's standard logging handlers from `assoc` when its logger would not
    tell what they say (Pharos shows it at the "trace" level only): they format every PDU
    and message anyway, and a PDU handler closes the short way."""
    if logging.getLogger("pynetdicom").isEnabledFor(logging.INFO):
        return
    for event, handler in _STANDARD_LOGGING:
        assoc.unbind(event, handler)  # nothing happens if it is not bound


def read_data_directly(assoc: Association) -> bool:
    """Give `assoc`'s DUL the short way for P-DATA-TF PDUs; whether it was done (False:
    pynetdicom's internals are not those expected)."""
    dul = assoc.dul
    dimse = assoc.dimse
    if (
        not all(hasattr(dul, name) for name in ("_decode_pdu", "_recv_pdu", "state_machine"))
        or not hasattr(dimse, "receive_primitive")
        or not hasattr(P_DATA(), "_presentation_data_value_list")
    ):
        log.debug("pynetdicom internals not as expected: PDUs left to the state machine")
        return False
    setattr(dul, "_read_pdu_data", _reader(assoc))  # noqa: B010 - this association only
    return True


def _reader(assoc: Association) -> Callable[[], None]:
    dul: Any = assoc.dul
    dimse: Any = assoc.dimse

    def short_way_open() -> bool:
        return (
            dul.state_machine.current_state == "Sta6"
            and dul.event_queue.empty()
            and not assoc.get_handlers(evt.EVT_DATA_RECV)
            and not assoc.get_handlers(evt.EVT_PDU_RECV)
        )

    def read_pdu_data() -> None:
        """pynetdicom's `_read_pdu_data` (same events, same errors), with the short way."""
        sock = dul.socket
        try:
            header = sock.recv(6)
            pdu_type, length = _HEADER.unpack(header)
        except (OSError, TimeoutError, struct.error):
            dul.event_queue.put("Evt17")  # transport connection closed
            return
        if pdu_type not in _KNOWN_PDU_TYPES:
            log.error("Unknown PDU type received '0x%02X'", pdu_type)
            dul.event_queue.put("Evt19")  # unrecognised or invalid PDU
            return
        try:
            body = sock.recv(length)
        except (OSError, TimeoutError):
            log.error("Connection closed before the entire PDU was received")
            dul.event_queue.put("Evt17")
            return
        if len(body) != length:
            log.error("The received PDU is shorter than expected")
            dul.event_queue.put("Evt17")
            return
        if pdu_type == _P_DATA_TF and short_way_open():
            items = split_items(memoryview(body))
            if items is not None:
                primitive = P_DATA()
                primitive._presentation_data_value_list = items  # type: ignore[assignment]
                dimse.receive_primitive(primitive)  # as DT-2 does; the state stays Sta6
                return
        try:
            pdu, event = dul._decode_pdu(bytearray(header) + body)
        except Exception:
            log.exception("Unable to decode the received PDU data")
            dul.event_queue.put("Evt19")
            return
        dul.event_queue.put(event)
        dul._recv_pdu.put(pdu)

    return read_pdu_data
