"""A server's bind slots shared by several nodes: which binds, which stands by, and takeovers;
and the standby state of a server without a link.

Each node is a `BindSlots` of its own name with its own connection and its own task.Clock,
on the PostgreSQL server of ``SMPPGW_TEST_POSTGRES`` (see test_store_postgres): skipped
without it, failed under CI=true.  A lease runs out on the database's clock: the tests move
its ``lease_until`` into the past rather than wait.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from smppgw.cluster import leases
from smppgw.cluster.binds import BindSlots
from smppgw.cluster.connection import BlockingConnection
from smppgw.cluster.leases import LeaseKey, Leases, Tenure
from smppgw.relay.servers import LiveServers

from .test_cluster_leases import ClusterCase

LEASE = 9.0
SLOT0, SLOT1 = LeaseKey.bind("smsc1", 0), LeaseKey.bind("smsc1", 1)


class Node:
    """One node's BindSlots for server smsc1, and what it was asked to do."""

    def __init__(self, case: ClusterCase, name: str, max_binds: int) -> None:
        self.connection: BlockingConnection = case.blocking()
        self.clock = Clock()
        #: ("start" | "stop", slot) in the order asked.
        self.events: list[tuple[str, int]] = []
        #: What the next stop returns: None (unbound at once) or a Deferred still to fire.
        self.unbinding: Deferred[None] | None = None
        self.slots = BindSlots(Leases(self.connection), "smsc1", name, LEASE, self.clock,
                               self._start, self._stop, max_binds=max_binds)

    def _start(self, tenure: Tenure) -> None:
        self.events.append(("start", tenure.key.slot))

    def _stop(self, tenure: Tenure) -> Deferred[None] | None:
        self.events.append(("stop", tenure.key.slot))
        return self.unbinding

    @property
    def bound(self) -> bool:
        """Whether the node was last asked to bind (and not to unbind since)."""
        return bool(self.events) and self.events[-1][0] == "start"


