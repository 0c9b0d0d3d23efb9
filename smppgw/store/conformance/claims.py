"""Conformance tests of the claims (`IOutboundClaims`): what one node sees of them on any store.

On a store of one node claims are no-ops; on a shared one they also keep
other nodes off.  Both give a node the unfinished requests of the server it
binds and write under the claim what the plain writes write: these tests hold
every store to that.  What a shared store adds (requests claimed once,
fencing, parts in doubt) is tested with it.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred

from smppgw.store.claiming import Claim, ClaimedRow, IClaimedWrites, IOutboundClaims
from smppgw.store.conformance.base import Conformance
from smppgw.store.interfaces import DuplicateRequest
from smppgw.store.sole import claims_of


class ClaimsConformance(Conformance):
    """A node's claim of a server's requests, and its writes under it."""

    def claim(self, server: str) -> Claim:
        """A claim this node may write under, for ``server`` (a held bind slot, where leases count)."""
        return Claim(server, 1, "node-a", 1)

    def test_claim_gives_the_servers_unfinished_requests(self) -> None:
        """A claim gives the server's unfinished requests in the order added, with their message
        ids; none of another server, none finished."""
        store = self.store
        for request_id, server, parts in (("r1", "eu", 2), ("r2", "us", 1), ("r3", "eu", 1),
                                          ("r4", "eu", 1)):
            self.written(store.add_outbound(request_id, server, b"pdu", parts, 1.0))
        self.written(store.set_message_id("r1", 1, "M2", "m2"))
        self.written(store.finish("r4", {"ok": True}))
        claims = claims_of(store)
        self.assertTrue(IOutboundClaims.providedBy(claims))
        self.assertEqual(self.written(claims.claim_outbound(self.claim("eu"))).rows, [
            ClaimedRow("r1", 2, (None, "M2"), 1.0), ClaimedRow("r3", 1, (None,), 1.0)])

    def test_writes_under_a_claim(self) -> None:
        """What is written under a claim reads back as the plain writes' does; a part's mark
        needs no wait, or fires once written."""
        claims = claims_of(self.store)
        writes = claims.under(self.claim("eu"))
        self.assertTrue(IClaimedWrites.providedBy(writes))
        seq = self.written(writes.add_outbound("r1", "eu", b"pdu", 2, 1.0))
        marked = writes.mark_submitting("r1", 0)
        if isinstance(marked, Deferred):
            self.assertIsNone(self.written(marked))
        else:
            self.assertIsNone(marked)
        self.written(writes.set_message_id("r1", 0, "M1", "m1", ("eu", 2)))
        self.written(writes.set_message_id("r1", 1, "M2", "m2", ("eu", 2)))
        self.assertEqual(writes.payloads(["r1"]), {"r1": b"pdu"})
        self.assertEqual(claims.finished(["r1"]), [])
        self.written(writes.finish("r1", {"ok": True}))
        (row,) = claims.finished(["r1", "r2"])
        self.assertEqual((row.request_id, row.message_ids, row.outcome, row.seq),
                         ("r1", ("M1", "M2"), {"ok": True}, seq))
        self.assertEqual(self.store.unfinished(), [])

    def test_duplicate_under_a_claim(self) -> None:
        """A request_id kept already, added again under a claim, fails with DuplicateRequest
        carrying the kept row, and changes nothing."""
        self.written(self.store.add_outbound("r1", "eu", b"first", 1, 1.0))
        writes = claims_of(self.store).under(self.claim("eu"))
        error = self.refused(writes.add_outbound("r1", "eu", b"second", 2, 2.0), DuplicateRequest)
        self.assertEqual((error.row.payload, error.row.parts), (b"first", 1))
        self.assertEqual(self.store.payloads(["r1"]), {"r1": b"first"})
