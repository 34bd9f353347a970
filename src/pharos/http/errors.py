"""Errors as Orthanc's JSON (`HttpError`, `HttpStatus`, `Message`, `OrthancError`, ...)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import Response

from pharos.http.responses import JsonResponse
from pharos.model.errors import ErrorCode, PharosError

log = logging.getLogger(__name__)

HTTP_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    406: "Not Acceptable",
    409: "Conflict",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    416: "Requested Range Not Satisfiable",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",  # a remote server (Orthanc peer, DICOMweb server) did not answer
    503: "Service Unavailable",
    504: "Gateway Timeout",
    507: "Insufficient Storage",
}


def error_body(
    method: str, uri: str, code: ErrorCode, http_status: int, details: str | None
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "HttpError": HTTP_REASONS.get(http_status, "Error"),
        "HttpStatus": http_status,
        "Message": code.description,
        "Method": method,
        "OrthancError": code.description,
        "OrthancStatus": code.code,
        "Uri": uri,
    }
    if details:
        body["Details"] = details
    return body


def error_response(
    request: Request,
    code: ErrorCode,
    details: str | None,
    http_status: int | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return json_error(
        request, code, details, http_status, headers, request.app.state.describe_errors
    )


def json_error(
    request: Request,
    code: ErrorCode,
    details: str | None,
    http_status: int | None = None,
    headers: dict[str, str] | None = None,
    describe: bool = True,
) -> Response:
    """Orthanc's error JSON (only the status when `HttpDescribeErrors` is false)."""
    status = http_status or code.http_status
    if not describe:
        return Response(status_code=status, headers=headers)
    body = error_body(request.method, request.url.path, code, status, details)
    return JsonResponse(body, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(PharosError)
    async def _pharos_error(request: Request, exc: PharosError) -> Response:
        if exc.http_status >= 500:
            log.error("%s %s: %s", request.method, request.url.path, exc)
        return error_response(request, exc.code, exc.details, exc.http_status)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> Response:
        if exc.status_code == 404:
            details = f"Unknown route: {request.method} {request.url.path}"
            return error_response(request, ErrorCode.UNKNOWN_RESOURCE, details)
        if exc.status_code == 405:
            details = f"Method {request.method} is not allowed on {request.url.path}"
            return error_response(
                request, ErrorCode.BAD_REQUEST, details, 405, headers=dict(exc.headers or {})
            )
        return error_response(request, ErrorCode.BAD_REQUEST, str(exc.detail), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, ErrorCode.BAD_REQUEST, _describe_validation(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("Internal error on %s %s", request.method, request.url.path)
        return error_response(request, ErrorCode.INTERNAL_ERROR, f"{type(exc).__name__}: {exc}")


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()))
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    return "; ".join(parts) or "Invalid request"
