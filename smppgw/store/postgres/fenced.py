"""The PostgreSQL store's writes under a claim (`ClaimedWrites`), each fenced by its lease.

A write under a claim (a part's message id, a part marked as being
submitted, an outcome) checks in its own statement that the claim's tenure
still runs, and holds the lease's row (``FOR SHARE``) until its transaction
ends: a node taking the lease over waits for that commit, so no write of the
old tenure lands after the new one began.  A write whose tenure is over
writes nothing and fails with :class:`LeaseLost`.  A request accepted under
a claim is stored claimed, not fenced (see `_add_claimed`).  Like writes of
a batch go as one statement of many rows (see `bulk`), whatever claim each
is under.

A part's mark (a row of ``submitting``) goes once its message id, or its
request's outcome, is recorded: the table holds the parts on their way.  An
outcome notifies channel `OUTCOMES` (its server's name) in its transaction.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from psycopg import Connection
from twisted.internet.defer import Deferred, fail
from zope.interface import implementer

from smppgw.store.claiming import Claim, IClaimedWrites
from smppgw.store.interfaces import BadStoreInput, LeaseLost, OutboundPayload, UnknownRow
from smppgw.store.postgres.bulk import Bulk, Later
from smppgw.store.postgres.database import dump
from smppgw.store.postgres.outbound import _TELL, _added
from smppgw.store.writes import Then, then_deferred

if TYPE_CHECKING:
    from smppgw.store.postgres.claims import ClaimTables

__all__ = ["OUTCOMES", "ClaimedWrites"]

#: The channel of outcomes written; the payload is their server's name.
OUTCOMES = "smppgw_outcome"

# The tenures of the claims named in v (a CTE with columns lease, epoch, node) that run,
# each lease row held until the transaction ends.
_HELD = ("held AS (SELECT l.id, l.epoch, l.holder FROM lease AS l"
         " WHERE l.id IN (SELECT lease FROM v) AND l.lease_until > clock_timestamp() FOR SHARE)")
_JOIN_HELD = "JOIN held AS h ON h.id = v.lease AND h.epoch = v.epoch AND h.holder = v.node"
_LEFT_HELD = "LEFT " + _JOIN_HELD


def _columns(rows: list[tuple[Any, ...]]) -> tuple[list[Any], ...]:
    return tuple(list(column) for column in zip(*rows, strict=True))


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
                     created: float, then: Then | None = None) -> Deferred[int] | None:
        if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
            raise BadStoreInput(f"parts must be a positive integer: {parts!r}")
        wire, text = (payload, None) if isinstance(payload, bytes) else (None, dump(payload))
        row = (request_id, server, wire, text, parts, created, self.claim.node, self.claim.lease,
               self.claim.epoch)
        return then_deferred(self.store._write(Bulk(_single(_add_claimed, row), _add_claimed,
                                                    ("outbound", request_id), row)), then)

    def set_message_id(self, request_id: str, index: int, message_id: str, lookup_key: str,
                       known: tuple[str, int] | None = None,
                       receipt_due: float | None = None,
                       then: Then | None = None) -> Deferred[None] | None:
        if known is None:
            found = self.store.outbound(request_id)
            if found is None:
                return then_deferred(fail(UnknownRow(f"no stored request {request_id!r}")), then)
            known = (found.server, found.parts)
        server, parts = known
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < parts:
            raise BadStoreInput(
                f"part index {index!r} is out of range for request {request_id!r} of {parts} parts")
        row = (request_id, index, message_id, server, lookup_key, receipt_due, *self._tenure)
        return then_deferred(self.store._write(Bulk(_single(_parts, row), _parts,
                                                    ("part", request_id, index), row)), then)

    def mark_submitting(self, request_id: str, index: int) -> Deferred[None]:
        row = (request_id, index, *self._tenure)
        return self.store._write(Bulk(_single(_marks, row), _marks,
                                      ("submitting", request_id, index), row))

    def finish(self, request_id: str, outcome: dict[str, Any], then: Then | None = None
               ) -> Deferred[None] | None:
        row = (dump(outcome), request_id, *self._tenure, self.claim.server)
        return then_deferred(self.store._write(Bulk(_single(_finishes, row), _finishes,
                                                    ("outbound", request_id), row)), then)

    def payloads(self, request_ids: list[str]) -> dict[str, OutboundPayload]:
        return self.store.payloads(request_ids)
