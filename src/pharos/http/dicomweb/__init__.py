"""The DICOMweb server (PS3.18) under DicomWeb.Root: QIDO-RS, WADO-RS and STOW-RS."""

from __future__ import annotations

from fastapi import APIRouter

from pharos.http.dicomweb import bulkdata, delete, frames, qido, rendered, stow, wado
from pharos.services.dicomweb_server import DicomWebServer


def router(server: DicomWebServer, client: APIRouter | None = None) -> APIRouter:
    """`client`: the DICOMweb client's routes (`servers.router`), under the same root. The
    routes of each module carry the root themselves and are gathered in one flat list (see
    `http.app.add_routes`)."""
    api = APIRouter()
    for module in (qido, wado, frames, bulkdata, rendered, stow, delete):
        api.routes.extend(module.router(server).routes)
    if client is not None:
        api.routes.extend(client.routes)
    return api
