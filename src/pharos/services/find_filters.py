"""The plugins' filter of the C-FIND requests Pharos sends (Lua's OutgoingFindRequestFilter)."""

from __future__ import annotations

import logging

from pydicom.dataset import Dataset

from pharos.dicom.dictionary import format_tag, parse_tag
from pharos.dicom.query import QUERY_RETRIEVE_LEVEL, parse_identifier, set_answer_charset
from pharos.model.errors import PharosError
from pharos.plugins.manager import PluginManager
from pharos.services.remote_find import dataset_of

log = logging.getLogger(__name__)

SPECIFIC_CHARACTER_SET = 0x00080005


def filter_outgoing_find(
    plugins: PluginManager, identifier: Dataset, modality: str, default_encoding: str
) -> Dataset:
    """`identifier` as the filters rewrite it: text keys as "gggg,eeee" (with the
    Query/Retrieve Level), sequences kept as they are. Unchanged without filters."""
    if not plugins.has("pharos_outgoing_find_filter"):
        return identifier
    parsed = parse_identifier(identifier, default_encoding)
    query = {format_tag(key.tag): key.value for key in parsed.keys if key.value is not None}
    if parsed.level is not None:
        query[format_tag(QUERY_RETRIEVE_LEVEL)] = parsed.level
    answer = plugins.filter_outgoing_find(query, modality)
    if answer == query:
        return identifier
    values: dict[int, str] = {}
    for text, value in answer.items():
        try:
            values[parse_tag(text)] = value
        except PharosError:
            log.warning("Outgoing C-FIND filter: unknown tag %r left out", text)
    level = values.pop(QUERY_RETRIEVE_LEVEL, None)
    values.pop(SPECIFIC_CHARACTER_SET, None)
    rewritten = dataset_of(values)
    for key in parsed.keys:
        if key.value is None:  # sequences and binary keys: as they were
            rewritten.add(identifier[key.tag])
    set_answer_charset(rewritten, default_encoding)
    if level is not None:
        rewritten.QueryRetrieveLevel = level
    return rewritten
