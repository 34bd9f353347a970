"""C-STORE requests assembled and decoded by hand (`pharos.dimse.store_request`): the same
request primitives as pynetdicom's, pynetdicom's way for everything else, fragment by
fragment, and the short way in a served association."""

from __future__ import annotations

import itertools
import struct
from collections.abc import Callable, Iterator
from io import BytesIO
from typing import Any

import pytest
from pynetdicom import AE, _config, evt
from pynetdicom.association import Association
from pynetdicom.dimse_messages import C_ECHO_RQ, C_STORE_RQ, DIMSEMessage
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.pdu_primitives import P_DATA

from pharos.dimse.pdu_reader import drop_unheard_logging
from pharos.dimse.store_request import assemble_store_requests, store_request
from tests.dicomgen import to_bytes
from tests.dimse.loopback import WAIT, Scp, associate, instance, server_side

CT = "1.2.840.10008.5.1.4.1.1.2"
_FIELDS = (
    "MessageID",
    "AffectedSOPClassUID",
    "AffectedSOPInstanceUID",
    "Priority",
    "MoveOriginatorApplicationEntityTitle",
    "MoveOriginatorMessageID",
)


def _request(**fields: Any) -> C_STORE:
    request = C_STORE()
    request.MessageID = 7
    request.AffectedSOPClassUID = CT
    request.AffectedSOPInstanceUID = "1.2.3.4"
    request.Priority = 0
    for name, value in fields.items():
        setattr(request, name, value)
    request.DataSet = BytesIO(b"\x01\x02" * 600)
    return request


def _fragments(primitive: Any, message: DIMSEMessage, pdu_size: int = 1024) -> list[Any]:
    """The (context ID, value) fragments pynetdicom sends for `primitive`."""
    message.primitive_to_message(primitive)
    return [
        fragment
        for pdata in message.encode_msg(1, pdu_size)
        for fragment in pdata.presentation_data_value_list
    ]


def _command(primitive: C_STORE) -> bytes:
    fragments = _fragments(primitive, C_STORE_RQ(), pdu_size=16384)
    return b"".join(value[1:] for _cx, value in fragments if value[0] & 1)


def _fields(primitive: Any) -> dict[str, Any]:
    return {name: getattr(primitive, name, None) for name in _FIELDS}


def _pynetdicom_decoding(command: bytes) -> C_STORE:
    message = DIMSEMessage()
    pdata = P_DATA()
    pdata._presentation_data_value_list = [(3, b"\x03" + command)]
    assert not message.decode_msg(pdata)  # a data set is announced
    primitive = message.message_to_primitive()
    assert isinstance(primitive, C_STORE)
    return primitive


@pytest.mark.parametrize(
    ("message_id", "priority", "sop_instance", "move"),
    list(
        itertools.product(
            [1, 65535],
            [0, 1, 2],
            ["1.2.3.4", "1.2.3.45", "1." + "2" * 62],  # even and odd lengths, the longest
            [None, ("MOVESCU", 3), ("A", 0), ("X" * 16, 65535)],
        )
    ),
)
def test_same_request_as_pynetdicom(
    message_id: int, priority: int, sop_instance: str, move: tuple[str, int] | None
) -> None:
    request = _request(MessageID=message_id, Priority=priority, AffectedSOPInstanceUID=sop_instance)
    if move is not None:
        request.MoveOriginatorApplicationEntityTitle, request.MoveOriginatorMessageID = move
    command = _command(request)
    ours = store_request(command, 3)
    assert ours is not None
    assert _fields(ours) == _fields(_pynetdicom_decoding(command))
    assert _fields(ours) == _fields(request)
    assert ours._context_id == 3


def _element(element: int, value: bytes) -> bytes:
    return struct.pack("<HHL", 0x0000, element, len(value)) + value


def _encoded(*elements: bytes) -> bytes:
    body = b"".join(elements)
    return _element(0x0000, struct.pack("<L", len(body))) + body


_SOP_CLASS = _element(0x0002, b"1.2.840.10008.5.1.4.1.1.2\x00")
_STORE_RQ = _element(0x0100, b"\x01\x00")
_MESSAGE_ID = _element(0x0110, b"\x07\x00")
_PRIORITY = _element(0x0700, b"\x00\x00")
_DATA_SET = _element(0x0800, b"\x00\x00")
_SOP_INSTANCE = _element(0x1000, b"1.2.3.4\x00")
_USUAL = (_SOP_CLASS, _STORE_RQ, _MESSAGE_ID, _PRIORITY, _DATA_SET, _SOP_INSTANCE)


