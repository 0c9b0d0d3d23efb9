"""Conformance tests of the inbound side: the inbox, fragments of long messages, dialog bindings."""

from __future__ import annotations

from smppgw.relay.dialogs import Binding
from smppgw.store.conformance.base import Conformance
from smppgw.store.interfaces import InboxClaim, InboxRow, UnknownRow


class InboundConformance(Conformance):
    """The inbox for the hosts, the parts of long inbound messages, and dialog bindings."""

    # -- the inbox -------------------------------------------------------------

    def test_inbox_in_id_order_in_pages(self) -> None:
        """inbox() gives rows lowest id first, limit rows at a time after a given id."""
        ids = [self.written(self.store.add_inbox("message", {"n": n}, float(n))) for n in range(5)]
        self.assertEqual(ids, sorted(set(ids)))
        first = self.store.inbox(limit=2)
        rest = self.store.inbox(limit=10, after_id=first[-1].id)
        self.assertEqual([row.id for row in first], ids[:2])
        self.assertEqual([(row.id, row.payload["n"], row.created) for row in rest],
                         [(ids[n], n, float(n)) for n in range(2, 5)])
        self.assertEqual(self.store.inbox(after_id=ids[-1]), [])

    def test_bump_inbox(self) -> None:
        """bump_inbox() counts attempts, shown in the row; an id not kept fails with UnknownRow."""
        row_id = self.written(self.store.add_inbox("report", {"state": "DELIVERED"}, 42.0))
        self.assertEqual((self.written(self.store.bump_inbox(row_id)),
                          self.written(self.store.bump_inbox(row_id))), (1, 2))
        self.assertEqual(self.store.inbox(), [InboxRow(row_id, "report", {"state": "DELIVERED"}, 2, 42.0)])
        self.refused(self.store.bump_inbox(row_id + 1), UnknownRow)

    def test_remove_inbox(self) -> None:
        """A removed row is gone, removing it again is harmless, and its id is never given again."""
        first = self.written(self.store.add_inbox("message", {}, 1.0))
        second = self.written(self.store.add_inbox("message", {}, 2.0))
        self.written(self.store.remove_inbox(second))
        self.written(self.store.remove_inbox(second))
        self.assertEqual([row.id for row in self.store.inbox()], [first])
        self.assertGreater(self.written(self.store.add_inbox("message", {}, 3.0)), second)
        self.refused(self.store.bump_inbox(second), UnknownRow)

    def test_claim_inbox_in_id_order_in_pages(self) -> None:
        """claim_inbox() gives the rows lowest id first, each under a claim naming the node,
        limit rows at a time after a given id, of the kinds asked for."""
        ids = [self.written(self.store.add_inbox(kind, {"n": n}, float(n)))
               for n, kind in enumerate(["deliver", "report", "deliver", "report", "deliver"])]
        first = self.store.claim_inbox("a", 2, 30.0)
        self.assertEqual([(row.id, row.payload, row.claim and row.claim.node) for row in first],
                         [(ids[0], {"n": 0}, "a"), (ids[1], {"n": 1}, "a")])
        reports = self.store.claim_inbox("a", 10, 30.0, after_id=first[-1].id, kinds=("report",))
        self.assertEqual([(row.id, row.kind) for row in reports], [(ids[3], "report")])
        self.assertEqual([row.id for row in self.store.claim_inbox("a", -1, 30.0, after_id=ids[3])],
                         [ids[4]])

    def test_claimed_rows_removed_and_bumped(self) -> None:
        """A node's writes under the claim it was given go through: a renewal holds the
        row, a bump counts an attempt, a removal forgets it."""
        kept = self.written(self.store.add_inbox("report", {"state": "DELIVERED"}, 1.0))
        gone = self.written(self.store.add_inbox("deliver", {}, 2.0))
        rows = self.store.claim_inbox("a", 10, 30.0)
        self.assertIsInstance(rows[0].claim, InboxClaim)
        self.assertEqual(self.store.renew_inbox("a", rows, 30.0), {kept, gone})
        self.assertEqual(self.written(self.store.bump_inbox(kept, rows[0].claim, 5.0)), 1)
        self.written(self.store.remove_inbox(gone, rows[1].claim))
        self.assertEqual(self.store.inbox(), [InboxRow(kept, "report", {"state": "DELIVERED"}, 1, 1.0)])

    def test_report_if_awaited(self) -> None:
        """A report kept only if its part awaits its receipt ends the wait; made again it keeps
        nothing (None), while a receipt's own report is kept either way (a late receipt)."""
        self.store.add_outbound("r", "smsc1", {}, 1, 1.0)
        self.store.set_message_id("r", 0, "M1", "m1", receipt_due=50.0)
        first = self.written(self.store.add_inbox("report", {"n": 1}, 60.0, receipt=("r", 0),
                                                  if_awaited=True))
        again = self.written(self.store.add_inbox("report", {"n": 2}, 61.0, receipt=("r", 0),
                                                  if_awaited=True))
        late = self.written(self.store.add_inbox("report", {"n": 3}, 62.0, receipt=("r", 0)))
        unknown = self.written(self.store.add_inbox("report", {"n": 4}, 63.0, receipt=("x", 0),
                                                    if_awaited=True))
        self.assertEqual((again, unknown, self.store.next_receipt_due()), (None, None, None))
        self.assertEqual([(row.id, row.payload) for row in self.store.inbox()],
                         [(first, {"n": 1}), (late, {"n": 3})])

    # -- fragments -------------------------------------------------------------

    def test_fragments_sorted(self) -> None:
        """Parts stored in any order come back sorted by seq, counted per message."""
        self.assertEqual(self.written(self.store.add_fragment("k", 3, 3, {"t": "c"}, 1.0)), 1)
        self.assertEqual(self.written(self.store.add_fragment("k", 1, 3, {"t": "a"}, 2.0)), 2)
        self.assertEqual(self.written(self.store.add_fragment("other", 1, 2, {"t": "x"}, 2.0)), 1)
        self.assertEqual(self.store.fragments("k"), [(1, {"t": "a"}), (3, {"t": "c"})])
        self.assertEqual(self.store.fragments("none"), [])

    def test_repeated_part_replaces(self) -> None:
        """A part received twice is kept once, with the later payload and its first arrival time."""
        self.store.add_fragment("k", 1, 2, {"t": "old"}, 10.0)
        self.assertEqual(self.written(self.store.add_fragment("k", 1, 2, {"t": "new"}, 500.0)), 1)
        self.assertEqual(self.store.fragments("k"), [(1, {"t": "new"})])
        self.assertEqual(self.store.stale_fragments(100.0), ["k"])

    def test_stale_fragments(self) -> None:
        """A message is stale when its earliest part is older than the cut-off; keys come sorted."""
        self.store.add_fragment("mixed", 2, 2, {}, 50.0)
        self.store.add_fragment("mixed", 1, 2, {}, 400.0)
        self.store.add_fragment("late", 1, 2, {}, 300.0)
        self.store.add_fragment("early", 1, 2, {}, 10.0)
        self.assertEqual(self.store.stale_fragments(100.0), ["early", "mixed"])
        self.assertEqual(self.store.stale_fragments(10.0), [])

    def test_drop_fragments(self) -> None:
        """Dropped parts are gone and counting starts again; other messages' parts stay."""
        self.store.add_fragment("k", 1, 2, {}, 1.0)
        self.store.add_fragment("other", 1, 2, {}, 1.0)
        self.store.drop_fragments("k")
        self.store.drop_fragments("never")
        self.assertEqual(self.store.fragments("k"), [])
        self.assertEqual(self.written(self.store.add_fragment("k", 2, 2, {}, 5.0)), 1)
        self.assertEqual(len(self.store.fragments("other")), 1)

    # -- dialog bindings -------------------------------------------------------

    def test_bindings(self) -> None:
        """Bindings load by (phone, letter); saving one for a kept pair replaces it; delete forgets it."""
        self.store.save_binding(Binding("+15550002", "ann@im", "a", 3.0))
        self.store.save_binding(Binding("+15550001", "ann@im", "b", 1.0))
        self.store.save_binding(Binding("+15550001", "bob@im", "a", 1.0))
        self.store.save_binding(Binding("+15550001", "cat@im", "a", 2.0))
        self.store.delete_binding("+15550001", "b")
        self.store.delete_binding("+15550009", "z")
        self.assertEqual(self.store.load_bindings(), [Binding("+15550001", "cat@im", "a", 2.0),
                                                      Binding("+15550002", "ann@im", "a", 3.0)])

    def test_bindings_of_one_phone(self) -> None:
        """load_bindings(phone) gives that phone's bindings only, by letter; none for another."""
        self.store.save_binding(Binding("+15550001", "bob@im", "b", 1.0))
        self.store.save_binding(Binding("+15550002", "ann@im", "a", 3.0))
        self.store.save_binding(Binding("+15550001", "cat@im", "a", 2.0))
        self.assertEqual(self.store.load_bindings("+15550001"),
                         [Binding("+15550001", "cat@im", "a", 2.0),
                          Binding("+15550001", "bob@im", "b", 1.0)])
        self.assertEqual(self.store.load_bindings("+15550009"), [])

