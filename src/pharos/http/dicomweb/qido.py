"""QIDO-RS: searches for studies, series and instances (PS3.18 10.6)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response

from pharos.http.dicomweb.common import (
    base_url,
    dicom_json_response,
    dicom_xml_response,
    wants_xml,
)
from pharos.model.levels import Level
from pharos.services.dicomweb_search import SERIES_UID, STUDY_UID
from pharos.services.dicomweb_server import DicomWebServer


def router(server: DicomWebServer) -> APIRouter:
    api = APIRouter(prefix=server.root, tags=["DICOMweb"])

    def search(request: Request, level: Level, scope: dict[int, str]) -> Response:
        xml = wants_xml(request)
        answers = server.search.search(
            level, request.query_params.multi_items(), scope, base_url(request, server)
        )
        return dicom_xml_response(answers) if xml else dicom_json_response(answers)

    @api.get("/studies", summary="QIDO-RS: search for studies")
    def studies(request: Request) -> Response:
        return search(request, Level.STUDY, {})

    @api.get("/series", summary="QIDO-RS: search for series")
    def series(request: Request) -> Response:
        return search(request, Level.SERIES, {})

    @api.get("/instances", summary="QIDO-RS: search for instances")
    def instances(request: Request) -> Response:
        return search(request, Level.INSTANCE, {})

    @api.get("/studies/{study}/series", summary="QIDO-RS: search for the series of a study")
    def study_series(request: Request, study: str) -> Response:
        return search(request, Level.SERIES, {STUDY_UID: study})

    @api.get("/studies/{study}/instances", summary="QIDO-RS: search for the instances of a study")
    def study_instances(request: Request, study: str) -> Response:
        return search(request, Level.INSTANCE, {STUDY_UID: study})

    @api.get(
        "/studies/{study}/series/{series}/instances",
        summary="QIDO-RS: search for the instances of a series",
    )
    def series_instances(request: Request, study: str, series: str) -> Response:
        return search(request, Level.INSTANCE, {STUDY_UID: study, SERIES_UID: series})

    return api
