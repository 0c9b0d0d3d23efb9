"""The PostgreSQL store: the conformance suite, its schema version, two nodes on one database.

The tests run against the server that ``SMPPGW_TEST_POSTGRES`` names (a libpq
URL; ``.ci/postgres start`` makes a throwaway one and `.ci/run` does so for
CI), each in a schema of its own, dropped after.  Without it they are
skipped, except under CI=true, where they fail: CI must not hide them.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from typing import Any

import psycopg
from psycopg import conninfo
from twisted.trial.unittest import SynchronousTestCase

from smppgw.cluster import leases
from smppgw.cluster.connection import connect
from smppgw.cluster.leases import LeaseKey
from smppgw.relay.dialogs import Binding
from smppgw.store.claiming import Claim
from smppgw.store.conformance import DAY, StoreConformance
from smppgw.store.interfaces import BadStoreInput, DuplicateRequest, StoreError, UnknownRow
from smppgw.store.postgres import SCHEMA_VERSION, PostgresStore, schema
from smppgw.store.postgres.database import describe, one, statement
from smppgw.store.postgres.inbound import keep_fragment

URL = os.environ.get("SMPPGW_TEST_POSTGRES")
MISSING = None if URL else (
    "SMPPGW_TEST_POSTGRES is not set: start a server with"
    ' eval "$(.ci/postgres start)" (see README, Development)')


class Unturned:
    """A reactor that never turns: the writes' Deferreds fire in `PostgresStore.settle`."""

    def callFromThread(self, f: Any, *args: Any) -> None:
        pass


def own_schema(case: Any) -> str:
    """Give ``case`` (a test case, synchronous or not) ``case.admin``, an autocommit
    connection to ``SMPPGW_TEST_POSTGRES``, and a new schema of its own; return the schema's
    name.  After the test the schema is dropped and the connection closed, through whatever
    connection ``case.admin`` is then (a test that restarts the server opens a new one)."""
    if URL is None:
        case.fail(f"CI=true but {MISSING}")
    case.admin = psycopg.connect(URL, autocommit=True)
    case.addCleanup(lambda: case.admin.close())
    schema = f"test_{uuid.uuid4().hex[:16]}"
    case.admin.execute(f"CREATE SCHEMA {schema}")
    case.addCleanup(lambda: case.admin.execute(f"DROP SCHEMA {schema} CASCADE"))
    return schema


class OnPostgres(SynchronousTestCase):
    """A test case on a schema of its own, in the database of ``SMPPGW_TEST_POSTGRES``."""

    # In CI (.ci/run starts the server) a missing server fails the tests instead of hiding them.
    skip = None if os.environ.get("CI") == "true" else MISSING

    def setUp(self) -> None:
        self.connect_admin()
        self.schema = self.fresh_schema()
        super().setUp()

    def connect_admin(self) -> None:
        """Open the connection that makes and drops the tests' schemas, closed after the test."""
        if URL is None:
            self.fail(f"CI=true but {MISSING}")
        self.admin = psycopg.connect(URL, autocommit=True)
        self.addCleanup(self.admin.close)

    def fresh_schema(self) -> str:
        """Make a new, empty schema, dropped after the test; return its name."""
        schema = f"test_{uuid.uuid4().hex[:16]}"
        self.admin.execute(f"CREATE SCHEMA {schema}")
        self.addCleanup(self.admin.execute, f"DROP SCHEMA {schema} CASCADE")
        return schema

    def url(self, schema: str | None = None, **params: Any) -> str:
        """The database's URL with ``schema`` (the test's) the only one in the search path."""
        assert URL is not None
        return conninfo.make_conninfo(
            URL, options=f"-c search_path={schema or self.schema}", **params)

    def open(self, retention: float = 7 * DAY, lock_timeout: float = 5.0, schema: str | None = None,
             **params: Any) -> PostgresStore:
        store = PostgresStore(self.url(schema, **params), Unturned(), retention=retention,
                              lock_timeout=lock_timeout)
        self.addCleanup(store.close)
        return store

    def written(self, store: PostgresStore, write: Any) -> Any:
        """The value of a write, once committed."""
        store.settle()
        return self.successResultOf(write)

    def refused(self, store: PostgresStore, write: Any, *errors: type[BaseException]) -> Any:
        """The error a write fails with."""
        store.settle()
        return self.failureResultOf(write, *errors).value

    def meta(self) -> list[tuple[Any, ...]]:
        return self.admin.execute(f"SELECT name, value FROM {self.schema}.meta").fetchall()


