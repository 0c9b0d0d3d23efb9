"""Two nodes' dispatchers on one PostgreSQL inbox: each row to exactly one host of one node.

Each node is an `Inbound` with its own `PostgresStore`, task.Clock, host registry
and fake host, on one schema of the server of ``SMPPGW_TEST_POSTGRES`` (see
test_store_postgres): skipped without it, failed under CI=true.  Each node's
clock drives its timers (the renewal of its claims every third of the lease,
a host's answer timeout); a claim lapses on the database's clock, so the
tests move its ``lease_until`` into the past rather than wait for it.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql
from twisted.internet.task import Clock

from smppgw.config import parse_config
from smppgw.host.commands import HostTryLater
from smppgw.host.registry import HostRegistry
from smppgw.relay.inbound import Inbound
from smppgw.store.postgres import PostgresStore

from .test_inbound import FakeHost
from .test_store_postgres import OnPostgres, Unturned

LEASE = 9.0


class Node:
    """One gateway node's inbound side: its store, clock, dispatcher and logged-in host."""

    def __init__(self, case: OnPostgres, name: str) -> None:
        self.name = name
        self.clock = Clock()
        self.store = PostgresStore(case.url(), Unturned())
        self.store.node = name  # what its notifications carry (node= also locks the store)
        config = parse_config(
            f'[node]\nname = "{name}"\nlease = "{LEASE:g}s"\n'
            '[[server]]\nname = "sim"\naddress = "127.0.0.1"\nsystem_id = "esme"\npassword = "pw"\n')
        self.registry = HostRegistry()
        self.inbound = Inbound(config, self.store, self.registry, self.clock, None)
        self.host = FakeHost()
        self.registry.add(self.host)  # type: ignore[arg-type]
        self.inbound.start()

    def handed(self) -> list[int]:
        """The ``n`` of each message handed to this node's host, in order."""
        return [int(call.arguments["body"]) for call in self.host.calls]

    def answer(self, error: Exception | None = None) -> None:
        """The host answers every call still open (``{}``, or ``error``); the writes commit."""
        for call in self.host.calls:
            if not call.deferred.called:
                if error is None:
                    call.deferred.callback({})
                else:
                    call.deferred.errback(error)
        self.store.settle()

    def tick(self, seconds: float = LEASE / 3) -> None:
        self.clock.advance(seconds)
        self.store.settle()

    def stop(self) -> None:
        self.inbound.stop()
        self.store.settle()
        self.store.close()


