"""The modalities of DicomModalitiesInDatabase and the exports log in the SQL index:
`SqlIndex` inherits these."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Connection, select

from pharos.index.schema import LEVEL_TABLES, exports, modalities, resources
from pharos.index.writes import insert_for
from pharos.model.levels import Level
from pharos.model.timeutil import now_iso

# The identifier each level gives to a row of the exports log
_KEYS = {
    Level.PATIENT: "patient_id",
    Level.STUDY: "study_instance_uid",
    Level.SERIES: "series_instance_uid",
    Level.INSTANCE: "sop_instance_uid",
}

T = TypeVar("T")


class ModalitiesMixin:
    if TYPE_CHECKING:
        _dialect: str

        def _read(self, work: Callable[[Connection], T]) -> T: ...

        def _write(self, work: Callable[[Connection], T]) -> T: ...

    def stored_modalities(self) -> dict[str, str]:
        query = select(modalities.c.name, modalities.c.definition).order_by(modalities.c.name)
        return self._read(lambda conn: {row[0]: row[1] for row in conn.execute(query)})

    def stored_modality(self, name: str) -> str | None:
        query = select(modalities.c.definition).where(modalities.c.name == name)
        return self._read(lambda conn: conn.execute(query).scalar_one_or_none())

    def put_modality(self, name: str, definition: str) -> None:
        statement = (
            insert_for(self._dialect, modalities)
            .values(name=name, definition=definition)
            .on_conflict_do_update(
                index_elements=[modalities.c.name], set_={"definition": definition}
            )
        )
        self._write(lambda conn: conn.execute(statement))

    def delete_modality(self, name: str) -> bool:
        statement = modalities.delete().where(modalities.c.name == name)
        return bool(self._write(lambda conn: conn.execute(statement).rowcount))

    def log_exports(self, public_ids: list[str], remote_modality: str) -> None:
        date = now_iso()

        def work(conn: Connection) -> None:
            for public_id in public_ids:
                row = conn.execute(
                    select(resources.c.pk, resources.c.level, resources.c.parent_pk).where(
                        resources.c.public_id == public_id
                    )
                ).first()
                if row is None:
                    continue
                level = Level(row.level)
                values = dict.fromkeys(_KEYS.values(), "")
                pk, current = row.pk, level
                while True:  # up the hierarchy, as Orthanc's LogExportedResource
                    table = LEVEL_TABLES[current]
                    key = conn.execute(
                        select(table.c[_KEYS[current]]).where(table.c.pk == pk)
                    ).scalar()
                    values[_KEYS[current]] = key or ""
                    parent = current.parent
                    if parent is None:
                        break
                    pk = conn.execute(
                        select(resources.c.parent_pk).where(resources.c.pk == pk)
                    ).scalar_one()
                    current = parent
                conn.execute(
                    exports.insert().values(
                        level=int(level),
                        public_id=public_id,
                        remote_modality=remote_modality,
                        date=date,
                        **values,
                    )
                )

        self._write(work)
