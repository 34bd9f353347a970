"""Orthanc peers (`/peers`): other Orthanc or Pharos servers reached through their REST API.

Sending to a peer is `POST {peer}/instances` of each instance's file, as stored (or transcoded
with `Transcode`, gzip'd with `Compress`), over one HTTP connection. Synchronous sends answer
Orthanc's job content at once; asynchronous ones run as an `OrthancPeerStore` job
(`pharos.services.peer_jobs`), one instance per step.
"""

from __future__ import annotations

import gzip
import logging
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from pharos.dicom.transcode import TranscodingError, check_target, transcode_file
from pharos.index.base import Index
from pharos.model.errors import ErrorCode, PharosError, unknown_resource
from pharos.model.levels import Level
from pharos.services.files import FileService
from pharos.services.remote_requests import RunMode, optional_bool, run_mode, store_body
from pharos.services.web_services import (
    HttpClientFactory,
    WebService,
    WebServiceRegistry,
    check_answer,
    format_public,
    transport_error,
)

log = logging.getLogger(__name__)

# What GET /peers/{id} lists (the routes below it)
PEER_OPERATIONS = ["configuration", "store", "store-straight", "system"]
_MEGA = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PeerStorePlan:
    """A send of local resources to a peer, as asked (run now, or as a job)."""

    peer: WebService
    resources: list[str]  # as given (any level): Orthanc's ParentResources
    instances: list[str]  # their instances' public IDs
    transcode: str | None  # a transfer syntax UID
    compress: bool
    permissive: bool
    run: RunMode


def store_content(
    plan: PeerStorePlan, count: int, failed: int, size: int, failed_ids: list[str] | None = None
) -> dict[str, Any]:
    """Orthanc's content of an OrthancPeerStore job (and the answer of a synchronous send)."""
    content: dict[str, Any] = {
        "Compress": plan.compress,
        "Description": "REST API",
        "FailedInstancesCount": failed,
        "InstancesCount": count,
        "ParentResources": plan.resources,
        "Peer": public_peer(plan.peer),
        "Size": str(size),
        "SizeMB": size // _MEGA,
    }
    if plan.transcode:
        content["Transcode"] = plan.transcode
    if failed_ids:
        content["FailedInstances"] = failed_ids
    return content


def public_peer(peer: WebService) -> list[str] | dict[str, Any]:
    """The peer in a job's content: Orthanc's simple form when it suffices, no password."""
    if peer.certificate_file or peer.pkcs11 or peer.headers or peer.properties or peer.timeout:
        return format_public(peer)
    if peer.username:
        return [peer.url, peer.username, ""]
    return [peer.url]


class PeerService:
    def __init__(
        self,
        registry: WebServiceRegistry,
        clients: HttpClientFactory,
        index: Index,
        files: FileService,
        lossy_quality: int,
    ):
        self.registry = registry
        self._clients = clients
        self._index = index
        self._files = files
        self._quality = lossy_quality

    # -- talking to a peer ------------------------------------------------------------------

    def system(self, name: str) -> Any:
        """GET /peers/{id}/system: the peer's own /system (a test of connectivity)."""
        peer = self.registry.require(name)
        with self._clients.session(peer) as client:
            response = client.get("system")
            check_answer(peer, response, "GET /system")
        return _json_of(peer, response)

    def store_straight(self, name: str, data: bytes) -> Any:
        """POST /peers/{id}/store-straight: the body sent as it is; the peer's answer."""
        peer = self.registry.require(name)
        if not data:
            raise PharosError(ErrorCode.EMPTY_REQUEST, "The body must be a DICOM file")
        with self._clients.session(peer) as client:
            response = client.post(
                "instances", content=data, headers={"Content-Type": "application/dicom"}
            )
            check_answer(peer, response, "POST /instances")
        return _json_of(peer, response)

    def store_plan(self, name: str, raw: bytes) -> PeerStorePlan:
        """Reads the body of POST /peers/{id}/store (404 before anything is sent)."""
        peer = self.registry.require(name)
        resources, body = store_body(raw)
        transcode = body.get("Transcode")
        if transcode is not None:
            if not isinstance(transcode, str):
                raise PharosError(ErrorCode.BAD_FILE_FORMAT, '"Transcode" must be a string')
            try:
                transcode = str(check_target(transcode))
            except TranscodingError as exc:
                raise PharosError(ErrorCode.BAD_FILE_FORMAT, str(exc)) from None
        return PeerStorePlan(
            peer=peer,
            resources=resources,
            instances=self._instances_of(resources),
            transcode=transcode or None,
            compress=optional_bool(body, "Compress", False),
            permissive=optional_bool(body, "Permissive", False),
            run=run_mode(body),
        )

    def _instances_of(self, resources: list[str]) -> list[str]:
        seen: set[str] = set()
        found: list[str] = []
        for public_id in resources:
            ref = self._index.lookup(public_id)
            if ref is None:
                raise unknown_resource(public_id)
            refs = (
                [ref]
                if ref.level is Level.INSTANCE
                else self._index.descendants(ref, Level.INSTANCE)
            )
            for child in refs:
                if child.public_id not in seen:
                    seen.add(child.public_id)
                    found.append(child.public_id)
        return found

    def run_store(self, plan: PeerStorePlan) -> dict[str, Any]:
        """A synchronous send: every instance, then Orthanc's job content."""
        size, failed = 0, []
        with self.connect(plan.peer) as client:
            for public_id in plan.instances:
                sent = self.send(client, plan, public_id)
                if sent is None:
                    failed.append(public_id)
                else:
                    size += sent
        log.info("Sent %d instances to peer %r", len(plan.instances), plan.peer.name)
        return store_content(plan, len(plan.instances), len(failed), size, failed)

    def connect(self, peer: WebService) -> httpx.Client:
        """A client for a series of `send` (closed by the caller)."""
        return self._clients.client(peer)

    def send(self, client: httpx.Client, plan: PeerStorePlan, public_id: str) -> int | None:
        """POST one instance to the peer: the bytes sent, or None when it failed and the plan
        is permissive (deleted meanwhile, or refused by the peer); else PharosError."""
        ref = self._index.lookup(public_id)
        try:
            if ref is None:
                raise unknown_resource(public_id)
            data = self._files.read_dicom(ref)
        except PharosError as exc:
            if plan.permissive:
                log.warning("Instance %s not sent to peer %r: %s", public_id, plan.peer.name, exc)
                return None
            raise PharosError(
                exc.code, f"Instance {public_id} was deleted before it could be sent"
            ) from None
        if plan.transcode:
            try:
                data = transcode_file(data, plan.transcode, quality=self._quality)
            except TranscodingError as exc:  # as Orthanc: sent as stored
                log.warning("Instance %s sent as stored: %s", public_id, exc)
        headers = {"Content-Type": "application/dicom"}
        if plan.compress:
            data = gzip.compress(data, compresslevel=6)
            headers["Content-Encoding"] = "gzip"
        try:
            response = client.post("instances", content=data, headers=headers)
            check_answer(plan.peer, response, f"POST /instances of {public_id}")
        except httpx.HTTPError as exc:
            raise transport_error(plan.peer, exc) from None
        except PharosError as exc:
            if plan.permissive and exc.code is not ErrorCode.UNAUTHORIZED:
                log.warning("Peer %r refused instance %s: %s", plan.peer.name, public_id, exc)
                return None
            raise
        return len(data)


def _json_of(peer: WebService, response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        raise PharosError(
            ErrorCode.NETWORK_PROTOCOL,
            f"{peer.kind} {peer.name!r} did not answer JSON",
            http_status=502,
        ) from None