class TwoNodesDispatchTests(OnPostgres):
    """Dispatchers of two nodes share one inbox by claims."""

    def node(self, name: str) -> Node:
        node = Node(self, name)
        self.addCleanup(node.stop)
        return node

    def add(self, node: Node, *numbers: int) -> None:
        """Keep one message per number through ``node``, committed."""
        for n in numbers:
            node.store.add_inbox("deliver", {"method": "MESSAGE", "sender": "+1@sim._smpp",
                                             "recipient": "ann@im", "body": str(n),
                                             "server": "sim"}, float(n))
        node.store.settle()

    def lapse(self) -> None:
        """End every claim and retry wait now, as if their time had passed."""
        self.admin.execute(f"UPDATE {self.schema}.inbox SET lease_until = 0")

    def left(self) -> list[float]:
        """Seconds left on each row's claim, by the database's clock."""
        return [float(seconds) for (seconds,) in self.admin.execute(
            f"SELECT lease_until - extract(epoch FROM clock_timestamp()) FROM {self.schema}.inbox"
            " ORDER BY id")]

    def kept(self) -> int:
        (count,) = self.admin.execute(f"SELECT COUNT(*) FROM {self.schema}.inbox").fetchone() or (0,)
        return int(count)

    def test_each_row_to_exactly_one_host(self) -> None:
        """100 rows added through both nodes go, between the two hosts, each to one host
        once; once answered, no later claim hands any out again."""
        a, b = self.node("a"), self.node("b")
        self.add(a, *range(0, 100, 2))
        self.add(b, *range(1, 100, 2))
        a.inbound.inbox_news()
        b.inbound.inbox_news()
        self.assertEqual((len(a.handed()), len(b.handed())), (50, 50))
        self.assertEqual(sorted(a.handed() + b.handed()), list(range(100)))
        a.answer()
        b.answer()
        for _ in range(4):
            a.tick()
            b.tick()
        self.assertEqual((len(a.handed()) + len(b.handed()), self.kept()), (100, 0))

    def test_a_dead_nodes_rows_taken_over_after_its_lease(self) -> None:
        """Rows a stopped node claimed and its host never answered are left alone while
        its claims run, then delivered by the other node; the first host's late answer
        then removes nothing."""
        a = self.node("a")
        self.add(a, 1, 2, 3)
        a.inbound.inbox_news()
        b = self.node("b")
        a.inbound.stop()
        b.tick()
        self.assertEqual((a.handed(), b.handed()), ([1, 2, 3], []))
        self.lapse()
        b.tick()
        self.assertEqual(b.handed(), [1, 2, 3])
        a.answer()
        self.assertEqual(self.kept(), 3)
        b.answer()
        self.assertEqual(self.kept(), 0)

    def test_claims_renewed_while_the_host_is_silent(self) -> None:
        """A node renews the claims of rows its host has not answered yet, so the other node
        does not take them while the host may still answer."""
        a, b = self.node("a"), self.node("b")
        self.add(a, 1)
        a.inbound.inbox_news()
        self.admin.execute(f"UPDATE {self.schema}.inbox SET lease_until ="
                           " extract(epoch FROM clock_timestamp()) + 3")
        a.tick()
        self.assertTrue(LEASE - 1 < self.left()[0] <= LEASE)
        b.tick()
        self.assertEqual((a.handed(), b.handed()), ([1], []))

    def test_try_later_released_for_either_node(self) -> None:
        """A row the host answers TRY_LATER is released, counted, until its retry is due;
        then the other node may deliver it."""
        a, b = self.node("a"), self.node("b")
        self.add(a, 1)
        # Its sixth attempt: the retry is due 32 s later on the database's clock.
        self.admin.execute(f"UPDATE {self.schema}.inbox SET attempts = 5")
        a.inbound.inbox_news()
        a.registry.remove(a.host)  # type: ignore[arg-type]
        a.answer(HostTryLater("busy"))
        b.tick()
        self.assertEqual(b.handed(), [])
        self.lapse()
        b.tick()
        self.assertEqual(b.handed(), [1])
        (attempts,) = self.admin.execute(f"SELECT attempts FROM {self.schema}.inbox").fetchone() or (0,)
        self.assertEqual(attempts, 6)

    def test_news_of_other_nodes_claimed(self) -> None:
        """News of a row another node added has the dispatcher claim it; news of its own
        (its intake woke it already) does not."""
        a = self.node("a")
        self.add(a, 1)
        a.inbound.inbox_news(a.store.inbox_channel, "a")
        self.assertEqual(a.handed(), [])
        a.inbound.inbox_news(a.store.inbox_channel, "b")
        self.assertEqual(a.handed(), [1])

    def test_inbox_size_is_the_clusters(self) -> None:
        """Rows another node delivered leave this node's inbox size at its next renewal."""
        store = self.open()
        for n in (1, 2):
            store.add_inbox("deliver", {"body": str(n)}, 1.0)
        store.settle()
        a, b = self.node("a"), self.node("b")
        self.assertEqual((a.inbound.inbox_size, b.inbound.inbox_size), (2, 2))
        a.inbound.inbox_news()
        a.answer()
        b.tick()
        self.assertEqual((a.inbound.inbox_size, b.inbound.inbox_size, b.handed()), (0, 0, []))

    def test_added_row_notified(self) -> None:
        """Adding a row notifies the store's inbox channel once committed, naming the node."""
        a = self.node("a")
        with psycopg.connect(self.url(), autocommit=True) as listener:
            listener.execute(sql.SQL("LISTEN {}").format(sql.Identifier(a.store.inbox_channel)))
            self.add(a, 1)
            heard: list[Any] = list(listener.notifies(timeout=10, stop_after=1))
        self.assertEqual([(n.channel, n.payload) for n in heard],
                         [(a.store.inbox_channel, "a")])