def test_the_usual_command_is_read() -> None:
    request = store_request(_encoded(*_USUAL), 1)
    assert request is not None
    assert _fields(request) == {
        **dict.fromkeys(_FIELDS),
        "MessageID": 7,
        "AffectedSOPClassUID": CT,
        "AffectedSOPInstanceUID": "1.2.3.4",
        "Priority": 0,
    }
    assert store_request(b"".join(_USUAL), 1) is not None  # the group length is optional


def _replaced(old: bytes, new: bytes) -> bytes:
    return _encoded(*(new if element == old else element for element in _USUAL))


@pytest.mark.parametrize(
    "command",
    [
        _replaced(_STORE_RQ, _element(0x0100, b"\x30\x00")),  # a C-ECHO-RQ
        _replaced(_DATA_SET, _element(0x0800, b"\x01\x01")),  # no data set
        _replaced(_PRIORITY, _element(0x0700, b"\x03\x00")),  # pynetdicom refuses priority 3
        _replaced(_PRIORITY, _element(0x0700, b"\x00")),  # a US of one byte
        _replaced(_SOP_INSTANCE, _element(0x1000, b"1.2.3\\1.2.4")),  # two UIDs
        _replaced(_SOP_INSTANCE, _element(0x1000, b"1.2.3 ")),  # padded with a space
        _replaced(_SOP_INSTANCE, _element(0x1000, b"")),  # empty
        _replaced(_SOP_INSTANCE, _element(0x1000, b"1." + b"2" * 63)),  # 65 characters
        _replaced(_SOP_CLASS, _element(0x0003, b"1.2\x00")),  # an unknown element
        _replaced(_SOP_CLASS, _SOP_CLASS + _SOP_CLASS),  # twice
        _replaced(_SOP_CLASS, b""),  # missing
        _replaced(_SOP_CLASS, _SOP_CLASS + _element(0x1030, b"MOVE\\SCU")),  # two AE titles
        _replaced(_SOP_CLASS, _SOP_CLASS + _element(0x1030, b"    ")),  # a blank AE title
        _replaced(_SOP_CLASS, _SOP_CLASS + struct.pack("<HHL", 0x0008, 0x0018, 2) + b"1\x00"),
        _encoded(*_USUAL)[:-3],  # cut short
        _encoded(*_USUAL) + b"\x00\x00",  # bytes left over
        _element(0x0000, b"\x00\x00") + b"".join(_USUAL),  # a group length of two bytes
    ],
)
def test_what_it_does_not_read_is_left_to_pynetdicom(command: bytes) -> None:
    assert store_request(command, 1) is None


# --- the assembly, compared with pynetdicom's own, fragment by fragment ---


def _association(assembled: bool) -> Association:
    assoc = Association(AE("TEST"), "acceptor")
    drop_unheard_logging(assoc)
    if assembled:
        assert assemble_store_requests(assoc)
    return assoc


def _outcome(assoc: Association, pdatas: list[list[Any]]) -> list[Any]:
    """Give `pdatas` (each a list of fragments) to the DIMSE provider: what it queued."""
    for fragments in pdatas:
        pdata = P_DATA()
        pdata._presentation_data_value_list = fragments
        assoc.dimse.receive_primitive(pdata)
    queued: list[Any] = []
    while not assoc.dimse.msg_queue.empty():
        context_id, primitive = assoc.dimse.msg_queue.get_nowait()
        data = primitive.DataSet.getvalue() if isinstance(primitive, C_STORE) else None
        queued.append((context_id, type(primitive), _fields(primitive), data))
    events = list(assoc.dul.event_queue.queue)
    return [queued, events]


def _views(fragments: list[Any]) -> list[Any]:
    """As the short way gives them: views of buffers of their own."""
    return [(cx, memoryview(bytearray(value))) for cx, value in fragments]


def _echo() -> list[Any]:
    echo = C_ECHO()
    echo.MessageID = 9
    return _fragments(echo, C_ECHO_RQ())


def test_a_request_is_assembled_as_pynetdicom_does() -> None:
    fragments = _fragments(_request(), C_STORE_RQ(), pdu_size=64)  # the command in 3
    assert sum(value[0] & 1 for _cx, value in fragments) > 1
    mine = _association(assembled=True)
    expected = _outcome(_association(assembled=False), [[f] for f in fragments])
    assert _outcome(mine, [[f] for f in _views(fragments)]) == expected
    assert mine.dimse.message is None  # pynetdicom assembled nothing
    assert expected[0][0][3] == b"\x01\x02" * 600


