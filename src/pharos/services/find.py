"""Find resources: `/tools/find`, `/tools/lookup`, and Orthanc's JSON of resources with their
extra main tags, `RequestedTags` and tag formats (also for the listing and GET routes).

The index filters on everything it holds; what it cannot decide (computed tags, tags only in
the files) is decided here, on the index's candidates, in batches. Expanded answers take a
fixed number of queries whatever their count: resources, tags of the levels above, computed
tags, one instance per resource for the tags read from files.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from pharos.dicom.computed import COMPUTED_TAGS, SOP_CLASSES_IN_STUDY
from pharos.dicom.dictionary import format_tag, tag_name
from pharos.dicom.extra_tags import ExtraMainTags, tag_of_key
from pharos.dicom.maintags import MAIN_TAGS
from pharos.dicom.matching import Constraint
from pharos.dicom.orthanc_json import TagFormat, convert_format, dataset_to_json, main_tags_to_json
from pharos.index.base import Index, ResourceInfo, ResourceRef
from pharos.index.base_search import FindQuery
from pharos.model.levels import Level
from pharos.services.files import FileService
from pharos.services.find_request import FindRequest, Source, locate_tag, parse_find_request
from pharos.services.options import ServiceOptions
from pharos.services.reconstruct import Reconstructor
from pharos.services.resources import resource_json
from pharos.services.store import StoreService

STORAGE_ACCESS_MODES = ("Always", "Answers", "Never")
_BATCH = 100  # candidates decided together when files or computed tags must be read
_KEYWORDS = {t.keyword: t.tag for tags in MAIN_TAGS.values() for t in tags}


class FindService:
    def __init__(
        self,
        index: Index,
        files: FileService,
        options: ServiceOptions,
        store: StoreService | None = None,  # for ReconstructFiles
    ):
        self._index = index
        self._files = files
        self._options = options
        if options.storage_access_on_find not in STORAGE_ACCESS_MODES:
            raise ValueError(
                'StorageAccessOnFind must be "Always", "Answers" or "Never", not '
                f"{options.storage_access_on_find!r}"
            )
        self._reconstructor = Reconstructor(index, files, options, store)

    @property
    def _extra(self) -> ExtraMainTags:
        return self._options.extra_main_tags

    # -- /tools/find ------------------------------------------------------------------------

    def find(self, body: Any) -> list[Any]:
        options = self._options
        request = parse_find_request(
            body,
            self._extra,
            options.case_sensitive_pn,
            options.storage_access_on_find,
            options.user_metadata,
        )
        refs = self._matching(request)
        if not request.expand:
            return [ref.public_id for ref in refs]
        return self.expand(refs, request.fmt, request.requested)

    def matching(self, request: FindRequest) -> list[ResourceRef]:
        """The resources matching a request already checked (C-FIND builds its own)."""
        return self._matching(request)

    def _matching(self, request: FindRequest) -> list[ResourceRef]:
        if request.never:
            return []
        limit = self._limit(request)
        if not request.post_filters:
            return self._index.find(request.query, request.since, limit)
        matched: list[ResourceRef] = []
        skipped = 0
        for chunk in _chunks(self._index.find(request.query), _BATCH):
            values = self._post_values(request, chunk)
            for ref in chunk:
                found = values.get(ref.pk, {})
                if not all(
                    _matches(f.constraint, found.get(f.constraint.tag))
                    for f in request.post_filters
                ):
                    continue
                if skipped < request.since:
                    skipped += 1
                    continue
                matched.append(ref)
                if limit is not None and len(matched) >= limit:
                    return matched
        return matched

    def _limit(self, request: FindRequest) -> int | None:
        """`Limit`, capped by LimitFindResults / LimitFindInstances (Orthanc 1.12.5)."""
        options = self._options
        cap = (
            options.limit_find_instances
            if request.level is Level.INSTANCE
            else options.limit_find_results
        )
        limits = [n for n in (request.limit, cap) if n]
        return min(limits) if limits else None

    def _post_values(
        self, request: FindRequest, refs: list[ResourceRef]
    ) -> dict[int, dict[int, str | None]]:
        values: dict[int, dict[int, str | None]] = {ref.pk: {} for ref in refs}
        computed = frozenset(
            f.constraint.tag for f in request.post_filters if f.source is Source.COMPUTED
        )
        if computed:
            pks = [ref.pk for ref in refs]
            for pk, tags in self._index.computed_tags(request.level, pks, computed).items():
                values[pk].update(tags)
        from_files = {f.constraint.tag for f in request.post_filters if f.source is Source.FILE}
        if from_files:
            for pk, nodes in self._file_tags(refs, from_files, TagFormat.FULL, ()).items():
                for tag in from_files:
                    values[pk][tag] = _text_of(nodes.get(format_tag(tag)))
        return values

    # -- /tools/lookup ----------------------------------------------------------------------

    def lookup(self, value: str) -> list[dict[str, str]]:
        return [
            {"ID": ref.public_id, "Path": ref.level.path(ref.public_id), "Type": ref.level.title}
            for ref in self._index.lookup_identifier(value)
        ]

    # -- the JSON of resources --------------------------------------------------------------

    def expand(
        self,
        refs: Sequence[ResourceRef],
        fmt: TagFormat = TagFormat.SIMPLIFY,
        requested: Sequence[int] = (),
    ) -> list[dict[str, Any]]:
        return self.render(self._index.resources_info(list(refs)), fmt, requested)

    def list_expanded(
        self,
        level: Level,
        since: int,
        limit: int | None,
        fmt: TagFormat = TagFormat.SIMPLIFY,
        requested: Sequence[int] = (),
    ) -> list[dict[str, Any]]:
        return self.render(self._index.list_resources(level, since, limit), fmt, requested)

    def render(
        self,
        infos: Sequence[ResourceInfo],
        fmt: TagFormat = TagFormat.SIMPLIFY,
        requested: Sequence[int] = (),
    ) -> list[dict[str, Any]]:
        """`resource_json` of each resource, with the extra main tags of its level in
        "MainDicomTags" (and "PatientMainDicomTags"), the tags in `fmt`, and "RequestedTags"
        when tags are requested. All the resources are of one level."""
        results = [resource_json(info) for info in infos]
        if not infos:
            return results
        level = infos[0].ref.level
        extra = self._extra
        shows_extra = bool(extra.by_level.get(level)) or (
            level is Level.STUDY and bool(extra.by_level.get(Level.PATIENT))
        )
        indexed = {}
        if shows_extra or requested:
            indexed = self._index.tag_values(level, [info.ref.pk for info in infos])
        for info, result in zip(infos, results, strict=True):
            tags = indexed.get(info.ref.pk, {})
            own = _extra_values(tags.get(level, {}), extra.by_level.get(level, ()))
            result["MainDicomTags"] = _tags_json(result["MainDicomTags"], own, fmt)
            if "PatientMainDicomTags" in result:
                patient = _extra_values(
                    tags.get(Level.PATIENT, {}), extra.by_level.get(Level.PATIENT, ())
                )
                result["PatientMainDicomTags"] = _tags_json(
                    result["PatientMainDicomTags"], patient, fmt
                )
        if requested:
            answers = self._requested(infos, indexed, fmt, requested)
            for result, answer in zip(results, answers, strict=True):
                result["RequestedTags"] = answer
        return results

    def _requested(
        self,
        infos: Sequence[ResourceInfo],
        indexed: dict[int, dict[Level, dict[int, str]]],
        fmt: TagFormat,
        requested: Sequence[int],
    ) -> list[dict[str, Any]]:
        """Orthanc 1.11's RequestedTags: from the index (main tags of the level and above,
        their absent ones left out), computed, or read from one instance of each resource
        (left out with StorageAccessOnFind "Never"; null when the file lacks them)."""
        level = infos[0].ref.level
        pks = [info.ref.pk for info in infos]
        indexable = {
            t: lv for t in requested for lv in [self._indexed_level(t, level)] if lv is not None
        }
        computed = frozenset(t for t in requested if COMPUTED_TAGS.get(t) is level)
        from_files = [
            t
            for t in requested
            if t not in indexable and t not in COMPUTED_TAGS and t >> 16 != 0x0002
        ]
        counts = self._index.computed_tags(level, pks, computed) if computed else {}
        files: dict[int, dict[str, Any]] = {}
        if from_files and self._options.storage_access_on_find != "Never":
            refs = [info.ref for info in infos]
            files = self._file_tags(refs, set(from_files), fmt, from_files)
        answers = []
        for pk in pks:
            values: dict[int, str | None] = {}
            tags = indexed.get(pk, {})
            for tag in requested:
                if tag in indexable:
                    for found_at in (indexable[tag], Level.PATIENT):
                        if tag in tags.get(found_at, {}):
                            values[tag] = tags[found_at][tag]
                            break
                elif tag in counts.get(pk, {}):
                    values[tag] = counts[pk][tag]
            answer = main_tags_to_json(values, fmt)
            if pk in files:
                nodes = files[pk]
                for tag in from_files:
                    node = nodes.get(_key(tag, fmt))
                    if node is None:  # not in the file: Null (a Null node in full format)
                        answer.update(main_tags_to_json({tag: None}, fmt))
                    else:
                        answer[_key(tag, fmt)] = node
            if fmt is TagFormat.SIMPLIFY:
                answer = dict(sorted(answer.items()))
            answers.append(answer)
        return answers

    def _indexed_level(self, tag: int, level: Level) -> Level | None:
        place = locate_tag(tag, level, self._extra)
        return place if isinstance(place, Level) else None

    def _file_tags(
        self,
        refs: list[ResourceRef],
        tags: set[int],
        fmt: TagFormat,
        no_length_limit: Iterable[int],
    ) -> dict[int, dict[str, Any]]:
        """The tags of one instance of each resource, in `fmt` ({resource pk: json})."""
        found: dict[int, dict[str, Any]] = {}
        wanted = {format_tag(t) for t in tags}
        for pk, dataset in self._files.one_dataset_each(refs).items():
            full = dataset_to_json(
                dataset,
                TagFormat.FULL,
                ignore_length=no_length_limit,
                default_encoding=self._options.default_encoding,
            )
            picked = {key: node for key, node in full.items() if key in wanted}
            found[pk] = picked if fmt is TagFormat.FULL else convert_format(picked, fmt)
        return found

    # -- /reconstruct -----------------------------------------------------------------------

    def reconstruct(self, ref: ResourceRef, files: bool = False) -> None:
        self._reconstructor.resource(ref, files)

    def reconstruct_all(self, files: bool = False) -> None:
        for study in self._index.find(FindQuery(Level.STUDY)):
            self._reconstructor.resource(study, files)


def _matches(constraint: Constraint, value: str | None) -> bool:
    """A post filter on one value; SOPClassesInStudy holds one value per class, and matches
    when any of them does (PS3.4 C.2.2.2: multiple values), as ModalitiesInStudy does."""
    if constraint.tag == SOP_CLASSES_IN_STUDY and value:
        return any(constraint.matches(item) for item in value.split("\\"))
    return constraint.matches(value)


def _text_of(node: Any) -> str | None:
    """The value of a full-format node if it is text (Null, TooLong and sequences match
    nothing, as in Orthanc)."""
    if isinstance(node, dict) and node.get("Type") == "String":
        value = node.get("Value")
        return value if isinstance(value, str) else None
    return None


def _extra_values(values: dict[int, str], extra: Iterable[int]) -> dict[int, str]:
    return {tag: values[tag] for tag in extra if tag in values}


def _tags_json(simplified: dict[str, str], extra: dict[int, str], fmt: TagFormat) -> dict[str, Any]:
    """MainDicomTags (keyed by keyword, as `resource_json` gives them) plus extra main tags,
    in `fmt`."""
    if fmt is TagFormat.SIMPLIFY:
        if not extra:
            return simplified
        # Named as Orthanc names them (DCMTK's dictionary: 'RETIRED_' prefix included).
        return {**simplified, **{tag_name(tag): value for tag, value in extra.items()}}
    values: dict[int, str | None] = {
        _KEYWORDS.get(keyword) or tag_of_key(keyword): value
        for keyword, value in simplified.items()
    }
    values.update(extra)
    return main_tags_to_json(values, fmt)


def _key(tag: int, fmt: TagFormat) -> str:
    if fmt is TagFormat.SIMPLIFY:
        return tag_name(tag)
    return format_tag(tag)


def _chunks(items: list[ResourceRef], size: int) -> Iterator[list[ResourceRef]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
