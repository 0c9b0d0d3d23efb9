"""One gateway node per PostgreSQL store, until nodes can share one: a lock held for the node's life.

Several nodes on one database need leases and claims, which this gateway
does not have yet; so a node that opens a store takes a session advisory
lock on a key of the store's schema (``current_schema()``), on a connection
of its own kept open while it runs, and a second node is refused at start,
as the SQLite store refuses a second gateway on its file.  The connection's
``application_name`` carries the node's name, so that the refusal says
which node holds the store.  The lock goes when the connection does: when
the node stops, or its process or machine dies (once the server sees its
connection gone), and when the server restarts or ends the connection: so a
running node checks its lock (`NodeLock.check`, every few seconds) and takes
it again on a new connection; should another node have taken the store
meanwhile, the check says so, and says it again until one of them stops.
"""

from __future__ import annotations

from typing import Any

import psycopg

from smppgw.store.interfaces import StoreError

#: The first half of the lock's key ("smpn"); the second is the hash of the store's schema.
NODE_LOCK = 0x736D706E

#: What the lock's connection calls itself, before the node's name.
APPLICATION = "smppgw node "


class NodeLock:
    """The lock of the store ``where`` (its name, for errors), held through ``db`` for node ``node``."""

    def __init__(self, db: psycopg.Connection[Any], where: str, node: str) -> None:
        self.node = node
        self.where = where
        self._take(db)

    def _take(self, db: psycopg.Connection[Any]) -> None:
        where, node = self.where, self.node
        self._db = db
        try:
            db.execute("SELECT set_config('application_name', %s, false)",
                       ((APPLICATION + node)[:63],))
            (taken,) = _one(db.execute(
                "SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))", (NODE_LOCK,)))
            holder = None if taken else self._holder()
        except psycopg.Error as error:
            db.close()
            raise StoreError(f"cannot lock the store {where} for this node: {error}") from error
        if not taken:
            db.close()
            raise StoreError(
                f"the store {where} is in use by another gateway node ({holder}); stop it, or"
                " give this one its own database (several nodes on one store are not supported)")

    def _holder(self) -> str:
        found = self._db.execute(
            "SELECT a.application_name, host(a.client_addr) FROM pg_locks AS l"
            " JOIN pg_stat_activity AS a ON a.pid = l.pid"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
            " AND l.classid = %s AND l.objid = hashtext(current_schema())::oid",
            (NODE_LOCK,)).fetchone()
        if found is None:
            return "its name unknown"
        name, address = found
        node = (name or "").removeprefix(APPLICATION) if (name or "").startswith(APPLICATION) else ""
        shown = f"node {node!r}" if node else "its name unknown"
        return f"{shown} from {address}" if address else shown

    def check(self, connect: Any) -> bool:
        """Whether the lock is still held, taken again through ``connect()`` (a new
        connection) if its connection was lost; True when it was taken again.

        :raise StoreError: it cannot be taken again: the database cannot be reached,
            or another node holds the store now.
        """
        try:
            self._db.execute("SELECT 1")
            return False
        except psycopg.Error:
            self._db.close()
        self._take(connect())
        return True

    def release(self) -> None:
        """Let the store go (closing the lock's connection)."""
        self._db.close()


def _one(cursor: Any) -> tuple[Any, ...]:
    row = cursor.fetchone()
    assert row is not None
    return tuple(row)
