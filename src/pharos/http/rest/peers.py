"""Orthanc peers (`/peers`): the registry, and sending to them over HTTP."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from pharos.http.arguments import flag
from pharos.http.responses import JsonResponse, text_response
from pharos.http.rest.jobs import answer
from pharos.jobs.engine import JobsEngine
from pharos.model.errors import ErrorCode, PharosError
from pharos.services.peer_jobs import PeerJobs
from pharos.services.peers import PEER_OPERATIONS, PeerService
from pharos.services.remote_requests import parse_json


def router(peers: PeerService, peer_jobs: PeerJobs, jobs: JobsEngine) -> APIRouter:
    api = APIRouter(tags=["Networking"])

    @api.get("/peers", summary="List the Orthanc peers (?expand: their parameters)")
    def list_peers(request: Request) -> JsonResponse:
        if flag(request, "expand"):
            return JsonResponse(peers.registry.configurations())
        return JsonResponse(peers.registry.names())

    @api.get("/peers/{id}", summary="List the operations on a peer")
    def operations(id: str) -> JsonResponse:
        peers.registry.require(id)
        return JsonResponse(PEER_OPERATIONS)

    @api.get("/peers/{id}/configuration", summary="The parameters of a peer (no secrets)")
    def configuration(id: str) -> JsonResponse:
        return JsonResponse(peers.registry.configuration(id))

    @api.put(
        "/peers/{id}",
        summary="Define or update a peer",
        description=(
            'Body: ["url"], ["url", "user", "password"] or the object form of OrthancPeers. '
            "Kept in the index (shared, permanent) when OrthancPeersInDatabase is true, else "
            "until restart."
        ),
    )
    async def put_peer(id: str, request: Request) -> Response:
        value = parse_json(await request.body(), "The body must be a JSON array or object")
        if not isinstance(value, list | dict):
            raise PharosError(ErrorCode.BAD_FILE_FORMAT, "The body must be a JSON array or object")
        await run_in_threadpool(peers.registry.put, id, value)
        return text_response("")

    @api.delete("/peers/{id}", summary="Forget a peer")
    def delete_peer(id: str) -> Response:
        peers.registry.delete(id)
        return text_response("")

    @api.get("/peers/{id}/system", summary="The peer's /system (tests the connection)")
    async def system(id: str) -> JsonResponse:
        return JsonResponse(await run_in_threadpool(peers.system, id))

    @api.post(
        "/peers/{id}/store",
        summary="Send local resources to the peer (POST /instances of the peer)",
        description=(
            "Body: a resource ID, a list of IDs, or {Resources, Synchronous, Asynchronous, "
            "Priority, Permissive, Transcode, Compress}. Resources of any level are sent as "
            'their instances; as an OrthancPeerStore job with "Synchronous": false. With '
            '"Compress": true the bodies are gzip\'d (Content-Encoding: gzip).'
        ),
    )
    async def store(id: str, request: Request) -> JsonResponse:
        body = await request.body()
        return await answer(jobs, await run_in_threadpool(peer_jobs.store, id, body))

    @api.post("/peers/{id}/store-straight", summary="Send the DICOM file in the body to the peer")
    async def store_straight(id: str, request: Request) -> JsonResponse:
        body = await request.body()
        return JsonResponse(await run_in_threadpool(peers.store_straight, id, body))

    return api
