"""Metadata, attachments, labels and protection in the SQL index: `SqlIndex` inherits these.

Every write runs in one transaction that first takes a key-share lock on the resource row
(PostgreSQL): a concurrent delete of the resource waits for it, or has already removed the
row and the write answers "unknown resource". Rows are created with plain INSERTs after a
locked read, never check-then-upsert: two writers creating the same item make one of them
hit the primary key, and the PostgreSQL runner runs that transaction again, which then sees
the other's row and its revision (SQLite has a single writer).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, delete, select, update

from pharos.index.base import Attachment, ResourceRef
from pharos.index.base_annotations import (
    CALLED_AET,
    EXPECTED_NUMBER_OF_INSTANCES,
    HTTP_USERNAME,
    INDEX_IN_SERIES,
    LAST_UPDATE,
    ORIGIN,
    PIXEL_DATA_OFFSET,
    RECEPTION_DATE,
    REMOTE_AET,
    REMOTE_IP,
    SOP_CLASS_UID,
    TRANSFER_SYNTAX,
    AttachmentUpdate,
    ExpectedRevision,
    MetadataValue,
)
from pharos.index.schema import attachments, instances, labels, resource_metadata, resources, series
from pharos.index.writes import WriteStatements, insert_for, log_changes
from pharos.model.changes import ChangeType
from pharos.model.errors import ErrorCode, PharosError, unknown_resource
from pharos.model.levels import Level
from pharos.model.timeutil import iso_from_epoch, now_iso

T = TypeVar("T")

# Instance columns holding Orthanc's built-in instance metadata.
_INSTANCE_COLUMNS = {
    INDEX_IN_SERIES: instances.c.index_in_series,
    RECEPTION_DATE: instances.c.reception_date,
    REMOTE_AET: instances.c.remote_aet,
    ORIGIN: instances.c.origin,
    TRANSFER_SYNTAX: instances.c.transfer_syntax,
    SOP_CLASS_UID: instances.c.sop_class_uid,
    REMOTE_IP: instances.c.remote_ip,
    CALLED_AET: instances.c.called_aet,
    HTTP_USERNAME: instances.c.http_username,
    PIXEL_DATA_OFFSET: instances.c.pixel_data_offset,
}
_SERIES_COLUMNS = {
    REMOTE_AET: series.c.remote_aet,
    EXPECTED_NUMBER_OF_INSTANCES: series.c.expected_instances,
}


class AnnotationsMixin:
    if TYPE_CHECKING:
        _stmts: WriteStatements
        _dialect: str

        def _read(self, work: Callable[[Connection], T]) -> T: ...

        def _write(self, work: Callable[[Connection], T]) -> T: ...

    # -- metadata ---------------------------------------------------------------------------

    def all_metadata(self, ref: ResourceRef) -> dict[int, MetadataValue]:
        def work(conn: Connection) -> dict[int, MetadataValue]:
            found: dict[int, MetadataValue] = {
                row.type: MetadataValue(row.value, row.revision)
                for row in conn.execute(
                    select(
                        resource_metadata.c.type,
                        resource_metadata.c.value,
                        resource_metadata.c.revision,
                    ).where(resource_metadata.c.resource_pk == ref.pk)
                )
            }
            # The columns are authoritative for the built-in numbers.
            found.update(_builtin_metadata(conn, ref))
            return dict(sorted(found.items()))

        return self._read(work)

    def metadata_value(self, ref: ResourceRef, number: int) -> MetadataValue | None:
        return self.all_metadata(ref).get(number)

    def set_metadata(
        self,
        ref: ResourceRef,
        number: int,
        value: str,
        expected: ExpectedRevision | None,
        log_change: bool,
    ) -> int:
        m = resource_metadata
        key = (m.c.resource_pk == ref.pk) & (m.c.type == number)

        def work(conn: Connection) -> int:
            _lock_resource(conn, ref)
            row = conn.execute(select(m.c.value, m.c.revision).where(key).with_for_update()).first()
            if row is None:
                # Orthanc: a new item ignores the expected revision and starts a new sequence.
                revision = 0
                conn.execute(
                    m.insert().values(resource_pk=ref.pk, type=number, value=value, revision=0)
                )
            else:
                _check(expected, row.revision, _md5(row.value), f"metadata {number}", ref)
                revision = row.revision + 1
                conn.execute(update(m).where(key).values(value=value, revision=revision))
            if log_change:
                self._log(conn, ChangeType.UPDATED_METADATA, ref)
            return revision

        return self._write(work)

    def delete_metadata(
        self, ref: ResourceRef, number: int, expected: ExpectedRevision | None, log_change: bool
    ) -> bool:
        m = resource_metadata
        key = (m.c.resource_pk == ref.pk) & (m.c.type == number)

        def work(conn: Connection) -> bool:
            _lock_resource(conn, ref)
            row = conn.execute(select(m.c.value, m.c.revision).where(key).with_for_update()).first()
            if row is None:
                return False
            _check(expected, row.revision, _md5(row.value), f"metadata {number}", ref)
            conn.execute(delete(m).where(key))
            if log_change:
                self._log(conn, ChangeType.UPDATED_METADATA, ref)
            return True

        return self._write(work)

    # -- attachments ------------------------------------------------------------------------

    def attachments(self, ref: ResourceRef) -> list[Attachment]:
        a = attachments
        query = select(a).where(a.c.resource_pk == ref.pk).order_by(a.c.content_type)
        return self._read(lambda conn: [attachment_from_row(row) for row in conn.execute(query)])

    def set_attachment(
        self,
        ref: ResourceRef,
        attachment: Attachment,
        expected: ExpectedRevision | None,
        log_change: bool,
    ) -> AttachmentUpdate:
        a = attachments
        key = (a.c.resource_pk == ref.pk) & (a.c.content_type == attachment.content_type)
        values = {
            "uuid": attachment.uuid,
            "compressed_size": attachment.compressed_size,
            "uncompressed_size": attachment.uncompressed_size,
            "compression": attachment.compression,
            "uncompressed_md5": attachment.uncompressed_md5,
            "compressed_md5": attachment.compressed_md5,
        }

        def work(conn: Connection) -> AttachmentUpdate:
            _lock_resource(conn, ref)
            row = conn.execute(
                select(a.c.uuid, a.c.revision, a.c.uncompressed_md5).where(key).with_for_update()
            ).first()
            if row is None:
                update_ = AttachmentUpdate(0, None)
                conn.execute(
                    a.insert().values(
                        resource_pk=ref.pk,
                        content_type=attachment.content_type,
                        revision=0,
                        **values,
                    )
                )
            else:
                what = f"attachment {attachment.content_type}"
                _check(expected, row.revision, row.uncompressed_md5, what, ref)
                update_ = AttachmentUpdate(row.revision + 1, row.uuid)
                conn.execute(update(a).where(key).values(revision=update_.revision, **values))
            if log_change:
                self._log(conn, ChangeType.UPDATED_ATTACHMENT, ref)
            return update_

        return self._write(work)

    def replace_instance_file(
        self,
        ref: ResourceRef,
        attachment: Attachment,
        transfer_syntax: str,
        pixel_data_offset: int | None,
    ) -> str | None:
        """Point an instance at a re-written DICOM file (already durable), with the transfer
        syntax and pixel data offset of that file, in one transaction (ReconstructFiles).
        The UUID of the previous file, to remove after the commit."""
        a = attachments
        key = (a.c.resource_pk == ref.pk) & (a.c.content_type == attachment.content_type)

        def work(conn: Connection) -> str | None:
            _lock_resource(conn, ref)
            row = conn.execute(select(a.c.uuid, a.c.revision).where(key).with_for_update()).first()
            if row is None:
                raise unknown_resource(ref.public_id)
            conn.execute(
                update(a)
                .where(key)
                .values(
                    revision=row.revision + 1,
                    uuid=attachment.uuid,
                    compressed_size=attachment.compressed_size,
                    uncompressed_size=attachment.uncompressed_size,
                    compression=attachment.compression,
                    uncompressed_md5=attachment.uncompressed_md5,
                    compressed_md5=attachment.compressed_md5,
                )
            )
            conn.execute(
                update(instances)
                .where(instances.c.pk == ref.pk)
                .values(transfer_syntax=transfer_syntax, pixel_data_offset=pixel_data_offset)
            )
            return str(row.uuid)

        return self._write(work)

    def delete_attachment(
        self,
        ref: ResourceRef,
        content_type: int,
        expected: ExpectedRevision | None,
        log_change: bool,
    ) -> str | None:
        a = attachments
        key = (a.c.resource_pk == ref.pk) & (a.c.content_type == content_type)

        def work(conn: Connection) -> str | None:
            _lock_resource(conn, ref)
            row = conn.execute(
                select(a.c.uuid, a.c.revision, a.c.uncompressed_md5).where(key).with_for_update()
            ).first()
            if row is None:
                return None
            _check(expected, row.revision, row.uncompressed_md5, f"attachment {content_type}", ref)
            conn.execute(delete(a).where(key))
            if log_change:
                self._log(conn, ChangeType.UPDATED_ATTACHMENT, ref)
            return str(row.uuid)

        return self._write(work)

    # -- labels -----------------------------------------------------------------------------

    def labels(self, ref: ResourceRef) -> list[str]:
        query = (
            select(labels.c.label).where(labels.c.resource_pk == ref.pk).order_by(labels.c.label)
        )
        return self._read(lambda conn: list(conn.execute(query).scalars()))

    def add_label(self, ref: ResourceRef, label: str) -> None:
        statement = (
            insert_for(self._dialect, labels)
            .values(resource_pk=ref.pk, label=label)
            .on_conflict_do_nothing(index_elements=[labels.c.resource_pk, labels.c.label])
        )

        def work(conn: Connection) -> None:
            _lock_resource(conn, ref)
            conn.execute(statement)

        self._write(work)

    def remove_label(self, ref: ResourceRef, label: str) -> None:
        def work(conn: Connection) -> None:
            _lock_resource(conn, ref)
            conn.execute(
                delete(labels).where(labels.c.resource_pk == ref.pk, labels.c.label == label)
            )

        self._write(work)

    def all_labels(self) -> list[str]:
        query = select(labels.c.label).distinct().order_by(labels.c.label)
        return self._read(lambda conn: list(conn.execute(query).scalars()))

    # -- protection -------------------------------------------------------------------------

    def is_protected(self, ref: ResourceRef) -> bool:
        query = select(resources.c.is_protected).where(resources.c.pk == ref.pk)
        value = self._read(lambda conn: conn.execute(query).scalar_one_or_none())
        if value is None:
            raise unknown_resource(ref.public_id)
        return bool(value)

    def set_protected(self, ref: ResourceRef, protected: bool) -> None:
        statement = (
            update(resources)
            .where(resources.c.pk == ref.pk, resources.c.level == int(Level.PATIENT))
            .values(is_protected=protected)
        )

        def work(conn: Connection) -> None:
            if conn.execute(statement).rowcount != 1:
                raise unknown_resource(f"patient {ref.public_id}")

        self._write(work)

    def _log(self, conn: Connection, kind: ChangeType, ref: ResourceRef) -> None:
        log_changes(conn, self._stmts, [(kind, ref.level, ref.public_id)], now_iso())


def _lock_resource(conn: Connection, ref: ResourceRef) -> None:
    """Hold the resource (PostgreSQL: FOR KEY SHARE) until the commit, or fail if it is gone."""
    found = conn.execute(
        select(resources.c.pk)
        .where(resources.c.pk == ref.pk)
        .with_for_update(read=True, key_share=True)
    ).first()
    if found is None:
        raise unknown_resource(f"{ref.level.title.lower()} {ref.public_id}")


def _check(
    expected: ExpectedRevision | None, revision: int, md5: str | None, what: str, ref: ResourceRef
) -> None:
    if expected is not None and not expected.matches(revision, md5):
        raise PharosError(
            ErrorCode.REVISION,
            f"The {what} of {ref.level.title.lower()} {ref.public_id} has changed: "
            f'its ETag is "{revision}-{md5 or ""}", not "{expected.revision}-{expected.md5}"',
        )


def _md5(value: str) -> str:
    return hashlib.md5(value.encode("utf-8")).hexdigest()


def _builtin_metadata(conn: Connection, ref: ResourceRef) -> dict[int, MetadataValue]:
    """Orthanc's built-in metadata, from the columns the store transaction fills."""
    if ref.level is Level.INSTANCE:
        row = conn.execute(
            select(*_INSTANCE_COLUMNS.values()).where(instances.c.pk == ref.pk)
        ).first()
        if row is None:
            raise unknown_resource(f"instance {ref.public_id}")
        values: dict[int, Any] = dict(zip(_INSTANCE_COLUMNS, row, strict=True))
        if values[HTTP_USERNAME] is None and values[ORIGIN] == "RestApi":
            values[HTTP_USERNAME] = ""  # Orthanc records an empty user without authentication
        return {n: MetadataValue(str(v)) for n, v in values.items() if v is not None}

    updated_at = conn.execute(
        select(resources.c.updated_at).where(resources.c.pk == ref.pk)
    ).scalar_one_or_none()
    if updated_at is None:
        raise unknown_resource(f"{ref.level.title.lower()} {ref.public_id}")
    found = {LAST_UPDATE: MetadataValue(iso_from_epoch(updated_at))}
    if ref.level is Level.SERIES:
        row = conn.execute(select(*_SERIES_COLUMNS.values()).where(series.c.pk == ref.pk)).first()
        if row is not None:
            for number, value in zip(_SERIES_COLUMNS, row, strict=True):
                if value is not None:
                    found[number] = MetadataValue(str(value))
    return found


def attachment_from_row(row: Any) -> Attachment:
    return Attachment(
        content_type=row.content_type,
        uuid=row.uuid,
        compressed_size=row.compressed_size,
        uncompressed_size=row.uncompressed_size,
        compression=row.compression,
        uncompressed_md5=row.uncompressed_md5,
        compressed_md5=row.compressed_md5,
        revision=row.revision,
    )