class PostgresConformance(StoreConformance, OnPostgres):
    """The PostgreSQL store, reopened on a new connection to play a restart."""

    def setUp(self) -> None:
        # Conformance.setUp makes the store: the admin connection must be there first.
        self.connect_admin()
        super().setUp()

    def make_store(self, retention: float = 7 * DAY) -> PostgresStore:
        # Each store a new, empty one: a schema of its own.
        return self.open(retention, schema=self.fresh_schema())

    def reopen(self, store: PostgresStore) -> PostgresStore:
        store.close()
        again = PostgresStore(store.url, Unturned(), retention=store.retention)
        self.addCleanup(again.close)
        return again

    def turn(self) -> None:
        self.store.settle()

    def claim(self, server: str) -> Claim:
        """A claim under bind slot 0 of ``server``, taken by node-a on the store's database."""
        with connect(self.store.url) as db:
            tenure = leases.acquire(db, LeaseKey.bind(server), "node-a", 60)
        assert tenure is not None
        return Claim(server, tenure.lease, tenure.node, tenure.epoch)


class SchemaTests(OnPostgres):
    """The store makes its tables on first open and refuses a schema it does not know."""

    def test_first_open_creates_the_schema(self) -> None:
        """A first open creates the tables and records the schema version; a second keeps them."""
        first = self.open()
        self.written(first, first.add_inbox("message", {}, 1.0))
        self.assertEqual(self.meta(), [("schema_version", str(SCHEMA_VERSION))])
        self.assertEqual(self.open().counts()["inbox"], 1)

    def test_newer_schema_refused(self) -> None:
        """A database of a newer schema version is refused, naming both versions, and left as it is."""
        self.open().close()
        newer = str(SCHEMA_VERSION + 1)
        self.admin.execute(f"UPDATE {self.schema}.meta SET value = %s", (newer,))
        error = self.assertRaises(StoreError, PostgresStore, self.url(), Unturned())
        self.assertIn(f"has schema version {newer}; this gateway knows version {SCHEMA_VERSION}",
                      str(error))
        self.assertEqual(self.meta(), [("schema_version", newer)])

    def test_older_schema_without_upgrade_refused(self) -> None:
        """A database of an older version that no upgrade starts from is refused, naming both."""
        self.open().close()
        self.admin.execute(f"UPDATE {self.schema}.meta SET value = '0'")
        error = self.assertRaises(StoreError, PostgresStore, self.url(), Unturned())
        self.assertIn(f"schema version 0, older than this gateway's {SCHEMA_VERSION}", str(error))

    def test_older_schema_upgraded(self) -> None:
        """A database of an older version is upgraded step by step on open, its rows kept,
        and the new version recorded."""
        first = self.open()
        self.written(first, first.add_inbox("message", {"n": 1}, 1.0))
        self.patch(schema, "SCHEMA_VERSION", SCHEMA_VERSION + 2)
        self.patch(schema, "UPGRADES", {
            SCHEMA_VERSION: "ALTER TABLE inbox ADD COLUMN first_step integer",
            SCHEMA_VERSION + 1: "ALTER TABLE inbox ADD COLUMN second_step integer"})
        store = self.open()
        self.assertEqual(([row.payload for row in store.inbox()], self.meta()),
                         ([{"n": 1}], [("schema_version", str(SCHEMA_VERSION + 2))]))
        self.assertEqual(
            self.admin.execute(f"SELECT first_step, second_step FROM {self.schema}.inbox").fetchall(),
            [(None, None)])

    def test_foreign_meta_refused(self) -> None:
        """A schema with a meta table that holds no version is not taken for the store's."""
        self.admin.execute(f"CREATE TABLE {self.schema}.meta (name text, value text)")
        error = self.assertRaises(StoreError, PostgresStore, self.url(), Unturned())
        self.assertIn("without a schema version", str(error))


