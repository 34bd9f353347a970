"""Browse and delete patients, studies, series and instances; navigate between levels."""

from __future__ import annotations

from enum import Enum
from typing import Any

from fastapi import APIRouter, Request

from pharos.dicom.orthanc_json import TagFormat, format_from_query
from pharos.http.arguments import flag, int_argument, optional_int_argument
from pharos.http.responses import JsonResponse
from pharos.model.levels import Level
from pharos.services.container import Services
from pharos.services.find_request import parse_requested_tags_argument


def _shape(request: Request) -> tuple[TagFormat, tuple[int, ...]]:
    """How resources are shown: the tag format (?simplify, ?short, ?full; simplified by
    default) and the tags of `?requestedTags=a;b` (Orthanc 1.11)."""
    fmt = format_from_query(request.query_params.keys(), TagFormat.SIMPLIFY)
    return fmt, parse_requested_tags_argument(request.query_params.get("requestedTags"))


def router(services: Services) -> APIRouter:
    api = APIRouter()
    for level in Level:
        _add_level_routes(api, services, level)
    return api


def _add_level_routes(api: APIRouter, services: Services, level: Level) -> None:
    base = f"/{level.plural}"
    tag: list[str | Enum] = [level.title]
    resources = services.resources

    @api.get(base, tags=tag, summary=f"List the {level.plural}")
    def list_resources(request: Request) -> JsonResponse:
        since = int_argument(request, "since", 0)
        limit = optional_int_argument(request, "limit")
        if flag(request, "expand"):
            fmt, requested = _shape(request)
            return JsonResponse(services.find.list_expanded(level, since, limit, fmt, requested))
        return JsonResponse(resources.list_ids(level, since, limit))

    @api.get(base + "/{id}", tags=tag, summary=f"Get one {level.title.lower()}")
    def get_resource(id: str, request: Request) -> JsonResponse:
        fmt, requested = _shape(request)
        ref = resources.resolve(level, id)
        return JsonResponse(services.find.expand([ref], fmt, requested)[0])

    @api.delete(base + "/{id}", tags=tag, summary=f"Delete one {level.title.lower()}")
    def delete_resource(id: str) -> JsonResponse:
        return JsonResponse(services.deletion.delete(resources.resolve(level, id)))

    @api.get(base + "/{id}/statistics", tags=tag, summary="Sizes and counts below the resource")
    def statistics(id: str) -> JsonResponse:
        return JsonResponse(resources.resource_statistics_json(resources.resolve(level, id)))

    @api.get(base + "/{id}/module", tags=tag, summary="The tags of the DICOM module of the level")
    def module(id: str, request: Request) -> JsonResponse:
        fmt = format_from_query(request.query_params.keys())
        return JsonResponse(services.tags.module(resources.resolve(level, id), level, fmt))

    if level is Level.STUDY:

        @api.get(base + "/{id}/module-patient", tags=tag, summary="The patient module")
        def module_patient(id: str, request: Request) -> JsonResponse:
            fmt = format_from_query(request.query_params.keys())
            ref = resources.resolve(level, id)
            return JsonResponse(services.tags.module(ref, Level.PATIENT, fmt))

    if level is not Level.INSTANCE:

        @api.get(base + "/{id}/shared-tags", tags=tag, summary="Tags equal in all instances")
        def shared(id: str, request: Request) -> JsonResponse:
            fmt = format_from_query(request.query_params.keys())
            return JsonResponse(services.tags.shared(resources.resolve(level, id), fmt))

        @api.get(base + "/{id}/instances-tags", tags=tag, summary="The tags of each instance")
        def instances_tags(id: str, request: Request) -> JsonResponse:
            fmt = format_from_query(request.query_params.keys())
            return JsonResponse(services.tags.of_instances(resources.resolve(level, id), fmt))

    for lower in Level:
        if lower > level:
            _add_children_route(api, services, level, lower, tag)
    for upper in Level:
        if upper < level:
            _add_parent_route(api, services, level, upper, tag)


def _add_children_route(
    api: APIRouter, services: Services, level: Level, lower: Level, tag: list[str | Enum]
) -> None:
    @api.get(
        f"/{level.plural}/{{id}}/{lower.plural}",
        tags=tag,
        summary=f"The {lower.plural} of the {level.title.lower()}",
    )
    def children(id: str, request: Request) -> JsonResponse:
        ref = services.resources.resolve(level, id)
        refs = services.resources.descendants(ref, lower)
        if "expand" in request.query_params and not flag(request, "expand"):
            ids: list[Any] = [r.public_id for r in refs]
            return JsonResponse(ids)
        fmt, requested = _shape(request)
        return JsonResponse(services.find.expand(refs, fmt, requested))


def _add_parent_route(
    api: APIRouter, services: Services, level: Level, upper: Level, tag: list[str | Enum]
) -> None:
    @api.get(
        f"/{level.plural}/{{id}}/{upper.title.lower()}",
        tags=tag,
        summary=f"The {upper.title.lower()} of the {level.title.lower()}",
    )
    def parent(id: str, request: Request) -> JsonResponse:
        ref = services.resources.resolve(level, id)
        fmt, requested = _shape(request)
        ancestor = services.resources.ancestor(ref, upper)
        return JsonResponse(services.find.expand([ancestor], fmt, requested)[0])
