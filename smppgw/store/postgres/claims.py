"""The PostgreSQL store's claims: a node takes a server's requests for its queue, and writes
under its bind slot's lease, each write fenced by it.

A claim (`Claim`: a lease id, its holder and epoch) is written into the
requests it takes (``claimed_by``, ``claim_lease``, ``epoch``); renewing the
lease rewrites one row of ``lease``, not every request.  A request is
claimable when it is unfinished and unclaimed, or claimed under a tenure that
no longer runs (released, lapsed on the database's clock, or of an older
epoch).  Claims go in seq order with ``FOR UPDATE SKIP LOCKED``, so that two
nodes claiming at once never take one request both.

A part's mark (a row of ``submitting``) goes once its message id, or its
request's outcome, is recorded: the table holds the parts on their way.

Every write under a claim (a part's message id, a part marked as being
submitted, an outcome; a request accepted is claimed, not fenced: see
`_add_claimed`) checks in its own statement that the claim's tenure still
runs, and holds the lease's row (``FOR SHARE``) until its transaction ends: a
node taking the lease over waits for that commit, so no write of the old
tenure lands after the new one began.  A write whose tenure
is over writes nothing and fails with :class:`LeaseLost`.

The writes notify the other nodes in their transaction (delivered at its
commit): a request stored unclaimed on channel `QUEUED` (its server's name),
an outcome on channel `OUTCOMES` (its server's name).
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection
from twisted.internet.defer import Deferred, fail
from zope.interface import implementer

from smppgw.store.interfaces import (
    BadStoreInput,
    Claim,
    ClaimBatch,
    ClaimedRow,
    IClaimedWrites,
    LeaseLost,
    OutboundPayload,
    OutboundRow,
    StoreError,
    UnknownRow,
)
from smppgw.store.postgres.bulk import Bulk, Later
from smppgw.store.postgres.database import dump
from smppgw.store.postgres.outbound import (
    _FIELDS,
    _MESSAGE_IDS,
    _TELL,
    QUEUED,
    OutboundTables,
    _added,
    _row,
)
from smppgw.store.postgres.writer import Writer

__all__ = ["OUTCOMES", "QUEUED", "ClaimTables", "ClaimedWrites"]

#: The channel of outcomes written; the payload is their server's name.
OUTCOMES = "smppgw_outcome"

# The tenures of the claims named in v (a CTE with columns lease, epoch, node) that run,
# each lease row held until the transaction ends.
_HELD = ("held AS (SELECT l.id, l.epoch, l.holder FROM lease AS l"
         " WHERE l.id IN (SELECT lease FROM v) AND l.lease_until > clock_timestamp() FOR SHARE)")
_JOIN_HELD = "JOIN held AS h ON h.id = v.lease AND h.epoch = v.epoch AND h.holder = v.node"
_LEFT_HELD = "LEFT " + _JOIN_HELD


def _lost(claim: Claim) -> LeaseLost:
    return LeaseLost(f"{claim.node!r} no longer holds the lease {claim.lease} of server"
                     f" {claim.server!r} at epoch {claim.epoch}: nothing written under it")


def _columns(rows: list[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    return tuple(list(column) for column in zip(*rows, strict=True))


# -- a server's requests claimed ----------------------------------------------

_CLAIM = f"""
WITH v AS (SELECT %(lease)s::bigint AS lease, %(epoch)s::bigint AS epoch, %(node)s::text AS node),
{_HELD},
-- The requests of this claim are left out first, without a look at their lease: on the
-- node that holds a large backlog, a whole claim reads no lease row per request.
free AS (
    SELECT o.seq FROM outbound AS o
    WHERE o.server = %(server)s AND o.outcome IS NULL AND o.seq > %(after)s
      AND EXISTS (SELECT 1 FROM v {_JOIN_HELD})
      AND (o.claim_lease IS NULL OR ((o.claim_lease, o.epoch) <> (%(lease)s, %(epoch)s)
          AND NOT EXISTS (SELECT 1 FROM lease AS l WHERE l.id = o.claim_lease
              AND l.epoch = o.epoch AND l.holder = o.claimed_by
              AND l.lease_until > clock_timestamp())))
    ORDER BY o.seq LIMIT %(limit)s FOR UPDATE OF o SKIP LOCKED),
