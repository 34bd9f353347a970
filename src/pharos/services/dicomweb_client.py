"""The DICOMweb client, as Orthanc's DICOMweb plugin offers it (`/dicom-web/servers`): the
remote servers of `DicomWeb.Servers`, GET and QIDO-RS requests proxied to them, STOW-RS of
local resources, and WADO-RS retrieval of remote ones into this server through its store path.

STOW-RS sends the instances in batches (one multipart request each, as many instances as
`StowMaxInstances` and `StowMaxSize` allow, chunked unless the server says
`"ChunkedTransfers": false`); WADO-RS answers are read part by part as they arrive, each
part stored before the next is read, so memory holds one instance at a time either way.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from pharos.index.base import Index, Reception, ResourceRef
from pharos.model.errors import ErrorCode, PharosError, unknown_resource
from pharos.model.levels import Level
from pharos.services.files import FileService
from pharos.services.remote_requests import RunMode, json_object, parse_priority
from pharos.services.store import StoreService
from pharos.services.web_services import (
    HttpClientFactory,
    WebService,
    WebServiceRegistry,
    check_answer,
)

log = logging.getLogger(__name__)

# As the DICOMweb plugin stores what it retrieves: through the plugin API
RETRIEVE_RECEPTION = Reception(origin="Plugins")
_MEGA = 1024 * 1024
_DELETE_PATH = ("studies", "series", "instances")
_DELETE_LEVELS = {
    "study": ("StudyInstanceUID",),
    "series": ("StudyInstanceUID", "SeriesInstanceUID"),
    "instance": ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID"),
}
_UNIVERSAL = 'multipart/related; type="application/dicom"; transfer-syntax=*'
# hop-by-hop, or set by our own server
_NOT_FORWARDED = {
    "transfer-encoding",
    "content-length",
    "connection",
    "content-encoding",
    "date",
    "server",
    "keep-alive",
}


@dataclass(frozen=True, slots=True)
class RemoteAnswer:
    """What a remote server answered to a proxied GET."""

    status: int
    content: bytes
    content_type: str
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class StowLimits:
    """How much one STOW-RS request carries (DicomWeb.StowMaxInstances and StowMaxSize, with
    Orthanc's defaults); 0: no limit. The instance that reaches `size` is the last one."""

    instances: int = 10
    size: int = 10 * 1024 * 1024  # bytes

    def full(self, count: int, size: int) -> bool:
        return bool(self.instances and count >= self.instances) or bool(
            self.size and size >= self.size
        )


@dataclass(frozen=True, slots=True)
class StowPlan:
    server: WebService
    instances: list[str]  # public IDs
    headers: dict[str, str]
    run: RunMode


@dataclass(frozen=True, slots=True)
class WadoPlan:
    server: WebService
    uris: list[str]  # relative to the server's URL, with their query string
    headers: dict[str, str]
    run: RunMode


@dataclass(slots=True)
class StowProgress:
    position: int = 0  # instances sent
    size: int = 0  # bytes sent

    def content(self, plan: StowPlan) -> dict[str, Any]:
        """The plugin's job content (strings, as its SetContent makes them)."""
        return {
            "InstancesCount": str(len(plan.instances)),
            "NetworkSizeMB": str(self.size // _MEGA),
        }


@dataclass(slots=True)
class WadoProgress:
    position: int = 0  # resources retrieved
    size: int = 0  # bytes received
    received: list[str] = field(default_factory=list)  # public IDs of the stored instances

    def content(self) -> dict[str, Any]:
        return {
            "NetworkUsageMB": str(self.size // _MEGA),
            "ReceivedInstancesCount": str(len(self.received)),
        }


def _string_map(body: Mapping[str, Any], key: str) -> dict[str, str]:
    value = body.get(key, {})
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise PharosError(ErrorCode.BAD_FILE_FORMAT, f'"{key}" must be a JSON object of strings')
    return {str(k): v for k, v in value.items()}


def _run_mode(body: Mapping[str, Any], default_synchronous: bool) -> RunMode:
    """The plugin's rule: `Synchronous`, else `Asynchronous`, else the route's default."""
    for key, means_synchronous in (("Synchronous", True), ("Asynchronous", False)):
        if key in body:
            value = body[key]
            if not isinstance(value, bool):
                raise PharosError(ErrorCode.BAD_FILE_FORMAT, f'"{key}" must be true or false')
            synchronous = value if means_synchronous else not value
            break
    else:
        synchronous = default_synchronous
    return RunMode(not synchronous, parse_priority(body.get("Priority")))


def encode_uri(uri: str, arguments: Mapping[str, str]) -> str:
    """A URI relative to the server's root, with its GET arguments (UriEncode)."""
    relative = uri.lstrip("/")
    if ".." in relative.split("/") or "://" in relative:
        raise PharosError(ErrorCode.BAD_REQUEST, f"Not a URI below the server's root: {uri!r}")
    if arguments:
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in arguments.items())
        relative += ("&" if "?" in relative else "?") + query
    return relative


class DicomWebClient:
    def __init__(
        self,
        registry: WebServiceRegistry,
        clients: HttpClientFactory,
        index: Index,
        files: FileService,
        store: StoreService,
        stow_limits: StowLimits | None = None,
    ):
        self.registry = registry
        self._clients = clients
        self._index = index
        self._files = files
        self._store = store
        self._stow_limits = stow_limits or StowLimits()

    # -- the registry -----------------------------------------------------------------------

    def operations(self, name: str) -> list[str]:
        """GET /dicom-web/servers/{name}: the routes below it."""
        server = self.registry.require(name)
        deletes = ["delete"] if server.bool_property("HasDelete", False) else []
        return [*deletes, "get", "qido", "retrieve", "stow", "wado"]

    # -- DELETE -----------------------------------------------------------------------------

    def delete(self, name: str, raw: bytes) -> None:
        """POST /dicom-web/servers/{name}/delete: HTTP DELETE of a remote study, series or
        instance, body {Level, StudyInstanceUID, SeriesInstanceUID, SOPInstanceUID,
        HttpHeaders}; only for a server declared with `"HasDelete": true`."""
        server = self.registry.require(name)
        if not server.bool_property("HasDelete", False):
            raise PharosError(
                ErrorCode.BAD_REQUEST,
                f'The DICOMweb server {name!r} is not declared with "HasDelete": true',
                http_status=400,
            )
        body = json_object(raw)
        level = str(body.get("Level", "")).lower()
        keys = _DELETE_LEVELS.get(level)
        if keys is None:
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT, '"Level" must be "Study", "Series" or "Instance"'
            )
        uids = []
        for key in keys:
            uid = body.get(key)
            if not isinstance(uid, str) or not uid.strip():
                raise PharosError(ErrorCode.BAD_FILE_FORMAT, f'Deleting a {level} needs "{key}"')
            uids.append(quote(uid.strip(), safe=""))
        relative = "/".join(part for pair in zip(_DELETE_PATH, uids, strict=False) for part in pair)
        with self._clients.session(server) as client:
            response = client.delete(relative, headers=_string_map(body, "HttpHeaders"))
            check_answer(server, response, f"DELETE {relative}")

    # -- GET and QIDO-RS --------------------------------------------------------------------

    def _request(self, name: str, raw: bytes) -> tuple[WebService, str, dict[str, str]]:
        server = self.registry.require(name)
        body = json_object(raw)
        uri = body.get("Uri")
        if not isinstance(uri, str):
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT,
                'A request to the DICOMweb client must provide a JSON object with the field "Uri" '
                "containing the URI of interest",
            )
        relative = encode_uri(uri, _string_map(body, "Arguments"))
        return server, relative, _string_map(body, "HttpHeaders")

    def get(self, name: str, raw: bytes) -> RemoteAnswer:
        """POST /dicom-web/servers/{name}/get: the remote's answer to GET `Uri`."""
        server, relative, headers = self._request(name, raw)
        with self._clients.session(server) as client:
            response = client.get(relative, headers=headers)
            check_answer(server, response, f"GET {relative}")
        forwarded = {
            k: v
            for k, v in response.headers.items()
            if k.lower() not in _NOT_FORWARDED and k.lower() != "content-type"
        }
        return RemoteAnswer(
            response.status_code,
            response.content,
            response.headers.get("content-type", "application/octet-stream"),
            forwarded,
        )

    def qido(self, name: str, raw: bytes) -> Any:
        """POST /dicom-web/servers/{name}/qido: the remote's JSON answer to GET `Uri`."""
        server, relative, headers = self._request(name, raw)
        headers.setdefault("Accept", "application/dicom+json")
        with self._clients.session(server) as client:
            response = client.get(relative, headers=headers)
            check_answer(server, response, f"GET {relative}")
        if not response.content.strip():
            return []  # 204 No Content: no match
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError:
            raise PharosError(
                ErrorCode.NETWORK_PROTOCOL,
                f"DICOMweb server {server.name!r} did not answer JSON to GET {relative}",
                http_status=502,
            ) from None

    # -- STOW-RS ----------------------------------------------------------------------------

    def stow_plan(self, name: str, raw: bytes) -> StowPlan:
        """Reads the body of POST /dicom-web/servers/{name}/stow (404 before any send)."""
        server = self.registry.require(name)
        body = json_object(raw)
        resources = body.get("Resources")
        if not isinstance(resources, list):
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT,
                "A request to the DICOMweb STOW-RS client must provide a JSON object with the "
                'field "Resources" containing an array of resources to be sent',
            )
        instances: list[str] = []
        seen: set[str] = set()
        for item in resources:
            if not isinstance(item, str) or not item.strip():
                raise PharosError(
                    ErrorCode.BAD_FILE_FORMAT, '"Resources" must be an array of Orthanc IDs'
                )
            ref = self._index.lookup(item.strip())
            if ref is None:
                raise unknown_resource(item)
            refs = (
                [ref]
                if ref.level is Level.INSTANCE
                else self._index.descendants(ref, Level.INSTANCE)
            )
            for child in refs:
                if child.public_id not in seen:
                    seen.add(child.public_id)
                    instances.append(child.public_id)
        return StowPlan(server, instances, _string_map(body, "HttpHeaders"), _run_mode(body, True))

    def run_stow(self, plan: StowPlan) -> dict[str, Any]:
        progress = StowProgress()
        while self.stow_batch(plan, progress):
            pass
        return progress.content(plan)

    def stow_batch(self, plan: StowPlan, progress: StowProgress) -> bool:
        """Send the next batch of instances in one STOW-RS request; False when all are sent."""
        batch = self._next_batch(plan.instances[progress.position :])
        if not batch:
            return False
        server = plan.server
        boundary = f"{uuid.uuid4().hex}-{uuid.uuid4().hex}"
        headers = {
            **plan.headers,
            "Accept": "application/dicom+json",
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
        }
        sent = [0]
        parts = _multipart([_LazyFile(self._files, ref) for ref in batch], boundary, sent)
        chunked = server.bool_property("ChunkedTransfers", True)
        content: bytes | Iterator[bytes] = parts if chunked else b"".join(parts)
        with self._clients.session(server) as client:
            response = client.post("studies", content=content, headers=headers)
            check_answer(server, response, "STOW-RS POST /studies")
        _check_stow_answer(server, response, len(batch))
        progress.position += len(batch)
        progress.size += sent[0]
        return progress.position < len(plan.instances)

    def _next_batch(self, remaining: list[str]) -> list[ResourceRef]:
        """The instances of the next request, all checked present before anything is sent."""
        batch: list[ResourceRef] = []
        size = 0
        for public_id in remaining:
            ref = self._index.lookup(public_id)
            if ref is None:
                raise PharosError(
                    ErrorCode.UNKNOWN_RESOURCE,
                    f"Instance {public_id} was deleted before it could be sent",
                )
            batch.append(ref)
            if self._stow_limits.size:
                size += self._files.dicom_attachment(ref).uncompressed_size
            if self._stow_limits.full(len(batch), size):
                break
        return batch

    # -- WADO-RS retrieve -------------------------------------------------------------------

    def retrieve_plan(self, name: str, raw: bytes) -> WadoPlan:
        """Reads the body of POST /dicom-web/servers/{name}/retrieve: `Resources`, a list of
        {Study, Series?, Instance?} UIDs; `GetArguments`, `HttpHeaders`."""
        server = self.registry.require(name)
        body = json_object(raw)
        resources = body.get("Resources")
        if not isinstance(resources, list):
            raise PharosError(
                ErrorCode.BAD_FILE_FORMAT,
                'The body must be a JSON object containing an array "Resources"',
            )
        arguments = _string_map(body, "GetArguments")
        uris: list[str] = []
        for item in resources:
            if not isinstance(item, dict) or not isinstance(item.get("Study"), str):
                raise PharosError(ErrorCode.BAD_FILE_FORMAT, 'Missing "Study" field in the body')
            uids = [item.get(key) or "" for key in ("Study", "Series", "Instance")]
            if not all(isinstance(uid, str) for uid in uids):
                raise PharosError(
                    ErrorCode.BAD_FILE_FORMAT, '"Study", "Series", "Instance" must be strings'
                )
            if not uids[1] and uids[2]:
                raise PharosError(
                    ErrorCode.BAD_FILE_FORMAT,
                    'Missing "Series" field in the body, as "Instance" is present',
                )
            path = "".join(
                f"{segment}/{quote(uid.strip(), safe='')}/"
                for segment, uid in zip(("studies", "series", "instances"), uids, strict=True)
                if uid
            )
            uris.append(encode_uri(path.rstrip("/"), arguments))
        return WadoPlan(server, uris, _string_map(body, "HttpHeaders"), _run_mode(body, True))

    def wado_plan(self, name: str, raw: bytes) -> WadoPlan:
        """Reads the body of POST /dicom-web/servers/{name}/wado: one `Uri` with `Arguments`
        and `HttpHeaders`, asynchronous by default (as the plugin)."""
        server, relative, headers = self._request(name, raw)
        return WadoPlan(server, [relative], headers, _run_mode(json_object(raw), False))

    def run_retrieve(self, plan: WadoPlan) -> dict[str, Any]:
        progress = WadoProgress()
        while self.retrieve_next(plan, progress):
            pass
        return progress.content()

    def retrieve_next(self, plan: WadoPlan, progress: WadoProgress) -> bool:
        """Retrieve the next resource, storing its instances as they arrive; False when all
        are retrieved."""
        if progress.position >= len(plan.uris):
            return False
        server, relative = plan.server, plan.uris[progress.position]
        headers = dict(plan.headers)
        if "Accept" not in headers and server.bool_property(
            "HasWadoRsUniversalTransferSyntax", True
        ):
            headers["Accept"] = _UNIVERSAL
        with (
            self._clients.session(server) as client,
            client.stream("GET", relative, headers=headers) as response,
        ):
            check_answer(server, response, f"WADO-RS GET {relative}")
            if response.status_code == 204:  # No Content: nothing to retrieve
                parts: Iterator[tuple[dict[str, str], bytes]] = iter(())
            else:
                boundary = _boundary(server, response.headers.get("content-type", ""))
                parts = read_parts(_counted(response, progress), boundary)
            for part_headers, data in parts:
                kind = part_headers.get("content-type", "").split(";")[0].strip().lower()
                if kind != "application/dicom":
                    raise PharosError(
                        ErrorCode.NETWORK_PROTOCOL,
                        'Parts of a WADO-RS retrieve should have "application/dicom" type, '
                        f"but received: {kind or 'none'}",
                        http_status=502,
                    )
                result = self._store.store(data, RETRIEVE_RECEPTION)
                progress.received.append(result.ids.instance)
        progress.position += 1
        return progress.position < len(plan.uris)