class BindSlotsTests(ClusterCase):
    """Nodes share a server's bind slots, max_binds of them, and take them over."""

    def node(self, name: str, max_binds: int = 1) -> Node:
        node = Node(self, name, max_binds)
        node.slots.startService()
        self.addCleanup(lambda: node.slots.running and node.slots.stopService())
        return node

    def holders(self) -> list[Tenure]:
        return leases.holders(self.db(), "bind", "smsc1")

    def test_one_node_binds_the_other_stands_by(self) -> None:
        """With max_binds 1 the first node takes slot 0 and binds; the second stands by,
        and goes on standing by at each of its tries while the first renews."""
        with capturedLogs() as events:
            a, b = self.node("a"), self.node("b")
        self.assertEqual((a.events, b.events), ([("start", 0)], []))
        self.assertEqual((a.slots.tenure, b.slots.tenure), (Tenure(SLOT0, "a", 1), None))
        self.assertEqual([formatEvent(e) for e in events], [
            "SMPP [smsc1] node a holds bind slot 0 (epoch 1): binding",
            "SMPP [smsc1] node b stands by: other nodes hold the 1 bind slot(s)"])
        for _ in range(4):
            a.clock.advance(LEASE / 3)
            b.clock.advance(LEASE / 3)
        self.assertEqual((a.events, b.events), ([("start", 0)], []))
        self.assertEqual(self.holders(), [Tenure(SLOT0, "a", 1)])

    def test_stopped_holder_hands_over_at_the_next_try(self) -> None:
        """The holder stopped unbinds, then frees its slot; the other node takes it at its
        next try (a third of the lease later), not before."""
        a, b = self.node("a"), self.node("b")
        a.unbinding = Deferred()
        stopped = a.slots.stopService()
        self.assertEqual(a.events, [("start", 0), ("stop", 0)])
        self.assertEqual(self.holders(), [Tenure(SLOT0, "a", 1)])  # still unbinding
        self.assertNoResult(stopped)
        a.unbinding.callback(None)
        self.successResultOf(stopped)
        self.assertEqual(self.holders(), [])
        b.clock.advance(LEASE / 3 - 0.1)
        self.assertEqual(b.events, [])
        b.clock.advance(0.1)
        self.assertEqual(b.events, [("start", 0)])
        self.assertEqual(self.holders(), [Tenure(SLOT0, "b", 2)])
        self.assertEqual(a.clock.getDelayedCalls(), [])

    def test_lapsed_holder_is_taken_over_and_unbinds(self) -> None:
        """A holder that stops renewing (its clock stands still, as a paused node's) keeps
        the slot until its lease runs out on the database's clock; then the other node takes
        it over and binds, and the former holder, at its next renewal, unbinds and stands by."""
        a, b = self.node("a"), self.node("b")
        b.clock.advance(LEASE / 3)
        self.assertEqual(b.events, [])
        self.expire(SLOT0)
        b.clock.advance(LEASE / 3)
        self.assertEqual((b.events, self.holders()), ([("start", 0)], [Tenure(SLOT0, "b", 2)]))
        self.assertTrue(a.bound)
        with capturedLogs() as events:
            a.clock.advance(LEASE / 3)
        self.assertEqual(a.events, [("start", 0), ("stop", 0)])
        self.assertIn("SMPP [smsc1] node a lost bind slot 0: the lease lapsed or another node"
                      " holds it; unbinding", [formatEvent(e) for e in events])
        self.assertIsNone(a.slots.tenure)
        a.clock.advance(LEASE / 3)  # standing by: tries again, finds the slot held
        self.assertEqual(a.events, [("start", 0), ("stop", 0)])

    def test_cut_off_holder_unbinds_after_a_lease(self) -> None:
        """A holder whose database is gone unbinds once no renewal has succeeded for a lease's
        length; meanwhile the lease lapsed on the database's clock and the other node took
        it.  The cut-off node tries again, in vain, while the other holds it."""
        a, b = self.node("a"), self.node("b")
        a.connection.shut()
        a.clock.advance(LEASE / 3)
        a.clock.advance(LEASE / 3)
        self.assertTrue(a.bound)
        self.expire(SLOT0)
        b.clock.advance(LEASE / 3)
        self.assertTrue(b.bound)
        a.clock.advance(LEASE / 3)
        self.assertEqual(a.events, [("start", 0), ("stop", 0)])
        a.clock.advance(LEASE / 3)
        self.assertEqual((a.events[-1], b.events), (("stop", 0), [("start", 0)]))

    def test_lost_then_taken_again(self) -> None:
        """A node that lost its slot takes one again at a new epoch once it is free."""
        a, b = self.node("a"), self.node("b")
        self.expire(SLOT0)
        a.clock.advance(LEASE / 3)  # the renewal finds the lease lapsed
        self.assertEqual(a.events, [("start", 0), ("stop", 0)])
        a.clock.advance(LEASE / 3)
        self.assertEqual(a.events, [("start", 0), ("stop", 0), ("start", 0)])
        self.assertEqual((self.holders(), b.events), ([Tenure(SLOT0, "a", 2)], []))

    def test_two_binds_a_third_node_stands_by(self) -> None:
        """With max_binds 2 two nodes bind, each on a slot of its own; a third stands by and
        takes the slot the second frees."""
        a, b, c = (self.node(name, max_binds=2) for name in "abc")
        self.assertEqual((a.events, b.events, c.events), ([("start", 0)], [("start", 1)], []))
        self.assertEqual(self.holders(), [Tenure(SLOT0, "a", 1), Tenure(SLOT1, "b", 1)])
        self.successResultOf(b.slots.stopService())
        c.clock.advance(LEASE / 3)
        self.assertEqual(c.events, [("start", 1)])
        self.assertEqual(self.holders(), [Tenure(SLOT0, "a", 1), Tenure(SLOT1, "c", 2)])

    def test_resize_gives_up_a_slot_beyond(self) -> None:
        """max_binds made 1 where a node holds slot 1: it unbinds, frees the slot and stands
        by (slot 0 is held); the holder of slot 0 binds on.  Made 2 again, it binds at its
        next try."""
        a, b = self.node("a", max_binds=2), self.node("b", max_binds=2)
        a.slots.resize(1)
        b.slots.resize(1)
        self.assertEqual((a.events, b.events), ([("start", 0)], [("start", 1), ("stop", 1)]))
        self.assertEqual(self.holders(), [Tenure(SLOT0, "a", 1)])
        b.clock.advance(LEASE / 3)
        self.assertEqual(b.events, [("start", 1), ("stop", 1)])
        b.slots.resize(2)
        b.clock.advance(LEASE / 3)
        self.assertEqual(b.events[-1], ("start", 1))

    def test_stop_while_acquiring_frees_the_slot(self) -> None:
        """Stopped before its acquire is answered, a node never binds and frees the slot it got."""
        connection = self.blocking()
        pending: Deferred[Any] = Deferred()
        lease = Leases(connection)
        lease.acquire_one = lambda *args: pending.addCallback(  # type: ignore[method-assign]
            lambda _: leases.acquire_one(self.db(), *args))
        started: list[Tenure] = []
        slots = BindSlots(lease, "smsc1", "a", LEASE, Clock(), started.append, lambda t: None)
        slots.startService()
        stopped = slots.stopService()
        self.assertNoResult(stopped)
        pending.callback(None)
        self.successResultOf(stopped)
        self.assertEqual((started, self.holders()), ([], []))

    def test_stop_leaves_no_timers(self) -> None:
        """A stopped node, holding or standing by, leaves no timer behind."""
        a, b = self.node("a"), self.node("b")
        self.successResultOf(b.slots.stopService())
        self.successResultOf(a.slots.stopService())
        self.assertEqual((a.clock.getDelayedCalls(), b.clock.getDelayedCalls()), ([], []))


class StandbyStateTests(SynchronousTestCase):
    """The state a server without a link shows: standby while it waits for a bind slot."""

    def test_states(self) -> None:
        """A server waiting for a slot is standby until it has a link (whose state shows), and
        disconnected once it no longer waits; one with a link cannot stand by."""
        servers = LiveServers()
        link = SimpleNamespace(server=SimpleNamespace(name="eu"), state="binding")
        self.assertEqual(servers.state("eu"), "disconnected")
        servers.stand_by("eu")
        self.assertEqual((servers.state("eu"), servers.standing_by("eu")), ("standby", True))
        servers.add(link)  # type: ignore[arg-type]
        self.assertEqual((servers.state("eu"), servers.standing_by("eu")), ("binding", False))
        self.assertRaises(KeyError, servers.stand_by, "eu")
        servers.remove("eu")
        self.assertEqual(servers.state("eu"), "disconnected")
        servers.stand_by("eu")
        servers.stand_down("eu")
        self.assertEqual(servers.state("eu"), "disconnected")
