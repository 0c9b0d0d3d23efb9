"""Tests for smppgw.store.sqlite: the SQLite queue, inbox, fragments, bindings and group commit."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from typing import Any

from twisted.internet.defer import Deferred, fail, maybeDeferred
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

import smppgw
from smppgw.relay.dialogs import Binding, DialogTable
from smppgw.store.interfaces import BadStoreInput, InboxRow, OutboundRow, StoreError, UnknownRow
from smppgw.store.sqlite import WRITER_CHECKPOINT_PAGES, Checkpointer, DuplicateRequest, Store
from smppgw.testing.process import FullDisk

HOUR = 3600.0

DAY = 86400.0


#: Fails every commit like a full disk would (the name the tests use).
FailingCommit = FullDisk


class StoreTestCase(SynchronousTestCase):
    """Shared set-up: a store in a temporary file, reopened to play a restart."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.path = os.path.join(self.mktemp(), "state", "smppgw.sqlite")
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))
        self.store = self.open()

    def open(self) -> Store:
        store = Store(self.path, self.clock)
        self.addCleanup(store.close)
        return store

    def written(self, write: Any) -> Any:
        """What a write's Deferred fires with, once its commit has run."""
        self.clock.advance(0)
        return self.successResultOf(write)

    def restart(self) -> Store:
        """Close the store and open the file again, as a restarted gateway does."""
        self.store.close()
        self.store = self.open()
        return self.store


