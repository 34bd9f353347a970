"""Which files an archive holds and under which names (Orthanc's `ArchiveJob` index).

The resources asked for are merged into one patient/study/series/instance tree (asking for a
study and one of its series gives the study once), expanded down to the instances, then
walked in Orthanc's order: patients, studies and series by public ID, instances in the order
they were stored.

- archive: `PatientID PatientName/AccessionNumber StudyDescription/Modality SeriesDescription/
  MR000000.dcm` (the two first letters of the modality, then a counter per series), every
  name reduced to letters, digits, `.`, `_` and single spaces (`^` is a space), "Unknown
  Study" and the like when nothing is left, and `-2`, `-3`... appended to a name already used
  in the same folder;
- media: `IMAGES/IM0`, `IMAGES/IM1`... (DICOM media file IDs: at most 8 characters each).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pharos.index.base import DICOM_CONTENT_TYPE, Attachment, Index, ResourceRef
from pharos.model.errors import unknown_resource
from pharos.model.ids import is_public_id
from pharos.model.levels import Level

MEDIA_FOLDER = "IMAGES"

# What names the folder of each level (Orthanc 1.10).
_FOLDER_TAGS = {
    Level.PATIENT: ("PatientID", "PatientName"),
    Level.STUDY: ("AccessionNumber", "StudyDescription"),
    Level.SERIES: ("Modality", "SeriesDescription"),
}


@dataclass(frozen=True, slots=True)
class ArchiveEntry:
    """One file of the archive: its path in the zip and the stored instance it holds."""

    path: str
    instance: ResourceRef
    attachment: Attachment


def zip_name(text: str) -> str:
    """A file or folder name safe in any zip reader: ASCII letters, digits, `.` and `_`,
    runs of white space (and `^`, the DICOM name separator) made one space, trimmed. Slashes,
    backslashes and `..` components therefore never reach the archive."""
    kept: list[str] = []
    space = False
    for char in text.replace("^", " "):
        if not char.isascii():
            continue
        if char.isspace():
            if not space:
                kept.append(" ")
                space = True
        elif char.isalnum() or char in "._":
            kept.append(char)
            space = False
    name = "".join(kept).strip()
    return "" if set(name) <= {"."} else name  # "." and ".." are not names


class _Folder:
    """The names used so far in one folder of the archive."""

    def __init__(self, path: str):
        self.path = path
        self._used: dict[str, int] = {}

    def unique(self, name: str) -> str:
        count = self._used.get(name, 0) + 1
        self._used[name] = count
        return name if count == 1 else f"{name}-{count}"

    def child(self, name: str) -> _Folder:
        return _Folder(f"{self.path}{self.unique(name)}/")


@dataclass(slots=True)
class _Node:
    """A resource of the tree; `expand` when all its descendants are wanted."""

    ref: ResourceRef
    expand: bool = False
    children: dict[str, _Node] = field(default_factory=dict)


class ArchiveLayout:
    """Resolves the resources asked for and lists the files of their archive."""

    def __init__(self, index: Index):
        self._index = index

    def resolve(self, public_ids: list[str]) -> list[ResourceRef]:
        """The resources (any level), 404 for the first unknown one."""
        refs: list[ResourceRef] = []
        for public_id in public_ids:
            ref = self._index.lookup(public_id) if is_public_id(public_id) else None
            if ref is None:
                raise unknown_resource(public_id)
            refs.append(ref)
        return refs

    def entries(self, refs: list[ResourceRef], media: bool) -> list[ArchiveEntry]:
        roots = self._tree(refs)
        found: list[ArchiveEntry] = []
        if media:
            for number, (instance, attachment) in enumerate(self._instances(roots)):
                found.append(ArchiveEntry(f"{MEDIA_FOLDER}/IM{number}", instance, attachment))
            return found
        self._walk(roots, _Folder(""), found)
        return found

    # -- the tree ---------------------------------------------------------------------------

    def _tree(self, refs: list[ResourceRef]) -> dict[str, _Node]:
        roots: dict[str, _Node] = {}
        for ref in refs:
            chain = [ref]
            while chain[-1].level is not Level.PATIENT:
                chain.append(self._index.ancestor(chain[-1], Level(chain[-1].level - 1)))
            nodes = roots
            node: _Node | None = None
            for ancestor in reversed(chain):
                node = nodes.setdefault(ancestor.public_id, _Node(ancestor))
                if node.expand:
                    break  # already wanted whole
                nodes = node.children
            if node is not None and node.ref.pk == ref.pk:
                node.expand, node.children = True, {}
        return roots

    def _children(self, node: _Node) -> list[_Node]:
        if node.expand:
            refs = self._index.children(node.ref)
            if node.ref.level is not Level.SERIES:
                refs.sort(key=lambda ref: ref.public_id)  # instances stay in storage order
            return [_Node(ref, expand=True) for ref in refs]
        nodes = node.children.values()
        if node.ref.level is Level.SERIES:
            return list(nodes)  # instances in the order they were asked for
        return sorted(nodes, key=lambda child: child.ref.public_id)

    def _instances(self, roots: dict[str, _Node]) -> list[tuple[ResourceRef, Attachment]]:
        found: list[tuple[ResourceRef, Attachment]] = []
        for node in sorted(roots.values(), key=lambda n: n.ref.public_id):
            self._collect(node, found)
        return found

    def _collect(self, node: _Node, found: list[tuple[ResourceRef, Attachment]]) -> None:
        if node.ref.level is Level.INSTANCE:
            attachment = self._index.attachment(node.ref, DICOM_CONTENT_TYPE)
            if attachment is not None:  # deleted meanwhile: left out, as Orthanc
                found.append((node.ref, attachment))
            return
        for child in self._children(node):
            self._collect(child, found)

    def _walk(self, nodes: dict[str, _Node], folder: _Folder, found: list[ArchiveEntry]) -> None:
        for node in sorted(nodes.values(), key=lambda n: n.ref.public_id):
            self._walk_node(node, folder, found)

    def _walk_node(self, node: _Node, parent: _Folder, found: list[ArchiveEntry]) -> None:
        level = node.ref.level
        tags = self._index.main_tags(node.ref)
        first, second = _FOLDER_TAGS[level]
        name = zip_name(f"{tags.get(first, '')} {tags.get(second, '')}")
        folder = parent.child(name or f"Unknown {level.title}")
        if level is not Level.SERIES:
            for child in self._children(node):
                self._walk_node(child, folder, found)
            return
        modality = zip_name(tags.get("Modality", "")).replace(" ", "").upper()[:2]
        instances: list[tuple[ResourceRef, Attachment]] = []
        self._collect(node, instances)
        for number, (instance, attachment) in enumerate(instances):
            width = 8 - len(modality)
            path = folder.path + folder.unique(f"{modality}{number:0{width}d}.dcm")
            found.append(ArchiveEntry(path, instance, attachment))
