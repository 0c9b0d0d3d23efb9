"""The PostgreSQL store's claims: each unfinished request is one node's, under its bind slot's
lease; writes under a lease that no longer runs are fenced off; parts in doubt are told apart.

On the PostgreSQL server of ``SMPPGW_TEST_POSTGRES`` (see test_store_postgres): skipped
without it, failed under CI=true.  A lease is made to run out by moving its ``lease_until``
into the past, never by waiting.
"""

from __future__ import annotations

from typing import Any

from smppgw.cluster import leases
from smppgw.cluster.connection import connect
from smppgw.cluster.leases import LeaseKey
from smppgw.store.claiming import Claim, ClaimedRow
from smppgw.store.interfaces import LeaseLost
from smppgw.store.postgres import PostgresStore

from .test_store_postgres import OnPostgres

SLOT = LeaseKey.bind("eu")


class ClaimTests(OnPostgres):
    """Two nodes' stores on one database claim the requests of server eu."""

    def setUp(self) -> None:
        super().setUp()
        self.a, self.b = self.open(), self.open()
        self.leases = connect(self.url())
        self.addCleanup(self.leases.close)

    def take(self, node: str, key: LeaseKey = SLOT) -> Claim:
        tenure = leases.acquire(self.leases, key, node, 60)
        assert tenure is not None, f"{key} is held"
        return Claim(key.name, tenure.lease, node, tenure.epoch)

    def expire(self, key: LeaseKey = SLOT) -> None:
        self.admin.execute(
            f"UPDATE {self.schema}.lease SET lease_until = now() - interval '1 second'"
            " WHERE kind = %s AND name = %s AND slot = %s", key.params())

    def add(self, store: PostgresStore, *request_ids: str, parts: int = 1,
            server: str = "eu") -> None:
        for request_id in request_ids:
            self.written(store, store.add_outbound(request_id, server, b"pdu", parts, 1.0))

    def claimed(self, store: PostgresStore, claim: Claim) -> list[str]:
        return [row.request_id for row in self.written(store, store.claim_outbound(claim)).rows]

    def claims(self) -> list[tuple[Any, ...]]:
        return self.admin.execute(
            f"SELECT request_id, claimed_by, epoch FROM {self.schema}.outbound ORDER BY seq"
        ).fetchall()

    def test_claimed_once_while_the_lease_runs(self) -> None:
        """A node's claim takes the unclaimed requests of its server, in order, once; another
        node's claim (of another slot of the server) takes none of them while that lease runs,
        only those added since; a request added claimed is the claimer's."""
        mine = self.take("a")
        self.add(self.b, "r1", "r2")
        self.add(self.b, "x1", server="us")
        self.assertEqual(self.claimed(self.a, mine), ["r1", "r2"])
        self.assertEqual(self.claimed(self.a, mine), [])
        self.written(self.a, self.a.under(mine).add_outbound("r3", "eu", b"pdu", 1, 2.0))
        self.add(self.b, "r4")
        theirs = self.take("b", LeaseKey.bind("eu", 1))
        self.assertEqual(self.claimed(self.b, theirs), ["r4"])
        self.assertEqual(self.claimed(self.a, mine), [])
        self.assertEqual(self.claims(), [("r1", "a", 1), ("r2", "a", 1), ("x1", None, 0),
                                         ("r3", "a", 1), ("r4", "b", 1)])

    def test_lapsed_claims_are_taken_over(self) -> None:
        """Once a node's lease lapses (no one has taken its slot yet), the holder of the
        server's other slot claims its unfinished requests (not the finished ones) with the
        message ids recorded; a claim of a tenure that is over claims nothing and says so."""
        mine = self.take("a")
        self.add(self.a, "r1", "r3", parts=2)
        self.add(self.a, "r2")
        self.assertEqual(self.claimed(self.a, mine), ["r1", "r3", "r2"])
        writes = self.a.under(mine)
        self.written(self.a, writes.set_message_id("r1", 0, "M1", "m1", ("eu", 2)))
        self.written(self.a, writes.finish("r2", {"ok": True}))
        theirs = self.take("b", LeaseKey.bind("eu", 1))
        self.assertEqual(self.claimed(self.b, theirs), [])
        self.expire()
        self.assertEqual(self.written(self.b, self.b.claim_outbound(theirs)).rows, [
            ClaimedRow("r1", 2, ("M1", None), 1.0), ClaimedRow("r3", 2, (None, None), 1.0)])
        error = self.refused(self.a, self.a.claim_outbound(mine), LeaseLost)
        self.assertIn("'a' no longer holds the lease", str(error))
        self.assertEqual(self.claims(), [("r1", "b", 1), ("r3", "b", 1), ("r2", "a", 1)])

    def test_writes_of_a_lapsed_tenure_are_fenced_off(self) -> None:
        """Under a tenure that is over (lapsed, even with no other holder yet, or followed by
        the same node's next epoch) a part's message id, its mark and an outcome fail with
        LeaseLost and change nothing; the other writes of their transaction go through."""
        old = self.take("a")
        self.add(self.a, "r1", "r2")
        self.assertEqual(self.claimed(self.a, old), ["r1", "r2"])
        self.expire()
        stale = self.a.under(old)
        writes = [stale.set_message_id("r1", 0, "M1", "m1", ("eu", 1)),
                  stale.mark_submitting("r1", 0), stale.finish("r1", {"ok": True}),
                  self.a.finish("r2", {"ok": True})]
        self.a.settle()
        for write in writes[:3]:
            self.failureResultOf(write, LeaseLost)
        self.successResultOf(writes[3])
        new = self.take("a")
        self.assertEqual(new.epoch, 2)
        self.refused(self.a, stale.finish("r1", {"ok": True}), LeaseLost)
        row = self.a.outbound("r1")
        assert row is not None
        self.assertEqual((row.message_ids, row.outcome), ((None,), None))
        self.assertEqual(self.admin.execute(
            f"SELECT count(*) FROM {self.schema}.submitting").fetchone(), (0,))
        self.assertEqual(self.claimed(self.a, new), ["r1"])

    def test_parts_in_doubt(self) -> None:
        """A part marked as being submitted that has no message id is in doubt when its request
        is claimed again; one marked and accepted (its mark gone), or never marked, is not."""
        mine = self.take("a")
        self.add(self.a, "r1", parts=3)
        self.assertEqual(self.claimed(self.a, mine), ["r1"])
        writes = self.a.under(mine)
        for index in (0, 1):
            self.written(self.a, writes.mark_submitting("r1", index))
        self.written(self.a, writes.set_message_id("r1", 0, "M1", "m1", ("eu", 3)))
        self.assertEqual(self.admin.execute(
            f"SELECT request_id, idx FROM {self.schema}.submitting").fetchall(), [("r1", 1)])
        self.expire()
        self.assertEqual(self.written(self.b, self.b.claim_outbound(self.take("b"))).rows,
                         [ClaimedRow("r1", 3, ("M1", None, None), 1.0, (1,))])

    def test_quick_claim_looks_past_what_was_seen(self) -> None:
        """A claim after the seq an earlier one saw takes only the requests stored since; a
        request of a lower seq claimable since (its lease lapsed) waits for a whole claim."""
        old, mine = self.take("a", LeaseKey.bind("eu", 1)), self.take("b")
        self.add(self.a, "r1")
        self.assertEqual(self.claimed(self.a, old), ["r1"])
        seen = self.written(self.b, self.b.claim_outbound(mine)).seen
        self.add(self.a, "r2")
        self.expire(LeaseKey.bind("eu", 1))
        quick = self.written(self.b, self.b.claim_outbound(mine, after=seen))
        self.assertEqual([row.request_id for row in quick.rows], ["r2"])
        self.assertGreater(quick.seen, seen)
        self.assertEqual(self.claimed(self.b, mine), ["r1"])

    def test_expire_what_no_lease_holds(self) -> None:
        """Requests past their time that no running lease holds (unclaimed, or claimed under a
        lapsed lease) are finished with the outcome given; one claimed under a running lease,
        and one still in its time, are left."""
        mine = self.take("a")
        self.add(self.b, "held", "lapsed")
        self.assertEqual(self.claimed(self.a, mine), ["held", "lapsed"])
        self.admin.execute(f"UPDATE {self.schema}.outbound SET claim_lease = NULL, claimed_by ="
                           " NULL WHERE request_id = 'lapsed'")
        other = self.take("b", LeaseKey.bind("eu", 1))
        self.assertEqual(self.claimed(self.b, other), ["lapsed"])
        self.expire(LeaseKey.bind("eu", 1))
        self.add(self.b, "unclaimed")
        self.written(self.b, self.b.add_outbound("recent", "eu", b"pdu", 1, 100.0))
        outcome = {"ok": False, "code": "NOT_RELAYED", "reason": "late"}
        self.assertEqual(self.written(self.b, self.b.expire_unclaimed(50.0, outcome)), 2)
        self.assertEqual([(row.request_id, row.outcome) for row in self.b.finished(
            ["held", "lapsed", "unclaimed", "recent"])],
            [("lapsed", outcome), ("unclaimed", outcome)])