class OutboundTests(StoreTestCase):
    """The outbound queue: requests, message ids, outcomes."""

    def test_unfinished_request_survives_restart(self) -> None:
        """A request with one accepted part is read back whole after a restart."""
        self.store.add_outbound("r1", "smsc1", {"body": "6869"}, 2, 10.0)
        self.store.set_message_id("r1", 0, "0A1B", "a1b")
        row = self.restart().outbound("r1")
        self.assertEqual(
            row, OutboundRow("r1", "smsc1", {"body": "6869"}, 2, ("0A1B", None), 10.0, None, 1)
        )

    def test_bytes_payload_kept_as_given(self) -> None:
        """A bytes payload (the queue's encoded PDUs) is stored as a BLOB and read back unchanged,
        beside a JSON one, by every reader."""
        wire = bytes(range(256)) + b"\x00\xff"
        self.store.add_outbound("b", "smsc1", wire, 1, 1.0)
        self.store.add_outbound("j", "smsc1", {"n": 1}, 1, 2.0)
        store = self.restart()
        self.assertEqual(store.outbound("b").payload, wire)  # type: ignore[union-attr]
        self.assertEqual([row.payload for row in store.unfinished()], [wire, {"n": 1}])
        self.assertEqual(store.payloads(["j", "b", "missing"]), {"b": wire, "j": {"n": 1}})
        (kind,) = store._connection().execute(
            "SELECT typeof(payload) FROM outbound WHERE request_id = 'b'").fetchone()
        self.assertEqual(kind, "blob")

    def test_finished_request_survives_restart(self) -> None:
        """A finished request keeps its outcome across a restart, and is no longer unfinished."""
        self.store.add_outbound("r1", "smsc1", {}, 1, 10.0)
        self.store.finish("r1", {"error": "SMSC_REJECTED", "reason": "0x0000000B ESME_RINVDSTADR"})
        store = self.restart()
        outcome = {"error": "SMSC_REJECTED", "reason": "0x0000000B ESME_RINVDSTADR"}
        self.assertEqual(store.outbound("r1").outcome, outcome)  # type: ignore[union-attr]
        self.assertEqual(store.unfinished(), [])

    def test_add_returns_the_seq(self) -> None:
        """add_outbound answers with the new row's seq, which counts up in insertion order."""
        adding = [self.store.add_outbound("r1", "smsc1", {"n": [1, "x"]}, 3, 5.0),
                  self.store.add_outbound("r2", "smsc1", b"\x01", 1, 4.0)]
        self.assertNoResult(adding[0])  # not before it is durable
        self.clock.advance(0)
        first, second = (self.successResultOf(d) for d in adding)
        self.assertEqual(self.store.outbound("r1"),
                         OutboundRow("r1", "smsc1", {"n": [1, "x"]}, 3, (None, None, None), 5.0, None, first))
        self.assertEqual(self.store.outbound("r2").seq, second)  # type: ignore[union-attr]
        self.assertGreater(second, first)

    def test_duplicate_unfinished_request(self) -> None:
        """A second add with a known request_id fails with DuplicateRequest carrying the stored row."""
        self.store.add_outbound("r1", "smsc1", {"body": "aa"}, 1, 1.0)
        first = self.store.outbound("r1")
        error = self.failureResultOf(
            self.store.add_outbound("r1", "smsc2", {"body": "bb"}, 1, 2.0), DuplicateRequest).value
        self.assertEqual(error.row, first)

    def test_duplicate_finished_request(self) -> None:
        """A retried request that already finished gets its outcome back, even after a restart."""
        self.store.add_outbound("r1", "smsc1", {}, 1, 1.0)
        self.store.set_message_id("r1", 0, "M1", "m1")
        self.store.finish("r1", {"message_ids": ["M1"]})
        error = self.failureResultOf(
            self.restart().add_outbound("r1", "smsc1", {}, 1, 2.0), DuplicateRequest).value
        self.assertEqual(
            (error.row.outcome, error.row.message_ids), ({"message_ids": ["M1"]}, ("M1",))
        )

    def test_unfinished_in_insertion_order(self) -> None:
        """unfinished() lists requests in the order they were added, finished ones left out."""
        for request_id in ["c", "a", "d", "b"]:
            self.store.add_outbound(request_id, "smsc1", {}, 1, 1.0)
        self.store.finish("d", {"ok": True})
        self.assertEqual([row.request_id for row in self.restart().unfinished()], ["c", "a", "b"])

    def test_unfinished_of_one_server(self) -> None:
        """unfinished(server) lists only that server's requests, with their message ids."""
        self.store.add_outbound("a", "smsc1", {}, 2, 1.0)
        self.store.add_outbound("b", "smsc2", {}, 2, 1.0)
        self.store.add_outbound("c", "smsc1", {}, 2, 1.0)
        self.store.set_message_id("c", 1, "C2", "c2")
        rows = self.store.unfinished("smsc1")
        self.assertEqual(
            [(row.request_id, row.message_ids) for row in rows],
            [("a", (None, None)), ("c", (None, "C2"))],
        )

    def test_lookup_message(self) -> None:
        """A receipt's normalised id finds the request and part, for its own server only."""
        self.store.add_outbound("r1", "smsc1", {}, 2, 1.0)
        self.store.set_message_id("r1", 1, "00FF", "ff")
        store = self.restart()
        self.assertEqual(store.lookup_message("smsc1", "ff"), ("r1", 1))
        self.assertIsNone(store.lookup_message("smsc2", "ff"))
        self.assertIsNone(store.lookup_message("smsc1", "00FF"))

    def test_reused_message_id_finds_latest(self) -> None:
        """When an SMSC reuses a message id, a receipt finds the part that got it last."""
        self.store.add_outbound("old", "smsc1", {}, 1, 1.0)
        self.store.set_message_id("old", 0, "7", "7")
        self.store.add_outbound("new", "smsc1", {}, 1, 2.0)
        self.store.set_message_id("new", 0, "7", "7")
        self.assertEqual(self.store.lookup_message("smsc1", "7"), ("new", 0))

    def test_unknown_request(self) -> None:
        """An unknown request_id reads as None and cannot be finished or given message ids."""
        self.assertIsNone(self.store.outbound("nope"))
        self.failureResultOf(self.store.finish("nope", {}), UnknownRow)
        self.failureResultOf(self.store.set_message_id("nope", 0, "M", "m"), UnknownRow)

    def test_bad_input(self) -> None:
        """A part index out of range, a zero part count or a payload that is not JSON is refused."""
        self.store.add_outbound("r1", "smsc1", {}, 2, 1.0)
        self.assertRaises(BadStoreInput, self.store.set_message_id, "r1", 2, "M", "m")
        self.assertRaises(BadStoreInput, self.store.add_outbound, "r2", "smsc1", {}, 0, 1.0)
        self.assertRaises(BadStoreInput, self.store.add_outbound, "r3", "s", {"b": b"x"}, 1, 1.0)
        self.assertRaises(BadStoreInput, self.store.add_inbox, "message", {"x": float("nan")}, 1.0)
        self.assertIsNone(self.store.outbound("r3"))

    def test_prune(self) -> None:
        """prune() deletes finished requests past retention, and keeps unfinished and recent ones."""
        self.store.add_outbound("old-done", "smsc1", {}, 1, 0.0)
        self.store.set_message_id("old-done", 0, "M1", "m1")
        self.store.finish("old-done", {"ok": True})
        self.store.add_outbound("old-waiting", "smsc1", {}, 1, 0.0)
        self.store.add_outbound("new-done", "smsc1", {}, 1, 7 * DAY)
        self.store.finish("new-done", {"ok": True})
        self.assertEqual(self.store.prune(7 * DAY + 1), 1)
        self.assertIsNone(self.store.outbound("old-done"))
        self.assertIsNone(self.store.lookup_message("smsc1", "m1"))
        self.assertIsNotNone(self.store.outbound("old-waiting"))
        self.assertIsNotNone(self.store.outbound("new-done"))

    def test_prune_everything_old(self) -> None:
        """With every request past retention, every finished one goes."""
        for n in range(3):
            self.store.add_outbound(f"r{n}", "smsc1", {}, 1, float(n))
            self.store.finish(f"r{n}", {"ok": True})
        self.assertEqual(self.store.prune(30 * DAY), 3)
        self.assertEqual(self.store.prune(30 * DAY), 0)

    def test_prune_in_creation_order(self) -> None:
        """Pruning stops at the first request within retention: one created after it with
        an older time (a clock set back) waits for a later prune."""
        self.store.add_outbound("old", "smsc1", {}, 1, 0.0)
        self.store.add_outbound("recent", "smsc1", {}, 1, 7 * DAY)
        self.store.add_outbound("set-back", "smsc1", {}, 1, 1.0)
        for rid in ("old", "recent", "set-back"):
            self.store.finish(rid, {"ok": True})
        self.assertEqual(self.store.prune(7 * DAY + 1), 1)
        self.assertIsNotNone(self.store.outbound("set-back"))
        self.assertEqual(self.store.prune(14 * DAY + 1), 2)

    def test_counts(self) -> None:
        """counts() tells how many unfinished requests, inbox rows, fragments and bindings are kept."""
        self.store.add_outbound("a", "smsc1", {}, 1, 1.0)
        self.store.add_outbound("b", "smsc1", {}, 1, 1.0)
        self.store.finish("b", {})
        self.store.add_inbox("message", {}, 1.0)
        self.store.add_fragment("k", 1, 2, {}, 1.0)
        self.store.save_binding(Binding("+15550001", "user@im", "a", 1.0))
        self.assertEqual(
            self.store.counts(), {"unfinished": 1, "inbox": 1, "fragments": 1, "bindings": 1}
        )


