"""Inbox claims of several nodes on one PostgreSQL database: each row to one node at a time.

Two `PostgresStore` objects on one schema play two nodes, on the server of
``SMPPGW_TEST_POSTGRES`` (see test_store_postgres): skipped without it, failed
under CI=true.  A claim lapses on the database's clock: the tests move its
``lease_until`` into the past rather than wait.
"""

from __future__ import annotations

import psycopg

from smppgw.store.interfaces import InboxClaim, UnknownRow
from smppgw.store.postgres import PostgresStore

from .test_store_postgres import OnPostgres


class InboxClaimTests(OnPostgres):
    """claim_inbox, renew_inbox, and the fence on bump_inbox and remove_inbox."""

    def add(self, store: PostgresStore, count: int) -> list[int]:
        return [self.written(store, store.add_inbox("deliver", {"n": n}, float(n)))
                for n in range(count)]

    def lapse(self, *ids: int) -> None:
        """End the claims (or retry waits) of rows ``ids``, as if their time had passed."""
        self.admin.execute(f"UPDATE {self.schema}.inbox SET lease_until = 0 WHERE id = ANY(%s)",
                           (list(ids),))

    def left(self, row_id: int) -> float:
        """Seconds left on row ``row_id``'s claim, by the database's clock."""
        (seconds,) = self.admin.execute(
            f"SELECT lease_until - extract(epoch FROM clock_timestamp()) FROM {self.schema}.inbox"
            " WHERE id = %s", (row_id,)).fetchone() or (None,)
        return float(seconds)

    def test_two_nodes_claim_disjoint_rows(self) -> None:
        """Rows one node claimed are not claimed by the other (nor again by itself) while
        the claim runs, for as long as asked on the database's clock."""
        a, b = self.open(), self.open()
        ids = self.add(a, 5)
        first = a.claim_inbox("a", 3, 30.0)
        second = b.claim_inbox("b", 10, 30.0)
        self.assertEqual(([r.id for r in first], [r.id for r in second]), (ids[:3], ids[3:]))
        self.assertEqual({r.claim for r in first + second},
                         {InboxClaim("a", 1), InboxClaim("b", 1)})
        self.assertEqual((a.claim_inbox("a", 10, 30.0), b.claim_inbox("b", 10, 30.0)), ([], []))
        self.assertTrue(29 < self.left(ids[0]) <= 30)

    def test_lapsed_claim_taken_by_the_other(self) -> None:
        """Once a claim lapses the other node claims the row at the next epoch; the first
        node can no longer renew it, and its late removal and bump change nothing."""
        a, b = self.open(), self.open()
        (row_id,) = self.add(a, 1)
        (old,) = a.claim_inbox("a", 10, 30.0)
        self.lapse(row_id)
        (new,) = b.claim_inbox("b", 10, 30.0)
        self.assertEqual(new.claim, InboxClaim("b", 2))
        self.assertEqual(a.renew_inbox("a", [old], 30.0), set())
        assert old.claim is not None
        self.written(a, a.remove_inbox(row_id, old.claim))
        self.refused(a, a.bump_inbox(row_id, old.claim), UnknownRow)
        self.assertEqual([(r.id, r.attempts) for r in b.inbox()], [(row_id, 0)])
        self.assertEqual(b.renew_inbox("b", [new], 30.0), {row_id})
        assert new.claim is not None
        self.written(b, b.remove_inbox(row_id, new.claim))
        self.assertEqual(a.inbox(), [])

    def test_lapsed_claim_not_renewed(self) -> None:
        """A claim that lapsed is not renewed even if no node took the row, but its holder's
        removal still goes through: nobody else holds it."""
        a = self.open()
        (row_id,) = self.add(a, 1)
        (row,) = a.claim_inbox("a", 10, 30.0)
        self.assertEqual(a.renew_inbox("a", [row], 60.0), {row_id})
        self.assertTrue(59 < self.left(row_id) <= 60)
        self.lapse(row_id)
        self.assertEqual(a.renew_inbox("a", [row], 60.0), set())
        assert row.claim is not None
        self.written(a, a.remove_inbox(row_id, row.claim))
        self.assertEqual(a.inbox(), [])

    def test_bumped_row_waits_out_its_retry(self) -> None:
        """A bump under its claim counts the attempt and releases the row, which no node
        claims until its retry is due; then either may."""
        a, b = self.open(), self.open()
        (row_id,) = self.add(a, 1)
        (row,) = a.claim_inbox("a", 10, 30.0)
        assert row.claim is not None
        self.assertEqual(self.written(a, a.bump_inbox(row_id, row.claim, 60.0)), 1)
        self.assertEqual((a.claim_inbox("a", 10, 30.0), b.claim_inbox("b", 10, 30.0)), ([], []))
        self.assertTrue(59 < self.left(row_id) <= 60)
        self.lapse(row_id)
        (again,) = b.claim_inbox("b", 10, 30.0)
        self.assertEqual((again.attempts, again.claim), (1, InboxClaim("b", 2)))

    def test_row_locked_elsewhere_is_skipped(self) -> None:
        """A row another transaction holds locked is skipped, not waited for."""
        a = self.open(lock_timeout=0.5)
        ids = self.add(a, 2)
        with psycopg.connect(self.url()) as other:
            other.execute("SELECT id FROM inbox WHERE id = %s FOR UPDATE", (ids[0],))
            self.assertEqual([r.id for r in a.claim_inbox("a", 10, 30.0)], [ids[1]])
        self.assertEqual([r.id for r in a.claim_inbox("a", 10, 30.0)], [ids[0]])


class MissingReceiptReportTests(OnPostgres):
    """The report of a receipt that did not come, made by two nodes at once."""

    def test_reported_once_across_nodes(self) -> None:
        """Two nodes reporting one part's missing receipt in transactions in flight at once
        keep one report: the other's statement finds the wait ended and inserts nothing."""
        a, b = self.open(), self.open()
        a.add_outbound("r", "smsc1", {}, 1, 1.0)
        a.set_message_id("r", 0, "M1", "m1", receipt_due=50.0)
        a.settle()
        writes = [store.add_inbox("report", {"node": name}, 60.0, receipt=("r", 0),
                                  if_awaited=True) for store, name in ((a, "a"), (b, "b"))]
        a.settle()
        b.settle()
        ids = [self.successResultOf(write) for write in writes]
        self.assertEqual(sorted(ids, key=lambda i: i is not None)[0], None)
        self.assertEqual([row.id for row in a.inbox()], [i for i in ids if i is not None])
