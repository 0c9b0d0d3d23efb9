"""Claims on a store of one node (SQLite, memory): `IOutboundClaims` as no-ops.

With one node there is no one to share a server's requests with: a claim
gives every unfinished request of the server (each time it is asked), a
write under a claim is the store's own write, and no part needs marking
before its submit_sm leaves.  `claims_of` gives a store's claims: its own
where it has them (PostgreSQL), these otherwise.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from smppgw.store.claiming import Claim, ClaimBatch, ClaimedRow, IClaimedWrites, IOutboundClaims
from smppgw.store.interfaces import OutboundPayload, OutboundRow
from smppgw.store.writes import Then

__all__ = ["SoleClaims", "claims_of"]


@implementer(IClaimedWrites)
class SoleWrites:
    """The writes of ``store`` under ``claim``: the store's own."""

    def __init__(self, store: Any, claim: Claim) -> None:
        self.store = store
        self.claim = claim

    def add_outbound(self, request_id: str, server: str, payload: OutboundPayload, parts: int,
                     created: float, then: Then | None = None) -> Deferred[int] | None:
        return self.store.add_outbound(  # type: ignore[no-any-return]
            request_id, server, payload, parts, created, then=then)

    def set_message_id(self, request_id: str, index: int, message_id: str, lookup_key: str,
                       known: tuple[str, int] | None = None,
                       receipt_due: float | None = None,
                       then: Then | None = None) -> Deferred[None] | None:
        return self.store.set_message_id(  # type: ignore[no-any-return]
            request_id, index, message_id, lookup_key, known, receipt_due, then=then)

    def finish(self, request_id: str, outcome: dict[str, Any], then: Then | None = None
               ) -> Deferred[None] | None:
        return self.store.finish(request_id, outcome, then=then)  # type: ignore[no-any-return]

    def payloads(self, request_ids: list[str]) -> dict[str, OutboundPayload]:
        return self.store.payloads(request_ids)  # type: ignore[no-any-return]

    def mark_submitting(self, request_id: str, index: int) -> None:
        return None


@implementer(IOutboundClaims)
class SoleClaims:
    """`IOutboundClaims` of ``store``, a store no other node writes to."""

    shared = False

    def __init__(self, store: Any) -> None:
        self.store = store

    def claim_outbound(self, claim: Claim, limit: int = 10000,
                       after: int = 0) -> Deferred[ClaimBatch]:
        rows: list[ClaimedRow] = []
        for request_id, _server, parts, message_ids, created in self.store.unfinished_brief(
                claim.server):
            if len(rows) >= limit:
                break
            rows.append(ClaimedRow(request_id, parts, message_ids, created))
        return succeed(ClaimBatch(rows))

    def under(self, claim: Claim) -> SoleWrites:
        return SoleWrites(self.store, claim)

    def expire_unclaimed(self, before: float, outcome: dict[str, Any]) -> Deferred[int]:
        return succeed(0)

    def queued(self) -> dict[str, int]:
        counted: dict[str, int] = {}
        for brief in self.store.unfinished_brief():
            counted[brief[1]] = counted.get(brief[1], 0) + 1
        return counted

    def finished(self, request_ids: list[str]) -> list[OutboundRow]:
        found = (self.store.outbound(request_id) for request_id in dict.fromkeys(request_ids))
        return sorted((row for row in found if row is not None and row.outcome is not None),
                      key=lambda row: row.seq)


def claims_of(store: Any) -> Any:
    """The `IOutboundClaims` of ``store``: its own, or `SoleClaims` for a store of one node."""
    return store if IOutboundClaims.providedBy(store) else SoleClaims(store)