class TwoNodesTests(OnPostgres):
    """Two stores on one database, as two gateway nodes: each sees what the other wrote."""

    def test_duplicate_request_across_nodes(self) -> None:
        """A request accepted through one node is a DuplicateRequest through the other, with its row."""
        a, b = self.open(), self.open()
        seq = self.written(a, a.add_outbound("r1", "smsc1", b"\x01\x02", 2, 5.0))
        error = self.refused(b, b.add_outbound("r1", "smsc2", {}, 1, 6.0), DuplicateRequest)
        self.assertEqual(error.row, a.outbound("r1"))
        self.assertEqual((error.row.server, error.row.payload, error.row.seq), ("smsc1", b"\x01\x02", seq))
        self.assertEqual([row.request_id for row in b.unfinished()], ["r1"])

    def test_receipt_found_through_the_other_node(self) -> None:
        """A part accepted through one node is found by its receipt through the other, and its
        outcome is seen there."""
        a, b = self.open(), self.open()
        a.add_outbound("r1", "smsc1", {}, 1, 1.0)
        a.set_message_id("r1", 0, "00AB", "ab", receipt_due=60.0)
        a.settle()  # what one node wrote, the other sees once it is committed
        self.assertEqual((b.lookup_message("smsc1", "ab"), b.next_receipt_due()), (("r1", 0), 60.0))
        b.receipt_came("r1", 0)
        b.finish("r1", {"ok": True})
        b.settle()
        row = a.outbound("r1")
        self.assertEqual((a.next_receipt_due(), row and row.outcome), (None, {"ok": True}))

    def test_inbound_shared(self) -> None:
        """Inbox ids from both nodes are distinct and increasing; fragments and bindings are shared."""
        a, b = self.open(), self.open()
        ids = [self.written(store, store.add_inbox(kind, {}, 1.0))
               for store, kind in ((a, "message"), (b, "message"), (a, "report"))]
        self.assertEqual(ids, sorted(set(ids)))
        self.assertEqual([row.id for row in b.inbox()], ids)
        self.written(a, a.add_fragment("k", 1, 2, {"t": "a"}, 1.0))
        self.assertEqual(self.written(b, b.add_fragment("k", 2, 2, {"t": "b"}, 2.0)), 2)
        self.written(a, a.save_binding(Binding("+15550001", "ann@im", "a", 1.0)))
        self.assertEqual(b.load_bindings(), [Binding("+15550001", "ann@im", "a", 1.0)])

    def test_parts_kept_at_once_through_two_nodes(self) -> None:
        """Part 1 of a long SMS is being kept through one node (its transaction not committed
        yet) when part 2 comes through the other: the second waits for the first, counts
        both, and so finds the message whole; neither count misses the other's part."""
        b = self.open()
        a = psycopg.connect(self.url())
        self.addCleanup(a.close)
        first = keep_fragment(a, "k", 1, 2, '{"t": "a"}', 1.0)  # a transaction left open
        self.assertEqual(one(first.fetchone()), (1,))
        second = b.add_fragment("k", 2, 2, {"t": "b"}, 2.0)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not self.admin.execute(
                "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                " AND query LIKE '%%pg_advisory_xact_lock%%')").fetchone()[0]:
            pass  # until the second part waits on the first (or is kept without waiting)
        a.commit()
        self.assertEqual(self.written(b, second), 2)


class OperatorTests(OnPostgres):
    """What an operator's lookup reads, beyond IStore: as the SQLite store answers it."""

    def test_find_outbound_and_receipt_deadlines(self) -> None:
        """Requests whose PDUs hold a number come newest first, at most limit of them; a
        request's parts awaiting a receipt give their deadlines by index."""
        store = self.open()
        for request_id, wire in (("a", b"x15551234\0y"), ("b", b"15559999\0"),
                                 ("c", b"z15551234\0")):
            store.add_outbound(request_id, "smsc1", wire, 2, 1.0)
        store.add_outbound("j", "smsc1", {"to": "15551234"}, 1, 1.0)
        store.set_message_id("c", 0, "C1", "c1", ("smsc1", 2), receipt_due=90.0)
        store.set_message_id("c", 1, "C2", "c2", ("smsc1", 2))
        self.assertEqual([row.request_id for row in store.find_outbound(b"15551234\0")],
                         ["c", "a"])
        self.assertEqual([row.message_ids for row in store.find_outbound(b"15551234\0", 1)],
                         [("C1", "C2")])
        self.assertEqual((store.receipt_deadlines("c"), store.receipt_deadlines("a")),
                         ({0: 90.0}, {}))


