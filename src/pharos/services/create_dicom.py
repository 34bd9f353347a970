"""`POST /tools/create-dicom`: build a new instance (or a series of them) and store it through
the same store path as uploads, with Orthanc's semantics for parents, dates and identifiers."""

from __future__ import annotations

import logging
from typing import Any

from pydicom.dataset import Dataset

from pharos.dicom import create as build
from pharos.dicom.maintags import MAIN_TAGS
from pharos.index.base import Reception, ResourceRef
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.deletion import DeletionService
from pharos.services.files import FileService
from pharos.services.options import ServiceOptions
from pharos.services.resources import ResourceService
from pharos.services.store import StoreResult, StoreService

log = logging.getLogger(__name__)


class CreateDicomService:
    def __init__(
        self,
        store: StoreService,
        resources: ResourceService,
        files: FileService,
        deletion: DeletionService,
        options: ServiceOptions,
    ):
        self._store = store
        self._resources = resources
        self._files = files
        self._deletion = deletion
        self._options = options

    def create(self, body: Any, reception: Reception) -> dict[str, Any]:
        """Orthanc's answer: that of an upload for one instance; `ID`, `Path` and `Status` of
        the series when `Content` is an array."""
        request = build.parse_request(body)
        base, parent_level = self._base(request)
        build.set_dates(
            base,
            build.utc_now(),
            new_series=parent_level in (None, Level.PATIENT, Level.STUDY),
            new_study=parent_level in (None, Level.PATIENT),
        )
        build.inject_tags(
            base, request.tags, request.interpret_binary, request.private_creator, request.force
        )
        if not isinstance(request.content, list):
            if request.content is not None:
                build.embed(base, request.content)
            return self._store_one(base, reception).to_json()
        return self._create_series(base, request, reception)

    def _base(self, request: build.CreateRequest) -> tuple[Dataset, Level | None]:
        """The new dataset before the request's tags: identifiers, character set, and the
        parent's module tags copied from one of its instances (as Orthanc copies them)."""
        charset = self._options.default_encoding
        term = build.character_set(charset)
        given = request.tags.get("SpecificCharacterSet", request.tags.get("0008,0005"))
        if given is not None:
            term = build.check_character_set(given)
        if request.parent is None:
            return build.new_dataset(term), None
        parent = self._parent(request.parent)
        instances = self._resources.descendants(parent, Level.INSTANCE)
        if not instances:
            raise PharosError(ErrorCode.UNKNOWN_RESOURCE, f"Parent {request.parent} is empty")
        sibling = self._files.read_dataset(instances[0])
        if given is None and "SpecificCharacterSet" in sibling:
            term = _single_term(sibling.SpecificCharacterSet, term)
        ds = build.new_dataset(term)
        for level in Level:
            if level > parent.level:
                break
            for main in MAIN_TAGS[level]:
                element = sibling.get(main.tag)
                if element is not None and element.VR != "SQ":
                    ds[main.tag] = element
        return ds, parent.level

    def _parent(self, public_id: str) -> ResourceRef:
        for level in (Level.SERIES, Level.STUDY, Level.PATIENT):
            try:
                return self._resources.resolve(level, public_id)
            except PharosError as exc:
                if exc.code is not ErrorCode.UNKNOWN_RESOURCE:
                    raise
        try:
            self._resources.resolve(Level.INSTANCE, public_id)
        except PharosError:
            raise PharosError(
                ErrorCode.UNKNOWN_RESOURCE,
                f"The parent {public_id!r} is not a patient, study or series of this server",
            ) from None
        raise build.bad_request(
            f"The parent {public_id!r} is an instance: it must be a patient, study or series"
        )

    def _store_one(self, ds: Dataset, reception: Reception) -> StoreResult:
        return self._store.store(build.to_file(ds), reception)

    def _create_series(
        self, base: Dataset, request: build.CreateRequest, reception: Reception
    ) -> dict[str, Any]:
        """One instance per item, numbered from 1. Every item is built (and checked) before
        anything is stored; a failure while storing removes the instances stored so far
        (Orthanc removes the whole series, even one that existed before as the parent)."""
        assert isinstance(request.content, list)
        base.ImagesInAcquisition = len(request.content)
        base.NumberOfTemporalPositions = 1
        files = []
        for number, item in enumerate(request.content, start=1):
            ds = build.new_instance_of(base)
            build.inject_tags(
                ds, item.tags, request.interpret_binary, request.private_creator, request.force
            )
            build.embed(ds, item.content)
            ds.InstanceNumber = number
            ds.ImageIndex = number
            files.append(build.to_file(ds))
        stored: list[StoreResult] = []
        try:
            for data in files:
                stored.append(self._store.store(data, reception))
        except BaseException:
            self._remove(stored)
            raise
        series = stored[0].ids.series
        return {"ID": series, "Path": Level.SERIES.path(series), "Status": "Success"}

    def _remove(self, stored: list[StoreResult]) -> None:
        for result in stored:
            try:
                self._deletion.delete(self._resources.resolve(Level.INSTANCE, result.ids.instance))
            except Exception:
                log.exception("Could not remove the created instance %s", result.ids.instance)


def _single_term(value: Any, fallback: str) -> str:
    """The parent's character set when it is one Orthanc knows, else the default (Orthanc
    logs a warning and does the same)."""
    term = value[0] if isinstance(value, list | tuple) and len(value) == 1 else value
    try:
        return build.check_character_set(term)
    except PharosError:
        return fallback
