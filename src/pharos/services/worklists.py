"""Modality worklists (C-FIND on the Modality Worklist Information Model), as Orthanc's sample
"Worklists" plugin and dcmtk's wlmscpfs serve them: the `.wl` files of a folder (DICOM data
sets, e.g. written by `dump2dcm`) are read at each query, so that another program may add and
remove worklists while the server runs.

Matching follows PS3.4 C.2.2.2 and K.6: the attribute matching of `/tools/find`
(`dicom/matching.py`: single values, lists, `*`/`?` wildcards, DA/TM/DT ranges), case-sensitive
except for PN unless `CaseSensitivePN`; a lone `*` in a VR without wildcards is universal
matching. A sequence of the query with one item (ScheduledProcedureStepSequence, typically)
matches when one item of the worklist's sequence matches all the keys of that item; a sequence
without items asks for the whole sequence. A worklist without a key that has a value to match
does not match.

Each answer holds the keys of the query only (and Specific Character Set): the worklist's value
when it has one, empty otherwise; a sequence with a query item holds the matching items, each
with the keys of the query item.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path

import pydicom
from pydicom.datadict import dictionary_has_tag
from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.sequence import Sequence

from pharos.dicom.charset import TextDecoder
from pharos.dicom.dictionary import SPECIFIC_CHARACTER_SET, dictionary_vr, format_tag, parse_tag
from pharos.dicom.matching import WILDCARD_VRS, Constraint, parse_constraints
from pharos.dicom.query import (
    QUERY_RETRIEVE_LEVEL,
    answer_element,
    charset_terms,
    element_text,
    element_vr,
    set_answer_charset,
)
from pharos.model.errors import ErrorCode, PharosError
from pharos.plugins.manager import PluginManager
from pharos.plugins.types import Refusal
from pharos.services.dicom_query import IdentifierError

log = logging.getLogger(__name__)

SCHEDULED_PROCEDURE_STEP_SEQUENCE = 0x00400100
SCHEDULED_STATION_AE_TITLE = 0x00400001
EXTENSION = ".wl"


@dataclass(frozen=True, slots=True)
class WorklistOptions:
    """The `Worklists` section (Orthanc's sample plugin)."""

    enabled: bool = False
    database: Path | None = None  # the folder of the .wl files
    filter_issuer_aet: bool = False  # ScheduledStationAETitle must be the calling AET
    limit_answers: int = 0  # 0: no limit

    @classmethod
    def from_section(cls, section: Mapping[str, object]) -> WorklistOptions:
        """Raises ValueError for settings that cannot be used."""
        enabled = bool(section.get("Enable", False))
        database = str(section.get("Database", "") or "")
        limit = section.get("LimitAnswers", 0)
        if not isinstance(limit, int) or limit < 0:
            raise ValueError(f"Worklists.LimitAnswers must be 0 or more, not {limit!r}")
        if enabled and not database:
            raise ValueError("Worklists.Database must name the folder of the worklists")
        return cls(
            enabled=enabled,
            database=Path(database) if database else None,
            filter_issuer_aet=bool(section.get("FilterIssuerAet", False)),
            limit_answers=limit,
        )


@dataclass(slots=True)
class _Key:
    """A key of the query: `text` to match (None: returned, never matched)."""

    tag: int
    vr: str
    text: str | None


@dataclass(slots=True)
class WorklistQuery:
    """The keys of a worklist query; a sequence maps to its query item (None: no item)."""

    keys: dict[int, _Key] = field(default_factory=dict)
    sequences: dict[int, WorklistQuery | None] = field(default_factory=dict)

    @classmethod
    def parse(cls, dataset: Dataset, decoder: TextDecoder, top: bool = True) -> WorklistQuery:
        query = cls()
        for tag in sorted(int(t) for t in dataset.keys()):  # noqa: SIM118
            element = dataset.get_item(tag)
            if element is None or tag & 0xFFFF == 0 or tag == SPECIFIC_CHARACTER_SET:
                continue
            if top and (tag >> 16 < 0x0008 or tag == QUERY_RETRIEVE_LEVEL):
                continue
            vr = element_vr(tag, element)
            if vr == "SQ":
                items = dataset[tag].value
                if len(items) > 1:
                    raise IdentifierError(
                        f"The sequence {format_tag(tag)} of a worklist query has "
                        f"{len(items)} items (one at most)"
                    )
                query.sequences[tag] = (
                    cls.parse(items[0], decoder, top=False) if len(items) == 1 else None
                )
            else:
                query.keys[tag] = _Key(tag, vr, element_text(tag, element, vr, decoder))
        return query

    def flat(self) -> dict[str, str]:
        """The keys with a text value, "gggg,eeee" → value (what plugins' filters see)."""
        return {format_tag(k.tag): k.text for k in self.keys.values() if k.text is not None}

    def replaced(self, flat: Mapping[str, str]) -> WorklistQuery:
        """This query with its text keys replaced by `flat` (sequences kept as they are)."""
        keys = {tag: key for tag, key in self.keys.items() if key.text is None}
        for text, value in flat.items():
            tag = parse_tag(text)
            vr = self.keys[tag].vr if tag in self.keys else dictionary_vr(tag, None)
            if vr != "SQ":
                keys[tag] = _Key(tag, vr, value)
        return WorklistQuery(keys, dict(self.sequences))

    def require_station(self, aet: str) -> None:
        """FilterIssuerAet, as Orthanc's plugin: unless the query names a Scheduled Station AE
        Title, the one of the Scheduled Procedure Step must be the calling AET."""
        step = self.sequences.get(SCHEDULED_PROCEDURE_STEP_SEQUENCE)
        if step is None:
            step = self.sequences[SCHEDULED_PROCEDURE_STEP_SEQUENCE] = WorklistQuery()
        current = step.keys.get(SCHEDULED_STATION_AE_TITLE)
        if current is None or current.text in (None, "", "*"):
            step.keys[SCHEDULED_STATION_AE_TITLE] = _Key(SCHEDULED_STATION_AE_TITLE, "AE", aet)


@dataclass(frozen=True, slots=True)
class _Matcher:
    """A query compiled: the constraints of each key, the matcher of each sequence."""

    query: WorklistQuery
    constraints: tuple[tuple[int, tuple[Constraint, ...]], ...]
    children: Mapping[int, _Matcher | None]

    @classmethod
    def compile(cls, query: WorklistQuery, case_sensitive_pn: bool) -> _Matcher:
        constraints = []
        for key in query.keys.values():
            if not key.text or (key.text == "*" and key.vr not in WILDCARD_VRS):
                continue  # universal matching
            sensitive = case_sensitive_pn if key.vr == "PN" else True
            try:
                parsed = parse_constraints(key.tag, key.vr, key.text, sensitive)
            except PharosError as exc:
                raise IdentifierError(exc.details or str(exc)) from None
            constraints.append((key.tag, tuple(parsed)))
        children = {
            tag: None if item is None else cls.compile(item, case_sensitive_pn)
            for tag, item in query.sequences.items()
        }
        return cls(query, tuple(constraints), children)

    def matches(self, dataset: Dataset, decoder: TextDecoder) -> bool:
        for tag, constraints in self.constraints:
            text = _text(dataset, tag, decoder)
            if text is None:
                return False
            values = [text, *text.split("\\")] if "\\" in text else [text]
            if not any(all(c.matches(v) for c in constraints) for v in values):
                return False
        for tag, child in self.children.items():
            if child is None or (not child.constraints and not child.children):
                continue  # the whole sequence is asked for, or any item will do
            if not any(child.matches(item, decoder) for item in _items(dataset, tag)):
                return False
        return True

    def extract(self, dataset: Dataset, decoder: TextDecoder) -> Dataset:
        answer = Dataset()
        for tag, key in self.query.keys.items():
            element = dataset.get_item(tag)
            if element is not None and element_vr(tag, element) != "SQ":
                answer.add(_converted(dataset[tag]))
            else:
                answer.add(answer_element(tag, key.vr, None))
        for tag, child in self.children.items():
            items = _items(dataset, tag)
            if child is None:
                answer.add(DataElement(tag, "SQ", Sequence([_full(i) for i in items])))
            else:
                matching = [child.extract(i, decoder) for i in items if child.matches(i, decoder)]
                answer.add(DataElement(tag, "SQ", Sequence(matching)))
        return answer


@dataclass(frozen=True, slots=True)
class WorklistAnswers:
    answers: list[Dataset]
    complete: bool  # False when LimitAnswers cut them


class WorklistService:
    def __init__(
        self,
        options: WorklistOptions,
        default_encoding: str = "Latin1",
        case_sensitive_pn: bool = False,
        plugins: PluginManager | None = None,
    ):
        self.options = options
        self._encoding = default_encoding
        self._case_sensitive_pn = case_sensitive_pn
        self._plugins = plugins or PluginManager()

    @property
    def enabled(self) -> bool:
        return self.options.enabled

    def parse(self, dataset: Dataset) -> WorklistQuery:
        decoder = TextDecoder.for_terms(charset_terms(dataset), self._encoding)
        return WorklistQuery.parse(dataset, decoder)

    def filtered(self, query: WorklistQuery, origin: Mapping[str, str]) -> WorklistQuery:
        """The query as the plugins' worklist filters rewrite it; a refusal is a
        FORBIDDEN_ACCESS error."""
        if not self._plugins.has("pharos_incoming_worklist_filter"):
            return query
        answer = self._plugins.filter_worklist(query.flat(), origin)
        if isinstance(answer, Refusal):
            raise PharosError(ErrorCode.FORBIDDEN_ACCESS, answer.message("Worklist C-FIND"))
        return query.replaced(answer)

    def find(self, query: WorklistQuery, calling_aet: str) -> WorklistAnswers:
        """The worklists matching `query`, read from the folder now."""
        options = self.options
        if options.database is None:
            raise PharosError(ErrorCode.BAD_SEQUENCE_OF_CALLS, "Worklists are not enabled")
        if options.filter_issuer_aet:
            query = deepcopy(query)
            query.require_station(calling_aet)
        matcher = _Matcher.compile(query, self._case_sensitive_pn)
        answers: list[Dataset] = []
        for path in self._files(options.database):
            try:
                dataset = _read(path)
                decoder = TextDecoder.for_terms(charset_terms(dataset), self._encoding)
                if not matcher.matches(dataset, decoder):
                    continue
                answer = matcher.extract(dataset, decoder)
                set_answer_charset(answer, self._encoding)
            except Exception as exc:
                log.warning("Worklist file %s skipped, it cannot be read: %s", path, exc)
                continue
            if options.limit_answers and len(answers) >= options.limit_answers:
                return WorklistAnswers(answers, complete=False)
            answers.append(answer)
        return WorklistAnswers(answers, complete=True)

    @staticmethod
    def _files(folder: Path) -> list[Path]:
        try:
            entries = sorted(folder.iterdir())
        except OSError as exc:
            raise PharosError(
                ErrorCode.INEXISTENT_FILE,
                f"Cannot read the worklists folder {folder}: {exc.strerror or exc}",
            ) from None
        return [p for p in entries if p.suffix.lower() == EXTENSION and p.is_file()]


def _read(path: Path) -> Dataset:
    """A worklist file: a DICOM file, or a bare data set (without preamble nor meta header)
    whose tags are all known, so that some other file is not taken for one."""
    try:
        return pydicom.dcmread(path)
    except InvalidDicomError:
        dataset = pydicom.dcmread(path, force=True)
    tags = [int(tag) for tag in dataset.keys()]  # noqa: SIM118
    if not tags or not all(tag >> 16 & 1 or dictionary_has_tag(tag) for tag in tags):
        raise ValueError("not a DICOM file")
    return dataset


def _text(dataset: Dataset, tag: int, decoder: TextDecoder) -> str | None:
    element = dataset.get_item(tag)
    if element is None:
        return None
    vr = element_vr(tag, element)
    if vr == "SQ":
        return None
    return element_text(tag, element, vr, decoder)


def _items(dataset: Dataset, tag: int) -> list[Dataset]:
    element = dataset.get_item(tag)
    if element is None or element_vr(tag, element) != "SQ":
        return []
    return list(dataset[tag].value or [])


def _converted(element: DataElement | RawDataElement) -> DataElement:
    """A copy of an element read from a file, its value decoded."""
    assert isinstance(element, DataElement)
    return DataElement(element.tag, element.VR, deepcopy(element.value))


def _full(item: Dataset) -> Dataset:
    """A copy of a sequence item, every value decoded (the answer is encoded anew)."""
    copy = Dataset()
    for element in item:  # iterating decodes each raw element
        if element.VR == "SQ":
            copy.add(DataElement(element.tag, "SQ", Sequence([_full(i) for i in element.value])))
        else:
            copy.add(_converted(element))
    return copy
