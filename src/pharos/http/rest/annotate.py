"""Metadata, attachments, labels and protection of resources, as Orthanc's REST API has them.

Revisions travel as Orthanc's ETags, `"<revision>-<md5>"`: sent with every metadata and
attachment read or write, honoured in If-Match (PUT, DELETE) and If-None-Match (GET).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from enum import Enum

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from pharos.http.arguments import flag
from pharos.http.errors import error_response
from pharos.http.responses import JsonResponse, text_response
from pharos.index.base import Attachment
from pharos.index.base_annotations import ExpectedRevision
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.annotations import md5_hex
from pharos.services.container import Services
from pharos.storage.compression import Compression

_REVISION = re.compile(r"^([0-9]+)-(.*)$", re.DOTALL)
_RANGE = re.compile(r"^bytes=([0-9]*)-([0-9]*)$")
# Binary content: gzip is not worth its CPU, and would break byte ranges.
_RAW = {"Content-Encoding": "identity"}


def router(services: Services) -> APIRouter:
    api = APIRouter()
    for level in Level:
        tag: list[str | Enum] = [level.title]
        base = f"/{level.plural}/{{id}}"
        _metadata_routes(api, services, level, base, tag)
        _attachment_routes(api, services, level, base, tag)
        _attachment_data_routes(api, services, level, base, tag)
        _label_routes(api, services, level, base, tag)

    @api.get("/tools/labels", tags=["System"], summary="All the labels in use (Orthanc 1.12)")
    def all_labels() -> JsonResponse:
        return JsonResponse(services.annotations.all_labels())

    _protection_routes(api, services)
    return api


def _metadata_routes(
    api: APIRouter, services: Services, level: Level, base: str, tag: list[str | Enum]
) -> None:
    resolve = services.resources.resolve
    annotations = services.annotations

    @api.get(base + "/metadata", tags=tag, summary="List metadata (?expand, ?numeric)")
    def list_metadata(id: str, request: Request) -> JsonResponse:
        ref = resolve(level, id)
        expand = flag(request, "expand")
        numeric = "numeric" in request.query_params
        return JsonResponse(annotations.list_metadata(ref, expand, numeric))

    @api.get(base + "/metadata/{name}", tags=tag, summary="Get one metadata (ETag)")
    def get_metadata(id: str, name: str, request: Request) -> Response:
        found = annotations.get_metadata(resolve(level, id), name)
        digest = md5_hex(found.value.encode("utf-8"))
        etag = _etag(found.revision, digest)
        if _not_modified(request, found.revision, digest):
            return Response(status_code=304, headers={"ETag": etag})
        response = text_response(found.value)
        response.headers["ETag"] = etag
        return response

    @api.put(base + "/metadata/{name}", tags=tag, summary="Set a user metadata (If-Match)")
    async def set_metadata(id: str, name: str, request: Request) -> Response:
        body = await request.body()
        if_match = _revision_header(request, "If-Match")
        ref = await run_in_threadpool(resolve, level, id)
        written = await run_in_threadpool(annotations.set_metadata, ref, name, body, if_match)
        response = text_response("")
        response.headers["ETag"] = _etag(written.revision, written.md5)
        return response

    @api.delete(base + "/metadata/{name}", tags=tag, summary="Delete a user metadata (If-Match)")
    def delete_metadata(id: str, name: str, request: Request) -> Response:
        if_match = _revision_header(request, "If-Match")
        annotations.delete_metadata(resolve(level, id), name, if_match)
        return text_response("")


def _attachment_routes(
    api: APIRouter, services: Services, level: Level, base: str, tag: list[str | Enum]
) -> None:
    resolve = services.resources.resolve
    annotations = services.annotations
    one = base + "/attachments/{name}"

    @api.get(base + "/attachments", tags=tag, summary="List attachments (?full)")
    def list_attachments(id: str, request: Request) -> JsonResponse:
        full = "full" in request.query_params
        return JsonResponse(annotations.list_attachments(resolve(level, id), full))

    @api.get(one, tags=tag, summary="Operations available on an attachment")
    def operations(id: str, name: str, request: Request) -> Response:
        found = annotations.attachment(resolve(level, id), name)
        return _answer(request, found, lambda: JsonResponse(_operations(found)))

    @api.put(one, tags=tag, summary="Set a user attachment (If-Match)")
    async def put_attachment(id: str, name: str, request: Request) -> Response:
        body = await request.body()
        if_match = _revision_header(request, "If-Match")
        ref = await run_in_threadpool(resolve, level, id)
        written = await run_in_threadpool(annotations.put_attachment, ref, name, body, if_match)
        return JsonResponse({}, headers={"ETag": _etag(written.revision, written.md5)})

    @api.delete(one, tags=tag, summary="Delete a user attachment (If-Match)")
    def delete_attachment(id: str, name: str, request: Request) -> Response:
        if_match = _revision_header(request, "If-Match")
        annotations.delete_attachment(resolve(level, id), name, if_match)
        return text_response("")

    @api.get(one + "/size", tags=tag, summary="Size of the attachment")
    def size(id: str, name: str, request: Request) -> Response:
        found = annotations.attachment(resolve(level, id), name)
        return _answer(request, found, lambda: text_response(str(found.uncompressed_size)))

    @api.get(one + "/compressed-size", tags=tag, summary="Size of the attachment on disk")
    def compressed_size(id: str, name: str, request: Request) -> Response:
        found = annotations.attachment(resolve(level, id), name)
        return _answer(request, found, lambda: text_response(str(found.compressed_size)))

    @api.get(one + "/md5", tags=tag, summary="MD5 of the attachment")
    def md5(id: str, name: str, request: Request) -> Response:
        found = annotations.attachment(resolve(level, id), name)
        return _answer(request, found, lambda: text_response(_md5_of(found, compressed=False)))

    @api.get(one + "/compressed-md5", tags=tag, summary="MD5 of the attachment on disk")
    def compressed_md5(id: str, name: str, request: Request) -> Response:
        found = annotations.attachment(resolve(level, id), name)
        return _answer(request, found, lambda: text_response(_md5_of(found, compressed=True)))

    @api.get(one + "/is-compressed", tags=tag, summary="1 if stored compressed, 0 otherwise")
    def is_compressed(id: str, name: str, request: Request) -> Response:
        found = annotations.attachment(resolve(level, id), name)
        answer = "0" if found.compression == Compression.NONE else "1"
        return _answer(request, found, lambda: text_response(answer))

    @api.get(one + "/info", tags=tag, summary="Everything the index knows of the attachment")
    def info(id: str, name: str, request: Request) -> Response:
        found = annotations.attachment(resolve(level, id), name)
        body = {
            "CompressedMD5": found.compressed_md5 or "",
            "CompressedSize": found.compressed_size,
            "ContentType": found.content_type,
            "UncompressedMD5": found.uncompressed_md5 or "",
            "UncompressedSize": found.uncompressed_size,
            "Uuid": found.uuid,
        }
        return _answer(request, found, lambda: JsonResponse(body))

    @api.post(one + "/verify-md5", tags=tag, summary="Check the stored file against its MD5")
    def verify_md5(id: str, name: str) -> JsonResponse:
        annotations.verify_md5(resolve(level, id), name)
        return JsonResponse({})

    @api.post(one + "/compress", tags=tag, summary="Store the attachment compressed")
    def compress(id: str, name: str) -> JsonResponse:
        annotations.set_compression(resolve(level, id), name, compressed=True)
        return JsonResponse({})

    @api.post(one + "/uncompress", tags=tag, summary="Store the attachment uncompressed")
    def uncompress(id: str, name: str) -> JsonResponse:
        annotations.set_compression(resolve(level, id), name, compressed=False)
        return JsonResponse({})


def _attachment_data_routes(
    api: APIRouter, services: Services, level: Level, base: str, tag: list[str | Enum]
) -> None:
    resolve = services.resources.resolve
    annotations = services.annotations
    one = base + "/attachments/{name}"

    @api.get(one + "/data", tags=tag, summary="Content of the attachment (HTTP Range accepted)")
    async def data(id: str, name: str, request: Request) -> Response:
        ref = await run_in_threadpool(resolve, level, id)
        found = await run_in_threadpool(annotations.attachment, ref, name)
        headers = {"ETag": _etag(found.revision, found.uncompressed_md5), "Accept-Ranges": "bytes"}
        if _not_modified(request, found.revision, found.uncompressed_md5):
            return Response(status_code=304, headers=headers)
        # The configured MIME type exactly (Starlette would append a charset to text/*).
        content_headers = {
            **headers,
            **_RAW,
            "Content-Type": annotations.mime_type(found.content_type),
        }
        size = found.uncompressed_size
        header = request.headers.get("Range")
        span = _byte_range(header, size) if header is not None else None
        if span is None:
            content = await run_in_threadpool(annotations.read, found)
            return Response(content, headers=content_headers)
        if span == (size, size):
            details = f"Range {header!r} is outside the {size} bytes of the attachment"
            headers["Content-Range"] = f"bytes */{size}"
            return error_response(request, ErrorCode.BAD_RANGE, details, headers=headers)
        start, end = span
        content = await run_in_threadpool(annotations.read_range, found, start, end)
        content_headers["Content-Range"] = f"bytes {start}-{end - 1}/{size}"
        return Response(content, status_code=206, headers=content_headers)

    @api.get(one + "/compressed-data", tags=tag, summary="The attachment as stored on disk")
    async def compressed_data(id: str, name: str, request: Request) -> Response:
        ref = await run_in_threadpool(resolve, level, id)
        found = await run_in_threadpool(annotations.attachment, ref, name)
        headers = {"ETag": _etag(found.revision, found.uncompressed_md5)}
        if _not_modified(request, found.revision, found.uncompressed_md5):
            return Response(status_code=304, headers=headers)
        content = await run_in_threadpool(annotations.read_stored, found)
        return Response(content, media_type="application/octet-stream", headers={**headers, **_RAW})


def _label_routes(
    api: APIRouter, services: Services, level: Level, base: str, tag: list[str | Enum]
) -> None:
    resolve = services.resources.resolve
    annotations = services.annotations

    @api.get(base + "/labels", tags=tag, summary="The labels of the resource (Orthanc 1.12)")
    def list_labels(id: str) -> JsonResponse:
        return JsonResponse(annotations.labels(resolve(level, id)))

    @api.get(base + "/labels/{label}", tags=tag, summary="200 if the resource has the label")
    def get_label(id: str, label: str) -> Response:
        annotations.has_label(resolve(level, id), label)
        return text_response("")

    @api.put(base + "/labels/{label}", tags=tag, summary="Add a label")
    def add_label(id: str, label: str) -> Response:
        annotations.add_label(resolve(level, id), label)
        return text_response("")

    @api.delete(base + "/labels/{label}", tags=tag, summary="Remove a label")
    def remove_label(id: str, label: str) -> Response:
        annotations.remove_label(resolve(level, id), label)
        return text_response("")


def _protection_routes(api: APIRouter, services: Services) -> None:
    resolve = services.resources.resolve
    annotations = services.annotations
    path = "/patients/{id}/protected"

    @api.get(path, tags=["Patient"], summary="1 if protected against recycling, 0 otherwise")
    def is_protected(id: str) -> Response:
        protected = annotations.is_protected(resolve(Level.PATIENT, id))
        return text_response("1" if protected else "0")

    @api.put(path, tags=["Patient"], summary='Protect ("1") or unprotect ("0") the patient')
    async def set_protected(id: str, request: Request) -> Response:
        body = await request.body()
        ref = await run_in_threadpool(resolve, Level.PATIENT, id)
        await run_in_threadpool(annotations.set_protected, ref, body)
        return text_response("")


# -- helpers --------------------------------------------------------------------------------


def _etag(revision: int, md5: str | None) -> str:
    return f'"{revision}-{md5 or ""}"'


def _revision_header(request: Request, name: str) -> ExpectedRevision | None:
    """Orthanc's ETag in a request header (quotes optional), or None if absent."""
    raw = request.headers.get(name)
    if raw is None:
        return None
    value = raw.strip().removeprefix("W/")
    if len(value) >= 2 and value[0] == value[-1] == '"':
        value = value[1:-1]
    match = _REVISION.match(value)
    if match is None:
        raise PharosError(
            ErrorCode.PARAMETER_OUT_OF_RANGE,
            f'The "{name}" HTTP header should contain the ETag (revision followed by MD5 hash), '
            f"but found: {raw}",
        )
    return ExpectedRevision(int(match[1]), match[2])


