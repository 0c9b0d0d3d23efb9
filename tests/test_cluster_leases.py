"""Leases with epochs on the database's clock, their fence, and the Renewer that keeps one.

On the PostgreSQL server of ``SMPPGW_TEST_POSTGRES`` (see test_store_postgres):
skipped without it, failed under CI=true.  A lease is made to run out by
moving its ``lease_until`` into the past, never by waiting.
"""

from __future__ import annotations

from typing import Any

import psycopg
from twisted.internet.task import Clock
from zope.interface.verify import verifyObject

from smppgw.cluster import leases
from smppgw.cluster.connection import BlockingConnection, IConnection, connect
from smppgw.cluster.leases import LeaseKey, LeaseLost, Leases, Tenure
from smppgw.cluster.renewer import Renewer
from smppgw.store.interfaces import BadStoreInput, StoreError
from smppgw.store.postgres import schema

from .test_store_postgres import OnPostgres

KEY = LeaseKey.bind("smsc1", 0)


class ClusterCase(OnPostgres):
    """A test case on a prepared store schema of its own, with connections to it."""

    def setUp(self) -> None:
        super().setUp()
        with connect(self.url()) as db:
            schema.prepare(db, "the test's store")

    def db(self, **params: Any) -> psycopg.Connection[Any]:
        """A new autocommit connection to the test's schema, closed after the test."""
        db = connect(self.url(**params))
        self.addCleanup(db.close)
        return db

    def blocking(self, **params: Any) -> BlockingConnection:
        """A new BlockingConnection to the test's schema, closed after the test."""
        connection = BlockingConnection(self.url(**params))
        self.addCleanup(connection.shut)
        return connection

    def expire(self, key: LeaseKey = KEY) -> None:
        """Make ``key``'s lease run out, as if its time had passed on the database's clock."""
        self.admin.execute(
            f"UPDATE {self.schema}.lease SET lease_until = now() - interval '1 second'"
            " WHERE kind = %s AND name = %s AND slot = %s", key.params())

    def left(self, key: LeaseKey = KEY) -> float:
        """Seconds left on ``key``'s lease, by the database's clock."""
        (seconds,) = self.admin.execute(
            f"SELECT extract(epoch FROM lease_until - clock_timestamp()) FROM {self.schema}.lease"
            " WHERE kind = %s AND name = %s AND slot = %s", key.params()).fetchone() or (None,)
        return float(seconds)


