"""Conformance tests of the outbound side: requests, their parts, and receipts."""

from __future__ import annotations

from typing import Any

from smppgw.store.conformance.base import Conformance
from smppgw.store.interfaces import (
    BadStoreInput,
    DuplicateRequest,
    InboxRow,
    OutboundRow,
    UnknownRow,
)


class OutboundConformance(Conformance):
    """Requests kept idempotently, their accepted parts, and the receipts awaited."""

    # -- outbound requests -----------------------------------------------------

    def test_add_and_read_back(self) -> None:
        """add_outbound answers a seq counting up; outbound() reads the request back whole."""
        first = self.written(self.store.add_outbound("r1", "smsc1", {"n": [1, "x"]}, 3, 5.0))
        second = self.written(self.store.add_outbound("r2", "smsc1", b"\x00\xff", 1, 4.0))
        self.assertGreater(second, first)
        self.assertEqual(self.store.outbound("r1"),
                         OutboundRow("r1", "smsc1", {"n": [1, "x"]}, 3, (None, None, None), 5.0, None,
                                     first))
        self.assertEqual(self.store.outbound("r2"),
                         OutboundRow("r2", "smsc1", b"\x00\xff", 1, (None,), 4.0, None, second))
        self.assertIsNone(self.store.outbound("r3"))

    def test_payloads(self) -> None:
        """Bytes and JSON payloads come back unchanged from every reader; unknown ids are left out."""
        wire = bytes(range(256))
        self.store.add_outbound("b", "smsc1", wire, 1, 1.0)
        self.store.add_outbound("j", "smsc1", {"n": 1}, 1, 2.0)
        self.assertEqual([row.payload for row in self.store.unfinished()], [wire, {"n": 1}])
        self.assertEqual(self.store.payloads(["j", "b", "missing"]), {"b": wire, "j": {"n": 1}})

    def test_rows_are_fresh_values(self) -> None:
        """What a caller gets back is JSON's copy: changing it, or what was given, changes nothing kept."""
        given: dict[str, Any] = {"list": (1, 2)}
        self.store.add_outbound("r1", "smsc1", given, 1, 1.0)
        given["list"] = "changed"
        row = self.store.outbound("r1")
        self.assertEqual(row.payload, {"list": [1, 2]})
        row.payload["list"].append(3)
        self.store.finish("r1", {"ok": True})
        self.store.outbound("r1").outcome["ok"] = False
        row_id = self.written(self.store.add_inbox("message", {"a": 1}, 1.0))
        self.store.inbox()[0].payload["a"] = 2
        self.assertEqual(
            (self.store.outbound("r1").payload, self.store.outbound("r1").outcome,
             self.store.inbox()[0]),
            ({"list": [1, 2]}, {"ok": True}, InboxRow(row_id, "message", {"a": 1}, 0, 1.0)))

    def test_duplicate_unfinished_request(self) -> None:
        """A request_id already kept fails with DuplicateRequest with the kept row, and changes nothing."""
        self.store.add_outbound("r1", "smsc1", {"body": "aa"}, 1, 1.0)
        first = self.store.outbound("r1")
        error = self.refused(
            self.store.add_outbound("r1", "smsc2", {"body": "bb"}, 2, 2.0), DuplicateRequest)
        self.assertEqual((error.row, self.store.outbound("r1")), (first, first))
        self.assertEqual(len(self.store.unfinished()), 1)

    def test_duplicate_finished_request(self) -> None:
        """A retried request that finished carries its outcome and message ids in the error."""
        self.store.add_outbound("r1", "smsc1", {}, 1, 1.0)
        self.store.set_message_id("r1", 0, "M1", "m1")
        self.store.finish("r1", {"message_ids": ["M1"]})
        error = self.refused(self.store.add_outbound("r1", "smsc1", {}, 1, 2.0), DuplicateRequest)
        self.assertEqual((error.row.outcome, error.row.message_ids), ({"message_ids": ["M1"]}, ("M1",)))

    def test_finish(self) -> None:
        """A finished request keeps its outcome, a second finish replaces it, and it is no longer unfinished."""
        self.store.add_outbound("r1", "smsc1", {}, 1, 1.0)
        self.store.add_outbound("r2", "smsc1", {}, 1, 1.0)
        self.store.finish("r1", {"error": "SMSC_REJECTED"})
        self.store.finish("r1", {"error": "EXPIRED", "reason": "late"})
        self.assertEqual(self.store.outbound("r1").outcome, {"error": "EXPIRED", "reason": "late"})
        self.assertEqual([row.request_id for row in self.store.unfinished()], ["r2"])

    def test_unfinished_in_insertion_order(self) -> None:
        """unfinished() lists requests in the order they were added, finished ones left out."""
        for request_id in ["c", "a", "d", "b"]:
            self.store.add_outbound(request_id, "smsc1", {}, 1, 1.0)
        self.store.finish("d", {"ok": True})
        self.assertEqual([row.request_id for row in self.store.unfinished()], ["c", "a", "b"])

    def test_unfinished_of_one_server(self) -> None:
        """unfinished(server) lists only that server's requests, with their message ids."""
        self.store.add_outbound("a", "smsc1", {}, 2, 1.0)
        self.store.add_outbound("b", "smsc2", {}, 2, 1.0)
        self.store.add_outbound("c", "smsc1", {}, 2, 1.0)
        self.store.set_message_id("c", 1, "C2", "c2")
        self.assertEqual([(row.request_id, row.message_ids) for row in self.store.unfinished("smsc1")],
                         [("a", (None, None)), ("c", (None, "C2"))])

    def test_unfinished_brief(self) -> None:
        """unfinished_brief() gives each unfinished request without its payload, in order,
        and the caller may finish requests while it reads."""
        self.store.add_outbound("x", "smsc2", b"x", 1, 1.0)
        self.store.add_outbound("y", "smsc1", b"y", 2, 2.0)
        self.store.add_outbound("z", "smsc1", b"z", 1, 3.0)
        self.store.set_message_id("y", 1, "Y2", "y2")
        seen = []
        for brief in self.store.unfinished_brief():
            seen.append(brief)
            self.store.finish(brief[0], {"error": "EXPIRED"})
        self.assertEqual(seen, [("x", "smsc2", 1, (None,), 1.0), ("y", "smsc1", 2, (None, "Y2"), 2.0),
                                ("z", "smsc1", 1, (None,), 3.0)])
        self.store.add_outbound("w", "smsc2", b"w", 1, 4.0)
        self.assertEqual(list(self.store.unfinished_brief("smsc1")), [])
        self.assertEqual([b[0] for b in self.store.unfinished_brief("smsc2")], ["w"])

    def test_unknown_request(self) -> None:
        """An unknown request_id cannot be finished or given message ids."""
        self.refused(self.store.finish("nope", {}), UnknownRow)
        self.refused(self.store.set_message_id("nope", 0, "M", "m"), UnknownRow)

    def test_writes_told_through_then(self) -> None:
        """Given ``then``, a write returns None and calls done() once durable, or failed(error)
        with the error its Deferred would have had; what it wrote is what a Deferred's write
        writes."""
        calls: list[Any] = []

        def then(name: str) -> Any:
            return (lambda: calls.append(name), lambda error: calls.append((name, type(error))))

        self.assertIsNone(self.store.add_outbound("r1", "smsc1", {}, 1, 1.0, then=then("add")))
        self.assertIsNone(self.store.set_message_id("r1", 0, "M1", "m1", ("smsc1", 1), 9.0,
                                                    then=then("part")))
        self.assertIsNone(self.store.finish("r1", {"ok": True}, then=then("finish")))
        self.store.add_outbound("r1", "smsc1", {}, 1, 2.0, then=then("again"))
        self.store.finish("nope", {}, then=then("unknown"))
        self.store.set_message_id("nope", 0, "M", "m", then=then("unknown part"))
        self.turn()
        self.assertEqual(sorted(calls, key=str),
                         sorted(["add", "part", "finish", ("again", DuplicateRequest),
                                 ("unknown", UnknownRow), ("unknown part", UnknownRow)], key=str))
        self.assertEqual((self.store.outbound("r1").outcome, self.store.outbound("r1").message_ids,
                          self.store.lookup_message("smsc1", "m1"), self.store.next_receipt_due()),
                         ({"ok": True}, ("M1",), ("r1", 0), 9.0))

    def test_bad_input(self) -> None:
        """A bad part count, part index or payload is refused with BadStoreInput, keeping nothing."""
        self.store.add_outbound("r1", "smsc1", {}, 2, 1.0)
        self.assertRaises(BadStoreInput, self.store.set_message_id, "r1", 2, "M", "m")
        self.assertRaises(BadStoreInput, self.store.set_message_id, "r1", -1, "M", "m")
        self.assertRaises(BadStoreInput, self.store.add_outbound, "r2", "smsc1", {}, 0, 1.0)
        self.assertRaises(BadStoreInput, self.store.add_outbound, "r2", "smsc1", {}, True, 1.0)
        self.assertRaises(BadStoreInput, self.store.add_outbound, "r3", "s", {"b": b"x"}, 1, 1.0)
        self.assertRaises(BadStoreInput, self.store.finish, "r1", {"n": float("nan")})
        self.assertRaises(BadStoreInput, self.store.add_inbox, "message", {"x": float("nan")}, 1.0)
        self.assertRaises(BadStoreInput, self.store.add_fragment, "k", 1, 2, {"x": object()}, 1.0)
        self.assertEqual((self.store.outbound("r2"), self.store.outbound("r3")), (None, None))
        self.assertEqual(self.store.outbound("r1").outcome, None)
        self.assertEqual(self.store.counts(), {"unfinished": 1, "inbox": 0, "fragments": 0, "bindings": 0})

    # -- parts and receipts ----------------------------------------------------

    def test_lookup_message(self) -> None:
        """A receipt's lookup key finds its request and part, for its own server only."""
        self.store.add_outbound("r1", "smsc1", {}, 2, 1.0)
        self.store.set_message_id("r1", 1, "00FF", "ff", ("smsc1", 2))
        self.assertEqual(self.store.outbound("r1").message_ids, (None, "00FF"))
        self.assertEqual(self.store.lookup_message("smsc1", "ff"), ("r1", 1))
        self.assertIsNone(self.store.lookup_message("smsc2", "ff"))
        self.assertIsNone(self.store.lookup_message("smsc1", "00FF"))

    def test_reused_message_id_finds_the_newest(self) -> None:
        """When an SMSC reuses a message id, a receipt finds the part of the newest request."""
        self.store.add_outbound("old", "smsc1", {}, 1, 1.0)
        self.store.add_outbound("new", "smsc1", {}, 1, 2.0)
        self.store.set_message_id("new", 0, "7", "7")
        self.store.set_message_id("old", 0, "7", "7")
        self.assertEqual(self.store.lookup_message("smsc1", "7"), ("new", 0))

    def test_part_recorded_again(self) -> None:
        """A part recorded again takes the new id and key, and keeps its receipt deadline."""
        self.store.add_outbound("r", "smsc1", {}, 1, 1.0)
        self.store.set_message_id("r", 0, "A", "a", receipt_due=100.0)
        self.store.set_message_id("r", 0, "B", "b", receipt_due=900.0)
        self.assertEqual(self.store.outbound("r").message_ids, ("B",))
        self.assertEqual((self.store.lookup_message("smsc1", "a"), self.store.lookup_message("smsc1", "b")),
                         (None, ("r", 0)))
        self.assertEqual(self.store.next_receipt_due(), 100.0)

    def accept(self, request_id: str, parts: int, dues: list[float | None]) -> None:
        self.store.add_outbound(request_id, "smsc1", b"", parts, 1.0)
        for index, due in enumerate(dues):
            self.store.set_message_id(request_id, index, f"{request_id}-{index}", f"k{request_id}{index}",
                                      receipt_due=due)

    def test_due_receipts_earliest_first(self) -> None:
        """Parts due by a time come earliest first, with their request's part count, at most limit of them."""
        self.accept("late", 1, [300.0])
        self.accept("long", 3, [200.0, None, 100.0])
        self.assertEqual(self.store.next_receipt_due(), 100.0)
        self.assertEqual(self.store.due_receipts(99.0), [])
        self.assertEqual(
            [(d.request_id, d.index, d.message_id, d.server, d.parts, d.due)
             for d in self.store.due_receipts(200.0)],
            [("long", 2, "long-2", "smsc1", 3, 100.0), ("long", 0, "long-0", "smsc1", 3, 200.0)])
        self.assertEqual([d.due for d in self.store.due_receipts(1000.0, limit=1)], [100.0])

    def test_receipt_ends_the_wait(self) -> None:
        """A part whose receipt came is no longer due, even when recorded again with a deadline."""
        self.accept("r", 2, [100.0, 150.0])
        self.store.receipt_came("r", 0)
        self.store.receipt_came("r", 5)
        self.store.receipt_came("unknown", 0)
        self.store.set_message_id("r", 0, "r-0", "kr0", receipt_due=500.0)
        self.assertEqual([(d.index, d.due) for d in self.store.due_receipts(1000.0)], [(1, 150.0)])
        self.store.receipt_came("r", 1)
        self.assertIsNone(self.store.next_receipt_due())
        self.assertEqual(self.store.due_receipts(1000.0), [])

