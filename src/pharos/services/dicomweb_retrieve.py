"""WADO-RS (PS3.18 10.4): the instances of a study, series or instance named by their UIDs,
their stored files (transcoded when asked), and their metadata in the DICOM JSON model.

Metadata is cached as an internal attachment (not listed by /attachments): on a series, the
JSON array of its instances (bulk data as BulkDataURIs relative to the DICOMweb root, made
absolute when answered) with the list of instances it was built from;
on an instance asked for alone, its JSON object. A cache is written at first use, so series
metadata reads one small file instead of parsing every DICOM file. It stays fresh for the
reasons thumbnails do (services/thumbnails.py): instances are immutable, their attachments die
with them, and a series whose instances changed no longer matches its cache's list. A
transcoded or re-written file keeps the same attributes (the file meta is not part of them).
"""

from __future__ import annotations

import hashlib
import io
import json
import logging

import pydicom
from pydicom import Dataset
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from pharos.dicom.dicom_json import dataset_to_dicom_json
from pharos.dicom.transcode import transcode
from pharos.index.base import Attachment, Index, ResourceRef
from pharos.index.base_search import LevelTags
from pharos.model.errors import ErrorCode, PharosError
from pharos.model.levels import Level
from pharos.services.cached_attachments import CachedAttachments
from pharos.services.dicomweb_metadata import IndexedMetadata, MetadataMode
from pharos.services.files import FileService
from pharos.services.find_request import BUILTIN_METADATA
from pharos.storage.base import StorageArea

log = logging.getLogger(__name__)

# Internal attachment (below Orthanc's user range, not listed by /attachments), next to the
# thumbnails' 900.
METADATA_CONTENT_TYPE = 901
# The first line of a cached metadata file: caches written by earlier releases (v1 without
# BulkDataURIs, v2 with "Value": [] for empty sequences) are built again.
_CACHE_VERSION = b"v3:"
_UID_CHARACTERS = frozenset("0123456789.")
_TRANSFER_SYNTAX_METADATA = BUILTIN_METADATA["TransferSyntax"]