taken AS (
    UPDATE outbound AS o SET claimed_by = %(node)s, claim_lease = %(lease)s, epoch = %(epoch)s
    FROM free WHERE o.seq = free.seq RETURNING o.seq, o.request_id, o.parts, o.created)
SELECT t.seq, t.request_id, t.parts, t.created,
    ARRAY(SELECT p.message_id FROM generate_series(0, t.parts - 1) AS i
          LEFT JOIN part AS p ON p.request_id = t.request_id AND p.idx = i ORDER BY i),
    ARRAY(SELECT s.idx FROM submitting AS s WHERE s.request_id = t.request_id
          AND NOT EXISTS (SELECT 1 FROM part AS p WHERE p.request_id = s.request_id
                          AND p.idx = s.idx) ORDER BY s.idx)
FROM taken AS t ORDER BY t.seq
"""

_STILL_HELD = ("SELECT 1 FROM lease WHERE id = %s AND epoch = %s AND holder = %s"
               " AND lease_until > clock_timestamp()")


def _claim(claim: Claim, limit: int, after: int, db: Connection) -> Later:
    params = {"lease": claim.lease, "epoch": claim.epoch, "node": claim.node,
              "server": claim.server, "limit": limit, "after": after}
    rows = db.execute(_CLAIM, params)
    held = db.execute(_STILL_HELD, (claim.lease, claim.epoch, claim.node))
    # What the claim saw: a request of a lower seq not committed yet (a concurrent insert)
    # is left to a later claim without ``after``.
    seen = db.execute("SELECT COALESCE(MAX(seq), 0) FROM outbound")

    def finish() -> ClaimBatch:
        found = rows.fetchall()
        if held.fetchone() is None:
            raise _lost(claim)
        taken = [ClaimedRow(request_id, parts, tuple(message_ids), created, tuple(doubt), seq)
                 for seq, request_id, parts, created, message_ids, doubt in found]
        (highest,) = seen.fetchone() or (0,)
        return ClaimBatch(taken, taken[-1].seq if len(taken) >= limit else max(highest, after))

    return Later(finish)


# -- requests accepted under a claim ------------------------------------------

_ADD_CLAIMED = (
    "INSERT INTO outbound (request_id, server, wire, json, parts, created, claimed_by,"
    " claim_lease, epoch)"
    " SELECT r, s, w, j, p, c, n, l, e FROM unnest(%s::text[], %s::text[], %s::bytea[],"
    " %s::text[], %s::integer[], %s::double precision[], %s::text[], %s::bigint[],"
    " %s::bigint[]) WITH ORDINALITY AS v(r, s, w, j, p, c, n, l, e, k)"
    " ORDER BY k ON CONFLICT (request_id) DO NOTHING RETURNING request_id, seq"
)


def _add_claimed(db: Connection, rows: list[tuple[Any, ...]]) -> Later:
    """Add requests claimed as they are written: no fence (a claim whose tenure is over
    leaves the request claimable by the next holder, which is what an unclaimed one is)."""
    added = db.execute(_ADD_CLAIMED, _columns(rows))

    def finish() -> list[Any]:
        seqs: dict[str, int] = dict(added.fetchall())
        values: list[Any] = []
        for params in rows:
            seq = seqs.get(params[0])
            if seq is not None:
                values.append(seq)
                continue
            try:
                values.append(_added(db, params[:6], None))
            except Exception as error:  # noqa: BLE001 - DuplicateRequest, that write's own
                values.append(error)
        return values

    return Later(finish)


# -- fenced writes: parts accepted, parts being submitted, outcomes ----------

_PARTS = f"""
WITH v AS (SELECT * FROM unnest(%s::text[], %s::integer[], %s::text[], %s::text[], %s::text[],
           %s::double precision[], %s::bigint[], %s::bigint[], %s::text[])
           AS v(request_id, idx, message_id, server, lookup_key, receipt_due, lease, epoch, node)),
{_HELD},
written AS (
    INSERT INTO part (request_id, idx, message_id, server, lookup_key, receipt_due)
    SELECT v.request_id, v.idx, v.message_id, v.server, v.lookup_key, v.receipt_due
    FROM v {_JOIN_HELD}
    ON CONFLICT (request_id, idx) DO UPDATE SET message_id = excluded.message_id,
        server = excluded.server, lookup_key = excluded.lookup_key
    RETURNING request_id, idx),
