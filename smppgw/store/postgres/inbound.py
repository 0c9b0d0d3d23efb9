"""The PostgreSQL store's inbox and reassembly fragments (the bindings: `bindings`).

Several nodes share the inbox, and each row goes to one host: a node's
dispatcher claims the rows it hands out (`InboundTables.claim_inbox`, ``FOR
UPDATE SKIP LOCKED``), each claim under the row's next epoch, its expiry
(``lease_until``) on the database server's clock, renewed while the node
still has the row.  What the node then writes about the row (removed once
a host took it, an attempt counted) goes through only while the row is
still under that claim (``claimed_by`` and ``epoch``): once another node has
claimed it, a late answer changes nothing.  A row released for a retry
keeps in ``lease_until`` when it may be claimed again.  A row added is told
to every node listening on `InboundTables.inbox_channel` (LISTEN/NOTIFY, sent
in the transaction that adds it, the adding node's name its payload), so that
their dispatchers claim it without polling.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
from psycopg import Connection
from twisted.internet.defer import Deferred

from smppgw.store.interfaces import InboxClaim, InboxRow, StoreError, UnknownRow
from smppgw.store.postgres.bulk import Later
from smppgw.store.postgres.database import Database, dump, one, statement

# Now on the database server's clock, as lease_until keeps it (seconds since the epoch).
_NOW = "extract(epoch FROM clock_timestamp())::float8"

# The inbox channel of the store's schema (`InboundTables.inbox_channel`), told in the
# transaction of a row added (the adding node's name is at most 64 characters, far
# below NOTIFY's limit).
_CHANNEL = "smppgw_inbox."
_NOTIFY = f"SELECT pg_notify('{_CHANNEL}' || current_schema(), %s)"


_ADD = "INSERT INTO inbox (kind, payload, created) VALUES (%s, %s, %s) RETURNING id"
_END_WAIT = ("UPDATE part SET receipt_due = NULL"
             " WHERE request_id = %s AND idx = %s AND receipt_due IS NOT NULL")
# The row only with the end of the wait, in one statement.
_ADD_IF_AWAITED = (f"WITH ended AS ({_END_WAIT} RETURNING 1)"
                   " INSERT INTO inbox (kind, payload, created)"
                   " SELECT %s, %s, %s WHERE EXISTS (SELECT 1 FROM ended) RETURNING id")


#: The first half of the key of the lock that orders the parts of one long SMS kept
#: at once ("smfr"); the second is the hash of the message's key.
FRAGMENT_LOCK = 0x736D6672


def keep_fragment(db: Connection, key: str, seq: int, total: int, text: str,
                  received: float) -> Any:
    """In ``db``'s transaction: keep part ``seq`` of ``key``; a cursor of how many distinct
    parts are kept.

    Two nodes keeping two parts of one message at once would each count only
    its own (neither sees the other's uncommitted row) and the message would
    never be whole: a lock on the message's key, held until the transaction
    ends, makes the second wait for the first's commit, so that its count
    sees both and it is the one that finds the message whole.
    """
    db.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (FRAGMENT_LOCK, key))
    db.execute(
        "INSERT INTO fragment (key, seq, total, payload, received)"
        " VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (key, seq) DO UPDATE SET total = excluded.total,"
        " payload = excluded.payload, received = LEAST(fragment.received, excluded.received)",
        (key, seq, total, text, received),
    )
    return db.execute("SELECT COUNT(*) FROM fragment WHERE key = %s", (key,))


class InboundTables(Database):
    """What a store keeps for inbound traffic: tables ``inbox`` and ``fragment``."""

    #: Other nodes share the inbox: a row is claimed before it goes to a host.
    shared = True

    @property
    def inbox_channel(self) -> str:
        """The LISTEN/NOTIFY channel on which an added inbox row is told: one per schema,
        since notifications reach the whole database."""
        channel: str | None = getattr(self, "_inbox_channel", None)
        if channel is None:
            ((schema,),) = self._reading("SELECT current_schema()")
            channel = self._inbox_channel = f"{_CHANNEL}{schema}"
        return channel

    # -- the inbox -----------------------------------------------------------

    def add_inbox(self, kind: str, payload: dict[str, Any], created: float, *,
                  receipt: tuple[str, int] | None = None,
                  drop_fragments: str | None = None,
                  if_awaited: bool = False) -> Deferred[int | None]:
        """Keep a message or report for a host; return its id (increasing, never given again).

        In the same transaction: ``receipt`` ends that part's wait for its receipt,
        ``drop_fragments`` forgets the parts the message was joined from.  With
        ``if_awaited`` the row is inserted by the statement that ends the wait, only
        if it did (a part waited on by another node's transaction is waited for):
        else nothing is kept, and it fires with None.
        """
        text = dump(payload)
        node = self.node
        if if_awaited and receipt is not None:
            params: tuple[Any, ...] = (*receipt, kind, text, created)
            sql = _ADD_IF_AWAITED
        else:
            params, sql = (kind, text, created), _ADD

        def write(db: Connection) -> Later:
            added = db.execute(sql, params)
            db.execute(_NOTIFY, (node,))
            if receipt is not None and sql is _ADD:
                db.execute(_END_WAIT, receipt)
            if drop_fragments is not None:
                db.execute("DELETE FROM fragment WHERE key = %s", (drop_fragments,))

            def finish() -> int | None:
                found = added.fetchone()
                return None if found is None else int(found[0])

            return Later(finish)

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

    def claim_inbox(self, node: str, limit: int, lease: float, after_id: int = 0,
                    kinds: tuple[str, ...] | None = None) -> list[InboxRow]:
        """Claim for ``node`` up to ``limit`` rows above ``after_id`` (of ``kinds``) that no
        node holds, lowest id first; see the module docstring."""
        only = "" if kinds is None else " AND kind = ANY(%(kinds)s)"
        found = self._claim_rows(
            f"UPDATE inbox AS i SET claimed_by = %(node)s, lease_until = {_NOW} + %(lease)s,"
            " epoch = i.epoch + 1"
            f" FROM (SELECT id FROM inbox WHERE id > %(after)s{only}"
            f" AND (lease_until IS NULL OR lease_until <= {_NOW})"
            " ORDER BY id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) AS free"
            " WHERE i.id = free.id"
            " RETURNING i.id, i.kind, i.payload, i.attempts, i.created, i.epoch",
            {"node": node, "lease": float(lease), "after": after_id, "kinds": list(kinds or ()),
             "limit": None if limit < 0 else limit})
        return sorted(
            (InboxRow(row_id, kind, json.loads(payload), attempts, created, InboxClaim(node, epoch))
             for row_id, kind, payload, attempts, created, epoch in found),
            key=lambda row: row.id)

    def renew_inbox(self, node: str, rows: list[InboxRow], lease: float) -> set[int]:
        """Extend ``node``'s claims of ``rows`` that it still holds, not lapsed; their ids."""
        held = [(row.id, row.claim.epoch) for row in rows
                if row.claim is not None and row.claim.node == node]
        if not held:
            return set()
        found = self._claim_rows(
            f"UPDATE inbox SET lease_until = {_NOW} + %(lease)s"
            f" WHERE claimed_by = %(node)s AND lease_until > {_NOW}"
            " AND (id, epoch) IN (SELECT * FROM unnest(%(ids)s::bigint[], %(epochs)s::bigint[]))"
            " RETURNING id",
            {"node": node, "lease": float(lease), "ids": [i for i, _ in held],
             "epochs": [e for _, e in held]})
        return {row_id for (row_id,) in found}

    def _claim_rows(self, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        """The rows of a claim's statement, committed at once (the reading connection is in
        autocommit mode), once every write made before is committed."""
        db = self._connection()
        self._writer.wait()
        try:
            return db.execute(sql, params).fetchall()
        except psycopg.Error as error:
            raise StoreError(f"cannot claim inbox rows in the store {self.path}: {error}"
                             ) from error

    def bump_inbox(self, id: int, claim: InboxClaim | None = None, retry_in: float = 0.0
                   ) -> Deferred[int]:
        """Count one more delivery attempt of inbox row ``id``; fires with the new count.
        Given its ``claim``, only while that holds: the claim is released, the row
        claimable again ``retry_in`` seconds from now."""
        params: tuple[Any, ...]
        if claim is None:
            sql, params = ("UPDATE inbox SET attempts = attempts + 1 WHERE id = %s"
                           " RETURNING attempts", (id,))
        else:
            sql, params = ("UPDATE inbox SET attempts = attempts + 1, claimed_by = NULL,"
                           f" lease_until = {_NOW} + %s"
                           " WHERE id = %s AND claimed_by = %s AND epoch = %s RETURNING attempts",
                           (float(retry_in), id, claim.node, claim.epoch))

        def write(db: Connection) -> Later:
            cursor = db.execute(sql, params)

            def finish() -> int:
                found = cursor.fetchone()
                if found is None:
                    held = "" if claim is None else f" claimed by {claim.node} at epoch {claim.epoch}"
                    raise UnknownRow(f"no inbox row {id!r}{held}")
                attempts: int = found[0]
                return attempts

            return Later(finish)

        return self._write(write)

    def remove_inbox(self, id: int, claim: InboxClaim | None = None) -> Deferred[None]:
        """Forget inbox row ``id`` (nothing happens if it is already gone); given its
        ``claim``, only while that holds."""
        if claim is None:
            return self._write(statement("DELETE FROM inbox WHERE id = %s", (id,)))
        return self._write(statement(
            "DELETE FROM inbox WHERE id = %s AND claimed_by = %s AND epoch = %s",
            (id, claim.node, claim.epoch)))

    # -- fragments of long inbound messages ----------------------------------

    def add_fragment(
        self, key: str, seq: int, total: int, payload: dict[str, Any], received: float
    ) -> Deferred[int]:
        """Keep part ``seq`` of the message ``key``; return how many distinct parts of it are kept.

        A repeated part replaces the kept one but keeps its first arrival time.
        """
        text = dump(payload)

        def write(db: Connection) -> Later:
            counted = keep_fragment(db, key, seq, total, text, received)
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
