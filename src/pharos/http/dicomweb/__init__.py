"""The DICOMweb server (PS3.18) under DicomWeb.Root: QIDO-RS, WADO-RS and STOW-RS."""

from __future__ import annotations

from fastapi import APIRouter

from pharos.http.dicomweb import bulkdata, frames, qido, rendered, stow, wado
from pharos.services.dicomweb_server import DicomWebServer


def router(server: DicomWebServer, client: APIRouter | None = None) -> APIRouter:
    """`client`: the DICOMweb client's routes (`servers.router`), under the same root."""
    api = APIRouter(prefix=server.root, tags=["DICOMweb"])
    for module in (qido, wado, frames, bulkdata, rendered, stow):
        api.include_router(module.router(server))
    if client is not None:
        api.include_router(client)
    return api