settled AS (
    DELETE FROM submitting AS s USING written AS w
    WHERE s.request_id = w.request_id AND s.idx = w.idx)
SELECT v.request_id, v.idx, h.id IS NOT NULL FROM v {_LEFT_HELD}
"""

_MARKS = f"""
WITH v AS (SELECT * FROM unnest(%s::text[], %s::integer[], %s::bigint[], %s::bigint[],
           %s::text[]) AS v(request_id, idx, lease, epoch, node)),
{_HELD},
written AS (
    INSERT INTO submitting (request_id, idx, node, lease, epoch, since)
    SELECT v.request_id, v.idx, v.node, v.lease, v.epoch, now() FROM v {_JOIN_HELD}
    ON CONFLICT (request_id, idx) DO UPDATE SET node = excluded.node, lease = excluded.lease,
        epoch = excluded.epoch, since = excluded.since
    RETURNING request_id)
SELECT v.request_id, v.idx, h.id IS NOT NULL FROM v {_LEFT_HELD}
"""

_FINISH = f"""
WITH v AS (SELECT * FROM unnest(%s::text[], %s::text[], %s::bigint[], %s::bigint[], %s::text[])
           AS v(outcome, request_id, lease, epoch, node)),
{_HELD},
written AS (
    UPDATE outbound AS o SET outcome = v.outcome FROM v {_JOIN_HELD}
    WHERE o.request_id = v.request_id RETURNING o.request_id),
settled AS (DELETE FROM submitting AS s USING written AS w WHERE s.request_id = w.request_id)
SELECT v.request_id, h.id IS NOT NULL, w.request_id IS NOT NULL
FROM v {_LEFT_HELD} LEFT JOIN written AS w ON w.request_id = v.request_id
"""

def _parts(db: Connection, rows: list[tuple[Any, ...]]) -> Later:
    cursor = db.execute(_PARTS, _columns(rows))
    return Later(lambda: _outcomes(cursor.fetchall(), rows, 2))


def _marks(db: Connection, rows: list[tuple[Any, ...]]) -> Later:
    cursor = db.execute(_MARKS, _columns(rows))
    return Later(lambda: _outcomes(cursor.fetchall(), rows, 2))


def _finishes(db: Connection, rows: list[tuple[Any, ...]]) -> Later:
    cursor = db.execute(_FINISH, _columns([row[:5] for row in rows]))
    db.execute(_TELL, (OUTCOMES, [row[-1] for row in rows]))

    def finish() -> list[Any]:
        found = {request_id: (held, written) for request_id, held, written in cursor.fetchall()}
        values: list[Any] = []
        for row in rows:
            held, written = found.get(row[1], (False, False))
            values.append(None if written else UnknownRow(f"no stored request {row[1]!r}")
                          if held else _lost_row(row[-4:-1]))
        return values

    return Later(finish)


def _outcomes(found: list[tuple[Any, ...]], rows: list[tuple[Any, ...]], key: int) -> list[Any]:
    """Each row's value (None, or LeaseLost) from (its first ``key`` columns..., held)."""
    held = {tuple(r[:key]): r[key] for r in found}
    return [None if held.get(tuple(row[:key])) else _lost_row(row[-3:]) for row in rows]


def _lost_row(tenure: tuple[Any, ...]) -> LeaseLost:
    lease, epoch, node = tenure
    return LeaseLost(f"{node!r} no longer holds the lease {lease} at epoch {epoch}:"
                     " nothing written under it")


def _single(many: Any, row: tuple[Any, ...]) -> Any:
    """The write of one row alone: the bulk statement of one, its value or its error raised."""

    def write(db: Connection) -> Later:
        later = many(db, [row])

        def finish() -> Any:
            (value,) = later.finish()
            if isinstance(value, BaseException):
                raise value
            return value

        return Later(finish)

    return write


