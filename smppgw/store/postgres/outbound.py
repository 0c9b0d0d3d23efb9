"""The PostgreSQL store's outbound queue: requests, their parts' message ids, receipt deadlines.

A request added here is unclaimed (see `claims` for those added under a claim):
its insert notifies channel `QUEUED` with its server's name, in its
transaction, so that the node binding that server claims it at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import partial
from typing import Any

from psycopg import Connection
from twisted.internet.defer import Deferred, fail

from smppgw.store.interfaces import (
    BadStoreInput,
    BriefRow,
    DueReceipt,
    DuplicateRequest,
    OutboundPayload,
    OutboundRow,
    UnknownRow,
)
from smppgw.store.postgres.bulk import Bulk, Later
from smppgw.store.postgres.database import Database, dump, one, statement
from smppgw.store.writes import Then, then_deferred

# A request's columns after its seq, o.parts last (it sizes the message ids).
_FIELDS = "o.request_id, o.server, o.wire, o.json, o.created, o.outcome, o.parts"

# Every request's message ids come with it, as an array by part index (NULL
# where the SMSC has not accepted the part yet).
_MESSAGE_IDS = (
    "ARRAY(SELECT p.message_id FROM generate_series(0, o.parts - 1) AS i"
    " LEFT JOIN part AS p ON p.request_id = o.request_id AND p.idx = i ORDER BY i)"
)

# A part accepted again takes the new id and key and keeps its deadline, so
# that a receipt that came meanwhile is not awaited again.
_RECORD_PART = (
    "INSERT INTO part (request_id, idx, message_id, server, lookup_key, receipt_due)"
    " VALUES (%s, %s, %s, %s, %s, %s)"
    " ON CONFLICT (request_id, idx) DO UPDATE SET message_id = excluded.message_id,"
    " server = excluded.server, lookup_key = excluded.lookup_key"
)


#: The channel of requests stored unclaimed; the payload is their server's name.
QUEUED = "smppgw_queued"

_TELL = "SELECT pg_notify(%s, s) FROM (SELECT DISTINCT unnest(%s::text[])) AS t(s)"

_ADD = ("INSERT INTO outbound (request_id, server, wire, json, parts, created)"
        " VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (request_id) DO NOTHING RETURNING seq")

_OUTBOUND = f"SELECT o.seq, {_FIELDS}, {_MESSAGE_IDS} FROM outbound AS o WHERE o.request_id = %s"


def _outbound(found: list[tuple[Any, ...]]) -> OutboundRow | None:
    return _row(found[0]) if found else None


def _row(found: tuple[Any, ...]) -> OutboundRow:
    seq, request_id, server, wire, text, created, outcome, parts, message_ids = found
    return OutboundRow(
        request_id, server, bytes(wire) if text is None else json.loads(text), parts,
        tuple(message_ids), created, None if outcome is None else json.loads(outcome), seq)


def _add_one(params: tuple[Any, ...], db: Connection) -> Later:
    """Add one request.  A request_id kept already (through any node) gives no row rather
    than a unique violation (an error in the server's log); then the kept row is read.
    Should another node be adding the same request_id at that moment, the insert waits
    for its commit and sees its row."""
    added = db.execute(_ADD, params)
    db.execute(_TELL, (QUEUED, [params[1]]))
    return Later(lambda: _added(db, params, added.fetchone()))


def _added(db: Connection, params: tuple[Any, ...], found: tuple[Any, ...] | None) -> int:
    """The seq of the request added (``found``), or DuplicateRequest with the kept row."""
    while found is None:
        existing = _outbound(db.execute(_OUTBOUND, (params[0],)).fetchall())
        if existing is not None:
            raise DuplicateRequest(existing)
        # pruned between the two statements: so rare, ask again
        found = db.execute(_ADD, params).fetchone()
    seq: int = found[0]
    return seq


# Many requests in one statement, their seqs counting up in the order given.
_ADD_MANY = (
    "INSERT INTO outbound (request_id, server, wire, json, parts, created)"
    " SELECT r, s, w, j, p, c FROM unnest(%s::text[], %s::text[], %s::bytea[], %s::text[],"
    " %s::integer[], %s::double precision[]) WITH ORDINALITY AS v(r, s, w, j, p, c, n)"
    " ORDER BY n ON CONFLICT (request_id) DO NOTHING RETURNING request_id, seq"
)


def _add_many(db: Connection, rows: list[tuple[Any, ...]]) -> Later:
    columns = tuple(list(column) for column in zip(*rows, strict=True))
    added = db.execute(_ADD_MANY, columns)
    db.execute(_TELL, (QUEUED, columns[1]))

    def finish() -> list[Any]:
        seqs: dict[str, int] = dict(added.fetchall())
        values: list[Any] = []
        for params in rows:
            seq = seqs.get(params[0])
            try:
                values.append(seq if seq is not None else _added(db, params, None))
            except DuplicateRequest as error:
                values.append(error)
        return values

    return Later(finish)


_RECORD_PARTS = (
    "INSERT INTO part (request_id, idx, message_id, server, lookup_key, receipt_due)"
    " SELECT * FROM unnest(%s::text[], %s::integer[], %s::text[], %s::text[], %s::text[],"
    " %s::double precision[])"
    " ON CONFLICT (request_id, idx) DO UPDATE SET message_id = excluded.message_id,"
    " server = excluded.server, lookup_key = excluded.lookup_key"
)


def _record_parts(db: Connection, rows: list[tuple[Any, ...]]) -> Later:
    db.execute(_RECORD_PARTS, tuple(list(column) for column in zip(*rows, strict=True)))
    return Later(lambda: [None] * len(rows))


def _finish_one(params: tuple[str, str], db: Connection) -> Later:
    cursor = db.execute("UPDATE outbound SET outcome = %s WHERE request_id = %s", params)

    def finish() -> None:
        if cursor.rowcount == 0:
            raise UnknownRow(f"no stored request {params[1]!r}")

    return Later(finish)


_FINISH_MANY = (
    "UPDATE outbound AS o SET outcome = v.outcome"
    " FROM unnest(%s::text[], %s::text[]) AS v(outcome, request_id)"
    " WHERE o.request_id = v.request_id RETURNING o.request_id"
)


def _finish_many(db: Connection, rows: list[tuple[str, str]]) -> Later:
    cursor = db.execute(_FINISH_MANY, tuple(list(column) for column in zip(*rows, strict=True)))

    def finish() -> list[Any]:
        found = {request_id for (request_id,) in cursor.fetchall()}
        return [None if request_id in found else UnknownRow(f"no stored request {request_id!r}")
                for _, request_id in rows]

    return Later(finish)


class OutboundTables(Database):
    """The outbound queue of a store: tables ``outbound`` and ``part``."""

    def add_outbound(
        self, request_id: str, server: str, payload: OutboundPayload, parts: int, created: float,
        then: Then | None = None,
    ) -> Deferred[int] | None:
        """Keep a new request; fires with its seq once committed, or fails with
        :class:`DuplicateRequest` if its request_id is kept already, through this node or another."""
        if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
            raise BadStoreInput(f"parts must be a positive integer: {parts!r}")
        wire, text = (payload, None) if isinstance(payload, bytes) else (None, dump(payload))
        params = (request_id, server, wire, text, parts, created)

        return then_deferred(self._write(Bulk(partial(_add_one, params), _add_many,
                                              ("outbound", request_id), params)), then)

    def outbound(self, request_id: str) -> OutboundRow | None:
        """Return the kept request ``request_id``, finished or not, or None."""
        return _outbound(self._reading(_OUTBOUND, (request_id,)))

    def _unfinished(self, columns: str, server: str | None) -> Iterator[tuple[Any, ...]]:
        """Each unfinished request's ``columns`` (the last of them o.parts) and its message ids.

        One join in (seq, idx) order, grouped here: four times as fast as an
        array built per request by the server, for a queue of 100,000.
        """
        where, params = ("", ()) if server is None else (" AND o.server = %s", (server,))
        rows = self._reading(
            f"SELECT o.seq, {columns}, p.idx, p.message_id"
            f" FROM outbound AS o LEFT JOIN part AS p ON p.request_id = o.request_id"
            f" WHERE o.outcome IS NULL{where} ORDER BY o.seq, p.idx",
            params,
        )
        current: tuple[Any, ...] | None = None
        message_ids: list[str | None] = []
        for found in rows:
            if current is None or found[0] != current[0]:
                if current is not None:
                    yield (*current, tuple(message_ids))
                current = found[:-2]
                message_ids = [None] * current[-1]
            if found[-2] is not None:
                message_ids[found[-2]] = found[-1]
        if current is not None:
            yield (*current, tuple(message_ids))

    def unfinished(self, server: str | None = None) -> list[OutboundRow]:
        """Return the unfinished requests (of ``server``, or all) in the order they were added."""
        return [_row(found) for found in self._unfinished(_FIELDS, server)]

    def unfinished_brief(self, server: str | None = None) -> Iterator[BriefRow]:
        """Yield each unfinished request without its payload, in the order they were added.

        Read whole before the first is given: the caller may finish requests meanwhile.
        """
        for _seq, request_id, name, created, parts, message_ids in self._unfinished(
            "o.request_id, o.server, o.created, o.parts", server
        ):
            yield request_id, name, parts, message_ids, created

    def payloads(self, request_ids: list[str]) -> dict[str, OutboundPayload]:
        """Return the payloads of those of ``request_ids`` that are kept, by request_id."""
        return {
            request_id: bytes(wire) if text is None else json.loads(text)
            for request_id, wire, text in self._reading(
                "SELECT request_id, wire, json FROM outbound WHERE request_id = ANY(%s)",
                (list(request_ids),),
            )
        }

    def set_message_id(
        self,
        request_id: str,
        index: int,
        message_id: str,
        lookup_key: str,
        known: tuple[str, int] | None = None,
        receipt_due: float | None = None,
        then: Then | None = None,
    ) -> Deferred[None] | None:
        """Record that the SMSC accepted part ``index`` (from 0) of ``request_id`` as ``message_id``."""
        if known is None:
            found = self._reading(
                "SELECT server, parts FROM outbound WHERE request_id = %s", (request_id,))
            if not found:
                return then_deferred(fail(UnknownRow(f"no stored request {request_id!r}")), then)
            known = (found[0][0], found[0][1])
        server, parts = known
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < parts:
            raise BadStoreInput(
                f"part index {index!r} is out of range for request {request_id!r} of {parts} parts")
        params = (request_id, index, message_id, server, lookup_key, receipt_due)
        return then_deferred(self._write(Bulk(statement(_RECORD_PART, params), _record_parts,
                                              ("part", request_id, index), params)), then)

    def finish(self, request_id: str, outcome: dict[str, Any], then: Then | None = None
               ) -> Deferred[None] | None:
        """Record the final outcome of ``request_id``; a second call replaces the first."""
        text = dump(outcome)

        return then_deferred(self._write(Bulk(partial(_finish_one, (text, request_id)),
                                              _finish_many, ("outbound", request_id),
                                              (text, request_id))), then)

    def find_outbound(self, fragment: bytes, limit: int = 50) -> list[OutboundRow]:
        """The newest requests (at most ``limit``, newest first) whose encoded PDUs hold
        ``fragment``: for an operator's search by phone number (a scan of the table)."""
        return [_row(found) for found in self._reading(
            f"SELECT o.seq, {_FIELDS}, {_MESSAGE_IDS} FROM outbound AS o"
            " WHERE o.wire IS NOT NULL AND position(%s::bytea in o.wire) > 0"
            " ORDER BY o.seq DESC LIMIT %s", (fragment, limit))]

    def receipt_deadlines(self, request_id: str) -> dict[int, float]:
        """When each accepted part of ``request_id`` still awaiting its receipt gives up, by index."""
        return {index: due for index, due in self._reading(
            "SELECT idx, receipt_due FROM part WHERE request_id = %s AND receipt_due IS NOT NULL",
            (request_id,))}

    # -- delivery receipts ---------------------------------------------------

    def lookup_message(self, server: str, lookup_key: str) -> tuple[str, int] | None:
        """Return (request_id, part index) of the part ``server`` accepted as ``lookup_key``;
        should an SMSC reuse an id, the part of the newest request wins."""
        found = self._reading(
            "SELECT p.request_id, p.idx FROM part AS p"
            " JOIN outbound AS o ON o.request_id = p.request_id"
            " WHERE p.server = %s AND p.lookup_key = %s ORDER BY o.seq DESC, p.idx DESC LIMIT 1",
            (server, lookup_key),
        )
        return (found[0][0], found[0][1]) if found else None

    def receipt_came(self, request_id: str, index: int) -> Deferred[None]:
        """Part ``index`` of ``request_id`` has its final receipt: no longer await it."""
        return self._write(statement(
            "UPDATE part SET receipt_due = NULL"
            " WHERE request_id = %s AND idx = %s AND receipt_due IS NOT NULL",
            (request_id, index)))

    def next_receipt_due(self) -> float | None:
        """Return the earliest deadline of a part still awaiting its receipt, or None."""
        ((due,),) = self._reading("SELECT MIN(receipt_due) FROM part WHERE receipt_due IS NOT NULL")
        return None if due is None else float(due)

    def due_receipts(self, now: float, limit: int = 500) -> list[DueReceipt]:
        """Return up to ``limit`` parts whose receipt deadline is ``now`` or earlier, earliest first."""
        return [
            DueReceipt(request_id, index, message_id, server, parts, due)
            for request_id, index, message_id, server, parts, due in self._reading(
                "SELECT p.request_id, p.idx, p.message_id, p.server, o.parts, p.receipt_due"
                " FROM part AS p JOIN outbound AS o ON o.request_id = p.request_id"
                " WHERE p.receipt_due IS NOT NULL AND p.receipt_due <= %s"
                " ORDER BY p.receipt_due LIMIT %s",
                (now, None if limit < 0 else limit),
            )
        ]

    # -- maintenance ---------------------------------------------------------

    def prune(self, now: float) -> int:
        """Forget finished requests created more than `retention` before ``now``, with their
        parts, walking them in the order they were added; return how many."""
        before = now - self.retention

        def write(db: Connection) -> int:
            # The first request kept by its time bounds the walk (a clock set
            # back leaves the finished rows after it for a later prune).
            (limit,) = one(db.execute(
                "SELECT COALESCE((SELECT seq FROM outbound WHERE created >= %s ORDER BY seq LIMIT 1),"
                " (SELECT MAX(seq) + 1 FROM outbound), 0)",
                (before,),
            ).fetchone())
            gone = [request_id for (request_id,) in db.execute(
                "DELETE FROM outbound WHERE seq < %s AND outcome IS NOT NULL RETURNING request_id",
                (limit,),
            )]
            db.execute("DELETE FROM part WHERE request_id = ANY(%s)", (gone,))
            return len(gone)

        removed: int = self._write_now(write)
        return removed
