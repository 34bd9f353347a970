"""What the DICOMweb routes share: the root URL of answers, JSON and XML answers, media types."""

from __future__ import annotations

import re
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from pharos.dicom.dicom_xml import dicom_xml
from pharos.http.dicomweb.multipart import closing, media_ranges, part_header
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.dicomweb_server import DicomWebServer

DICOM_JSON = "application/dicom+json"
DICOM_XML = "application/dicom+xml"
_JSON_TYPES = frozenset({DICOM_JSON, "application/json", "*/*", "application/*"})


def base_url(request: Request, server: DicomWebServer) -> str:
    """The absolute URL of the DICOMweb root as the client sees it, ending with a slash (for
    RetrieveURL and BulkDataURI). Host and scheme: DicomWeb.Host and Ssl when set, else those
    a reverse proxy reports (`Forwarded`, else `X-Forwarded-Host`/`-Proto`), else the
    request's. Path: DicomWeb.PublicRoot when set (a proxy serving Pharos under another
    path), else the root Pharos serves."""
    url = request.base_url
    proto, host = _forwarded(request)
    if server.public_host or host:
        url = url.replace(netloc=server.public_host or host)
    if server.ssl or proto:
        url = url.replace(scheme="https" if server.ssl else proto)
    if server.public_root is not None:
        return f"{url.scheme}://{url.netloc}{server.public_root}/"
    return str(url).rstrip("/") + server.root + "/"


_HOST = re.compile(r"[A-Za-z0-9.\-]+(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?")


def _forwarded(request: Request) -> tuple[str, str]:
    """(proto, host) of the first hop of `Forwarded` (RFC 7239), or of `X-Forwarded-Proto`
    and `X-Forwarded-Host`; "" for what is absent or malformed (ignored, never copied into
    URLs)."""
    proto = host = ""
    forwarded = request.headers.get("forwarded")
    if forwarded:
        for pair in forwarded.split(",")[0].split(";"):
            key, _, value = pair.partition("=")
            value = value.strip().strip('"')
            if key.strip().lower() == "proto":
                proto = value.lower()
            elif key.strip().lower() == "host":
                host = value
    else:
        proto = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
        host = request.headers.get("x-forwarded-host", "").split(",")[0].strip()
    return (
        proto if proto in ("http", "https") else "",
        host if _HOST.fullmatch(host) else "",
    )


def wants_xml(request: Request) -> bool:
    """Whether the client asks for the Native DICOM Model (multipart/related;
    type="application/dicom+xml", PS3.18 8.7.3.3) before DICOM JSON; 406 if it takes
    neither."""
    accept = request.headers.get("accept")
    if not accept:
        return False
    for kind, parameters in media_ranges(accept):
        if kind in _JSON_TYPES:
            return False
        if kind == DICOM_XML or (
            kind == "multipart/related" and parameters.get("type", "").lower() == DICOM_XML
        ):
            return True
    raise PharosError(
        ErrorCode.NOT_ACCEPTABLE,
        f"Cannot answer with {accept!r}: only {DICOM_JSON} (or application/json) or "
        f'multipart/related; type="{DICOM_XML}"',
        http_status=406,
    )


def dicom_xml_response(datasets: list[dict[str, Any]]) -> Response:
    """The datasets of the JSON model as multipart/related XML, one part each."""
    boundary = uuid.uuid4().hex
    body = bytearray()
    for dataset in datasets:
        document = dicom_xml(dataset)
        body += part_header(boundary, DICOM_XML + "; charset=utf-8", len(document))
        body += document + b"\r\n"
    body += closing(boundary)
    media = f'multipart/related; type="{DICOM_XML}"; boundary={boundary}'
    return Response(bytes(body), media_type=media)


def dicom_json_response(body: Any, status_code: int = 200) -> Response:
    # orjson: a tenth of the time of `json.dumps` for a 100-study QIDO answer (1 ms).
    return Response(
        orjson.dumps(body),
        status_code=status_code,
        media_type=DICOM_JSON,
    )