class ReceiptDeadlineTests(StoreTestCase):
    """Each accepted part's receipt deadline: kept, found when due, ended by its receipt."""

    def accept(self, request_id: str, parts: int, dues: list[float | None]) -> None:
        self.store.add_outbound(request_id, "smsc1", b"", parts, 1.0)
        for index, due in enumerate(dues):
            self.store.set_message_id(request_id, index, f"{request_id}-{index}", f"k{request_id}{index}",
                                      receipt_due=due)

    def test_due_parts_earliest_first(self) -> None:
        """Parts due by a time come earliest first, with their request's part count, at most limit of them."""
        self.accept("late", 1, [300.0])
        self.accept("long", 3, [200.0, None, 100.0])
        self.assertEqual(self.store.next_receipt_due(), 100.0)
        self.assertEqual(self.store.due_receipts(99.0), [])
        due = self.store.due_receipts(200.0)
        self.assertEqual([(d.request_id, d.index, d.message_id, d.server, d.parts, d.due) for d in due],
                         [("long", 2, "long-2", "smsc1", 3, 100.0), ("long", 0, "long-0", "smsc1", 3, 200.0)])
        self.assertEqual([d.due for d in self.store.due_receipts(1000.0, limit=1)], [100.0])

    def test_receipt_ends_the_wait(self) -> None:
        """A part whose receipt came is no longer due; a part recorded again keeps what it has."""
        self.accept("r", 2, [100.0, 150.0])
        self.store.receipt_came("r", 0)
        self.store.set_message_id("r", 0, "r-0", "kr0", receipt_due=500.0)  # written again
        self.store.set_message_id("r", 1, "r-1", "kr1", receipt_due=500.0)
        self.assertEqual([(d.index, d.due) for d in self.store.due_receipts(1000.0)], [(1, 150.0)])
        self.store.receipt_came("r", 1)
        self.assertIsNone(self.store.next_receipt_due())

    def test_deadline_survives_restart(self) -> None:
        """A committed deadline is there after the store file is opened again."""
        self.accept("r", 1, [100.0])
        self.assertEqual(self.restart().next_receipt_due(), 100.0)
        self.assertEqual(self.store.lookup_message("smsc1", "kr0"), ("r", 0))


class InboxTests(StoreTestCase):
    """The inbox of messages and reports waiting for a host."""

    def test_inbox_survives_restart(self) -> None:
        """An inbox row is read back whole after a restart."""
        row_id = self.written(self.store.add_inbox("report", {"state": "DELIVERED"}, 42.0))
        self.assertEqual(
            self.restart().inbox(), [InboxRow(row_id, "report", {"state": "DELIVERED"}, 0, 42.0)]
        )

    def test_inbox_oldest_first_in_pages(self) -> None:
        """inbox() gives rows oldest first, limit rows at a time after a given id."""
        ids = [self.written(self.store.add_inbox("message", {"n": n}, float(n))) for n in range(5)]
        first = self.store.inbox(limit=2)
        rest = self.store.inbox(limit=10, after_id=first[-1].id)
        self.assertEqual([row.id for row in first + rest], ids)
        self.assertEqual([row.payload["n"] for row in first + rest], [0, 1, 2, 3, 4])

    def test_bump_inbox(self) -> None:
        """bump_inbox() counts attempts, and the count survives a restart."""
        row_id = self.written(self.store.add_inbox("message", {}, 1.0))
        self.assertEqual(self.written(self.store.bump_inbox(row_id)), 1)
        self.assertEqual(self.written(self.store.bump_inbox(row_id)), 2)
        self.assertEqual(self.restart().inbox()[0].attempts, 2)

    def test_bump_unknown_inbox_row(self) -> None:
        """Bumping an inbox id that is not stored fails with UnknownRow."""
        self.failureResultOf(self.store.bump_inbox(99), UnknownRow)
        self.clock.advance(0)

    def test_remove_inbox(self) -> None:
        """A removed row is gone after a restart, and its id is never given to a new row."""
        first = self.written(self.store.add_inbox("message", {}, 1.0))
        second = self.written(self.store.add_inbox("message", {}, 2.0))
        self.store.remove_inbox(second)
        self.store.remove_inbox(second)
        store = self.restart()
        self.assertEqual([row.id for row in store.inbox()], [first])
        self.assertGreater(self.written(store.add_inbox("message", {}, 3.0)), second)