class ConnectionTests(OnPostgres):
    """A store's connection: cut, and connected again."""

    def test_broken_connection_reconnects(self) -> None:
        """A call that finds the connection cut raises StoreError; the next one connects again."""
        store = self.open(application_name=self.schema)
        # Durable before the cut: the write goes on the writer's own connection, which
        # the cut may end before it commits (its Deferred would fail, the row not kept).
        self.written(store, store.add_inbox("message", {"n": 1}, 1.0))
        self.admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE application_name = %s", (self.schema,))
        self.assertRaises(StoreError, store.counts)
        self.assertEqual([row.payload for row in store.inbox()], [{"n": 1}])


    def test_held_row_times_out(self) -> None:
        """A write that waits for a row another connection holds gives up with StoreError after
        the lock timeout, changing nothing; once the row is let go, it goes through."""
        store = self.open(lock_timeout=0.05)
        self.written(store, store.add_outbound("r1", "smsc1", {}, 1, 1.0))
        with self.admin.transaction():
            self.admin.execute(f"SELECT 1 FROM {self.schema}.outbound WHERE request_id = 'r1'"
                               " FOR UPDATE")
            error = self.refused(store, store.finish("r1", {"ok": True}), StoreError)
        self.assertIn("lock timeout", str(error))
        self.assertIsNone(store.unfinished()[0].outcome)
        store.finish("r1", {"ok": True})
        self.assertEqual(store.counts()["unfinished"], 0)


class WriterTests(OnPostgres):
    """The writes run off the reactor's thread, several in one transaction, each failing alone."""

    def hold_writer(self, store: PostgresStore) -> threading.Event:
        """Keep the writer's thread busy until the event is set: what is given meanwhile
        waits, and goes in one transaction."""
        go = threading.Event()
        started = threading.Event()

        def held(db: Any) -> None:
            started.set()
            go.wait(10)

        store._write(held)
        started.wait(10)
        return go

    def test_fires_after_commit_on_the_reactor(self) -> None:
        """A write's Deferred fires only once committed, from the reactor's callFromThread."""
        calls: list[Any] = []

        class Reactor:
            def callFromThread(self, f: Any, *args: Any) -> None:
                calls.append((f, args))

        store = PostgresStore(self.url(), Reactor())
        self.addCleanup(store.close)
        go = self.hold_writer(store)
        written = store.add_inbox("message", {"n": 1}, 1.0)
        self.assertNoResult(written)
        self.assertEqual(self.admin.execute(f"SELECT COUNT(*) FROM {self.schema}.inbox").fetchone(),
                         (0,))
        go.set()
        store._writer.wait()
        self.assertNoResult(written)  # committed, not yet handed to the reactor
        self.assertEqual(self.admin.execute(f"SELECT COUNT(*) FROM {self.schema}.inbox").fetchone(),
                         (1,))
        for f, args in list(calls):
            f(*args)
        self.assertEqual([row.payload for row in store.inbox()],
                         [{"n": 1}])
        self.assertIsInstance(self.successResultOf(written), int)

    def test_writes_in_flight_share_a_commit(self) -> None:
        """The writes given while a transaction runs are committed together in the next one."""
        store = self.open()
        go = self.hold_writer(store)
        commits = store.commits
        writes = [store.add_inbox("message", {"n": n}, 1.0) for n in range(5)]
        go.set()
        ids = [self.written(store, write) for write in writes]
        self.assertEqual((ids, store.commits), (sorted(ids), commits + 2))

    def test_failed_statement_fails_its_write_only(self) -> None:
        """A statement that fails in a shared transaction fails its own write with StoreError;
        the others of the transaction are committed, a refused one stays refused."""
        store = self.open()
        self.written(store, store.add_outbound("r1", "smsc1", {}, 1, 1.0))
        go = self.hold_writer(store)
        before = store.add_inbox("message", {"n": 1}, 1.0)
        broken = store._write(statement("INSERT INTO inbox (kind) VALUES ('no payload')", ()))
        duplicate = store.add_outbound("r1", "smsc1", {}, 1, 2.0)
        after = store.finish("r1", {"ok": True})
        go.set()
        self.assertIn("null value", str(self.refused(store, broken, StoreError)))
        self.refused(store, duplicate, DuplicateRequest)
        self.written(store, before)
        self.written(store, after)
        self.assertEqual(([row.payload for row in store.inbox()], store.counts()["unfinished"],
                          store.failed_commits), ([{"n": 1}], 0, 0))


    def test_like_writes_share_a_statement(self) -> None:
        """Requests added, parts accepted and requests finished together go as a statement of
        each kind, and each write gets its own answer: seqs in the order given, a request_id
        kept already (or twice in the batch) a DuplicateRequest, an unknown one UnknownRow."""
        from smppgw.store.postgres import outbound

        statements: list[tuple[str, int]] = []

        def counting(name: str) -> Any:
            many = getattr(outbound, name)

            def counted(db: Any, rows: list[Any]) -> Any:
                statements.append((name, len(rows)))
                return many(db, rows)

            return counted

        for name in ("_add_many", "_record_parts", "_finish_many"):
            self.patch(outbound, name, counting(name))
        store = self.open()
        self.written(store, store.add_outbound("old", "smsc1", {}, 1, 1.0))
        go = self.hold_writer(store)
        added = [store.add_outbound(rid, "smsc1", {"n": rid}, 2, 2.0)
                 for rid in ("r1", "r2", "old", "r3")]
        again = store.add_outbound("r1", "smsc2", {}, 1, 3.0)
        parts = [store.set_message_id(rid, 1, f"M-{rid}", f"m-{rid}", ("smsc1", 2))
                 for rid in ("r2", "r3")]
        finished = [store.finish(rid, {"ok": rid}) for rid in ("r2", "nope", "r3")]
        go.set()
        store.settle()
        seqs = [self.successResultOf(added[i]) for i in (0, 1, 3)]
        self.assertEqual(seqs, sorted(seqs))
        self.assertEqual(self.failureResultOf(added[2], DuplicateRequest).value.row.request_id,
                         "old")
        self.assertEqual(self.failureResultOf(again, DuplicateRequest).value.row.server, "smsc1")
        for write in [*parts, finished[0], finished[2]]:
            self.assertIsNone(self.successResultOf(write))
        self.failureResultOf(finished[1], UnknownRow)
        # The second r1 starts a new stretch: it must see the first.
        self.assertEqual(statements, [("_add_many", 4), ("_record_parts", 2), ("_finish_many", 3)])
        self.assertEqual(
            [(row.request_id, row.message_ids, row.outcome) for row in store.unfinished()],
            [("old", (None,), None), ("r1", (None, None), None)])
        self.assertEqual([(r.request_id, r.message_ids, r.outcome)
                          for r in map(store.outbound, ("r2", "r3"))],
                         [("r2", (None, "M-r2"), {"ok": "r2"}), ("r3", (None, "M-r3"), {"ok": "r3"})])
        self.assertEqual(store.failed_commits, 0)