def _not_modified(request: Request, revision: int, md5: str | None) -> bool:
    current = _revision_header(request, "If-None-Match")
    return current is not None and current.matches(revision, md5)


def _answer(request: Request, found: Attachment, respond: Callable[[], Response]) -> Response:
    """The answer of a GET on an attachment, with its ETag, or 304 (If-None-Match)."""
    etag = _etag(found.revision, found.uncompressed_md5)
    if _not_modified(request, found.revision, found.uncompressed_md5):
        return Response(status_code=304, headers={"ETag": etag})
    response = respond()
    response.headers["ETag"] = etag
    return response


def _operations(found: Attachment) -> list[str]:
    """What Orthanc lists for an attachment (md5 operations only when MD5s are stored)."""
    names = ["compress", "compressed-data"]
    if found.compressed_md5:
        names.append("compressed-md5")
    names += ["compressed-size", "data", "info", "is-compressed"]
    if found.uncompressed_md5:
        names.append("md5")
    names += ["size", "uncompress"]
    if found.compressed_md5 and found.uncompressed_md5:
        names.append("verify-md5")
    return names


def _md5_of(found: Attachment, compressed: bool) -> str:
    value = found.compressed_md5 if compressed else found.uncompressed_md5
    if not value:
        raise PharosError(
            ErrorCode.UNKNOWN_RESOURCE,
            "No MD5 was stored for this attachment (StoreMD5ForAttachments was false)",
        )
    return value


def _byte_range(header: str, size: int) -> tuple[int, int] | None:
    """One byte range [start, end) of RFC 9110; None to answer the whole content (no range,
    or one this server does not serve: several ranges, malformed). (size, size) if the range
    cannot be satisfied."""
    match = _RANGE.match(header.strip())
    if match is None or not (match[1] or match[2]):
        return None
    if match[1]:
        start = int(match[1])
        last = int(match[2]) if match[2] else max(start, size - 1)
        if last < start:
            return None
    else:  # a suffix: the last N bytes
        suffix = int(match[2])
        if suffix == 0:
            return (size, size)
        start, last = max(0, size - suffix), size - 1
    if start >= size:
        return (size, size)
    return start, min(last, size - 1) + 1