class FragmentTests(StoreTestCase):
    """Parts of concatenated SMS waiting for the rest."""

    def test_fragments_survive_restart_sorted(self) -> None:
        """Parts stored in any order come back after a restart sorted by sequence number."""
        self.assertEqual(self.written(self.store.add_fragment("k", 3, 3, {"t": "c"}, 1.0)), 1)
        self.assertEqual(self.written(self.store.add_fragment("k", 1, 3, {"t": "a"}, 2.0)), 2)
        self.store.add_fragment("other", 1, 2, {"t": "x"}, 2.0)
        self.assertEqual(self.restart().fragments("k"), [(1, {"t": "a"}), (3, {"t": "c"})])

    def test_repeated_part_replaces(self) -> None:
        """A part received twice is stored once, with the later payload."""
        self.store.add_fragment("k", 1, 2, {"t": "old"}, 1.0)
        self.assertEqual(self.written(self.store.add_fragment("k", 1, 2, {"t": "new"}, 2.0)), 1)
        self.assertEqual(self.store.fragments("k"), [(1, {"t": "new"})])

    def test_stale_fragments(self) -> None:
        """A message is stale when its first part is older than the cut-off, resends or not."""
        self.store.add_fragment("early", 1, 2, {}, 10.0)
        self.store.add_fragment("early", 1, 2, {}, 500.0)
        self.store.add_fragment("mixed", 2, 2, {}, 50.0)
        self.store.add_fragment("mixed", 1, 2, {}, 400.0)
        self.store.add_fragment("late", 1, 2, {}, 300.0)
        self.assertEqual(self.store.stale_fragments(100.0), ["early", "mixed"])

    def test_drop_fragments(self) -> None:
        """Dropped parts are gone; other messages' parts stay."""
        self.store.add_fragment("k", 1, 2, {}, 1.0)
        self.store.add_fragment("other", 1, 2, {}, 1.0)
        self.store.drop_fragments("k")
        self.assertEqual(self.store.fragments("k"), [])
        self.assertEqual(self.written(self.store.add_fragment("k", 2, 2, {}, 5.0)), 1)
        self.assertEqual(len(self.store.fragments("other")), 1)


class BindingTests(StoreTestCase):
    """SMS Dialogs bindings kept for smppgw.relay.dialogs.DialogTable."""

    def test_table_bindings_survive_restart(self) -> None:
        """A DialogTable on a restarted store remembers letters: short prefix, replies routed."""
        self.clock.advance(1000)
        table = DialogTable(self.clock, timeout=2 * HOUR, store=self.store)
        self.assertEqual(table.outgoing_prefix("+15550001", "ann@im"), "@a=ann@im ")
        self.assertEqual(table.outgoing_prefix("+15550001", "bob@im"), "@b=bob@im ")
        table = DialogTable(self.clock, timeout=2 * HOUR, store=self.restart())
        self.assertEqual(table.outgoing_prefix("+15550001", "bob@im"), "@b ")
        self.assertEqual(table.resolve_incoming("+15550001", "@a hi").address, "ann@im")

    def test_expired_binding_is_deleted(self) -> None:
        """A binding the table retires is gone from the store after a restart."""
        table = DialogTable(self.clock, timeout=HOUR, store=self.store)
        table.outgoing_prefix("+15550001", "ann@im")
        self.clock.advance(HOUR)
        self.assertEqual(table.expire(), 1)
        self.assertEqual(self.restart().load_bindings(), [])

    def test_save_binding_replaces(self) -> None:
        """Saving a binding for a known (phone, letter) replaces the stored one."""
        self.store.save_binding(Binding("+15550001", "ann@im", "a", 1.0))
        self.store.save_binding(Binding("+15550001", "bob@im", "a", 2.0))
        self.store.save_binding(Binding("+15550002", "ann@im", "a", 3.0))
        self.store.delete_binding("+15550009", "z")
        self.assertEqual(
            self.restart().load_bindings(),
            [Binding("+15550001", "bob@im", "a", 2.0), Binding("+15550002", "ann@im", "a", 3.0)],
        )