class LeaseTests(ClusterCase):
    """acquire, renew, release and fenced, straight on a connection."""

    def test_acquire_free_then_held(self) -> None:
        """A free key is taken at epoch 1 for the length asked, on the database's clock;
        while it runs, no other node (nor its holder) gets it."""
        db = self.db()
        self.assertEqual(leases.acquire(db, KEY, "a", 30), Tenure(KEY, "a", 1))
        self.assertTrue(29 < self.left() <= 30)
        self.assertEqual((leases.acquire(db, KEY, "b", 30), leases.acquire(db, KEY, "a", 30)),
                         (None, None))

    def test_takeover_fences_the_old_holder(self) -> None:
        """Once A's lease ran out, B takes the key at the next epoch; A's renewal then
        answers False and A's fenced write raises LeaseLost naming B, writing nothing."""
        db = self.db()
        a = leases.acquire(db, KEY, "a", 30)
        assert a is not None
        self.expire()
        b = leases.acquire(db, KEY, "b", 30)
        self.assertEqual(b, Tenure(KEY, "b", 2))
        self.assertFalse(leases.renew(db, a, 30))
        with self.assertRaises(LeaseLost) as raised, db.transaction():
            leases.fenced(db, a)
            db.execute("INSERT INTO meta (name, value) VALUES ('written', 'yes')")
        self.assertIn("'a' no longer holds bind 'smsc1' slot 0 at epoch 1: 'b' holds it at epoch 2",
                      str(raised.exception))
        self.assertIsInstance(raised.exception, StoreError)
        self.assertEqual(db.execute("SELECT count(*) FROM meta WHERE name = 'written'").fetchone(),
                         (0,))
        with db.transaction():
            self.assertIsInstance(leases.fenced(db, b), int)

    def test_renew_extends_a_running_lease(self) -> None:
        """A renewal of a running tenure makes it run the length asked from now."""
        db = self.db()
        a = leases.acquire(db, KEY, "a", 5)
        assert a is not None
        self.assertTrue(leases.renew(db, a, 60))
        self.assertTrue(59 < self.left() <= 60)

    def test_lapsed_tenure_cannot_be_renewed(self) -> None:
        """A tenure whose lease ran out is not renewed even though no other node took the
        key, nor does it pass the fence; its holder gets the key again at a new epoch."""
        db = self.db()
        a = leases.acquire(db, KEY, "a", 30)
        assert a is not None
        self.expire()
        self.assertFalse(leases.renew(db, a, 30))
        with self.assertRaises(LeaseLost) as raised, db.transaction():
            leases.fenced(db, a)
        self.assertIn("'a' holds it at epoch 1, lapsed", str(raised.exception))
        self.assertEqual(leases.acquire(db, KEY, "a", 30), Tenure(KEY, "a", 2))

    def test_release_frees_the_key(self) -> None:
        """A released key is taken at once by another node, at the next epoch; releasing
        a tenure that is over changes nothing."""
        db = self.db()
        a = leases.acquire(db, KEY, "a", 30)
        assert a is not None
        self.assertTrue(leases.release(db, a))
        self.assertEqual(leases.acquire(db, KEY, "b", 30), Tenure(KEY, "b", 2))
        self.assertFalse(leases.release(db, a))
        self.assertEqual(leases.holders(db, "bind", "smsc1"), [Tenure(KEY, "b", 2)])

    def test_holders_lists_running_tenures(self) -> None:
        """holders lists the tenures that run, by slot, leaving out lapsed and other names."""
        db = self.db()
        for slot, node in ((1, "b"), (0, "a"), (2, "c")):
            leases.acquire(db, LeaseKey.bind("smsc1", slot), node, 30)
        leases.acquire(db, LeaseKey.bind("smsc2"), "d", 30)
        self.expire(LeaseKey.bind("smsc1", 2))
        self.assertEqual(leases.holders(db, "bind", "smsc1"),
                         [Tenure(LeaseKey.bind("smsc1", 0), "a", 1),
                          Tenure(LeaseKey.bind("smsc1", 1), "b", 1)])

    def test_acquire_one_takes_one_key_per_node(self) -> None:
        """acquire_one takes the first free key, but none for a node that holds one of the keys
        already (a restarted node whose former lease runs); once that one lapsed it takes one."""
        db = self.db()
        keys = [LeaseKey.bind("smsc1", slot) for slot in range(3)]
        self.assertEqual(leases.acquire_one(db, keys, "a", 30), Tenure(keys[0], "a", 1))
        self.assertIsNone(leases.acquire_one(db, keys, "a", 30))
        self.assertEqual(leases.acquire_one(db, keys, "b", 30), Tenure(keys[1], "b", 1))
        leases.acquire(db, LeaseKey.bind("smsc2"), "c", 30)  # another server's key counts not
        self.assertEqual(leases.acquire_one(db, keys, "c", 30), Tenure(keys[2], "c", 1))
        self.expire(keys[0])
        self.assertEqual(leases.acquire_one(db, keys, "a", 30), Tenure(keys[0], "a", 2))

    def test_fence_holds_off_a_takeover(self) -> None:
        """While a fenced transaction is open, another node's acquire of the key waits for
        it (here: gives up after its lock timeout) instead of deciding at once."""
        a = leases.acquire(self.db(), KEY, "a", 30)
        assert a is not None
        writer, other = self.db(), self.db()
        other.execute("SET lock_timeout = '50ms'")
        with writer.transaction():
            leases.fenced(writer, a)
            self.assertRaises(psycopg.errors.LockNotAvailable, leases.acquire, other, KEY, "b", 30)
        self.assertIsNone(leases.acquire(other, KEY, "b", 30))

    def test_fence_outside_a_transaction_refused(self) -> None:
        """fenced outside a transaction is refused: its hold would end with its statement."""
        db = self.db()
        a = leases.acquire(db, KEY, "a", 30)
        assert a is not None
        self.assertIn("inside a transaction",
                      str(self.assertRaises(StoreError, leases.fenced, db, a)))

    def test_bad_input_refused(self) -> None:
        """A length that is not a positive number of seconds, or an empty node name, is refused
        and takes nothing."""
        db = self.db()
        for seconds in (0, -1, "10", True):
            self.assertRaises(BadStoreInput, leases.acquire, db, KEY, "a", seconds)
        self.assertIn("node's name", str(self.assertRaises(BadStoreInput, leases.acquire, db,
                                                            KEY, "", 10)))
        self.assertEqual(leases.holders(db, "bind", "smsc1"), [])

    def test_deferred_calls(self) -> None:
        """Leases gives each call's result as a Deferred; a database failure as StoreError."""
        connection = self.blocking()
        verifyObject(IConnection, connection)
        lease = Leases(connection)
        a = self.successResultOf(lease.acquire(KEY, "a", 30))
        self.assertEqual(a, Tenure(KEY, "a", 1))
        self.assertIsNone(self.successResultOf(
            lease.acquire_first([KEY], "b", 30)))
        self.assertEqual(self.successResultOf(
            lease.acquire_first([KEY, LeaseKey.bind("smsc1", 1)], "b", 30)),
            Tenure(LeaseKey.bind("smsc1", 1), "b", 1))
        assert a is not None
        self.assertTrue(self.successResultOf(lease.renew(a, 30)))
        self.assertTrue(self.successResultOf(lease.release(a)))
        connection.shut()
        error = self.failureResultOf(lease.renew(a, 30), StoreError).value
        self.assertIn("cannot renew bind 'smsc1' slot 0 held by 'a' at epoch 1", str(error))


