"""The four levels of the DICOM hierarchy, with the names Orthanc's API uses for them."""

from __future__ import annotations

from enum import IntEnum


class Level(IntEnum):
    """A resource level; the values are Orthanc's `ResourceType` numbers."""

    PATIENT = 1
    STUDY = 2
    SERIES = 3
    INSTANCE = 4

    @property
    def title(self) -> str:
        """'Patient', 'Study', 'Series', 'Instance' (the `Type` field of Orthanc's JSON)."""
        return _TITLES[self]

    @property
    def plural(self) -> str:
        """The URI segment: 'patients', 'studies', 'series', 'instances'."""
        return _PLURALS[self]

    @property
    def parent(self) -> Level | None:
        return None if self is Level.PATIENT else Level(self - 1)

    @property
    def child(self) -> Level | None:
        return None if self is Level.INSTANCE else Level(self + 1)

    @property
    def children_key(self) -> str | None:
        """Key under which Orthanc lists the children: 'Studies', 'Series', 'Instances'."""
        child = self.child
        return None if child is None else _CHILDREN_KEYS[child]

    @property
    def parent_key(self) -> str | None:
        """Key under which Orthanc gives the parent: 'ParentPatient', ..."""
        parent = self.parent
        return None if parent is None else "Parent" + parent.title

    def path(self, public_id: str) -> str:
        return f"/{self.plural}/{public_id}"

    @classmethod
    def parse(cls, text: str) -> Level:
        """Accepts 'Patient', 'patients', 'STUDY', 'Series', 'instances', ... ."""
        try:
            return _BY_NAME[text.strip().lower()]
        except KeyError:
            raise ValueError(f"unknown resource level: {text!r}") from None


_TITLES = {
    Level.PATIENT: "Patient",
    Level.STUDY: "Study",
    Level.SERIES: "Series",
    Level.INSTANCE: "Instance",
}
_PLURALS = {
    Level.PATIENT: "patients",
    Level.STUDY: "studies",
    Level.SERIES: "series",
    Level.INSTANCE: "instances",
}
_CHILDREN_KEYS = {Level.STUDY: "Studies", Level.SERIES: "Series", Level.INSTANCE: "Instances"}
_BY_NAME = {
    **{level.title.lower(): level for level in Level},
    **{level.plural: level for level in Level},
    "image": Level.INSTANCE,
    "images": Level.INSTANCE,
}
