"""C-STORE responses encoded by hand (`pharos.dimse.store_response`): the same bytes as
pynetdicom's encoding, pynetdicom's way for what it does not write, and what peers read."""

from __future__ import annotations

import itertools
import queue
import ssl
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from pydicom.dataset import Dataset
from pynetdicom import evt
from pynetdicom.association import Association
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_ECHO, C_STORE
from pynetdicom.events import Event
from pynetdicom.pdu import P_DATA_TF
from pynetdicom.pdu_primitives import P_DATA

from pharos.dimse.pdu_reader import p_data_tf
from pharos.dimse.store_response import send_store_responses_directly, store_response_command
from tests.dimse.certificates import Certificates, make_certificates, requires_openssl
from tests.dimse.loopback import WAIT, Scp, associate, instance, loopback_scp, server_side


def _response(**fields: Any) -> C_STORE:
    response = C_STORE()
    response.MessageIDBeingRespondedTo = 7
    for name, value in fields.items():
        setattr(response, name, value)
    return response


def _pynetdicom_encoding(response: C_STORE) -> bytes:
    message = C_STORE_RSP()
    message.primitive_to_message(response)
    (pdata,) = message.encode_msg(1, 16384)
    (item,) = pdata.presentation_data_value_list
    return bytes(item[1][1:])  # without the message control header


@pytest.mark.parametrize(
    ("sop_class", "sop_instance", "code", "comment"),
    list(
        itertools.product(
            ["1.2.840.10008.5.1.4.1.1.2", "1.2.3", None],  # even and odd lengths, absent
            ["1.2.3.4", "1.2.3.45", None],
            [0x0000, 0xA700, 0xC000, 0xB007],
            [None, "odd", "even", "x" * 64],
        )
    ),
)
def test_same_bytes_as_pynetdicom(
    sop_class: str | None, sop_instance: str | None, code: int, comment: str | None
) -> None:
    response = _response(
        AffectedSOPClassUID=sop_class, AffectedSOPInstanceUID=sop_instance, Status=code
    )
    if comment is not None:
        response.ErrorComment = comment
    assert store_response_command(response) == _pynetdicom_encoding(response)


def test_what_it_does_not_write_is_left_to_pynetdicom() -> None:
    offending = _response(Status=0xC000, OffendingElement=[0x00100010])
    assert store_response_command(offending) is None
    accented = _response(Status=0xC000, ErrorComment="Données illisibles")
    assert store_response_command(accented) is None
    assert store_response_command(_response()) is None  # no Status
    unanswered = _response(Status=0)
    unanswered.MessageIDBeingRespondedTo = None
    assert store_response_command(unanswered) is None


class _Socket:
    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> None:
        self.sent.append(bytes(data))


class _Fake:
    """An association whose DIMSE provider records what is sent, and how: through the DUL
    (`sent_pdus`), to its socket (`socket.sent`), or pynetdicom's way (`long_way`)."""

    def __init__(
        self,
        maximum_pdu_size: int = 16384,
        handlers: list[Any] | None = None,
        pdu_handlers: list[Any] | None = None,
    ):
        self.sent_pdus: list[Any] = []
        self.long_way: list[Any] = []
        self.socket = _Socket()
        dul = SimpleNamespace(
            send_pdu=self.sent_pdus.append,
            state_machine=SimpleNamespace(current_state="Sta6"),
            to_provider_queue=queue.Queue(),
            event_queue=queue.Queue(),
            socket=self.socket,
        )
        self.dul = dul
        self.dimse = SimpleNamespace(
            maximum_pdu_size=maximum_pdu_size,
            dul=dul,
            send_msg=lambda primitive, _cx: self.long_way.append(primitive),
        )
        self._handlers = handlers or []
        self._pdu_handlers = pdu_handlers or []

    def get_handlers(self, event: Any) -> list[Any]:
        if event in (evt.EVT_PDU_SENT, evt.EVT_DATA_SENT):
            return self._pdu_handlers
        return self._handlers


def _sent(fake: _Fake, primitive: Any, to_socket: bool = False) -> _Fake:
    assert send_store_responses_directly(fake, to_socket) is True  # type: ignore[arg-type]
    fake.dimse.send_msg(primitive, 5)
    return fake


def test_a_response_goes_as_one_pdata() -> None:
    response = _response(AffectedSOPInstanceUID="1.2.3", Status=0)
    fake = _sent(_Fake(), response)
    assert fake.long_way == []
    ((context_id, value),) = fake.sent_pdus[0].presentation_data_value_list
    assert context_id == 5
    assert value == b"\x03" + _pynetdicom_encoding(response)


@pytest.mark.parametrize(
    "fake",
    [
        _Fake(maximum_pdu_size=64),  # the command would need several fragments
        _Fake(handlers=[(print, None)]),  # someone listens to EVT_DIMSE_SENT
    ],
)
def test_otherwise_pynetdicom_sends(fake: _Fake) -> None:
    response = _response(AffectedSOPInstanceUID="1.2.3.4.5.6.7.8", Status=0)
    _sent(fake, response)
    assert fake.long_way == [response]
    assert fake.sent_pdus == []


