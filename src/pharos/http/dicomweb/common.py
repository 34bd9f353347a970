"""What the DICOMweb routes share: the root URL of answers, JSON answers, media types."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from pharos.http.dicomweb.multipart import media_ranges
from pharos.model.errors import ErrorCode, PharosError

DICOM_JSON = "application/dicom+json"
_JSON_TYPES = frozenset({DICOM_JSON, "application/json", "*/*", "application/*"})


def base_url(request: Request, root: str) -> str:
    """The absolute URL of the DICOMweb root, ending with a slash (for RetrieveURL)."""
    return str(request.base_url).rstrip("/") + root + "/"


def check_json_accepted(request: Request) -> None:
    """406 unless the client takes DICOM JSON (PS3.18 8.7.3: the Accept header)."""
    accept = request.headers.get("accept")
    if not accept:
        return
    if any(kind in _JSON_TYPES for kind, _ in media_ranges(accept)):
        return
    raise PharosError(
        ErrorCode.NOT_ACCEPTABLE,
        f"Cannot answer with {accept!r}: only {DICOM_JSON} (or application/json)",
        http_status=406,
    )


def dicom_json_response(body: Any, status_code: int = 200) -> Response:
    return Response(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"),
        status_code=status_code,
        media_type=DICOM_JSON,
    )