class GroupCommitTests(StoreTestCase):
    """Writes are committed once per reactor turn; durable() tells when."""

    def test_durable_fires_after_commit(self) -> None:
        """durable() waits for the commit scheduled for the next reactor turn."""
        self.store.add_outbound("r1", "smsc1", {}, 1, 1.0)
        waiting = self.store.durable()
        self.assertNoResult(waiting)
        self.clock.advance(0)
        self.assertIsNone(self.successResultOf(waiting))

    def test_one_commit_per_turn(self) -> None:
        """Many writes in one turn schedule a single commit that covers them all."""
        for n in range(50):
            self.store.add_inbox("message", {"n": n}, 1.0)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        waiting = self.store.durable()
        self.clock.advance(0)
        self.successResultOf(waiting)
        other = Store(self.path, Clock())
        self.addCleanup(other.close)
        self.assertEqual(len(other.inbox()), 50)

    def test_durable_with_nothing_written(self) -> None:
        """With no write pending, durable() has already fired."""
        self.successResultOf(self.store.durable())

    def test_direct_commit(self) -> None:
        """commit() commits at once, fires the waiters and cancels the scheduled commit."""
        self.store.add_inbox("message", {}, 1.0)
        waiting = self.store.durable()
        self.store.commit()
        self.successResultOf(waiting)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_uncommitted_writes_invisible(self) -> None:
        """Another connection sees a write only once it is committed."""
        self.store.add_inbox("message", {}, 1.0)
        other = Store(self.path, Clock())
        self.addCleanup(other.close)
        self.assertEqual(other.inbox(), [])
        self.clock.advance(0)
        self.assertEqual(len(other.inbox()), 1)

    def test_failing_commit(self) -> None:
        """A commit that fails errbacks the writes and waiters with StoreError and rolls the
        writes back."""
        written = self.store.add_outbound("r1", "smsc1", {}, 1, 1.0)
        waiting = self.store.durable()
        real = self.store._db
        self.store._db = FailingCommit(real)  # type: ignore[assignment]
        self.assertRaises(StoreError, self.store.commit)
        self.failureResultOf(written, StoreError)
        self.failureResultOf(waiting, StoreError)
        self.store._db = real
        self.assertIsNone(self.store.outbound("r1"))
        self.store.add_outbound("r2", "smsc1", {}, 1, 1.0)
        self.assertIsNotNone(self.restart().outbound("r2"))

    def test_write_error_that_abandons_the_transaction(self) -> None:
        """A write error after which SQLite has abandoned the transaction (a full disk, say)
        fails the writes before it and counts as a lost transaction."""
        written = self.store.add_outbound("r1", "smsc1", {}, 1, 1.0)
        waiting = self.store.durable()
        real = self.store._db

        class AbandoningWrite(FailingCommit):
            def execute(self, *args: Any) -> Any:
                if args[0].startswith("INSERT"):
                    self.db.rollback()  # what SQLite does on SQLITE_FULL
                    raise sqlite3.OperationalError("database or disk is full")
                return self.db.execute(*args)

        self.store._db = AbandoningWrite(real)  # type: ignore[assignment]
        self.failureResultOf(self.store.add_outbound("r2", "smsc1", {}, 1, 2.0), StoreError)
        self.store._db = real
        self.failureResultOf(written, StoreError)
        self.failureResultOf(waiting, StoreError)
        self.assertEqual(self.store.failed_commits, 1)
        self.assertIsNone(self.store.outbound("r1"))

    def test_scheduled_commit_on_lost_connection(self) -> None:
        """When the connection is gone, the scheduled commit errbacks the writes and waiters
        and logs why."""
        written = self.store.add_inbox("message", {}, 1.0)
        waiting = self.store.durable()
        self.store._db.close()
        with capturedLogs() as events:
            self.clock.advance(0)
        self.failureResultOf(written, StoreError)
        self.failureResultOf(waiting, StoreError)
        self.assertEqual([event["log_level"] for event in events], [LogLevel.error])
        self.assertIn("commit failed", formatEvent(events[0]))

    def test_closed_store(self) -> None:
        """A closed store answers StoreError, and closing twice is harmless."""
        self.store.close()
        self.store.close()
        self.failureResultOf(self.store.add_inbox("message", {}, 1.0), StoreError)
        self.assertRaises(StoreError, self.store.inbox)


class CommitPendingTests(StoreTestCase):
    """commit_pending(): commit now, from a socket write, never raising."""

    def test_commits_and_cancels_the_scheduled_commit(self) -> None:
        self.store.add_inbox("message", {}, 1.0)
        waiting = self.store.durable()
        self.store.commit_pending()
        self.successResultOf(waiting)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        other = Store(self.path, Clock())
        self.addCleanup(other.close)
        self.assertEqual(len(other.inbox()), 1)

    def test_nothing_pending(self) -> None:
        commits = self.store.commits
        self.store.commit_pending()
        self.assertEqual(self.store.commits, commits)

    def test_failure_logged_not_raised(self) -> None:
        written = self.store.add_inbox("message", {}, 1.0)
        waiting = self.store.durable()
        real = self.store._db
        self.store._db = FailingCommit(real)  # type: ignore[assignment]
        with capturedLogs() as events:
            self.store.commit_pending()
        self.store._db = real
        self.failureResultOf(written, StoreError)
        self.failureResultOf(waiting, StoreError)
        self.assertIn("store commit failed", formatEvent(events[0]))


    def test_failing_disk_logged_once_per_episode(self) -> None:
        """Commits that keep failing log one error, and the first that succeeds again says so."""
        real = self.store._db
        self.store._db = FailingCommit(real)  # type: ignore[assignment]
        lost = []
        with capturedLogs() as events:
            for i in range(5):
                lost.append(self.store.add_inbox("message", {}, float(i)))
                self.store.commit_pending() if i % 2 else self.clock.advance(0)
            self.store._db = real
            self.store.add_inbox("message", {}, 9.0)
            self.store.commit_pending()
        self.assertEqual([(e["log_level"], formatEvent(e)) for e in events], [
            (LogLevel.error, "store commit failed: commit failed, the writes are rolled back: "
             "database or disk is full; further failures are not logged until a commit succeeds"),
            (LogLevel.info, "store commits again after 5 failed commit(s)")])
        for write in lost:
            self.failureResultOf(write, StoreError)


