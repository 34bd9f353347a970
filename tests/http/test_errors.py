"""Orthanc's error JSON: the HTTP reason phrase of every status a route may answer."""

from __future__ import annotations

import pytest

from pharos.http.errors import error_body
from pharos.model.errors import ErrorCode


@pytest.mark.parametrize(
    ("status", "reason"),
    [(400, "Bad Request"), (404, "Not Found"), (502, "Bad Gateway"), (504, "Gateway Timeout")],
)
def test_http_error_is_the_reason_phrase(status: int, reason: str) -> None:
    # 502: a peer or DICOMweb server that cannot be reached (was answered as "Error").
    body = error_body("GET", "/peers/down/system", ErrorCode.NETWORK_PROTOCOL, status, "down")
    assert body["HttpError"] == reason and body["HttpStatus"] == status
    assert (body["OrthancStatus"], body["Details"]) == (9, "down")
