"""The DICOMweb server's parts (the `DicomWeb` section), handed to the HTTP layer."""

from __future__ import annotations

from dataclasses import dataclass

from pharos.services.dicomweb_retrieve import DicomWebRetrieve
from pharos.services.dicomweb_search import DicomWebSearch
from pharos.services.dicomweb_store import DicomWebStore
from pharos.services.images import ImageService
from pharos.services.thumbnails import ThumbnailService


@dataclass(frozen=True, slots=True)
class DicomWebServer:
    root: str  # DicomWeb.Root, normalized: "/dicom-web" (leading slash, no trailing one)
    search: DicomWebSearch  # QIDO-RS
    retrieve: DicomWebRetrieve  # WADO-RS
    store: DicomWebStore  # STOW-RS
    thumbnails: ThumbnailService  # WADO-RS /thumbnail: the REST API's cached thumbnails
    images: ImageService  # WADO-RS /rendered: the REST API's rendering


def normalize_root(root: str) -> str:
    """DicomWeb.Root as a route prefix; ValueError if it cannot be one."""
    stripped = "/" + root.strip().strip("/")
    if stripped == "/" or any(c in stripped for c in "?#{} "):
        raise ValueError(f"DicomWeb.Root must be a URI path such as /dicom-web/, not {root!r}")
    return stripped
