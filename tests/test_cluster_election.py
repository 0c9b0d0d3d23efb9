"""The maintenance elector: one node at a time holds the PostgreSQL advisory lock.

The tests on PostgreSQL run on the server of ``SMPPGW_TEST_POSTGRES`` (see
test_store_postgres): skipped without it, failed under CI=true.  Each elector
has a `BlockingConnection` and a `Clock`, so a check is made when the clock
says, and has answered when it returns.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.logger import Logger, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer
from zope.interface.verify import verifyObject

from smppgw.cluster import election
from smppgw.cluster.connection import BlockingConnection, IConnection
from smppgw.cluster.election import (
    APPLICATION,
    MAINTENANCE,
    RETRY_FIRST,
    IMaintenance,
    Maintenance,
    Sole,
    maintenance_for,
)
from smppgw.config import parse_config
from smppgw.store.interfaces import StoreError

from .test_store_postgres import OnPostgres

EVERY = 3.0


class Lines:
    """The elector's log lines, as text."""

    def __init__(self, case: SynchronousTestCase) -> None:
        self.events: list[dict[str, Any]] = []
        case.patch(election, "log", Logger(observer=self.events.append))

    def __call__(self) -> list[str]:
        return [formatEvent(event) for event in self.events]


class ElectionTests(OnPostgres):
    """Electors of several nodes on one database."""

    def setUp(self) -> None:
        super().setUp()
        self.clock = Clock()
        self.lines = Lines(self)

    def elector(self, node: str) -> Maintenance:
        """A started elector for ``node``, stopped after the test."""
        connections: list[BlockingConnection] = []

        def open_connection() -> BlockingConnection:
            connection = BlockingConnection(self.url(application_name=APPLICATION + node))
            connections.append(connection)
            return connection

        elector = Maintenance(open_connection, self.clock, EVERY, node)
        elector.startService()
        self.addCleanup(lambda: elector.running and elector.stopService())
        self.backend = lambda: connections[-1].backend()
        return elector

    def holder(self) -> list[str]:
        """The nodes whose sessions hold the lock of the test's schema, seen from the server."""
        return [name.removeprefix(APPLICATION) for (name,) in self.admin.execute(
            "SELECT a.application_name FROM pg_locks AS l JOIN pg_stat_activity AS a"
            " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2"
            " AND l.classid = %s AND l.objid = hashtext(%s)::oid",
            (MAINTENANCE, self.schema))]

    def test_one_of_two(self) -> None:
        """Of two nodes started on one database the first maintains and the other does
        not, check after check; the server shows the first holding the lock."""
        a, b = self.elector("a"), self.elector("b")
        for _ in range(3):
            self.assertEqual((a.maintains(), b.maintains()), (True, False))
            self.clock.advance(EVERY)
        self.assertEqual(self.holder(), ["a"])
        self.assertEqual(self.lines(), [f"node a maintains the store {a.where}: it prunes and"
                                        " expires for every node"])

    def test_stop_hands_over(self) -> None:
        """A node that stops releases the lock and closes its connection; the other
        takes over at its next try, not before."""
        a, b = self.elector("a"), self.elector("b")
        self.successResultOf(a.stopService())
        self.assertEqual((a.maintains(), b.maintains(), self.holder()), (False, False, []))
        self.assertEqual(self.admin.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
            (APPLICATION + "a",)).fetchone(), (0,))
        self.clock.advance(EVERY)
        self.assertEqual((b.maintains(), self.holder()), (True, ["b"]))
        self.assertIn(f"node a no longer maintains the store {a.where}: this node stops",
                      self.lines())

    def test_cut_connection(self) -> None:
        """A holder whose backend is ended says False at its next check and the other node
        takes over; the cut node, connected again, sees the lock held and waits."""
        a = self.elector("a")
        a_backend = self.backend()
        b = self.elector("b")
        self.admin.execute("SELECT pg_terminate_backend(%s, 5000)", (a_backend,))
        self.clock.advance(EVERY)
        self.assertEqual((a.maintains(), b.maintains(), self.holder()), (False, True, ["b"]))
        self.clock.advance(RETRY_FIRST)
        self.clock.advance(EVERY)
        self.assertEqual((a.maintains(), b.maintains(), self.holder()), (False, True, ["b"]))
        self.assertTrue(any(line.startswith("node a no longer maintains the store")
                            and "terminating connection" in line for line in self.lines()))

    def test_cut_alone_takes_it_back(self) -> None:
        """A lone node whose connection is cut stops maintaining, and maintains again once
        connected again (after RETRY_FIRST), on a new session."""
        a = self.elector("a")
        first = self.backend()
        self.admin.execute("SELECT pg_terminate_backend(%s, 5000)", (first,))
        self.clock.advance(EVERY)
        self.assertFalse(a.maintains())
        self.clock.advance(RETRY_FIRST)
        self.assertTrue(a.maintains())
        self.assertNotEqual(self.backend(), first)
        self.assertEqual(self.holder(), ["a"])


