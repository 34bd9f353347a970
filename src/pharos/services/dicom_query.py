"""C-FIND at the patient, study, series and instance levels (Patient Root and Study Root).

Matching is `/tools/find`'s: the keys become the body of a find request, checked and placed
by `parse_find_request` and run by `FindService`, so that the index, the computed tags and the
files decide exactly as they do for the REST API. Only the DICOM rules differ, as in Orthanc's
C-FIND SCP: matching is case-sensitive except for PN (`CaseSensitivePN`), and a lone `*` in a
VR without wildcards is universal matching (PS3.4 C.2.2.2.4) instead of an error.

Each answer holds the keys of the request, with Query/Retrieve Level and Retrieve AE Title:
main tags from the index (those of the levels above too), the computed tags of the level
(NumberOfStudyRelatedInstances, ModalitiesInStudy, ...), anything else (sequences included)
from one instance's file unless `StorageAccessOnFind` is "Never"; empty when absent.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from enum import Enum
from functools import reduce

from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset

from pharos.dicom.charset import TextDecoder
from pharos.dicom.computed import COMPUTED_TAGS
from pharos.dicom.dictionary import dictionary_vr, format_tag, parse_tag
from pharos.dicom.matching import WILDCARD_VRS
from pharos.dicom.query import (
    QUERY_RETRIEVE_LEVEL,
    RETRIEVE_AE_TITLE,
    Identifier,
    QueryKey,
    answer_element,
    charset_terms,
    element_text,
    element_vr,
    parse_identifier,
    set_answer_charset,
)
from pharos.index.base import Index, ResourceRef
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.plugins.manager import PluginManager
from pharos.plugins.types import Refusal
from pharos.services.files import FileService
from pharos.services.find import FindService
from pharos.services.find_request import FindRequest, locate_tag, parse_find_request
from pharos.services.options import ServiceOptions

_BATCH = 100  # answers rendered together (one query per kind of value)


class IdentifierError(PharosError):
    """An identifier that does not say what to look for (PS3.4: "Identifier does not match
    SOP Class"), e.g. without a valid Query/Retrieve Level."""

    def __init__(self, details: str):
        super().__init__(ErrorCode.BAD_REQUEST, details)


def query_level(identifier: Identifier, service: str) -> Level:
    """The Query/Retrieve Level of an identifier: PATIENT, STUDY, SERIES or IMAGE."""
    if not identifier.level:
        raise IdentifierError(f"{service} request without QueryRetrieveLevel (0008,0052)")
    try:
        return Level.parse(identifier.level)
    except ValueError:
        raise IdentifierError(
            f'{service} request with an unknown QueryRetrieveLevel "{identifier.level}"'
        ) from None


class _Source(Enum):
    COMPUTED = "computed"
    FILE = "file"
    NONE = "none"


@dataclass(frozen=True)
class FindAnswers:
    count: int
    complete: bool  # False when LimitFindResults / LimitFindInstances cut the answers
    answers: Iterator[Dataset]  # rendered as they are consumed


class DicomQueryService:
    def __init__(
        self,
        index: Index,
        files: FileService,
        find: FindService,
        options: ServiceOptions,
        retrieve_aet: str,
        plugins: PluginManager | None = None,
    ):
        self._index = index
        self._files = files
        self._find = find
        self._options = options
        self._aet = retrieve_aet
        self._plugins = plugins or PluginManager()

    def identifier(self, dataset: Dataset) -> Identifier:
        """The keys of a C-FIND, C-MOVE or C-GET request."""
        return parse_identifier(dataset, self._options.default_encoding)

    def filtered(self, identifier: Identifier, origin: Mapping[str, str]) -> Identifier:
        """A C-FIND identifier as the plugins' filters rewrite it (keys "gggg,eeee", as Lua's
        IncomingFindRequestFilter sees them; sequences are kept as received). A refusal is
        a FORBIDDEN_ACCESS error."""
        if not self._plugins.has("pharos_incoming_find_filter"):
            return identifier
        received = {key.tag: key for key in identifier.keys}
        query = {format_tag(k.tag): k.value for k in identifier.keys if k.value is not None}
        if identifier.level is not None:
            query[format_tag(QUERY_RETRIEVE_LEVEL)] = identifier.level
        answer = self._plugins.filter_find(query, origin)
        if isinstance(answer, Refusal):
            raise PharosError(ErrorCode.FORBIDDEN_ACCESS, answer.message("C-FIND"))
        level = None
        keys = {tag: key for tag, key in received.items() if key.value is None}
        for text, value in answer.items():
            tag = parse_tag(text)
            if tag == QUERY_RETRIEVE_LEVEL:
                level = value.strip()
                continue
            vr = received[tag].vr if tag in received else dictionary_vr(tag, None)
            if vr != "SQ":
                keys[tag] = QueryKey(tag, vr, value)
        return Identifier(level, tuple(keys[tag] for tag in sorted(keys)))

    def find(self, identifier: Identifier) -> FindAnswers:
        level = query_level(identifier, "C-FIND")
        request = self._request(level, identifier)
        refs = self._find.matching(request)
        options = self._options
        instances = level is Level.INSTANCE
        cap = options.limit_find_instances if instances else options.limit_find_results
        complete = True
        if cap and len(refs) >= cap:
            complete = not self._find.matching(replace(request, since=cap, limit=1))
        return FindAnswers(len(refs), complete, self._answers(level, identifier, refs))

    # -- matching ---------------------------------------------------------------------------

    def _request(self, level: Level, identifier: Identifier) -> FindRequest:
        options = self._options
        exact: dict[str, str] = {}
        names: dict[str, str] = {}  # PN: case-sensitive only with CaseSensitivePN
        for key in identifier.keys:
            if not key.value:
                continue  # universal matching; sequences and binary values are not matched
            vr = dictionary_vr(key.tag, None)
            if key.value == "*" and vr not in WILDCARD_VRS:
                continue
            (names if vr == "PN" else exact)[format_tag(key.tag)] = key.value
        queries = [(exact, True), (names, options.case_sensitive_pn)]
        requests = [
            parse_find_request(
                {"Level": level.title, "Query": query, "CaseSensitive": sensitive},
                options.extra_main_tags,
                options.case_sensitive_pn,
                options.storage_access_on_find,
                options.user_metadata,
            )
            for query, sensitive in queries
            if query or (query is exact and not names)
        ]
        return reduce(_merge, requests)

    # -- answers ----------------------------------------------------------------------------

    def _answers(
        self, level: Level, identifier: Identifier, refs: list[ResourceRef]
    ) -> Iterator[Dataset]:
        keys = [key for key in identifier.keys if key.tag != RETRIEVE_AE_TITLE]
        sources = {key.tag: self._source(key, level) for key in keys}
        computed = frozenset(t for t, s in sources.items() if s is _Source.COMPUTED)
        indexed = any(isinstance(s, Level) for s in sources.values())
        from_files = any(s is _Source.FILE for s in sources.values())
        for start in range(0, len(refs), _BATCH):
            chunk = refs[start : start + _BATCH]
            pks = [ref.pk for ref in chunk]
            tags = self._index.tag_values(level, pks) if indexed else {}
            counts = self._index.computed_tags(level, pks, computed) if computed else {}
            files = self._file_datasets(chunk) if from_files else {}
            for ref in chunk:
                answer = Dataset()
                answer.add(answer_element(QUERY_RETRIEVE_LEVEL, "CS", identifier.level))
                answer.add(answer_element(RETRIEVE_AE_TITLE, "AE", self._aet))
                own = tags.get(ref.pk, {})
                for key in keys:
                    source = sources[key.tag]
                    element = None
                    if source is _Source.FILE and ref.pk in files:
                        element = _file_element(*files[ref.pk], key)
                    if element is None:
                        value = None
                        if isinstance(source, Level):
                            value = own.get(source, {}).get(key.tag)
                            if value is None:
                                value = own.get(Level.PATIENT, {}).get(key.tag)
                        elif source is _Source.COMPUTED:
                            value = counts.get(ref.pk, {}).get(key.tag)
                        element = answer_element(key.tag, _answer_vr(key), value)
                    answer.add(element)
                set_answer_charset(answer, self._options.default_encoding)
                yield answer

    def _source(self, key: QueryKey, level: Level) -> Level | _Source:
        """Where the value of a key comes from for resources of `level`."""
        never = self._options.storage_access_on_find == "Never"
        if key.is_sequence:
            return _Source.NONE if never else _Source.FILE
        place = locate_tag(key.tag, level, self._options.extra_main_tags)
        if isinstance(place, Level):
            return place
        if key.tag in COMPUTED_TAGS:
            return _Source.COMPUTED if COMPUTED_TAGS[key.tag] is level else _Source.NONE
        return _Source.NONE if never else _Source.FILE

    def _file_datasets(self, refs: list[ResourceRef]) -> dict[int, tuple[Dataset, TextDecoder]]:
        """The header of one instance of each resource, with the decoder of its text."""
        found: dict[int, tuple[Dataset, TextDecoder]] = {}
        for pk, dataset in self._files.one_dataset_each(refs).items():
            terms = charset_terms(dataset)
            found[pk] = (
                dataset,
                TextDecoder.for_terms(terms, self._options.default_encoding),
            )
        return found


def _merge(first: FindRequest, second: FindRequest) -> FindRequest:
    """One request with the constraints of both (they differ only by their constraints)."""
    query = replace(
        first.query,
        filters=first.query.filters + second.query.filters,
        modalities=first.query.modalities + second.query.modalities,
    )
    return replace(
        first,
        query=query,
        post_filters=first.post_filters + second.post_filters,
        never=first.never or second.never,
    )


def _answer_vr(key: QueryKey) -> str:
    if key.vr != "UN":
        return key.vr
    return dictionary_vr(key.tag, None)


def _file_element(dataset: Dataset, decoder: TextDecoder, key: QueryKey) -> DataElement | None:
    """The element `key` of a stored file as an answer holds it (None if the file lacks it)."""
    element = dataset.get_item(key.tag)
    if element is None:
        return None
    vr = element_vr(key.tag, element)
    if vr == "SQ":
        return dataset[key.tag]  # the items as pydicom reads them
    if key.is_sequence:
        return None
    return answer_element(key.tag, vr, element_text(key.tag, element, vr, decoder))
