"""The PostgreSQL store's inbox and reassembly fragments."""

from __future__ import annotations

import json
from typing import Any

from psycopg import Connection
from twisted.internet.defer import Deferred

from smppgw.store.interfaces import InboxRow, UnknownRow
from smppgw.store.postgres.bulk import Later
from smppgw.store.postgres.database import Database, dump, one, statement


class InboundTables(Database):
    """What a store keeps for inbound traffic: tables ``inbox`` and ``fragment``."""

    # -- the inbox -----------------------------------------------------------

    def add_inbox(self, kind: str, payload: dict[str, Any], created: float, *,
                  receipt: tuple[str, int] | None = None,
                  drop_fragments: str | None = None) -> Deferred[int]:
        """Keep a message or report for a host; return its id (increasing, never given again).

        In the same transaction: ``receipt`` ends that part's wait for its receipt,
        ``drop_fragments`` forgets the parts the message was joined from.
        """
        text = dump(payload)

        def write(db: Connection) -> Later:
            added = db.execute(
                "INSERT INTO inbox (kind, payload, created) VALUES (%s, %s, %s) RETURNING id",
                (kind, text, created))
            if receipt is not None:
                db.execute("UPDATE part SET receipt_due = NULL"
                           " WHERE request_id = %s AND idx = %s AND receipt_due IS NOT NULL",
                           receipt)
            if drop_fragments is not None:
                db.execute("DELETE FROM fragment WHERE key = %s", (drop_fragments,))
            return Later(lambda: int(one(added.fetchone())[0]))

        return self._write(write)

    def inbox(self, limit: int = 1000, after_id: int = 0) -> list[InboxRow]:
        """Return up to ``limit`` inbox rows with an id above ``after_id``, lowest id first."""
        return [
            InboxRow(row_id, kind, json.loads(payload), attempts, created)
            for row_id, kind, payload, attempts, created in self._reading(
                "SELECT id, kind, payload, attempts, created FROM inbox"
                " WHERE id > %s ORDER BY id LIMIT %s",
                (after_id, None if limit < 0 else limit),
            )
        ]

    def bump_inbox(self, id: int) -> Deferred[int]:
        """Count one more delivery attempt of inbox row ``id``; fires with the new count."""

        def write(db: Connection) -> Later:
            cursor = db.execute(
                "UPDATE inbox SET attempts = attempts + 1 WHERE id = %s RETURNING attempts", (id,))

            def finish() -> int:
                found = cursor.fetchone()
                if found is None:
                    raise UnknownRow(f"no inbox row {id!r}")
                attempts: int = found[0]
                return attempts

            return Later(finish)

        return self._write(write)

    def remove_inbox(self, id: int) -> Deferred[None]:
        """Forget inbox row ``id`` (nothing happens if it is already gone)."""
        return self._write(statement("DELETE FROM inbox WHERE id = %s", (id,)))

    # -- fragments of long inbound messages ----------------------------------

    def add_fragment(
        self, key: str, seq: int, total: int, payload: dict[str, Any], received: float
    ) -> Deferred[int]:
        """Keep part ``seq`` of the message ``key``; return how many distinct parts of it are kept.

        A repeated part replaces the kept one but keeps its first arrival time.
        """
        text = dump(payload)

        def write(db: Connection) -> Later:
            db.execute(
                "INSERT INTO fragment (key, seq, total, payload, received)"
                " VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (key, seq) DO UPDATE SET total = excluded.total,"
                " payload = excluded.payload, received = LEAST(fragment.received, excluded.received)",
                (key, seq, total, text, received),
            )
            counted = db.execute("SELECT COUNT(*) FROM fragment WHERE key = %s", (key,))
            return Later(lambda: int(one(counted.fetchone())[0]))

        return self._write(write)

    def fragments(self, key: str) -> list[tuple[int, dict[str, Any]]]:
        """Return the kept parts of ``key`` as (seq, payload), by seq."""
        return [
            (seq, json.loads(payload))
            for seq, payload in self._reading(
                "SELECT seq, payload FROM fragment WHERE key = %s ORDER BY seq", (key,))
        ]

    def drop_fragments(self, key: str) -> Deferred[None]:
        """Forget every kept part of ``key``."""
        return self._write(statement("DELETE FROM fragment WHERE key = %s", (key,)))

    def stale_fragments(self, before: float) -> list[str]:
        """Return the keys whose earliest kept part arrived before ``before``, sorted."""
        return [
            key
            for (key,) in self._reading(
                "SELECT key FROM fragment GROUP BY key HAVING MIN(received) < %s"
                " ORDER BY key COLLATE \"C\"",
                (before,),
            )
        ]
