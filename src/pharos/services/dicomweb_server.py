"""The DICOMweb server's parts (the `DicomWeb` section), handed to the HTTP layer."""

from __future__ import annotations

from dataclasses import dataclass

from pharos.services.deletion import DeletionService
from pharos.services.dicomweb_frames import DicomWebFrames
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
    frames: DicomWebFrames  # WADO-RS /frames and /bulk
    deletion: DeletionService  # DELETE of studies, series, instances: the REST API's
    wado_root: str | None = "/wado"  # DicomWeb.WadoRoot normalized; None: EnableWado false
    cors: CorsPolicy | None = None  # DicomWeb.Cors; None: no CORS headers
    public_host: str = ""  # DicomWeb.Host: host[:port] of answers' URLs; "": the request's
    ssl: bool = False  # DicomWeb.Ssl: answers' URLs use https
    # DicomWeb.PublicRoot normalized: the root's path in answers' URLs; None: `root`
    public_root: str | None = None


def normalize_host(host: str) -> str:
    """DicomWeb.Host as host[:port] (a scheme or path given by mistake is an error)."""
    stripped = host.strip()
    if any(c in stripped for c in "/?#@ "):
        raise ValueError(f"DicomWeb.Host must be a host name, optionally :port, not {host!r}")
    return stripped


def normalize_root(root: str, option: str = "Root", example: str = "/dicom-web/") -> str:
    """DicomWeb.Root (or WadoRoot) as a route prefix; ValueError if it cannot be one."""
    stripped = "/" + root.strip().strip("/")
    if stripped == "/" or any(c in stripped for c in "?#{} "):
        raise ValueError(f"DicomWeb.{option} must be a URI path such as {example}, not {root!r}")
    return stripped


@dataclass(frozen=True, slots=True)
class CorsPolicy:
    """Cross-origin resource sharing for DICOMweb and WADO-URI (DicomWeb.Cors), so that a
    viewer served from another origin can call them."""

    allowed_origins: tuple[str, ...]  # "*" for any
    allow_credentials: bool = False
    max_age: int = 600  # seconds a browser may keep a preflight answer

    def allows(self, origin: str) -> bool:
        return "*" in self.allowed_origins or origin in self.allowed_origins


def cors_policy(origins: list[str], allow_credentials: bool) -> CorsPolicy | None:
    """DicomWeb.CorsAllowedOrigins and CorsAllowCredentials; None when no origin is allowed.
    ValueError for an origin that is not scheme://host[:port] or "*"."""
    cleaned: list[str] = []
    for origin in origins:
        text = str(origin).strip().rstrip("/")
        scheme, separator, host = text.partition("://")
        if text != "*" and (
            not separator or scheme not in ("http", "https") or not host or "/" in host
        ):
            raise ValueError(
                'DicomWeb.CorsAllowedOrigins: each origin is scheme://host[:port] or "*", '
                f"not {origin!r}"
            )
        cleaned.append(text)
    if not cleaned:
        return None
    return CorsPolicy(tuple(cleaned), allow_credentials)