@implementer(IConnection)
class Scripted:
    """A connection whose calls get the answers the test gives, in order; a call with none
    left waits in ``pending`` for the test to answer it."""

    where = "postgresql://db/gw"

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls: list[str] = []
        self.pending: list[Deferred[Any]] = []
        self.closed = False

    def run(self, work: Any, what: str) -> Deferred[Any]:
        self.calls.append(what)
        if not self.answers:
            self.pending.append(Deferred())
            return self.pending[-1]
        answer = self.answers.pop(0)
        return fail(answer) if isinstance(answer, Exception) else succeed(answer)

    def close(self) -> Deferred[None]:
        self.closed = True
        return succeed(None)


class ElectorTests(SynchronousTestCase):
    """The elector's timing and failures, on a scripted connection."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.lines = Lines(self)

    def start(self, connection: Scripted) -> Maintenance:
        elector = Maintenance(lambda: connection, self.clock, EVERY, "a")
        elector.startService()
        return elector

    def test_interfaces(self) -> None:
        """Both electors provide IMaintenance; on SQLite the node always maintains."""
        verifyObject(IMaintenance, Sole())
        verifyObject(IMaintenance, Maintenance(Scripted, self.clock, EVERY))
        self.assertTrue(Sole().maintains())
        self.assertIsInstance(maintenance_for(parse_config(""), self.clock), Sole)

    def test_built_from_config(self) -> None:
        """On a PostgreSQL store the gateway's elector checks every third of [node] lease."""
        config = parse_config('[store]\nurl = "postgresql://gw@db/smppgw"\n'
                              '[node]\nname = "gw-1"\n'
                              'lease = "12s"\n')
        elector = maintenance_for(config, self.clock)
        self.assertIsInstance(elector, Maintenance)
        assert isinstance(elector, Maintenance)
        self.assertEqual((elector.every, elector.node, elector.running), (4.0, "gw-1", False))

    def test_unanswered_check(self) -> None:
        """A holder whose check has not answered by the next one stops maintaining then
        (another node may hold the lock), and maintains again when it answers."""
        connection = Scripted(True, True)
        elector = self.start(connection)
        self.clock.advance(EVERY)
        self.assertTrue(elector.maintains())
        self.clock.advance(EVERY)  # the third check never answers
        self.assertTrue(elector.maintains())
        self.clock.advance(EVERY)
        self.assertFalse(elector.maintains())
        self.clock.advance(EVERY)
        self.assertEqual(len(connection.calls), 3)  # no call is asked for behind it
        self.assertIn("node a no longer maintains the store postgresql://db/gw: the database"
                      " has not answered for 3 s", self.lines())
        connection.pending.pop().callback(True)
        self.assertTrue(elector.maintains())
        connection.answers.append(None)
        self.successResultOf(elector.stopService())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_failures_back_off(self) -> None:
        """Failed calls are tried again RETRY_FIRST later, doubling, each failure reported;
        the first answer puts the checks back every EVERY seconds."""
        error = StoreError("cannot connect to the store")
        connection = Scripted(error, error, error, False, False)
        elector = self.start(connection)
        for delay in (0.5, 1.0, 2.0, EVERY):
            self.clock.advance(delay - 0.01)
            calls = len(connection.calls)
            self.clock.advance(0.01)
            self.assertEqual(len(connection.calls), calls + 1)
        self.assertFalse(elector.maintains())
        self.assertEqual(self.lines()[:2], [
            "cannot take the maintenance lock of postgresql://db/gw: cannot connect to the"
            " store; trying again in 0.5s",
            "cannot take the maintenance lock of postgresql://db/gw: cannot connect to the"
            " store; trying again in 1s"])
        self.successResultOf(elector.stopService())

    def test_stop(self) -> None:
        """Stopping a holder releases the lock, then closes the connection, and leaves no timer."""
        connection = Scripted(True, None)
        elector = self.start(connection)
        self.successResultOf(elector.stopService())
        self.assertEqual((connection.calls, connection.closed, elector.maintains()),
                         (["take the maintenance lock", "release the maintenance lock"], True,
                          False))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_answer_after_stop(self) -> None:
        """A check that answers after the elector stopped makes it maintain nothing."""
        connection = Scripted()
        elector = self.start(connection)
        connection.answers.append(None)
        self.successResultOf(elector.stopService())
        self.assertEqual(connection.calls[-1], "release the maintenance lock")
        connection.pending.pop().callback(True)
        self.assertFalse(elector.maintains())
        self.assertEqual(self.clock.getDelayedCalls(), [])