class WhenDurableTests(StoreTestCase):
    """when_durable(): the commit's outcome as plain callbacks."""

    def test_called_after_commit(self) -> None:
        calls: list[Any] = []
        self.store.add_inbox("message", {}, 1.0)
        self.store.when_durable(lambda: calls.append("done"), calls.append)
        self.assertEqual(calls, [])
        self.store.commit()
        self.assertEqual(calls, ["done"])

    def test_nothing_pending(self) -> None:
        """With nothing uncommitted, done is called at once."""
        calls: list[str] = []
        self.store.when_durable(lambda: calls.append("done"), calls.append)
        self.assertEqual(calls, ["done"])

    def test_failed_commit(self) -> None:
        """A failing commit calls failed with the StoreError, never done."""
        calls: list[Any] = []
        written = self.store.add_inbox("message", {}, 1.0)
        self.store.when_durable(lambda: calls.append("done"), calls.append)
        real = self.store._db
        self.store._db = FailingCommit(real)  # type: ignore[assignment]
        self.assertRaises(StoreError, self.store.commit)
        self.failureResultOf(written, StoreError)
        self.store._db = real
        self.assertEqual(len(calls), 1)
        self.assertIsInstance(calls[0], StoreError)

    def test_a_failing_waiter_does_not_stop_the_others(self) -> None:
        """A waiter that raises is logged; the ones after it are still called."""
        calls: list[str] = []

        def broken() -> None:
            raise RuntimeError("waiter bug")

        self.store.add_inbox("message", {}, 1.0)
        self.store.when_durable(broken, calls.append)
        self.store.when_durable(lambda: calls.append("second"), calls.append)
        with capturedLogs() as events:
            self.store.commit()
        self.assertEqual(calls, ["second"])
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertTrue(any("waiter failed" in formatEvent(e) for e in events))


class OpenTests(StoreTestCase):
    """Opening a store file: folders, WAL, schema versions, bad files."""

    def test_creates_folder_and_uses_wal(self) -> None:
        """The state folder is created and the file is in WAL mode."""
        self.assertTrue(os.path.isdir(os.path.dirname(self.path)))
        db = sqlite3.connect(self.path)
        self.addCleanup(db.close)
        self.assertEqual(db.execute("PRAGMA journal_mode").fetchone()[0], "wal")

    def test_older_schema_refused(self) -> None:
        """A file of an earlier schema version (a development build's) is refused with one line
        naming the file and both versions, and is left as it was."""
        self.store.close()
        db = sqlite3.connect(self.path)
        db.execute("PRAGMA user_version=3")
        db.close()
        error = self.assertRaises(StoreError, Store, self.path, self.clock)
        self.assertEqual(
            str(error),
            f"the store {self.path!r} has schema version 3, older than this gateway's 4"
            " (a development build's, before 0.1.0): move it away to start with an empty store")
        db = sqlite3.connect(self.path)
        self.addCleanup(db.close)
        self.assertEqual(db.execute("PRAGMA user_version").fetchone(), (3,))

    def test_newer_schema_refused(self) -> None:
        """A file written by a newer gateway (higher user_version) is refused with StoreError."""
        self.store.close()
        db = sqlite3.connect(self.path)
        db.execute("PRAGMA user_version=99")
        db.close()
        error = self.assertRaises(StoreError, Store, self.path, self.clock)
        self.assertEqual(
            str(error),
            f"the store {self.path!r} has schema version 99; this gateway knows version 4"
            " (the file was written by a newer gateway)")

    def test_not_a_database(self) -> None:
        """A file that is not SQLite is refused with StoreError naming the path."""
        path = self.mktemp()
        with open(path, "wb") as garbage:
            garbage.write(b"this is not a database" * 100)
        error = self.assertRaises(StoreError, Store, path, self.clock)
        self.assertIn(path, str(error))

    def test_memory_store(self) -> None:
        """A store opened on ":memory:" works, for tests."""
        store = Store(":memory:", self.clock)
        self.addCleanup(store.close)
        store.add_outbound("r1", "smsc1", {}, 1, 1.0)
        self.assertEqual(len(store.unfinished()), 1)


_KILLED_WRITER = """
import os, signal, sys
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from smppgw.store.sqlite import Store

store = Store(sys.argv[1], Clock())
store.add_outbound("kept", "smsc1", {"body": "6869"}, 1, 1.0)
store.durable().addCallback(lambda _: print("durable", flush=True))
store.commit()
store.add_outbound("lost", "smsc1", {}, 1, 2.0)
os.kill(os.getpid(), signal.SIGKILL)
"""