class _LazyFile:
    """A stored file read only when the multipart body reaches it."""

    def __init__(self, files: FileService, ref: ResourceRef):
        self._files = files
        self._ref = ref

    def __iter__(self) -> Iterator[bytes]:
        yield self._files.read_dicom(self._ref)


def _multipart(files: list[Iterable[bytes]], boundary: str, sent: list[int]) -> Iterator[bytes]:
    for chunks in files:
        data = b"".join(chunks)
        sent[0] += len(data)
        yield (
            f"--{boundary}\r\nContent-Type: application/dicom\r\n"
            f"Content-Length: {len(data)}\r\n\r\n"
        ).encode("ascii")
        yield data
        yield b"\r\n"
    yield f"--{boundary}--\r\n".encode("ascii")


def _check_stow_answer(server: WebService, response: httpx.Response, count: int) -> None:
    """The STOW-RS response must list every instance sent as referenced and none as failed."""
    try:
        answer = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        answer = None
    if not isinstance(answer, dict):
        raise PharosError(
            ErrorCode.NETWORK_PROTOCOL,
            f"Unable to parse STOW-RS JSON response from DICOMweb server {server.name!r}",
            http_status=502,
        )

    def size(tag: str) -> int:
        value = answer.get(tag) or answer.get(tag.lower()) or {}
        items = value.get("Value", []) if isinstance(value, dict) else []
        return len(items) if isinstance(items, list) else 0

    failed = size("00081198") + size("0008119A")
    if failed or size("00081199") != count:
        raise PharosError(
            ErrorCode.NETWORK_PROTOCOL,
            f"The STOW-RS server {server.name!r} was only able to receive "
            f"{size('00081199')} instances out of {count} ({failed} failed)",
            http_status=502,
        )