def test_other_messages_are_left_alone() -> None:
    request = C_STORE()  # a request (C-STORE sub-operation of a C-GET), not a response
    request.MessageID = 3
    echo = C_ECHO()
    echo.MessageIDBeingRespondedTo = 1
    echo.Status = 0
    fake = _Fake()
    _sent(fake, request)
    fake.dimse.send_msg(echo, 1)
    assert fake.long_way == [request, echo]


def test_p_data_tf_as_pynetdicom_encodes() -> None:
    for value in (b"\x03", b"\x02" + bytes(range(256)) * 3):
        pdata = P_DATA()
        pdata._presentation_data_value_list = [(7, value)]
        assert p_data_tf(7, value) == P_DATA_TF(pdata).encode()


def test_a_response_goes_straight_to_the_socket() -> None:
    response = _response(AffectedSOPInstanceUID="1.2.3", Status=0)
    fake = _sent(_Fake(), response, to_socket=True)
    assert fake.sent_pdus == [] and fake.long_way == []
    assert fake.socket.sent == [p_data_tf(5, b"\x03" + _pynetdicom_encoding(response))]


def _queued(fake: _Fake, queue_name: str) -> _Fake:
    getattr(fake.dul, queue_name).put("something sent before")
    return fake


def _in_state(fake: _Fake, state: str) -> _Fake:
    fake.dul.state_machine.current_state = state
    return fake


@pytest.mark.parametrize(
    "fake",
    [
        _queued(_Fake(), "to_provider_queue"),  # it would overtake what waits
        _queued(_Fake(), "event_queue"),
        _in_state(_Fake(), "Sta13"),  # not established (any more)
        _Fake(pdu_handlers=[(print, None)]),  # someone listens to the PDUs or data sent
    ],
)
def test_otherwise_the_dul_sends(fake: _Fake) -> None:
    _sent(fake, _response(AffectedSOPInstanceUID="1.2.3", Status=0), to_socket=True)
    assert fake.socket.sent == []
    assert len(fake.sent_pdus) == 1


def test_without_to_socket_the_dul_sends() -> None:
    fake = _sent(_Fake(), _response(AffectedSOPInstanceUID="1.2.3", Status=0))
    assert fake.socket.sent == [] and len(fake.sent_pdus) == 1


def test_unexpected_internals_are_left_alone() -> None:
    odd = SimpleNamespace(dimse=SimpleNamespace())
    assert send_store_responses_directly(odd) is False  # type: ignore[arg-type]
    assert vars(odd.dimse) == {}


# -- what a peer reads ----------------------------------------------------------------------


def _failing(event: Event) -> Dataset:
    answer = Dataset()
    answer.Status = 0xA700
    answer.ErrorComment = "Disk full"
    return answer


@pytest.fixture
def failing_scp() -> Iterator[Scp]:
    yield from loopback_scp(answer=_failing)


def test_peer_reads_success(scp: Scp) -> None:
    assoc = associate(scp)
    try:
        answers = [assoc.send_c_store(instance(i)) for i in range(3)]
    finally:
        assoc.release()
    assert [answer.Status for answer in answers] == [0x0000] * 3
    assert scp.ended.wait(WAIT)


def _dul_sends(served: Association) -> list[str]:
    """Watch the PDUs the served association's DUL thread sends (their class names)."""
    seen: list[str] = []
    send: Callable[[Any], None] = served.dul._send

    def watched(pdu: Any) -> None:
        seen.append(type(pdu).__name__)
        send(pdu)

    setattr(served.dul, "_send", watched)  # noqa: B010
    return seen


def test_responses_leave_from_the_association_thread(scp: Scp) -> None:
    assoc = associate(scp)
    sent_by_dul = _dul_sends(server_side(scp))
    try:
        answers = [assoc.send_c_store(instance(i)) for i in range(3)]
        echo = assoc.send_c_echo()
    finally:
        assoc.release()
    assert scp.ended.wait(WAIT)
    assert [answer.Status for answer in [*answers, echo]] == [0x0000] * 4
    # The echo's response (pynetdicom's way) and the release's: none of the C-STORE's.
    assert sent_by_dul == ["P_DATA_TF", "A_RELEASE_RP"]


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    return make_certificates(tmp_path_factory.mktemp("certificates"))


@requires_openssl
def test_over_tls_the_dul_thread_sends(certificates: Certificates) -> None:
    """An SSL connection is not to be written by one thread while another reads it."""
    server_side_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_side_tls.load_cert_chain(certificates.server.certificate, certificates.server.key)
    client_side_tls = ssl.create_default_context(cafile=certificates.authority)
    client_side_tls.check_hostname = False
    for tls_scp in loopback_scp(ssl_context=server_side_tls):
        assoc = associate(tls_scp, client_side_tls)
        sent_by_dul = _dul_sends(server_side(tls_scp))
        try:
            answers = [assoc.send_c_store(instance(i)) for i in range(2)]
        finally:
            assoc.release()
        assert tls_scp.ended.wait(WAIT)
        assert [answer.Status for answer in answers] == [0x0000] * 2
        assert sent_by_dul == ["P_DATA_TF", "P_DATA_TF", "A_RELEASE_RP"]
        assert len(tls_scp.received) == 2


def test_peer_reads_failure_and_comment(failing_scp: Scp) -> None:
    assoc = associate(failing_scp)
    try:
        answer = assoc.send_c_store(instance(0))
    finally:
        assoc.release()
    assert answer.Status == 0xA700
    assert answer.ErrorComment == "Disk full"
