"""Gateway nodes on one PostgreSQL database, outbound: the node that binds the server sends
what any node accepted, a stopped or lapsed holder's messages are sent by the next, its
late writes are fenced off, and only the parts in doubt are sent twice.

Both nodes run in this process on the reactor, each with its own AMP socket, on one schema
of the server ``SMPPGW_TEST_POSTGRES`` names (see test_store_postgres): skipped without it,
failed under CI=true.  The SMSC simulator answers submits on a clock of the test's when a
test holds its answers; a lease is made to run out by moving its ``lease_until`` into the
past, never by waiting.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol, serverFromString
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import TestCase

from smppgw.config import parse_config
from smppgw.errors import ServerDisabledError
from smppgw.host.commands import SendSignal
from smppgw.service import Gateway, build_gateway
from smppgw.testing.process import gateway_config
from smppgw.testing.simulator import SMSCSimulator

from .test_e2e import Host, turn
from .test_postgres_e2e import bound
from .test_store_postgres import MISSING, URL, own_schema

ESME_RBINDFAIL = 0x0000000D  # the bind failed


class TwoNodesTests(TestCase):
    """Nodes gw-1, gw-2 (and gw-3) share one database and one SMSC; server '' has one bind
    slot unless a test says otherwise."""

    timeout = 15
    skip = None if os.environ.get("CI") == "true" else MISSING

    @inlineCallbacks
    def setUp(self) -> Any:
        self.schema = own_schema(self)
        #: The simulator's clock: its answers to submits wait for it while `hold` is set.
        self.smsc_clock = Clock()
        self.simulator = SMSCSimulator({"gw": "pw"}, self.smsc_clock)
        port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(self.simulator)
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port

    def hold(self) -> None:
        """From now on the SMSC answers each submit only once `release` is called."""
        self.simulator.faults.response_delay = 1.0

    def release(self) -> None:
        """Answer the submits held, and the later ones at once."""
        self.simulator.faults.response_delay = 0.0
        self.smsc_clock.advance(1.0)

    def gateway(self, node: str, lease: str, max_binds: int = 1) -> Gateway:
        # Unix socket paths must be short (108 bytes): not under trial's temp folder.
        state = tempfile.mkdtemp(prefix="smppgw-")
        self.addCleanup(shutil.rmtree, state, True)
        text = gateway_config(state, self.port, sender="+15550100", window=1, max_binds=max_binds,
                              module={"log_level": "problems"}).replace(
            f'path = "{state}/smppgw.sqlite"',
            f'url = "{URL}?options=-csearch_path%3D{self.schema}"')
        text += '[[server]]\nname = "spare"\nmode = "off"\n'
        gateway = build_gateway(parse_config(text + f'[node]\nname = "{node}"\nlease = "{lease}"\n'),
                                reactor)
        gateway.state = state  # type: ignore[attr-defined]
        return gateway

    @inlineCallbacks
    def start(self, node: str, lease: str = "60s", max_binds: int = 1) -> Any:
        """Node ``node`` started, with a host connected to it: (gateway, host)."""
        gateway = self.gateway(node, lease, max_binds)
        gateway.startService()
        self.addCleanup(self.stop, gateway)
        while not (gateway.binds[""].tenure or gateway.binds[""].standing_by):
            yield turn()
        host = yield connectProtocol(
            UNIXClientEndpoint(reactor, f"{gateway.state}/amp.sock"), Host())  # type: ignore[attr-defined]
        self.addCleanup(host.transport.loseConnection)
        return gateway, host

    @inlineCallbacks
    def stop(self, gateway: Gateway) -> Any:
        if gateway.running:
            yield gateway.stopService()
            yield turn()

    def send(self, host: Host, rid: str, body: str = "hello") -> Any:
        return host.callRemote(SendSignal, request_id=rid, method="MESSAGE",
                               sender="alice@example.com", recipient="+15551234@smpp", body=body)

    def rows(self) -> list[tuple[Any, ...]]:
        """(request_id, claimed_by, finished) of every request, in order."""
        return self.admin.execute(
            f"SELECT request_id, claimed_by, outcome IS NOT NULL FROM {self.schema}.outbound"
            " ORDER BY seq").fetchall()

    def submits(self) -> list[bytes]:
        """The short_message of every submit_sm the SMSC received, in order."""
        return [r.pdu.params["short_message"] for r in self.simulator.received
                if r.pdu.command == "submit_sm"]

    def expire(self) -> None:
        """Make the lease of server ''s bind slot run out, as if its time had passed."""
        self.admin.execute(
            f"UPDATE {self.schema}.lease SET lease_until = now() - interval '1 second'"
            " WHERE kind = 'bind' AND name = ''")

    @inlineCallbacks
    def until(self, check: Any) -> Any:
        while not check():
            yield turn()

    @inlineCallbacks
    def test_standby_node_answered_once_the_holder_sent(self) -> Any:
        """A SendSignal to the node that stands by is stored unclaimed; the holder hears of it
        at once (its safety round is a lease away), claims it and sends it, and the standby
        node hears of the outcome and answers its host with the holder's message id.  A server
        that is off is still refused with SERVER_DISABLED."""
        holder, _ = yield self.start("gw-1")
        standby, host = yield self.start("gw-2")
        self.assertEqual(standby.outbound.status()[0]["state"], "standby")
        answer = yield self.send(host, "r1", "from the standby node")
        self.assertEqual(self.submits(), [b"from the standby node"])
        (message_id,) = answer["message_ids"]
        self.assertEqual(self.simulator.accepted_by, {message_id: "gw"})
        self.assertEqual(self.rows(), [("r1", "gw-1", True)])
        self.assertEqual(len(standby.outbound.elsewhere), 0)
        refused = host.callRemote(SendSignal, request_id="r2", method="MESSAGE",
                                  sender="alice@example.com", recipient="+15551234@spare._smpp",
                                  body="hello")
        yield self.assertFailure(refused, ServerDisabledError)

    @inlineCallbacks
    def test_two_binding_nodes_share_a_standby_nodes_requests(self) -> Any:
        """With max_binds 2 two nodes bind and a third stands by: the requests sent to the
        third at once are claimed by the two as they are stored, each request by one of them
        (their claims skip the rows the other holds), each sent once and answered."""
        first, _ = yield self.start("gw-1", max_binds=2)
        second, _ = yield self.start("gw-2", max_binds=2)
        yield bound(first)
        yield bound(second)
        _, host = yield self.start("gw-3", max_binds=2)
        count = 30
        sent = [self.send(host, f"r{n}", f"message {n}") for n in range(count)]
        answers = []
        for answer in sent:
            answers.append((yield answer))
        self.assertEqual(sorted(self.submits()), sorted(f"message {n}".encode()
                                                        for n in range(count)))
        self.assertEqual([answer["parts"] for answer in answers], [1] * count)
        self.assertEqual({row[1] for row in self.rows()} - {"gw-1", "gw-2"}, set())
        self.assertEqual([row[2] for row in self.rows()], [True] * count)

    @inlineCallbacks
    def test_stopped_holder_hands_its_queue_over(self) -> Any:
        """Requests queued on a holder that cannot bind (accepted through either node) are
        sent by the other node once the holder stops, each once; a host asking again through
        that node waits for the outcome rather than failing."""
        self.simulator.faults.bind_status = ESME_RBINDFAIL
        holder, on_holder = yield self.start("gw-1", lease="3s")
        other, on_other = yield self.start("gw-2", lease="3s")
        waiting = [self.send(on_other, "r1", "one"), self.send(on_other, "r2", "two")]
        self.send(on_holder, "r3", "three").addErrback(lambda _: None)
        yield self.until(lambda: [row[1] for row in self.rows()] == ["gw-1"] * 3)
        self.assertEqual(self.submits(), [])
        # Both nodes show the cluster's queue, the standby one too (its own is empty).
        self.assertEqual([[row["queued"] for row in gateway.outbound.status() if row["name"] == ""]
                          for gateway in (holder, other)], [[3], [3]])
        yield holder.stopService()
        self.simulator.faults.bind_status = 0
        again = self.send(on_other, "r3", "three")
        yield bound(other)
        answers = []
        for answer in [*waiting, again]:
            answers.append((yield answer))
        self.assertEqual([answer["parts"] for answer in answers], [1, 1, 1])
        self.assertEqual(sorted(self.submits()), [b"one", b"three", b"two"])
        self.assertEqual(sorted(self.rows()), [("r1", "gw-2", True), ("r2", "gw-2", True),
                                               ("r3", "gw-2", True)])

    @inlineCallbacks
    def test_lapsed_holder_fenced_off_and_parts_in_doubt_resent(self) -> Any:
        """A holder whose lease lapsed while its submit was out: the SMSC's late answer is not
        recorded (the write is fenced off, nothing changes) and the holder stops sending.  The
        next holder sends that part again, logged as in doubt, and the part the old holder
        never marked once; the host of the old holder has both answers."""
        self.hold()
        holder, host = yield self.start("gw-1", lease="3s")
        yield bound(holder)
        first, second = self.send(host, "r1", "sent twice"), self.send(host, "r2", "sent once")
        yield self.until(lambda: self.submits() == [b"sent twice"])
        self.assertEqual(self.admin.execute(
            f"SELECT request_id, idx, node FROM {self.schema}.submitting").fetchall(),
            [("r1", 0, "gw-1")])
        self.expire()
        with capturedLogs() as events:
            self.smsc_clock.advance(1.0)  # the answer to the old holder's submit
            yield self.until(lambda: any("no longer holds the bind slot" in formatEvent(e)
                                         for e in events))
            # The slot is given up at once, for the refused write, not at the next renewal.
            self.assertEqual([formatEvent(e).split(": ", 1)[1][:40] for e in events
                              if "lost bind slot" in formatEvent(e)],
                             ["'gw-1' no longer holds the lease 1 at ep"])
            self.assertEqual(self.rows(), [("r1", "gw-1", False), ("r2", "gw-1", False)])
            self.assertEqual(self.admin.execute(
                f"SELECT count(*) FROM {self.schema}.part").fetchone(), (0,))
            self.assertEqual(self.submits(), [b"sent twice"])
            # Started now, so that no takeover can come before the checks above.
            yield self.start("gw-2", lease="3s")
            self.release()
            answers = [(yield first), (yield second)]
        self.assertEqual(self.submits(), [b"sent twice", b"sent twice", b"sent once"])
        self.assertEqual([a["parts"] for a in answers], [1, 1])
        # The next holder: gw-2, or gw-1 itself at its slot's next epoch.
        self.assertEqual([row[2] for row in self.rows()], [True, True])
        doubts = [formatEvent(e) for e in events if "in doubt" in formatEvent(e)]
        self.assertEqual(doubts, ["SMPP [*] part 1 of r1 is in doubt (its submit_sm may have"
                                  " reached the SMSC through another node): sending it again"])

