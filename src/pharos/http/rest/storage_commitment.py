"""Storage commitment as SCU (Orthanc 1.6): ask a modality to commit instances, read its report,
remove the instances it committed."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from pharos.http.responses import JsonResponse
from pharos.services.storage_commitment import StorageCommitmentService


def router(commitment: StorageCommitmentService) -> APIRouter:
    api = APIRouter(tags=["Networking"])

    @api.post(
        "/modalities/{id}/storage-commitment",
        summary="Ask the modality to commit instances (N-ACTION)",
        description=(
            "Body: {DicomInstances: [{SOPClassUID, SOPInstanceUID}] or [[class, instance]], "
            "Resources: [IDs of local resources of any level], Timeout}. Answers the ID of the "
            "transaction, whose report is at /storage-commitment/{ID}."
        ),
    )
    async def request(id: str, request: Request) -> JsonResponse:
        body = await request.body()
        return JsonResponse(await run_in_threadpool(commitment.request, id, body))

    @api.get(
        "/storage-commitment/{id}",
        summary="The report of a storage commitment transaction (Pending, Success, Failure)",
    )
    def report(id: str) -> JsonResponse:
        return JsonResponse(commitment.report(id))

    @api.post(
        "/storage-commitment/{id}/remove",
        summary="Delete the instances the modality committed (only after a Success report)",
    )
    async def remove(id: str) -> JsonResponse:
        return JsonResponse(await run_in_threadpool(commitment.remove, id))

    return api
