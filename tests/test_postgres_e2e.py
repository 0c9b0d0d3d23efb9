"""A gateway on the PostgreSQL store, end to end: a host over AMP -> the gateway -> the SMSC
simulator on loopback, a restart on the same database, a second node beside it, /healthz.

Like tests/test_store_postgres.py, they run against the server ``SMPPGW_TEST_POSTGRES``
names, each gateway in a schema of its own; skipped without it, failed under CI=true.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import replace
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol, serverFromString
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase

from smppgw.admin.health import Heartbeat, StoreWatch
from smppgw.cluster import leases
from smppgw.cluster.connection import BlockingConnection, connect
from smppgw.cluster.election import MAINTENANCE, Maintenance
from smppgw.cluster.leases import LeaseKey, Tenure
from smppgw.config import load_config, parse_config
from smppgw.errors import TryLater, Unavailable
from smppgw.host.commands import ServerStatus
from smppgw.relay.dialogs import DialogTable
from smppgw.service import Gateway, build_gateway
from smppgw.shared import shared_text
from smppgw.store.postgres import PostgresStore, schema
from smppgw.store.sqlite.backup import backup
from smppgw.testing.process import gateway_config
from smppgw.testing.simulator import SMSCSimulator

from .test_e2e import Host, turn
from .test_store_postgres import MISSING, URL, own_schema


@inlineCallbacks
def bound(gateway: Gateway, name: str = "") -> Any:
    """The link of server ``name`` once the gateway took one of its bind slots and bound."""
    while name not in gateway.links:
        yield turn()
    link = yield gateway.links[name].when_bound()
    return link


class PostgresGatewayTests(TestCase):
    """Gateways on a PostgreSQL database, one at a time, as a restarted node."""

    timeout = 30
    skip = None if os.environ.get("CI") == "true" else MISSING

    @inlineCallbacks
    def setUp(self) -> Any:
        self.schema = own_schema(self)
        # Unix socket paths must be short (108 bytes): not under trial's temp folder.
        self.state = tempfile.mkdtemp(prefix="smppgw-")
        self.addCleanup(shutil.rmtree, self.state, True)
        self.simulator = SMSCSimulator({"gw": "pw"}, reactor)
        port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(self.simulator)
        self.addCleanup(port.stopListening)
        self.text = gateway_config(self.state, port.getHost().port, sender="+15550100",
                                   module={"log_level": "major"}).replace(
            f'path = "{self.state}/smppgw.sqlite"',
            f'url = "{URL}?options=-csearch_path%3D{self.schema}"')

    def gateway(self, node: str = "gw-1", lease: str = "10s") -> Gateway:
        config = parse_config(self.text + f'[node]\nname = "{node}"\nlease = "{lease}"\n')
        return build_gateway(config, reactor)

    @inlineCallbacks
    def start(self, node: str = "gw-1", lease: str = "10s") -> Any:
        gateway = self.gateway(node, lease)
        with capturedLogs() as events:
            gateway.startService()
        self.addCleanup(self.stop, gateway)
        yield bound(gateway)
        host = yield connectProtocol(UNIXClientEndpoint(reactor, f"{self.state}/amp.sock"), Host())
        self.addCleanup(host.transport.loseConnection)
        return gateway, host, [formatEvent(event) for event in events]

    @inlineCallbacks
    def stop(self, gateway: Gateway) -> Any:
        if gateway.running:
            yield gateway.stopService()
            for connection in list(self.simulator.connections):
                connection.close()
            yield turn()

    def send(self, host: Host, rid: str) -> Any:
        from smppgw.host.commands import SendSignal

        return host.callRemote(SendSignal, request_id=rid, method="MESSAGE",
                               sender="alice@example.com", recipient="+15551234@smpp",
                               body="hello")

    def rows(self) -> list[tuple[Any, ...]]:
        return self.admin.execute(
            f"SELECT request_id, outcome FROM {self.schema}.outbound ORDER BY seq").fetchall()

    @inlineCallbacks
    def test_relays_and_survives_a_restart(self) -> Any:
        """A SendSignal is answered and its request kept in the database, the start line names
        the database without its password; after a restart on the same database a retry of the
        request_id gets the same answer with no second submit_sm; a deliver_sm reaches the host."""
        gateway, host, lines = yield self.start()
        port = URL.split("@", 1)[1].split("/", 1)[0] if URL else ""
        self.assertIn(
            f"SMPP [*] using the store postgresql://postgres@{port}/smppgw_test as node gw-1",
            lines)
        self.assertIsNone(gateway.checkpointer)
        first = yield self.send(host, "r1")
        self.assertEqual((first["parts"], len(self.simulator.accepted)), (1, 1))
        self.assertEqual(self.rows(), [("r1", '{"ok":true}')])
        yield self.stop(gateway)
        host.transport.loseConnection()

        _, host, _ = yield self.start()
        again = yield self.send(host, "r1")
        self.assertEqual((again, len(self.simulator.accepted)), (first, 1))
        response = yield self.simulator.deliver("15557654", "15550100", b"hi there")
        self.assertEqual(response.command_status, 0)
        yield host.when(host.delivered, 1)
        self.assertEqual(host.delivered, [{
            "method": "MESSAGE", "sender": "+15557654@smpp", "recipient": "+15550100@telnum",
            "body": "hi there", "server": ""}])

    @inlineCallbacks
    def test_another_nodes_inbox_row_heard(self) -> Any:
        """A message another node keeps in the inbox reaches this node's host at once, by
        its notification (this node's next look at the inbox is minutes away)."""
        _, host, _ = yield self.start(lease="10m")
        other = PostgresStore(f"{URL}?options=-csearch_path%3D{self.schema}", reactor)
        self.addCleanup(other.close)
        other.node = "gw-2"
        yield other.add_inbox("deliver", {"method": "MESSAGE", "sender": "+15557654@smpp",
                                          "recipient": "ann@im", "body": "from gw-2",
                                          "server": ""}, 1.0)
        yield host.when(host.delivered, 1)
        self.assertEqual([signal["body"] for signal in host.delivered], ["from gw-2"])

    @inlineCallbacks
    def test_shared_settings_kept_in_step(self) -> Any:
        """A running node publishes its settings at start; a revision another node publishes
        is applied live (the new window in force, no re-bind) and written into the node's
        file; a reload of an edited file publishes it as the next revision."""
        path = os.path.join(self.state, "smppgw.toml")
        with open(path, "w") as f:
            f.write(self.text + '[node]\nname = "gw-1"\n')
        gateway = build_gateway(load_config(path), reactor, config_path=path)
        gateway.startService()
        self.addCleanup(self.stop, gateway)
        link = yield bound(gateway)
        yield gateway.store.durable()  # its first settings, published at start, committed
        other = PostgresStore(f"{URL}?options=-csearch_path%3D{self.schema}", reactor)
        self.addCleanup(other.close)
        found = other.shared_settings()
        assert found is not None
        self.assertEqual((found.revision, found.node, found.text),
                         (1, "gw-1", shared_text(gateway.config)))
        theirs = replace(gateway.config, servers=(replace(gateway.config.servers[0], window=3),))
        yield other.publish_settings(shared_text(theirs), "gw-2")
        assert gateway.shared is not None
        yield gateway.shared.check()
        self.assertEqual(gateway.config.servers[0].window, 3)
        self.assertIs(gateway.links[""], link)
        self.assertEqual(load_config(path).servers[0].window, 3)
        with open(path) as f:
            edited = f.read().replace("window = 3", "window = 4")
        with open(path, "w") as f:
            f.write(edited)
        gateway.reload()
        yield gateway.store.durable()
        found = other.shared_settings()
        assert found is not None
        self.assertEqual((found.revision, found.node), (3, "gw-1"))
        self.assertEqual(parse_config(found.text).servers[0].window, 4)

    @inlineCallbacks
    def test_connections_cut_under_load(self) -> Any:
        """The database's connections cut while messages flow (as a restart of the server
        does): the gateway connects again and goes on; every request ends with one outcome,
        each stored; the SMSC gets each message once, a few of them twice at most (the
        window's parts in doubt)."""
        gateway, host, _ = yield self.start()
        window = gateway.config.servers[0].window
        count = 200
        answers = [self.send(host, f"r{n}") for n in range(count)]
        # By request: the answers need not come in the order asked.
        done: dict[int, Any] = {}
        for n, answer in enumerate(answers):
            answer.addBoth(lambda result, n=n: done.__setitem__(n, result))
        while len(done) < count // 4:
            yield turn()
        (cut,) = self.admin.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()
        self.assertGreaterEqual(cut, 2)  # the writer's and the reader's connections at least
        while len(done) < count:
            yield turn()
        # A write cut off in its commit may or may not have been committed: such a
        # request is answered TRY_LATER, and asking again with its request_id gets its
        # outcome (the SMS is not sent again).
        for answer in done.values():
            if not isinstance(answer, dict):
                self.assertTrue(answer.check(TryLater), answer)
        for n in range(count):
            again = yield self.send(host, f"r{n}")
            self.assertEqual(again["parts"], 1)
            if isinstance(done[n], dict):
                self.assertEqual(again, done[n])
        outcomes = dict(self.rows())
        self.assertEqual(sorted(outcomes), sorted(f"r{n}" for n in range(count)))
        self.assertNotIn(None, outcomes.values())
        self.assertGreaterEqual(len(self.simulator.accepted), count)
        self.assertLessEqual(len(self.simulator.accepted) - count, window)

    def other_node_binds(self) -> tuple[BlockingConnection, Tenure | None]:
        """Node gw-2 takes slot 0 of server '' on the test's store (created first): its
        connection, and its tenure."""
        url = f"{URL}?options=-csearch_path%3D{self.schema}"
        with connect(url) as db:
            schema.prepare(db, "the test's store")
        other = BlockingConnection(url)
        self.addCleanup(other.shut)
        return other, other.call(lambda db: leases.acquire(db, LeaseKey.bind(""), "gw-2", 30), "take")

    @inlineCallbacks
    def test_stands_by_while_another_node_binds(self) -> Any:
        """While another node holds the server's one bind slot the gateway does not bind it:
        ServerStatus says standby, and a SendSignal to it is stored unclaimed and waits.  Once
        that node frees the slot the gateway takes it at its next try, binds, claims the
        request and sends it, and the host has its answer; stopped, it unbinds and frees the
        slot."""
        other, theirs = self.other_node_binds()
        self.text += '[node]\nlease = "3s"\n'
        gateway = build_gateway(parse_config(self.text), reactor)
        gateway.startService()
        self.addCleanup(self.stop, gateway)
        while not gateway.binds[""].standing_by:
            yield turn()
        host = yield connectProtocol(UNIXClientEndpoint(reactor, f"{self.state}/amp.sock"), Host())
        self.addCleanup(host.transport.loseConnection)
        status = yield host.callRemote(ServerStatus)
        self.assertEqual(status["servers"][0]["state"], "standby")
        answer = self.send(host, "r1")
        while self.rows() != [("r1", None)]:
            yield turn()
        self.assertEqual(self.admin.execute(
            f"SELECT claimed_by FROM {self.schema}.outbound").fetchall(), [(None,)])
        self.assertEqual((list(self.simulator.connections), self.simulator.accepted), ([], []))
        self.assertNoResult(answer)
        assert theirs is not None
        other.call(lambda db: leases.release(db, theirs), "free")
        yield bound(gateway)
        result = yield answer
        self.assertEqual((result["parts"], len(self.simulator.accepted)), (1, 1))
        status = yield host.callRemote(ServerStatus)
        self.assertEqual(status["servers"][0]["state"], "bound")
        yield gateway.stopService()
        self.assertEqual(other.call(lambda db: leases.holders(db, "bind", ""), "read"), [])

    @inlineCallbacks
    def test_max_binds_lowered_live(self) -> Any:
        """With max_binds 2 the gateway binds on slot 1 while another node holds slot 0; a
        reload making it 1 unbinds the gateway, frees slot 1 and leaves the server standing by."""
        other, theirs = self.other_node_binds()
        self.text += "max_binds = 2\n"
        gateway, _, _ = yield self.start()
        self.assertEqual(other.call(lambda db: leases.holders(db, "bind", ""), "read"),
                         [theirs, Tenure(LeaseKey.bind("", 1), "gw-1", 1)])
        lines = gateway.apply_config(parse_config(self.text.replace("max_binds = 2", "")
                                                  + '[node]\nname = "gw-1"\n'))
        self.assertEqual(lines, ["server '': max_binds changed, applied without a re-bind"])
        self.assertEqual(gateway.outbound.status()[0]["state"], "standby")
        while other.call(lambda db: leases.holders(db, "bind", ""), "read") != [theirs]:
            yield turn()
        yield turn()
        self.assertEqual(list(self.simulator.connections), [])

    @inlineCallbacks
    def test_maintains(self) -> Any:
        """A node alone on its database holds the maintenance lock once its first check has
        answered, on a connection named after the node, and releases it when it stops."""
        gateway, _, _ = yield self.start()
        elector = gateway.maintenance
        assert isinstance(elector, Maintenance) and elector.connection is not None
        yield elector.connection.run(lambda db: None, "follow the first check")
        self.assertTrue(elector.maintains())

        def holders() -> list[tuple[Any, ...]]:
            return self.admin.execute(
                "SELECT a.application_name FROM pg_locks AS l JOIN pg_stat_activity AS a"
                " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND l.objsubid = 2"
                " AND l.classid = %s AND l.objid = hashtext(%s)::oid",
                (MAINTENANCE, self.schema)).fetchall()

        self.assertEqual(holders(), [("smppgw maintenance gw-1",)])
        yield self.stop(gateway)
        self.assertFalse(elector.maintains())
        self.assertEqual(holders(), [])

    @inlineCallbacks
    def test_second_node_starts(self) -> Any:
        """A second node starts on the database of a running one (no lock keeps it out); it
        stands by for the server the first binds."""
        yield self.start("gw-1")
        self.text = self.text.replace(f"{self.state}/amp.sock", f"{self.state}/amp2.sock")
        second = self.gateway("gw-2")
        second.startService()
        self.addCleanup(self.stop, second)
        while not second.binds[""].standing_by:
            yield turn()
        self.assertEqual(second.outbound.status()[0]["state"], "standby")

    @inlineCallbacks
    def test_health_follows_the_database(self) -> Any:
        """With nothing written, the store's probe still tells /healthz whether it can write:
        a connection cut fails one probe, and the next one connects again."""
        gateway, _, _ = yield self.start()
        store, watch = gateway.store, StoreWatch()
        heartbeat = Heartbeat(Clock(), gateway, watch)
        heartbeat.beat()  # samples the store, and has it probe
        store.settle()
        self.assertFalse(watch.sample(store))
        self.admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                           " WHERE datname = current_database() AND pid <> pg_backend_pid()")
        heartbeat.beat()
        store.settle()
        self.assertTrue(watch.sample(store))
        heartbeat.beat()
        store.settle()
        self.assertFalse(watch.sample(store))

    @inlineCallbacks
    def test_reply_routed_by_a_binding_another_node_made(self) -> Any:
        """Another node (a dialog table on its own store, on this database) sends alice's SMS
        to a phone, binding @b after bob's @a; the phone's "@b: ..." reply, received by this
        gateway, goes to alice, its prefix stripped."""
        self.text = self.text.replace('sender = "+15550100"', 'sender = "+15550100"\ndialogs = true')
        gateway, host, _ = yield self.start()
        sync = gateway.getServiceNamed("dialog-sync")
        yield sync.when_listening()
        other_store = PostgresStore(f"{URL}?options=-csearch_path%3D{self.schema}", reactor)
        self.addCleanup(other_store.close)
        other = DialogTable(reactor, 3600, other_store)
        both: Deferred[None] = Deferred()

        def refreshed(phone: str) -> None:
            # The two writes may reach the database in one transaction, heard as one.
            if len(gateway.dialogs.bindings(phone)) == 2 and not both.called:
                both.callback(None)

        sync.observers.append(refreshed)
        other.outgoing_prefix("+15557654", "bob@example.com")
        other.outgoing_prefix("+15557654", "alice@example.com")
        yield both
        response = yield self.simulator.deliver("15557654", "15550100", b"@b: see you at 5")
        self.assertEqual(response.command_status, 0)
        yield host.when(host.delivered, 1)
        self.assertEqual((host.delivered[0]["recipient"], host.delivered[0]["body"]),
                         ("alice@example.com", "see you at 5"))


class BackupTests(SynchronousTestCase):
    def test_backup_points_at_pg_dump(self) -> None:
        """smppgw backup of a PostgreSQL store is refused, pointing at PostgreSQL's tools."""
        error = self.assertRaises(Unavailable, backup, "postgresql://gw@db:5432/smppgw",
                                  "/tmp/copy.sqlite")
        self.assertIn("the store is the PostgreSQL database postgresql://gw@db:5432/smppgw:"
                      " back it up with PostgreSQL's own tools (pg_dump", str(error))
