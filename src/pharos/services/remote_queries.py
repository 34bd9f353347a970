"""Queries to remote modalities kept in memory (`/queries`): what was asked, of whom, and the
answers, so that they can be browsed, refined (child queries) and retrieved (C-MOVE).

At most `QueryRetrieveSize` queries are kept; the least recently used one goes first (Orthanc's
SharedArchive). Queries are lost at restart and are not shared between processes.
"""

from __future__ import annotations

import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from pydicom.dataset import Dataset

from pharos.dicom.orthanc_json import TagFormat, main_tags_to_json
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.modalities import Modality
from pharos.services.remote_dicom import MovePlan, RemoteDicomService, move_content
from pharos.services.remote_find import (
    build_identifier,
    move_keys,
    parse_level,
    parse_query,
)
from pharos.services.remote_requests import (
    answer_format,
    json_object,
    optional_bool,
    optional_string,
    optional_timeout,
    parse_json,
    run_mode,
)


@dataclass(frozen=True, slots=True)
class RemoteQuery:
    id: str
    modality: Modality  # as it was when the query ran (retrieves go to the same peer)
    level: Level
    query: dict[int, str]  # the filter as given (before normalization)
    normalized: bool
    local_aet: str
    timeout: int | None  # the `Timeout` given, if any (used again by retrieves)
    answers: list[Dataset] = field(default_factory=list)

    def answer(self, index: int) -> Dataset:
        if not 0 <= index < len(self.answers):
            raise PharosError(
                ErrorCode.PARAMETER_OUT_OF_RANGE,
                f"Query {self.id} has {len(self.answers)} answers, there is no answer {index}",
            )
        return self.answers[index]


class QueryArchive:
    def __init__(self, size: int):
        self._size = max(1, size)
        self._queries: OrderedDict[str, RemoteQuery] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def new_id() -> str:
        return str(uuid.uuid4())

    def add(self, query: RemoteQuery) -> None:
        with self._lock:
            self._queries[query.id] = query
            while len(self._queries) > self._size:
                self._queries.popitem(last=False)

    def get(self, query_id: str) -> RemoteQuery:
        with self._lock:
            query = self._queries.get(query_id)
            if query is None:
                raise PharosError(ErrorCode.UNKNOWN_RESOURCE, f"Unknown query: {query_id}")
            self._queries.move_to_end(query_id)
            return query

    def ids(self) -> list[str]:
        with self._lock:
            return list(self._queries)

    def remove(self, query_id: str) -> None:
        with self._lock:
            if self._queries.pop(query_id, None) is None:
                raise PharosError(ErrorCode.UNKNOWN_RESOURCE, f"Unknown query: {query_id}")