def test_other_messages_go_to_pynetdicom_between_requests() -> None:
    sequence = [*_fragments(_request(), C_STORE_RQ()), *_echo()]
    sequence += _fragments(_request(MessageID=8), C_STORE_RQ())
    expected = _outcome(_association(assembled=False), [[f] for f in sequence])
    assert [kind for _cx, kind, _fields, _data in expected[0]] == [C_STORE, C_ECHO, C_STORE]
    assert _outcome(_association(assembled=True), [[f] for f in _views(sequence)]) == expected


def test_fragments_out_of_order_go_to_pynetdicom() -> None:
    store = _fragments(_request(), C_STORE_RQ())
    command = [f for f in store if f[1][0] & 1]
    data = [f for f in store if not f[1][0] & 1]
    for sequence in (data + command, command + command + data, command + data[:1] + command):
        expected = _outcome(_association(assembled=False), [[f] for f in sequence])
        assert _outcome(_association(assembled=True), [[f] for f in sequence]) == expected


def test_two_messages_in_one_pdata_both_arrive() -> None:
    """pynetdicom drops what follows the end of a message in the same P-DATA."""
    first, second = _fragments(_request(), C_STORE_RQ()), _echo()
    alone = _outcome(_association(assembled=False), [first + second])
    assert len(alone[0]) == 1
    both = _outcome(_association(assembled=True), [first + second])
    assert [kind for _cx, kind, _fields, _data in both[0]] == [C_STORE, C_ECHO]


def test_a_handler_of_dimse_messages_gets_pynetdicom_message() -> None:
    assoc = _association(assembled=True)
    seen: list[Any] = []
    assoc.bind(evt.EVT_DIMSE_RECV, lambda event: seen.append(event.message))
    fragments = _fragments(_request(), C_STORE_RQ())
    expected = _outcome(_association(assembled=False), [[f] for f in fragments])
    assert _outcome(assoc, [[f] for f in fragments]) == expected
    assert [type(message) for message in seen] == [C_STORE_RQ]


@pytest.fixture
def chunked_reception() -> Iterator[None]:
    before = _config.STORE_RECV_CHUNKED_DATASET
    _config.STORE_RECV_CHUNKED_DATASET = True
    yield
    _config.STORE_RECV_CHUNKED_DATASET = before


def test_data_sets_to_files_are_left_to_pynetdicom(chunked_reception: None) -> None:
    assoc = _association(assembled=True)
    assoc._accepted_cx = {1: type("Context", (), {"transfer_syntax": ["1.2.840.10008.1.2"]})()}
    for fragment in _fragments(_request(), C_STORE_RQ()):
        pdata = P_DATA()
        pdata._presentation_data_value_list = [fragment]
        assoc.dimse.receive_primitive(pdata)
    _cx, primitive = assoc.dimse.msg_queue.get_nowait()
    assert primitive._dataset_path is not None  # pynetdicom wrote it to a file
    primitive._dataset_path.unlink()


def test_unexpected_internals_are_left_alone() -> None:
    assoc = Association(AE("TEST"), "acceptor")
    assoc.dimse = object()  # type: ignore[assignment]
    assert not assemble_store_requests(assoc)


# --- in a served association ---


def _decoded_messages(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Watch the DIMSE messages pynetdicom decodes (the class they end as)."""
    decoded: list[str] = []
    decode: Callable[..., bool] = DIMSEMessage.decode_msg

    def watched(self: DIMSEMessage, *args: Any, **kwargs: Any) -> bool:
        done = decode(self, *args, **kwargs)
        if done:
            decoded.append(type(self).__name__)
        return done

    monkeypatch.setattr(DIMSEMessage, "decode_msg", watched)
    return decoded


def test_requests_take_the_short_way_and_arrive_whole(
    scp: Scp, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded = _decoded_messages(monkeypatch)
    assoc = associate(scp)
    server_side(scp)
    sent = [instance(i, columns=512) for i in range(3)]  # several PDUs each
    try:
        for ds in sent:
            assert assoc.send_c_store(ds).get("Status") == 0x0000
        assert assoc.send_c_echo().get("Status") == 0x0000
    finally:
        assoc.release()
    assert scp.ended.wait(WAIT)
    # The server decoded the echo only; the client, the four responses.
    assert sorted(decoded) == sorted(["C_ECHO_RQ", "C_ECHO_RSP"] + ["C_STORE_RSP"] * 3)
    assert [data[-4000:] for data in scp.received] == [to_bytes(ds)[-4000:] for ds in sent]
