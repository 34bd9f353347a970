"""Thumbnails of instances, series and studies: small JPEGs, cached after the first request."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from pharos.services.container import Services

# Already compressed: gzip would only spend CPU.
NOT_GZIPPED = {"Content-Encoding": "identity"}


def router(services: Services) -> APIRouter:
    api = APIRouter(tags=["Images"])
    thumbnails = services.thumbnails

    @api.get("/instances/{id}/thumbnail", summary="A small JPEG of the first frame (cached)")
    def instance_thumbnail(id: str) -> Response:
        return _jpeg(thumbnails.instance(id))

    @api.get("/series/{id}/thumbnail", summary="The thumbnail of the series' middle instance")
    def series_thumbnail(id: str) -> Response:
        return _jpeg(thumbnails.series(id))

    @api.get("/studies/{id}/thumbnail", summary="The thumbnail of the study's first series")
    def study_thumbnail(id: str) -> Response:
        return _jpeg(thumbnails.study(id))

    return api


def _jpeg(data: bytes) -> Response:
    return Response(data, media_type="image/jpeg", headers=NOT_GZIPPED)