def _boundary(server: WebService, content_type: str) -> str:
    pieces = [piece.strip() for piece in content_type.split(";")]
    if pieces[0].lower() != "multipart/related":
        raise PharosError(
            ErrorCode.NETWORK_PROTOCOL,
            f"The WADO-RS server {server.name!r} answers with {pieces[0] or 'no'} Content-Type, "
            'but "multipart/related" is expected',
            http_status=502,
        )
    for piece in pieces[1:]:
        key, _, value = piece.partition("=")
        if key.strip().lower() == "boundary":
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] == '"':
                value = value[1:-1]
            if value:
                return value
    raise PharosError(
        ErrorCode.NETWORK_PROTOCOL,
        f"The WADO-RS answer of {server.name!r} has no multipart boundary",
        http_status=502,
    )


def _counted(response: httpx.Response, progress: WadoProgress) -> Iterator[bytes]:
    for chunk in response.iter_bytes():
        progress.size += len(chunk)
        yield chunk


MAX_HEADER_BYTES = 16384


def _protocol(details: str) -> PharosError:
    return PharosError(ErrorCode.NETWORK_PROTOCOL, details, http_status=502)


def read_parts(chunks: Iterable[bytes], boundary: str) -> Iterator[tuple[dict[str, str], bytes]]:
    """The parts of a multipart/related body as they arrive: (lowercased headers, body).
    One part at a time is held in memory; a malformed body raises NETWORK_PROTOCOL."""
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    buffer = bytearray(b"\r\n")  # the first delimiter may open the body without a CRLF
    source = iter(chunks)

    def more() -> bool:
        chunk = next(source, None)
        if chunk is None:
            return False
        buffer.extend(chunk)
        return True

    while (found := buffer.find(delimiter)) < 0:
        if len(buffer) > len(delimiter):
            del buffer[: len(buffer) - len(delimiter)]
        if not more():
            if len(buffer) <= 2 + len(delimiter) and not buffer.strip():
                return  # an empty body: no instance
            raise _protocol("The multipart answer has no part (boundary not found)")
    del buffer[: found + len(delimiter)]
    while True:
        while len(buffer) < 2:
            if not more():
                raise _protocol("The multipart answer is truncated")
        if buffer[:2] == b"--":
            return
        while (line_end := buffer.find(b"\r\n")) < 0:
            if not more():
                raise _protocol("The multipart answer is truncated")
        del buffer[: line_end + 2]
        headers: dict[str, str] = {}
        while len(buffer) < 2:
            if not more():
                raise _protocol("The multipart answer is truncated")
        if buffer[:2] == b"\r\n":
            del buffer[:2]
        else:
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                if len(buffer) > MAX_HEADER_BYTES:
                    raise _protocol("The headers of a part are too long")
                if not more():
                    raise _protocol("The multipart answer is truncated")
            for line in bytes(buffer[:end]).decode("latin-1").split("\r\n"):
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
            del buffer[: end + 4]
        start = 0
        while (found := buffer.find(delimiter, start)) < 0:
            start = max(0, len(buffer) - len(delimiter) + 1)
            if not more():
                raise _protocol("The multipart answer is truncated (a part is not closed)")
        body = bytes(buffer[:found])
        del buffer[: found + len(delimiter)]
        yield headers, body