class DicomWebRetrieve:
    def __init__(
        self,
        index: Index,
        storage: StorageArea,
        files: FileService,
        store_md5: bool = True,
        modes: IndexedMetadata | None = None,
    ):
        self._index = index
        self._files = files
        self._cached = CachedAttachments(index, storage, store_md5)
        self._modes = modes or IndexedMetadata(index, files)

    def resources(self, uids: tuple[str, ...]) -> list[ResourceRef]:
        """The studies (one UID), series (two) or instances (three) named by their UIDs:
        usually one; several only if patients share a study. 404 if there are none, 400 for
        a malformed UID. By identifier lookups, cheaper than a search."""
        for uid in uids:
            if not uid or len(uid) > 64 or not set(uid) <= _UID_CHARACTERS:
                raise PharosError(ErrorCode.BAD_REQUEST, f"Invalid UID: {uid!r}", http_status=400)
        parents: set[int] | None = None
        found: list[ResourceRef] = []
        for level, uid in zip((Level.STUDY, Level.SERIES, Level.INSTANCE), uids, strict=False):
            found = [
                ref
                for ref in self._index.lookup_identifier(uid, level)
                if parents is None or ref.parent_pk in parents
            ]
            if not found:
                what = level.title
                raise PharosError(ErrorCode.UNKNOWN_RESOURCE, f"{what} not found: {'/'.join(uids)}")
            parents = {ref.pk for ref in found}
        return found

    def instances(self, uids: tuple[str, ...]) -> list[ResourceRef]:
        """The instances of the study, series or instance named by its UIDs, in the order
        they were received."""
        refs: list[ResourceRef] = []
        for resource in self.resources(uids):
            refs.extend(self._index.descendants(resource, Level.INSTANCE))
        if not refs:  # an empty study or series: it exists only while being deleted
            raise PharosError(ErrorCode.UNKNOWN_RESOURCE, f"Nothing found: {'/'.join(uids)}")
        return refs

    def instance_by_uid(self, sop: str, study: str | None, series: str | None) -> ResourceRef:
        """The instance of a WADO-URI request: named by its SOP Instance UID, in the study and
        series given (if given). 404 if there is none, 400 for a malformed UID."""
        for uid in (sop, study, series):
            if uid is not None and (not uid or len(uid) > 64 or not set(uid) <= _UID_CHARACTERS):
                raise PharosError(ErrorCode.BAD_REQUEST, f"Invalid UID: {uid!r}", http_status=400)
        found = self._index.lookup_identifier(sop, Level.INSTANCE)
        if found and (study is not None or series is not None):
            tags = self._index.tag_values(Level.INSTANCE, [ref.pk for ref in found])
            found = [
                ref
                for ref in found
                if (series is None or _tag(tags, ref, Level.SERIES, 0x0020000E) == series)
                and (study is None or _tag(tags, ref, Level.STUDY, 0x0020000D) == study)
            ]
        if not found:
            raise PharosError(ErrorCode.UNKNOWN_RESOURCE, f"Instance not found: {sop}")
        return found[0]

    def transfer_syntax(self, ref: ResourceRef) -> str:
        """The transfer syntax of a stored instance, from the index."""
        value = self._index.metadata_value(ref, _TRANSFER_SYNTAX_METADATA)
        if value is None:
            raise PharosError(ErrorCode.UNKNOWN_RESOURCE, f"Instance not found: {ref.public_id}")
        return value.value

    def resource(self, uids: tuple[str, ...]) -> ResourceRef:
        """The study, series or instance named by its UIDs (404 if unknown)."""
        return self.resources(uids)[0]

    def file(self, ref: ResourceRef, transfer_syntax: str | None) -> bytes:
        """The stored file, or (with `transfer_syntax`) the file in that syntax; raises
        TranscodingError if it cannot be converted."""
        data = self._files.read_dicom(ref)
        part10 = data[128:132] == b"DICM"
        if transfer_syntax is None and part10:
            return data
        dataset = pydicom.dcmread(io.BytesIO(data), force=True)
        stored = _ensure_file_meta(dataset)
        if transfer_syntax is None or stored == transfer_syntax:
            return data if part10 else _part10(dataset)
        return _part10(transcode(dataset, transfer_syntax))

    def metadata(self, uids: tuple[str, ...], base_url: str) -> bytes:
        """The JSON array of the DICOM JSON objects of the instances named by `uids`: an
        instance's cached on the instance, a series' on the series, a study's from its
        series' (or from the index, as DicomWeb.StudiesMetadata/SeriesMetadata say).
        BulkDataURIs are absolute, below `base_url` (the DICOMweb root, ending with a slash)."""
        objects: list[bytes] = []
        with self._index.reading():  # its lookups in one transaction
            resources = self.resources(uids)
        for resource in resources:
            if resource.level is Level.INSTANCE:
                objects.append(self.instance_metadata(resource))
                continue
            mode = self._modes.series if resource.level is Level.SERIES else self._modes.studies
            if mode is not MetadataMode.FULL:
                objects.extend(self._modes.objects(resource, mode))
                continue
            for series in self._index.descendants(resource, Level.SERIES):
                array = self._series_metadata(series)
                if len(array) > 2:
                    objects.append(array[1:-1])  # the objects of the array, without brackets
        return absolute_bulk_uris(b"[" + b",".join(objects) + b"]", base_url)

    def _series_metadata(self, series: ResourceRef) -> bytes:
        """A series' metadata (a JSON array), cached whole on the series with the list of
        the instances it was built from: a series that gained or lost instances since is
        built again. Built from the files: one cache write per series, not one per instance."""
        with self._index.reading():
            refs = self._index.descendants(series, Level.INSTANCE)
            cached = self._index.attachment(series, METADATA_CONTENT_TYPE)
        pks = ",".join(str(ref.pk) for ref in refs).encode()
        key = _CACHE_VERSION + hashlib.sha1(pks).hexdigest().encode()
        if cached is not None:
            try:
                header, _, body = self._files.read(cached).partition(b"\n")
                if header == key:
                    return body
            except Exception as exc:  # a lost file: built again below, the record replaced
                log.warning("Metadata of series %s unreadable: %s", series.public_id, exc)
        objects: list[bytes] = []
        complete = True
        for ref in refs:
            try:
                objects.append(self._compute(ref))
            except PharosError as exc:
                if exc.code is not ErrorCode.INEXISTENT_FILE:
                    raise
                complete = False  # deleted meanwhile: answered, not cached
        body = b"[" + b",".join(objects) + b"]"
        if refs and complete:
            self._cache(series, key + b"\n" + body, cached)
        return body

    def _compute(self, ref: ResourceRef) -> bytes:
        """The DICOM JSON object of an instance, its BulkDataURIs relative to the root."""
        dataset = self._files.read_dataset(ref)
        uri = instance_path(dataset) + "/"
        return json.dumps(
            dataset_to_dicom_json(dataset, bulk_data_uri=uri),
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode("utf-8")

    def instance_metadata(self, ref: ResourceRef) -> bytes:
        """One instance's DICOM JSON object (UTF-8, BulkDataURIs relative to the root), from
        the cache or computed and cached."""
        cached = self._index.attachment(ref, METADATA_CONTENT_TYPE)
        if cached is not None:
            try:
                header, _, body = self._files.read(cached).partition(b"\n")
                if header == _CACHE_VERSION:
                    return body
            except Exception as exc:  # a lost file: compute it again and replace the record
                log.warning("Metadata of %s unreadable (%s): computed again", ref.public_id, exc)
        data = self._compute(ref)
        self._cache(ref, _CACHE_VERSION + b"\n" + data, cached)
        return data

    def _cache(self, ref: ResourceRef, data: bytes, replace: Attachment | None) -> None:
        """Keep `data` as the metadata attachment of `ref` (replacing `replace`); a
        concurrent request that cached it first wins, harmlessly."""
        try:
            self._cached.keep(ref, METADATA_CONTENT_TYPE, data, replace)
        except PharosError as exc:
            if exc.code is not ErrorCode.UNKNOWN_RESOURCE:  # deleted meanwhile: not cached
                raise


def _tag(tags: dict[int, LevelTags], ref: ResourceRef, level: Level, tag: int) -> str | None:
    return tags.get(ref.pk, {}).get(level, {}).get(tag)


def _ensure_file_meta(dataset: Dataset) -> str:
    """The transfer syntax of a dataset read from a stored file; a file stored without
    preamble and file meta (as POST /instances and STOW-RS take them) is given its file meta
    (DICOMweb sends PS3.10 files, PS3.18 8.7.3.5.2), from the encoding it was read in."""
    syntax = str(dataset.file_meta.get("TransferSyntaxUID", ""))
    if syntax:
        return syntax
    implicit, little = dataset.original_encoding
    uid = (
        ImplicitVRLittleEndian
        if implicit
        else ExplicitVRLittleEndian
        if little is not False
        else ExplicitVRBigEndian
    )
    meta = FileMetaDataset()
    meta.TransferSyntaxUID = uid
    meta.MediaStorageSOPClassUID = dataset.get("SOPClassUID", "")
    meta.MediaStorageSOPInstanceUID = dataset.get("SOPInstanceUID", "")
    dataset.file_meta = meta
    return str(uid)


def _part10(dataset: Dataset) -> bytes:
    out = io.BytesIO()
    dataset.save_as(out, enforce_file_format=True)
    return out.getvalue()


def instance_path(dataset: Dataset) -> str:
    """The WADO-RS path of the instance of a dataset, relative to the DICOMweb root."""
    return (
        f"studies/{dataset.get('StudyInstanceUID', '')}/series/"
        f"{dataset.get('SeriesInstanceUID', '')}/instances/{dataset.get('SOPInstanceUID', '')}"
    )


def absolute_bulk_uris(body: bytes, base_url: str) -> bytes:
    """The BulkDataURIs of a JSON answer made absolute. Cached metadata keeps them relative
    to the root, as the host and root a client uses vary; the unescaped key can only be a
    key (quotes inside JSON strings are escaped)."""
    return body.replace(b'"BulkDataURI":"', b'"BulkDataURI":"' + base_url.encode("utf-8"))
