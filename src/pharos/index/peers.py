"""The web services defined through the REST API and kept in the SQL index: the Orthanc peers
of OrthancPeersInDatabase and the DICOMweb servers of DicomWeb.ServersInDatabase, one table
each. `SqlIndex` inherits `PeersMixin`.

Each service is kept under its symbolic name as the JSON text of its object form; parsing and
validation belong to the services (`pharos.services.web_services`, whose `WebServiceStore`
is the interface `StoredWebServices` implements), not to the index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Connection, Table, select

from pharos.index.schema import dicomweb_servers, peers
from pharos.index.writes import insert_for

T = TypeVar("T")


class StoredWebServices:
    """The rows of one table of web services, by symbolic name."""

    def __init__(
        self,
        read: Callable[[Callable[[Connection], Any]], Any],
        write: Callable[[Callable[[Connection], Any]], Any],
        dialect: str,
        table: Table,
    ):
        self._read = read
        self._write = write
        self._dialect = dialect
        self._table = table

    def stored_services(self) -> dict[str, str]:
        table = self._table
        query = select(table.c.name, table.c.definition).order_by(table.c.name)
        return self._read(lambda conn: {row[0]: row[1] for row in conn.execute(query)})

    def stored_service(self, name: str) -> str | None:
        query = select(self._table.c.definition).where(self._table.c.name == name)
        return self._read(lambda conn: conn.execute(query).scalar_one_or_none())

    def put_service(self, name: str, definition: str) -> None:
        statement = (
            insert_for(self._dialect, self._table)
            .values(name=name, definition=definition)
            .on_conflict_do_update(
                index_elements=[self._table.c.name], set_={"definition": definition}
            )
        )
        self._write(lambda conn: conn.execute(statement))

    def delete_service(self, name: str) -> bool:
        statement = self._table.delete().where(self._table.c.name == name)
        return bool(self._write(lambda conn: conn.execute(statement).rowcount))


class PeersMixin:
    if TYPE_CHECKING:
        _dialect: str

        def _read(self, work: Callable[[Connection], T]) -> T: ...

        def _write(self, work: Callable[[Connection], T]) -> T: ...

    @property
    def stored_peers(self) -> StoredWebServices:
        """The Orthanc peers (OrthancPeersInDatabase)."""
        return StoredWebServices(self._read, self._write, self._dialect, peers)

    @property
    def stored_dicomweb_servers(self) -> StoredWebServices:
        """The DICOMweb servers of the DICOMweb client (DicomWeb.ServersInDatabase)."""
        return StoredWebServices(self._read, self._write, self._dialect, dicomweb_servers)
