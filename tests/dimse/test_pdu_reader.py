"""The short way of P-DATA-TF PDUs to DIMSE (`pharos.dimse.pdu_reader`): data arrives whole and
unchanged, anything unusual goes pynetdicom's way (and malformed PDUs abort as they did)."""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from pynetdicom import AE, evt
from pynetdicom.association import Association

from pharos.dimse.pdu_reader import drop_unheard_logging, read_data_directly, split_items
from tests.dicomgen import to_bytes
from tests.dimse.loopback import WAIT, Scp, associate, instance, server_side


def _item(context_id: int, value: bytes) -> bytes:
    return struct.pack(">LB", len(value) + 1, context_id) + value


def _pdu(pdu_type: int, body: bytes) -> bytes:
    return struct.pack(">BxL", pdu_type, len(body)) + body


# -- splitting ------------------------------------------------------------------------------


def test_items_are_split_without_copies() -> None:
    body = memoryview(_item(1, b"\x03cmd") + _item(3, b"\x00data!"))
    items = split_items(body)
    assert items is not None
    assert [(cid, bytes(value)) for cid, value in items] == [(1, b"\x03cmd"), (3, b"\x00data!")]
    assert all(value.obj is body.obj for _cid, value in items)


@pytest.mark.parametrize(
    "body",
    [
        b"",  # no item at all
        struct.pack(">LB", 1, 1),  # an item of one byte: no message control header
        _item(1, b"\x02abc")[:-1],  # the last item cut short
        _item(1, b"\x02abc") + b"\x00\x00",  # bytes left over after the items
        struct.pack(">L", 0xFFFFFFFF) + b"\x01\x02",  # a length beyond the PDU
    ],
)
def test_malformed_items_are_refused(body: bytes) -> None:
    assert split_items(memoryview(body)) is None


# -- over real associations -----------------------------------------------------------------


@pytest.fixture
def pynetdicom_level() -> Iterator[Callable[[int], None]]:
    """Set the pynetdicom logger's level (setLevel: it clears the loggers' caches)."""
    logger = logging.getLogger("pynetdicom")
    before = logger.level
    yield logger.setLevel
    logger.setLevel(before)


def _decoded_types(served: Association) -> list[int]:
    """Watch the PDUs the served association decodes the long way (their types)."""
    seen: list[int] = []
    decode: Callable[[bytearray], Any] = served.dul._decode_pdu

    def watched(data: bytearray) -> Any:
        seen.append(data[0])
        return decode(data)

    setattr(served.dul, "_decode_pdu", watched)  # noqa: B010
    return seen


def test_data_takes_the_short_way_and_arrives_whole(scp: Scp) -> None:
    assoc = associate(scp)
    served = server_side(scp)
    decoded = _decoded_types(served)
    sent = [instance(i, columns=512) for i in range(3)]  # 64x512x2 bytes: several PDUs each
    try:
        for ds in sent:
            assert assoc.send_c_store(ds).get("Status") == 0x0000
    finally:
        assoc.release()
    assert scp.ended.wait(WAIT)
    assert decoded == [0x05]  # the A-RELEASE-RQ only: no P-DATA-TF went the long way
    assert [data[-4000:] for data in scp.received] == [to_bytes(ds)[-4000:] for ds in sent]


def test_data_goes_the_long_way_when_pynetdicom_logs(
    scp: Scp, pynetdicom_level: Callable[[int], None]
) -> None:
    """At the "trace" level pynetdicom's logging handlers stay bound, and see every PDU."""
    pynetdicom_level(logging.INFO)
    assoc = associate(scp)
    served = server_side(scp)
    decoded = _decoded_types(served)
    ds = instance(0, columns=512)
    try:
        assert assoc.send_c_store(ds).get("Status") == 0x0000
    finally:
        assoc.release()
    assert scp.ended.wait(WAIT)
    assert decoded.count(0x04) > 2  # P-DATA-TF, decoded by pynetdicom
    assert scp.received[0][-4000:] == to_bytes(ds)[-4000:]


def test_logging_handlers_are_unbound_only_when_unheard(
    pynetdicom_level: Callable[[int], None],
) -> None:
    def bound(assoc: Association) -> int:
        return len(assoc.get_handlers(evt.EVT_PDU_RECV)) + len(
            assoc.get_handlers(evt.EVT_DIMSE_SENT)
        )

    pynetdicom_level(logging.WARNING)
    quiet = Association(AE("X"), "acceptor")
    assert bound(quiet) == 2
    drop_unheard_logging(quiet)
    assert bound(quiet) == 0
    pynetdicom_level(logging.INFO)
    told = Association(AE("X"), "acceptor")
    drop_unheard_logging(told)
    assert bound(told) == 2


def test_malformed_data_pdu_aborts_and_stores_nothing(scp: Scp) -> None:
    assoc = associate(scp)
    server_side(scp)
    # An item claiming 10 bytes with 4 left in the PDU.
    body = struct.pack(">L", 10) + b"\x01\x03ab"
    assoc.dul.socket.socket.sendall(_pdu(0x04, body))  # type: ignore[union-attr]
    assert scp.ended.wait(WAIT)
    assert scp.endings == ["aborted"]
    assoc.join(timeout=WAIT)
    assert assoc.is_aborted
    assert scp.received == []


def test_unknown_pdu_type_aborts(scp: Scp) -> None:
    assoc = associate(scp)
    assoc.dul.socket.socket.sendall(_pdu(0x09, b"\x00\x00"))  # type: ignore[union-attr]
    assert scp.ended.wait(WAIT)
    assert scp.endings == ["aborted"]
    assoc.join(timeout=WAIT)
    assert assoc.is_aborted


def test_connection_closed_mid_pdu_ends_the_association(scp: Scp) -> None:
    assoc = associate(scp)
    served = server_side(scp)
    sock = assoc.dul.socket.socket  # type: ignore[union-attr]
    assert sock is not None
    sock.sendall(_pdu(0x04, _item(1, b"\x00" + b"x" * 100))[:50])  # half a PDU, then gone
    assoc.abort()
    served.join(timeout=WAIT)
    assert not served.is_alive()
    assert scp.received == []


def test_unexpected_internals_are_left_alone() -> None:
    odd = SimpleNamespace(dul=SimpleNamespace(), dimse=SimpleNamespace())
    assert read_data_directly(odd) is False  # type: ignore[arg-type]
    assert vars(odd.dul) == {}
