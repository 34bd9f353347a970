"""Orthanc 1.11's `ExtraMainDicomTags`: more tags indexed per level, searched and shown like
the main DICOM tags.

In the tags of a parsed instance (`ParsedInstance.tags[level]`), an extra tag is keyed like a
main tag, by its keyword, or by 'gggg,eeee' when the dictionary has no keyword for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from typing import Any

from pydicom.datadict import keyword_for_tag

from pharos.dicom.dictionary import dictionary_vr, format_tag, parse_tag
from pharos.dicom.maintags import ALL_STORED_TAGS, MAIN_TAGS
from pharos.model.errors import PharosError
from pharos.model.levels import Level

# The tags each level's table holds in columns (studies also hold the patient's).
COLUMN_TAGS: dict[Level, frozenset[int]] = {
    Level.PATIENT: frozenset(t.tag for t in MAIN_TAGS[Level.PATIENT]),
    Level.STUDY: frozenset(t.tag for t in MAIN_TAGS[Level.STUDY] + MAIN_TAGS[Level.PATIENT]),
    Level.SERIES: frozenset(t.tag for t in MAIN_TAGS[Level.SERIES]),
    Level.INSTANCE: frozenset(t.tag for t in MAIN_TAGS[Level.INSTANCE]),
}


@dataclass(frozen=True)
class ExtraMainTags:
    """The configured extra tags of each level (main tags of the same level left out)."""

    by_level: Mapping[Level, tuple[int, ...]] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return any(self.by_level.values())

    @cached_property
    def wanted(self) -> frozenset[int]:
        """Every tag the store path reads from a file (main, extra and helpers)."""
        return ALL_STORED_TAGS | frozenset(t for tags in self.by_level.values() for t in tags)

    def level_of(self, tag: int) -> Level | None:
        for level, tags in self.by_level.items():
            if tag in tags:
                return level
        return None

    def to_json(self) -> dict[str, list[str]]:
        return {level.title: [tag_key(t) for t in self.by_level.get(level, ())] for level in Level}


NO_EXTRA_TAGS = ExtraMainTags()


@lru_cache(maxsize=4096)
def tag_key(tag: int) -> str:
    """The key of a tag in `ParsedInstance.tags` and in simplified JSON."""
    keyword = keyword_for_tag(tag) if tag & 0x10000 == 0 else ""
    return keyword or format_tag(tag)


@lru_cache(maxsize=4096)
def tag_of_key(key: str) -> int:
    return parse_tag(key)


def parse_extra_main_tags(section: Mapping[str, Any]) -> tuple[ExtraMainTags, list[str]]:
    """The `ExtraMainDicomTags` section: {"Patient": [...], "Study": [...], ...} of names or
    'gggg,eeee'. Returns the tags and warnings; raises ValueError on what cannot be used."""
    by_level: dict[Level, tuple[int, ...]] = {}
    warnings: list[str] = []
    titles = {level.title: level for level in Level}
    for key, names in section.items():
        level = titles.get(key)
        if level is None:
            raise ValueError(
                f'ExtraMainDicomTags: unknown level "{key}" (expected one of {", ".join(titles)})'
            )
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ValueError(f'ExtraMainDicomTags: "{key}" must be an array of tag names')
        tags: list[int] = []
        for name in names:
            try:
                tag = parse_tag(name)
            except PharosError:
                raise ValueError(f'ExtraMainDicomTags: unknown DICOM tag "{name}"') from None
            if tag in COLUMN_TAGS[level]:
                continue  # already a main tag of the level
            if dictionary_vr(tag, None) == "SQ":
                warnings.append(
                    f"ExtraMainDicomTags: sequence {name} is not supported by Pharos (ignored)"
                )
                continue
            if tag not in tags:
                tags.append(tag)
        by_level[level] = tuple(tags)
    return ExtraMainTags(by_level), warnings