class WithoutServerTests(SynchronousTestCase):
    """What needs no server: naming the database, and one that cannot be reached."""

    def test_path_without_password(self) -> None:
        """The store's name for its database keeps the user, host, port and name, not the password."""
        self.assertEqual(describe("postgresql://gw:s3cret@db.example:5433/smppgw"),
                         "postgresql://gw@db.example:5433/smppgw")
        self.assertEqual(describe("dbname=smppgw password=s3cret"), "postgresql://localhost/smppgw")

    def test_unreachable_server(self) -> None:
        """A server that refuses the connection is a StoreError naming the database, not its password."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        error = self.assertRaises(StoreError, PostgresStore,
                                  f"postgresql://gw:s3cret@127.0.0.1:{port}/smppgw", Unturned())
        self.assertIn(f"cannot connect to the store postgresql://gw@127.0.0.1:{port}/smppgw", str(error))
        self.assertNotIn("s3cret", str(error))

    def test_bad_lock_timeout(self) -> None:
        """A lock timeout that is not a number of seconds is refused before connecting."""
        self.assertRaises(BadStoreInput, PostgresStore, "postgresql://gw@127.0.0.1:1/db",
                          Unturned(), lock_timeout="5s")


class SharedSettingsTests(OnPostgres):
    """The settings row the nodes share: one revision per publish, seen by every node."""

    def test_published_and_seen_by_the_other_node(self) -> None:
        """A publish through one node gives revision 1, the next (through the other) 2; both
        read the same text, the writer's name and a time on the database server's clock."""
        a, b = self.open(), self.open()
        self.assertEqual((a.settings_revision(), a.shared_settings()), (0, None))
        self.assertEqual(self.written(a, a.publish_settings("[module]\n", "gw-1")), 1)
        self.assertEqual(self.written(b, b.publish_settings('[module]\nlog_level = "none"\n',
                                                            "gw-2")), 2)
        found = a.shared_settings()
        assert found is not None
        self.assertEqual((found.revision, found.text, found.node),
                         (2, '[module]\nlog_level = "none"\n', "gw-2"))
        (now,) = self.admin.execute("SELECT extract(epoch FROM now())").fetchone()
        self.assertLess(abs(found.written - float(now)), 60)
        self.assertEqual(b.settings_revision(), 2)

    def test_bad_settings_refused(self) -> None:
        """An empty text or a missing node name is refused before anything is written."""
        a = self.open()
        self.assertRaises(BadStoreInput, a.publish_settings, "", "gw-1")
        self.assertRaises(BadStoreInput, a.publish_settings, "[module]\n", "")
        self.assertEqual(a.settings_revision(), 0)