@implementer(IClaimedWrites)
class ClaimedWrites:
    """The writes of ``store`` under ``claim`` (see the module docstring)."""

    def __init__(self, store: ClaimTables, claim: Claim) -> None:
        self.store = store
        self.claim = claim
        self._tenure = (claim.lease, claim.epoch, claim.node)

    def add_outbound(self, request_id: str, server: str, payload: OutboundPayload, parts: int,
                     created: float) -> Deferred[int]:
        if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
            raise BadStoreInput(f"parts must be a positive integer: {parts!r}")
        wire, text = (payload, None) if isinstance(payload, bytes) else (None, dump(payload))
        row = (request_id, server, wire, text, parts, created, self.claim.node, self.claim.lease,
               self.claim.epoch)
        return self.store._write(Bulk(_single(_add_claimed, row), _add_claimed,
                                      ("outbound", request_id), row))

    def set_message_id(self, request_id: str, index: int, message_id: str, lookup_key: str,
                       known: tuple[str, int] | None = None,
                       receipt_due: float | None = None) -> Deferred[None]:
        if known is None:
            found = self.store.outbound(request_id)
            if found is None:
                return fail(UnknownRow(f"no stored request {request_id!r}"))
            known = (found.server, found.parts)
        server, parts = known
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < parts:
            raise BadStoreInput(
                f"part index {index!r} is out of range for request {request_id!r} of {parts} parts")
        row = (request_id, index, message_id, server, lookup_key, receipt_due, *self._tenure)
        return self.store._write(Bulk(_single(_parts, row), _parts, ("part", request_id, index),
                                      row))

    def mark_submitting(self, request_id: str, index: int) -> Deferred[None]:
        row = (request_id, index, *self._tenure)
        return self.store._write(Bulk(_single(_marks, row), _marks,
                                      ("submitting", request_id, index), row))

    def finish(self, request_id: str, outcome: dict[str, Any]) -> Deferred[None]:
        row = (dump(outcome), request_id, *self._tenure, self.claim.server)
        return self.store._write(Bulk(_single(_finishes, row), _finishes,
                                      ("outbound", request_id), row))

    def payloads(self, request_ids: list[str]) -> dict[str, OutboundPayload]:
        return self.store.payloads(request_ids)


class ClaimTables(OutboundTables):
    """`IOutboundClaims` of the PostgreSQL store (a base of `PostgresStore`).

    Claims run on a connection and a thread of their own (a second `Writer`, started
    at the first claim): a whole claim walks the server's unfinished requests, and
    the writes of the queue must not wait for it.
    """

    #: Several nodes may write to this store.
    shared = True
    _claimer: Writer | None = None

    def _claiming(self) -> Writer:
        if self._closed:
            raise StoreError(f"the store {self.path} is closed")
        if self._claimer is None:
            self._claimer = Writer(self._connect, self.path, self._call_from_thread,
                                   name="smppgw-postgres-claims")
        return self._claimer

    def settle(self) -> None:
        """Wait until every write and claim made so far is committed, and fire their Deferreds."""
        if self._claimer is not None:
            self._claimer.wait()
            self._claimer.deliver()
        super().settle()

    def close(self) -> None:
        if self._claimer is not None and not self._closed:
            self._claimer.stop()
        super().close()

    def claim_outbound(self, claim: Claim, limit: int = 10000,
                       after: int = 0) -> Deferred[ClaimBatch]:
        """Claim up to ``limit`` of ``claim.server``'s claimable requests (see the module
        docstring) of a seq above ``after``, oldest first; fails with :class:`LeaseLost`
        if its tenure is over."""
        try:
            claimer = self._claiming()
        except StoreError:
            return fail()
        return claimer.submit(lambda db: _claim(claim, limit, after, db))

    def under(self, claim: Claim) -> ClaimedWrites:
        """The writes fenced by ``claim``."""
        return ClaimedWrites(self, claim)

    def finished(self, request_ids: list[str]) -> list[OutboundRow]:
        """The finished requests among ``request_ids``."""
        if not request_ids:
            return []
        return [_row(found) for found in self._reading(
            f"SELECT o.seq, {_FIELDS}, {_MESSAGE_IDS} FROM outbound AS o"
            " WHERE o.request_id = ANY(%s) AND o.outcome IS NOT NULL ORDER BY o.seq",
            (list(request_ids),))]
