"""The DICOMweb server (PS3.18) under DicomWeb.Root: QIDO-RS, WADO-RS and STOW-RS."""

from __future__ import annotations

from fastapi import APIRouter

from pharos.http.dicomweb import qido, rendered, stow, wado
from pharos.services.dicomweb_server import DicomWebServer


def router(server: DicomWebServer) -> APIRouter:
    api = APIRouter(prefix=server.root, tags=["DICOMweb"])
    for module in (qido, wado, rendered, stow):
        api.include_router(module.router(server))
    return api
