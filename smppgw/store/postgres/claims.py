"""The PostgreSQL store's claims: a node takes a server's requests for its queue, and writes
under its bind slot's lease, each write fenced by it.

A claim (`Claim`: a lease id, its holder and epoch) is written into the
requests it takes (``claimed_by``, ``claim_lease``, ``epoch``); renewing the
lease rewrites one row of ``lease``, not every request.  A request is
claimable when it is unfinished and unclaimed, or claimed under a tenure that
no longer runs (released, lapsed on the database's clock, or of an older
epoch).  Claims go in seq order with ``FOR UPDATE SKIP LOCKED``, so that two
nodes claiming at once never take one request both.

The writes under a claim (`under`) are those of `fenced`: each fails with
:class:`LeaseLost`, writing nothing, once the claim's tenure is over.

The writes notify the other nodes in their transaction (delivered at its
commit): a request stored unclaimed on channel `QUEUED` (its server's name),
an outcome on channel `OUTCOMES` (its server's name).
"""

from __future__ import annotations

from typing import Any

from psycopg import Connection
from twisted.internet.defer import Deferred, fail

from smppgw.store.claiming import Claim, ClaimBatch, ClaimedRow
from smppgw.store.interfaces import LeaseLost, OutboundRow, StoreError
from smppgw.store.postgres.bulk import Later
from smppgw.store.postgres.database import dump
from smppgw.store.postgres.fenced import _HELD, _JOIN_HELD, OUTCOMES, ClaimedWrites
from smppgw.store.postgres.outbound import (
    _FIELDS,
    _MESSAGE_IDS,
    QUEUED,
    OutboundTables,
    _row,
)
from smppgw.store.postgres.writer import Writer

__all__ = ["OUTCOMES", "QUEUED", "ClaimTables"]


def _lost(claim: Claim) -> LeaseLost:
    return LeaseLost(f"{claim.node!r} no longer holds the lease {claim.lease} of server"
                     f" {claim.server!r} at epoch {claim.epoch}: nothing written under it")


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

# At most this many requests expired by one statement: a later round takes the rest.
_EXPIRE_BATCH = 1000

_EXPIRE = f"""
WITH gone AS (
    SELECT o.seq FROM outbound AS o
    WHERE o.outcome IS NULL AND o.created < %(before)s
      AND (o.claim_lease IS NULL OR NOT EXISTS (SELECT 1 FROM lease AS l
           WHERE l.id = o.claim_lease AND l.epoch = o.epoch AND l.holder = o.claimed_by
           AND l.lease_until > clock_timestamp()))
    ORDER BY o.seq LIMIT {_EXPIRE_BATCH} FOR UPDATE OF o SKIP LOCKED),
done AS (
    UPDATE outbound AS o SET outcome = %(outcome)s FROM gone WHERE o.seq = gone.seq
    RETURNING o.server)
SELECT count(*), (SELECT count(pg_notify(%(channel)s, s.server))
                  FROM (SELECT DISTINCT server FROM done) AS s) FROM done
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

    def expire_unclaimed(self, before: float, outcome: dict[str, Any]) -> Deferred[int]:
        """Finish with ``outcome`` up to a thousand unfinished requests created before
        ``before`` that no running lease holds, notifying `OUTCOMES`; fires with how many."""
        params = {"before": before, "outcome": dump(outcome), "channel": OUTCOMES}

        def expire(db: Connection) -> Later:
            cursor = db.execute(_EXPIRE, params)
            return Later(lambda: int((cursor.fetchone() or (0,))[0]))

        try:
            claimer = self._claiming()
        except StoreError:
            return fail()
        return claimer.submit(expire)

    def under(self, claim: Claim) -> ClaimedWrites:
        """The writes fenced by ``claim``."""
        return ClaimedWrites(self, claim)

    def queued(self) -> dict[str, int]:
        """How many unfinished requests each server has, across the nodes."""
        return dict(self._reading(
            "SELECT server, COUNT(*) FROM outbound WHERE outcome IS NULL GROUP BY server"))

    def finished(self, request_ids: list[str]) -> list[OutboundRow]:
        """The finished requests among ``request_ids``."""
        if not request_ids:
            return []
        return [_row(found) for found in self._reading(
            f"SELECT o.seq, {_FIELDS}, {_MESSAGE_IDS} FROM outbound AS o"
            " WHERE o.request_id = ANY(%s) AND o.outcome IS NOT NULL ORDER BY o.seq",
            (list(request_ids),))]