class QueryService:
    """`/modalities/{id}/query` and everything under `/queries`."""

    def __init__(self, remote: RemoteDicomService, archive: QueryArchive):
        self._remote = remote
        self.archive = archive

    def query(self, name: str, raw: bytes) -> dict[str, str]:
        body = json_object(raw)
        if not isinstance(body.get("Level"), str):
            raise PharosError(ErrorCode.BAD_FILE_FORMAT, "The JSON body must contain field Level")
        level = parse_level(body["Level"])
        normalized = optional_bool(body, "Normalize", True)
        keys = parse_query(body.get("Query", {}))
        modality = self._remote.registry.require(name)
        local_aet = optional_string(body, "LocalAet")
        return self._run(
            RemoteQuery(
                id=QueryArchive.new_id(),
                modality=modality,
                level=level,
                query=keys,
                normalized=normalized,
                local_aet=local_aet or modality.local_aet or self._remote.settings.dicom_aet,
                timeout=optional_timeout(body),
            )
        )

    def child_query(self, query_id: str, index: int, level: Level, raw: bytes) -> dict[str, str]:
        """/queries/{id}/answers/{index}/query-studies|series|instances."""
        parent = self.archive.get(query_id)
        answer = parent.answer(index)
        if level <= parent.level:
            raise PharosError(
                ErrorCode.UNKNOWN_RESOURCE,
                f"A {parent.level.title.lower()}-level answer has no child "
                f"{level.title.lower()} to query",
            )
        body = json_object(raw)
        keys = parse_query(body.get("Query", {}))
        keys.update(move_keys(parent.level, answer))
        timeout = optional_timeout(body)
        return self._run(
            RemoteQuery(
                id=QueryArchive.new_id(),
                modality=parent.modality,
                level=level,
                query=keys,
                normalized=parent.normalized,
                local_aet=parent.local_aet,
                timeout=parent.timeout if timeout is None else timeout,
            )
        )

    def _run(self, query: RemoteQuery) -> dict[str, str]:
        remote = self._remote
        association = remote.association(query.modality, query.local_aet, query.timeout)
        identifier = build_identifier(
            query.level,
            query.query,
            normalized=query.normalized,
            manufacturer=query.modality.manufacturer,
            default_encoding=remote.default_encoding,
        )
        query.answers.extend(remote.find(association, query.level, identifier))
        self.archive.add(query)
        return {"ID": query.id, "Path": f"/queries/{query.id}"}

    # -- browsing ---------------------------------------------------------------------------

    def answers(self, query_id: str, expand: bool, fmt: TagFormat) -> list[Any]:
        query = self.archive.get(query_id)
        if not expand:
            return [str(i) for i in range(len(query.answers))]
        return [self._remote.answer_json(answer, fmt) for answer in query.answers]

    def answer_content(self, query_id: str, index: int, fmt: TagFormat) -> dict[str, Any]:
        return self._remote.answer_json(self.archive.get(query_id).answer(index), fmt)

    def answer_operations(self, query_id: str, index: int) -> list[str]:
        query = self.archive.get(query_id)
        query.answer(index)
        operations = ["content", "retrieve"]
        for level, route in (
            (Level.STUDY, "query-studies"),
            (Level.SERIES, "query-series"),
            (Level.INSTANCE, "query-instances"),
        ):
            if level > query.level:
                operations.append(route)
        return operations

    def query_json(self, query_id: str, fmt: TagFormat) -> dict[str, Any]:
        query = self.archive.get(query_id)
        return main_tags_to_json(dict(query.query), fmt)

    # -- C-MOVE of answers ------------------------------------------------------------------

    def retrieve_plan(self, query_id: str, index: int | None, raw: bytes) -> MovePlan:
        """/queries/{id}/retrieve (every answer) or /queries/{id}/answers/{index}/retrieve;
        the body is a target AE title, or an object with `TargetAet`, `Timeout`, ..."""
        query = self.archive.get(query_id)
        answers = query.answers if index is None else [query.answer(index)]
        body = _retrieve_options(raw)
        fmt = answer_format(body, TagFormat.SHORT)
        target = optional_string(body, "TargetAet") or self._remote.settings.dicom_aet
        timeout = optional_timeout(body)
        association = self._remote.association(
            query.modality, query.local_aet, query.timeout if timeout is None else timeout
        )
        return MovePlan(
            association=association,
            level=query.level,
            keys=[move_keys(query.level, answer) for answer in answers],
            target_aet=target,
            query=[self._remote.answer_json(answer, fmt) for answer in answers],
            run=run_mode(body),
        )

    def retrieve(self, query_id: str, index: int | None, raw: bytes) -> dict[str, Any]:
        """A retrieve run now whatever the body asks."""
        return self.run_retrieve(self.retrieve_plan(query_id, index, raw))

    def run_retrieve(self, plan: MovePlan) -> dict[str, Any]:
        """The C-MOVEs of a retrieve plan, run now: Orthanc's job content as the answer."""
        identifiers = [plan.identifier(i) for i in range(len(plan.keys))]
        if identifiers:
            self._remote.move(plan.association, plan.level, identifiers, plan.target_aet)
        return move_content(plan)


def _retrieve_options(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        return {}
    try:
        body = parse_json(raw)
    except PharosError:
        return {"TargetAet": raw.decode("utf-8", "replace").strip()}  # a bare AE title
    if isinstance(body, str):
        return {"TargetAet": body}
    if not isinstance(body, dict):
        raise PharosError(
            ErrorCode.BAD_FILE_FORMAT, "The body must be a target AE title or a JSON object"
        )
    return body
