"""The Orthanc peers of OrthancPeersInDatabase in the SQL index: `SqlIndex` inherits these.

Each peer is kept under its symbolic name as the JSON text of its object form; parsing and
validation belong to the services (`pharos.services.web_services`, whose `WebServiceStore`
is the interface these implement), not to the index.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from sqlalchemy import Connection, select

from pharos.index.schema import peers
from pharos.index.writes import insert_for

T = TypeVar("T")


class PeersMixin:
    if TYPE_CHECKING:
        _dialect: str

        def _read(self, work: Callable[[Connection], T]) -> T: ...

        def _write(self, work: Callable[[Connection], T]) -> T: ...

    def stored_peers(self) -> dict[str, str]:
        query = select(peers.c.name, peers.c.definition).order_by(peers.c.name)
        return self._read(lambda conn: {row[0]: row[1] for row in conn.execute(query)})

    def stored_peer(self, name: str) -> str | None:
        query = select(peers.c.definition).where(peers.c.name == name)
        return self._read(lambda conn: conn.execute(query).scalar_one_or_none())

    def put_peer(self, name: str, definition: str) -> None:
        statement = (
            insert_for(self._dialect, peers)
            .values(name=name, definition=definition)
            .on_conflict_do_update(index_elements=[peers.c.name], set_={"definition": definition})
        )
        self._write(lambda conn: conn.execute(statement))

    def delete_peer(self, name: str) -> bool:
        statement = peers.delete().where(peers.c.name == name)
        return bool(self._write(lambda conn: conn.execute(statement).rowcount))