class KillTests(StoreTestCase):
    """What a SIGKILLed gateway leaves behind."""

    def test_committed_row_survives_sigkill(self) -> None:
        """A write reported durable survives a SIGKILL of the process; an uncommitted one does not."""
        self.store.close()
        root = os.path.dirname(os.path.dirname(os.path.abspath(smppgw.__file__)))
        env = dict(os.environ, PYTHONPATH=root)
        child = subprocess.run(
            [sys.executable, "-c", textwrap.dedent(_KILLED_WRITER), self.path],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        self.assertEqual((child.returncode, child.stdout), (-signal.SIGKILL, "durable\n"))
        self.assertTrue(os.path.exists(self.path + "-wal"))
        store = self.open()
        self.assertEqual(store.outbound("kept").payload, {"body": "6869"})  # type: ignore[union-attr]
        self.assertIsNone(store.outbound("lost"))


_HOLDER = """
import sys
from twisted.internet.task import Clock
from smppgw.store.interfaces import StoreError
from smppgw.store.sqlite import Store

try:
    store = Store(sys.argv[1], Clock())
except StoreError as error:
    sys.exit(str(error))
print("held", flush=True)
sys.stdin.read()
"""


class HolderTests(StoreTestCase):
    """One process at a time holds a store file."""

    def holder(self) -> subprocess.Popen[str]:
        """Start a process that opens the store, holds it until killed; return once it holds it."""
        root = os.path.dirname(os.path.dirname(os.path.abspath(smppgw.__file__)))
        child = subprocess.Popen([sys.executable, "-c", _HOLDER, self.path], text=True,
                                 env=dict(os.environ, PYTHONPATH=root), stdin=subprocess.PIPE,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(child.communicate)  # waits, and closes the pipes
        self.addCleanup(child.kill)
        assert child.stdout is not None
        self.assertEqual(child.stdout.readline(), "held\n")
        return child

    def refusal(self, pid: int) -> str:
        return (f"the store {os.path.abspath(self.path)!r} is in use by another gateway"
                f" (pid {pid}); stop it, or give this one its own [store] path")

    def refused(self) -> None:
        """A second process trying to open the store exits at once with the one-line refusal."""
        root = os.path.dirname(os.path.dirname(os.path.abspath(smppgw.__file__)))
        child = subprocess.run([sys.executable, "-c", _HOLDER, self.path], text=True,
                               env=dict(os.environ, PYTHONPATH=root), capture_output=True,
                               stdin=subprocess.DEVNULL, timeout=60)
        self.assertEqual((child.returncode, child.stdout, child.stderr),
                         (1, "", self.refusal(os.getpid()) + "\n"))

    def test_second_process_refused(self) -> None:
        """While one process holds the store, another exits at once with one line naming the file and the pid."""
        self.refused()

    def test_sigkilled_holder_leaves_no_lock(self) -> None:
        """A store held by a process that is then SIGKILLed opens at once afterwards."""
        self.store.close()
        child = self.holder()
        error = self.assertRaises(StoreError, Store, self.path, Clock())
        self.assertEqual(str(error), self.refusal(child.pid))
        child.kill()
        self.assertEqual(child.wait(), -signal.SIGKILL)
        self.assertTrue(os.path.exists(self.path + ".lock"))
        self.open().add_inbox("message", {}, 1.0)

    def test_lock_held_until_the_last_store_in_the_process_closes(self) -> None:
        """A second store on the same file in one process shares the lock, which goes with the last close."""
        other = Store(self.path, Clock())
        self.store.close()
        self.refused()
        other.close()
        child = self.holder()
        with open(self.path + ".lock") as lock:
            self.assertEqual(lock.read(), f"{child.pid}\n")


class ModeTests(SynchronousTestCase):
    """The store's folder and files are the gateway user's only."""

    def setUp(self) -> None:
        self.addCleanup(os.umask, os.umask(0o022))
        self.folder = os.path.join(os.path.abspath(self.mktemp()), "state")
        self.path = os.path.join(self.folder, "smppgw.sqlite")

    def modes(self) -> dict[str, int]:
        return {name: os.stat(os.path.join(self.folder, name)).st_mode & 0o777
                for name in sorted(os.listdir(self.folder))}

    def write(self) -> Store:
        store = Store(self.path, Clock())
        self.addCleanup(store.close)
        store.add_inbox("message", {"body": "secret"}, 1.0)
        store.commit()
        return store

    def test_private_under_umask_022(self) -> None:
        """Under umask 022 the folder is 0700 and the database, its log, shared memory and lock 0600."""
        self.write()
        self.assertEqual(os.stat(self.folder).st_mode & 0o777, 0o700)
        self.assertEqual(self.modes(), {"smppgw.sqlite": 0o600, "smppgw.sqlite-shm": 0o600,
                                        "smppgw.sqlite-wal": 0o600, "smppgw.sqlite.lock": 0o600})

    def test_earlier_files_tightened(self) -> None:
        """World-readable files an earlier version left are made 0600 when the store opens."""
        self.write().close()
        os.chmod(self.folder, 0o755)
        for name in os.listdir(self.folder):
            os.chmod(os.path.join(self.folder, name), 0o644)
        self.write()
        self.assertEqual(set(self.modes().values()), {0o600})
        # A folder that already existed keeps its mode: it may be shared.
        self.assertEqual(os.stat(self.folder).st_mode & 0o777, 0o755)


class CheckpointerTests(StoreTestCase):
    """The background checkpoint copies committed pages into the database file, off the writer."""

    def setUp(self) -> None:
        super().setUp()
        self.pending: list[Deferred[Any]] = []

    def synchronous(self, f: Any) -> Deferred[Any]:
        return maybeDeferred(f)

    def held(self, f: Any) -> Deferred[Any]:
        """Run f only when the test fires the Deferred: a checkpoint still running."""
        d: Deferred[Any] = Deferred()
        d.addCallback(lambda _: f())
        self.pending.append(d)
        return d

    def checkpointer(self, run: Any) -> Checkpointer:
        checkpointer = Checkpointer(self.store, self.clock, every=1.0, run_in_thread=run)
        checkpointer.start()
        self.addCleanup(checkpointer.stop)
        return checkpointer

    def database_file_alone(self) -> Store:
        """The database file copied without its log: what a checkpoint put there."""
        copy = os.path.join(self.mktemp(), "copy.sqlite")
        os.makedirs(os.path.dirname(copy))
        with open(self.path, "rb") as source, open(copy, "wb") as target:
            target.write(source.read())
        other = Store(copy, Clock())
        self.addCleanup(other.close)
        return other

    def test_writer_checkpoint_becomes_the_bound(self) -> None:
        self.checkpointer(self.synchronous)
        (pages,) = self.store._db.execute("PRAGMA wal_autocheckpoint").fetchone()
        self.assertEqual(pages, WRITER_CHECKPOINT_PAGES)

    def test_copies_committed_rows(self) -> None:
        """After a tick, the database file holds the committed rows without the log."""
        checkpointer = self.checkpointer(self.synchronous)
        for n in range(20):
            self.store.add_outbound(f"r{n}", "smsc1", {"n": n}, 1, 1.0)
        self.store.commit()
        self.assertIsNone(self.database_file_alone().outbound("r19"))
        self.clock.advance(1.0)
        self.assertEqual(checkpointer.runs, 1)
        assert checkpointer.last is not None
        busy, pages, copied = checkpointer.last
        self.assertEqual((busy, copied), (0, pages))
        self.assertIsNotNone(self.database_file_alone().outbound("r19"))

    def test_nothing_committed_nothing_run(self) -> None:
        checkpointer = self.checkpointer(self.synchronous)
        self.clock.advance(5.0)
        self.assertEqual(checkpointer.runs, 0)
        self.store.add_inbox("message", {}, 1.0)
        self.store.commit()
        self.clock.advance(1.0)
        self.clock.advance(1.0)
        self.assertEqual(checkpointer.runs, 1)

    def test_one_at_a_time_and_stop_waits(self) -> None:
        """A tick while a checkpoint runs starts none; stop() fires once it is over."""
        checkpointer = self.checkpointer(self.held)
        self.store.add_inbox("message", {}, 1.0)
        self.store.commit()
        self.clock.advance(1.0)
        self.store.add_inbox("message", {}, 1.0)
        self.store.commit()
        self.clock.advance(1.0)
        self.assertEqual(len(self.pending), 1)
        stopped = checkpointer.stop()
        self.assertNoResult(stopped)
        self.pending[0].callback(None)
        self.successResultOf(stopped)
        self.assertEqual(checkpointer.runs, 1)
        self.assertIsNone(checkpointer._db)

    def test_failure_is_logged_and_checkpoints_go_on(self) -> None:
        def failing(f: Any) -> Deferred[Any]:
            return fail(sqlite3.OperationalError("disk I/O error"))

        checkpointer = self.checkpointer(failing)
        self.store.add_inbox("message", {}, 1.0)
        self.store.commit()
        with capturedLogs() as events:
            self.clock.advance(1.0)
        self.assertIn("background checkpoint failed: disk I/O error", formatEvent(events[0]))
        checkpointer._run_in_thread = self.synchronous
        self.store.add_inbox("message", {}, 1.0)
        self.store.commit()
        self.clock.advance(1.0)
        self.assertEqual(checkpointer.runs, 1)


class CheckpointerThreadTests(TestCase):
    """The checkpoint in a real worker thread, beside the writer."""

    def test_in_a_thread(self) -> Deferred[None]:
        from twisted.internet import reactor

        path = os.path.join(self.mktemp(), "s.sqlite")
        store = Store(path, Clock())
        checkpointer = Checkpointer(store, reactor, every=3600.0)
        checkpointer.start()
        for n in range(100):
            store.add_outbound(f"r{n}", "smsc1", {"n": n}, 1, 1.0)
        store.commit()
        checkpointer.tick()
        running = checkpointer._running
        assert running is not None

        def check(_: Any) -> Deferred[None]:
            self.assertEqual(checkpointer.runs, 1)
            assert checkpointer.last is not None
            self.assertGreater(checkpointer.last[2], 0)
            return checkpointer.stop()

        running.addCallback(check)
        running.addCallback(lambda _: store.close())
        return running