class RenewerTests(ClusterCase):
    """The Renewer keeps a lease on a task.Clock and says when it is lost."""

    def start(self, lease: Leases, tenure: Tenure, clock: Clock) -> tuple[Renewer, list[str]]:
        lost: list[str] = []
        renewer = Renewer(lease, tenure, 9, clock, lambda t, reason: lost.append(reason))
        renewer.startService()
        self.addCleanup(renewer.stopService)
        return renewer, lost

    def test_renews_every_third(self) -> None:
        """Every third of the lease the Renewer renews it for the whole length again."""
        lease, clock = Leases(self.blocking()), Clock()
        tenure = self.successResultOf(lease.acquire(KEY, "a", 9))
        assert tenure is not None
        renewer, lost = self.start(lease, tenure, clock)
        self.admin.execute(f"UPDATE {self.schema}.lease SET lease_until = now() + interval '1 s'")
        clock.advance(2.9)
        self.assertLess(self.left(), 1.5)
        clock.advance(0.1)
        self.assertGreater(self.left(), 8)
        for _ in range(5):
            clock.advance(3)
        self.assertEqual((renewer.held, lost), (True, []))

    def test_lost_when_taken_over(self) -> None:
        """A renewal that finds another node holding the key reports the loss once and stops."""
        lease, clock = Leases(self.blocking()), Clock()
        tenure = self.successResultOf(lease.acquire(KEY, "a", 9))
        assert tenure is not None
        renewer, lost = self.start(lease, tenure, clock)
        self.expire()
        self.successResultOf(lease.acquire(KEY, "b", 9))
        clock.advance(3)
        self.assertEqual((renewer.held, lost), (False, ["the lease lapsed or another node holds it"]))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_presumed_lost_without_renewals(self) -> None:
        """When no renewal succeeds (the database is gone) the lease is given up as lost once
        its length has passed since the last renewal that did, not before."""
        connection = self.blocking()
        lease, clock = Leases(connection), Clock()
        tenure = self.successResultOf(lease.acquire(KEY, "a", 9))
        assert tenure is not None
        renewer, lost = self.start(lease, tenure, clock)
        clock.advance(3)  # renewed: the lease now runs until 3 + 9
        connection.shut()
        clock.advance(6)
        clock.advance(2.9)
        self.assertEqual((renewer.held, lost), (True, []))
        clock.advance(0.1)
        self.assertEqual((renewer.held, lost), (False, ["no renewal succeeded for 9 s"]))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_stop_leaves_no_timers(self) -> None:
        """A stopped Renewer renews no more and leaves no timer."""
        lease, clock = Leases(self.blocking()), Clock()
        tenure = self.successResultOf(lease.acquire(KEY, "a", 9))
        assert tenure is not None
        renewer, lost = self.start(lease, tenure, clock)
        renewer.stopService()
        self.assertEqual((clock.getDelayedCalls(), lost), ([], []))
