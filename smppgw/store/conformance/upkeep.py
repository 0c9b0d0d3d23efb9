"""Conformance tests of a store as a whole: its interfaces, pruning, counts, closing, a restart."""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SkipTest
from zope.interface.verify import verifyObject

from smppgw.relay.dialogs import Binding
from smppgw.store.conformance.base import DAY, HOUR, Conformance
from smppgw.store.interfaces import (
    BadStoreInput,
    DuplicateRequest,
    IGroupCommit,
    InboxRow,
    IStore,
    StoreError,
)


class UpkeepConformance(Conformance):
    """The interfaces provided, retention and pruning, counts, closing, and a restart."""

    # -- the interface ---------------------------------------------------------

    def test_provides_the_interface(self) -> None:
        """The store provides IStore, every method with the interface's arguments."""
        self.assertTrue(verifyObject(IStore, self.store))

    def test_durable_after_a_turn(self) -> None:
        """A store with group commit says a write is durable once the reactor has turned."""
        store: Any = self.store  # IStore and IGroupCommit both
        if not IGroupCommit.providedBy(self.store):
            raise SkipTest(f"{type(store).__name__} has no group commit")
        self.assertTrue(verifyObject(IGroupCommit, store))
        self.successResultOf(store.durable())
        store.add_inbox("message", {}, 1.0)
        waiting = store.durable()
        calls: list[object] = []
        store.when_durable(lambda: calls.append("done"), calls.append)
        self.turn()
        self.successResultOf(waiting)
        self.assertEqual((calls, store.failed_commits), (["done"], 0))

    # -- maintenance -----------------------------------------------------------

    def test_prune(self) -> None:
        """prune() forgets finished requests past retention with their parts, and keeps the rest."""
        self.store.add_outbound("old-done", "smsc1", {}, 1, 0.0)
        self.store.set_message_id("old-done", 0, "M1", "m1", receipt_due=50.0)
        self.store.finish("old-done", {"ok": True})
        self.store.add_outbound("old-waiting", "smsc1", {}, 1, 0.0)
        self.store.add_outbound("new-done", "smsc1", {}, 1, 7 * DAY)
        self.store.finish("new-done", {"ok": True})
        self.assertEqual(self.store.prune(7 * DAY + 1), 1)
        self.assertEqual(self.store.prune(7 * DAY + 1), 0)
        self.assertIsNone(self.store.outbound("old-done"))
        self.assertIsNone(self.store.lookup_message("smsc1", "m1"))
        self.assertEqual((self.store.next_receipt_due(), self.store.due_receipts(100.0)), (None, []))
        self.assertIsNotNone(self.store.outbound("old-waiting"))
        self.assertIsNotNone(self.store.outbound("new-done"))
        self.store.add_outbound("old-done", "smsc1", {"again": 1}, 1, 8 * DAY)
        self.assertEqual(self.store.outbound("old-done").message_ids, (None,))

    def test_prune_with_its_retention(self) -> None:
        """A store made with a retention of an hour forgets a finished request after an hour."""
        store = self.make_store(retention=HOUR)
        self.assertEqual(store.retention, HOUR)
        for n in range(3):
            store.add_outbound(f"r{n}", "smsc1", {}, 1, float(n))
            store.finish(f"r{n}", {"ok": True})
        self.assertEqual(store.prune(HOUR + 1.5), 2)
        self.assertEqual(store.prune(HOUR + 2), 0)
        self.assertEqual(store.prune(30 * DAY), 1)

    def test_bad_retention(self) -> None:
        """A negative retention, or one that is not a number, is refused with BadStoreInput."""
        self.assertRaises(BadStoreInput, self.make_store, retention=-1.0)
        self.assertRaises(BadStoreInput, self.make_store, retention="7d")

    def test_prune_in_creation_order(self) -> None:
        """Pruning stops at the first request within retention: one added after it with
        an older time (a clock set back) waits for a later prune."""
        self.store.add_outbound("old", "smsc1", {}, 1, 0.0)
        self.store.add_outbound("recent", "smsc1", {}, 1, 7 * DAY)
        self.store.add_outbound("set-back", "smsc1", {}, 1, 0.5)
        for request_id in ("old", "recent", "set-back"):
            self.store.finish(request_id, {"ok": True})
        self.assertEqual(self.store.prune(7 * DAY + 1), 1)
        self.assertIsNotNone(self.store.outbound("set-back"))
        self.assertEqual(self.store.prune(14 * DAY + 1), 2)

    def test_seq_after_prune(self) -> None:
        """Requests added after a prune come after those still kept, in every reader."""
        self.store.add_outbound("done", "smsc1", {}, 1, 0.0)
        kept = self.written(self.store.add_outbound("kept", "smsc1", {}, 1, 0.0))
        self.store.finish("done", {"ok": True})
        self.assertEqual(self.store.prune(30 * DAY), 1)
        later = self.written(self.store.add_outbound("later", "smsc1", {}, 1, 30 * DAY))
        self.assertGreater(later, kept)
        self.assertEqual([row.request_id for row in self.store.unfinished()], ["kept", "later"])

    def test_counts(self) -> None:
        """counts() tells unfinished requests, inbox rows, fragment parts and bindings."""
        self.store.add_outbound("a", "smsc1", {}, 1, 1.0)
        self.store.add_outbound("b", "smsc1", {}, 1, 1.0)
        self.store.finish("b", {})
        self.store.add_inbox("message", {}, 1.0)
        self.store.add_fragment("k", 1, 2, {}, 1.0)
        self.store.add_fragment("k", 2, 2, {}, 1.0)
        self.store.save_binding(Binding("+15550001", "user@im", "a", 1.0))
        self.assertEqual(self.store.counts(), {"unfinished": 1, "inbox": 1, "fragments": 2, "bindings": 1})

    def test_closed_store(self) -> None:
        """A closed store answers StoreError to writes and reads, and closing twice is harmless."""
        self.store.close()
        self.store.close()
        self.refused(self.store.add_inbox("message", {}, 1.0), StoreError)
        self.refused(self.store.add_outbound("r", "smsc1", {}, 1, 1.0), StoreError)
        self.assertRaises(StoreError, self.store.inbox)
        self.assertRaises(StoreError, self.store.counts)
        self.assertRaises(StoreError, lambda: list(self.store.unfinished_brief()))

    # -- a restart -------------------------------------------------------------

    def test_outbound_survives_a_restart(self) -> None:
        """Requests, finished or not, come back after a restart with their parts, in order."""
        self.store.add_outbound("b", "smsc1", b"\x01", 1, 1.0)
        self.store.add_outbound("a", "smsc1", {"body": "6869"}, 2, 10.0)
        self.store.set_message_id("a", 0, "0A1B", "a1b", receipt_due=60.0)
        self.store.set_message_id("b", 0, "M1", "m1")
        self.store.finish("b", {"message_ids": ["M1"]})
        store = self.restart()
        self.assertEqual([(row.request_id, row.payload, row.message_ids) for row in store.unfinished()],
                         [("a", {"body": "6869"}, ("0A1B", None))])
        error = self.refused(store.add_outbound("b", "smsc1", b"", 1, 2.0), DuplicateRequest)
        self.assertEqual((error.row.payload, error.row.outcome), (b"\x01", {"message_ids": ["M1"]}))
        self.assertEqual((store.lookup_message("smsc1", "a1b"), store.next_receipt_due()), (("a", 0), 60.0))
        self.assertGreater(self.written(store.add_outbound("c", "smsc1", {}, 1, 11.0)),
                           store.outbound("a").seq)

    def test_inbound_survives_a_restart(self) -> None:
        """Inbox rows with their attempts, fragments and bindings come back after a restart."""
        row_id = self.written(self.store.add_inbox("report", {"state": "DELIVERED"}, 42.0))
        gone = self.written(self.store.add_inbox("message", {}, 43.0))
        self.store.remove_inbox(gone)
        self.store.bump_inbox(row_id)
        self.store.add_fragment("k", 2, 2, {"t": "b"}, 5.0)
        self.store.add_fragment("k", 1, 2, {"t": "a"}, 6.0)
        self.store.save_binding(Binding("+15550001", "ann@im", "a", 1.0))
        store = self.restart()
        self.assertEqual(store.inbox(), [InboxRow(row_id, "report", {"state": "DELIVERED"}, 1, 42.0)])
        self.assertGreater(self.written(store.add_inbox("message", {}, 44.0)), gone)
        self.assertEqual((store.fragments("k"), store.stale_fragments(6.0)),
                         ([(1, {"t": "a"}), (2, {"t": "b"})], ["k"]))
        self.assertEqual(store.load_bindings(), [Binding("+15550001", "ann@im", "a", 1.0)])

