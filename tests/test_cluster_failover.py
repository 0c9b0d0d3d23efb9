"""Two gateway nodes as real twistd processes on one PostgreSQL database and one SMSC simulator.

Node A binds (max_binds 1), node B stands by.  A host sends through A; A is
killed (SIGKILL) or paused (SIGSTOP) while messages flow; the host asks
node B again with the same request_ids.  What a user must see: every
request_id answered once with its message ids, B bound within the lease and
a few seconds, at most A's window of messages twice at the SMSC, and a
paused A that wakes up records nothing over what B did.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections import Counter
from typing import Any

import psycopg
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol, serverFromString
from twisted.internet.threads import deferToThread
from twisted.protocols import amp
from twisted.trial.unittest import TestCase

from smppgw.errors import TryLater
from smppgw.host.commands import SendSignal
from smppgw.testing.process import GatewayProcess, gateway_config
from smppgw.testing.simulator import SMSCSimulator

from .test_store_postgres import MISSING, URL, own_schema

#: What restarts the test's PostgreSQL server.
RESTART = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".ci",
                       "postgres")
#: The nodes' lease (the shortest allowed), and their window.
LEASE = 3.0
WINDOW = 10
N = 120


class Host(amp.AMP):
    pass


def destination(i: int) -> str:
    return f"1555{i:07d}"


class FailoverTests(TestCase):
    timeout = 90
    skip = None if os.environ.get("CI") == "true" else MISSING

    @inlineCallbacks
    def setUp(self) -> Any:
        self.schema = own_schema(self)
        self.simulator = SMSCSimulator({"gw": "pw"}, reactor)
        # Answers come 50 ms after each submit: the flow lasts long enough to be cut.
        self.simulator.faults.response_delay = 0.05
        port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(self.simulator)
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port

    def tearDown(self) -> Any:
        for connection in list(self.simulator.connections):
            connection.close()
        return super().tearDown()

    def node(self, name: str) -> tuple[GatewayProcess, str]:
        # Unix socket paths must be short (108 bytes): not under trial's temp folder.
        state = tempfile.mkdtemp(prefix=f"smppgw-{name}-")
        self.addCleanup(shutil.rmtree, state, True)
        text = gateway_config(state, self.port, module={"log_level": "problems"},
                              sender="+15550100", window=WINDOW).replace(
            f'path = "{state}/smppgw.sqlite"',
            f'url = "{URL}?options=-csearch_path%3D{self.schema}"')
        config = os.path.join(state, "smppgw.toml")
        with open(config, "w") as f:
            f.write(text + f'[node]\nname = "{name}"\nlease = "{LEASE:g}s"\n')
        process = GatewayProcess.spawn(reactor, config)
        self.addCleanup(self._end, process)
        return process, state

    @inlineCallbacks
    def _end(self, process: GatewayProcess) -> Any:
        if not process.ended.called and getattr(process.transport, "pid", None) is not None:
            os.kill(process.pid, signal.SIGCONT)
            yield process.stop(signal.SIGKILL)

    @inlineCallbacks
    def host(self, state: str) -> Any:
        client = yield connectProtocol(UNIXClientEndpoint(reactor, f"{state}/amp.sock"), Host())
        self.addCleanup(client.transport.loseConnection)
        return client

    def ask(self, host: Host, i: int) -> Deferred[Any]:
        """Request ``f{i}``: message i to its own destination."""
        return host.callRemote(SendSignal, request_id=f"f{i}", method="MESSAGE",
                               sender="alice@example.com", recipient=f"+{destination(i)}@smpp",
                               body=f"message {i}")

    def send_all(self, host: Host) -> list[Deferred[Any]]:
        return [self.ask(host, i) for i in range(N)]

    @inlineCallbacks
    def two_nodes(self) -> Any:
        """Node A bound and flowing with N requests from a host; node B standing by."""
        a, state_a = self.node("gw-a")
        yield a.ready
        yield self.simulator.when_received(1, "bind_transceiver")
        b, state_b = self.node("gw-b")
        yield b.ready
        host = yield self.host(state_a)
        for pending in self.send_all(host):
            pending.addErrback(lambda _: None)  # the answers die with node A
        yield self.simulator.when_received(N // 3, "submit_sm")
        return a, b, state_b

    def submitted(self) -> Counter[bytes]:
        return Counter(r.pdu.params["destination_addr"] for r in self.simulator.received
                       if r.pdu.command == "submit_sm")

    def binds(self) -> int:
        return sum(1 for r in self.simulator.received if r.pdu.command == "bind_transceiver")

    def outcomes(self) -> list[tuple[Any, ...]]:
        return self.admin.execute(
            f"SELECT request_id, outcome FROM {self.schema}.outbound ORDER BY seq").fetchall()

    def message_ids(self) -> dict[str, str]:
        return dict(self.admin.execute(
            f"SELECT request_id, message_id FROM {self.schema}.part WHERE idx = 0").fetchall())

    @inlineCallbacks
    def test_killed_node_taken_over(self) -> Any:
        """Node A is SIGKILLed mid-flow: node B binds within the lease and 5 s, sends A's
        queue, and a host that asks B again gets every request_id's answer; no message is
        lost, at most A's window is sent twice, each request has one outcome."""
        a, b, state_b = yield self.two_nodes()
        binds = self.binds()
        yield a.stop(signal.SIGKILL)
        killed = time.monotonic()
        yield self.simulator.when_received(binds + 1, "bind_transceiver")
        self.assertLess(time.monotonic() - killed, LEASE + 5)
        host = yield self.host(state_b)
        answers = yield gatherResults(self.send_all(host))
        sent = self.submitted()
        self.assertEqual(sorted(sent), sorted(destination(i).encode() for i in range(N)))
        self.assertLessEqual(sum(count - 1 for count in sent.values()), WINDOW)
        self.assertEqual([answer["parts"] for answer in answers], [1] * N)
        ids = self.message_ids()
        self.assertEqual([answer["message_ids"][0] for answer in answers],
                         [ids[f"f{i}"] for i in range(N)])
        self.assertEqual([outcome is not None for _, outcome in self.outcomes()], [True] * N)
        yield b.stop(signal.SIGTERM)

    @inlineCallbacks
    def test_paused_node_records_nothing_over_its_successor(self) -> Any:
        """Node A is paused (SIGSTOP) past its lease: node B takes the bind and the queue and
        answers the host; A, resumed, finds its lease gone and writes nothing over B: every
        message id stored is the one B's answers carry."""
        a, b, state_b = yield self.two_nodes()
        binds = self.binds()
        os.kill(a.pid, signal.SIGSTOP)
        yield self.simulator.when_received(binds + 1, "bind_transceiver")
        host = yield self.host(state_b)
        answers = yield gatherResults(self.send_all(host))
        before = (self.outcomes(), self.message_ids())
        os.kill(a.pid, signal.SIGCONT)
        # A reads the answers the SMSC sent while it slept, then learns its lease is gone.
        yield self.when_said(a, b"lost bind slot")
        self.assertEqual((self.outcomes(), self.message_ids()), before)
        self.assertEqual([answer["message_ids"][0] for answer in answers],
                         [before[1][f"f{i}"] for i in range(N)])
        yield b.stop(signal.SIGTERM)

    @inlineCallbacks
    def test_database_restarted_under_load(self) -> Any:
        """PostgreSQL is restarted (fast: every session ended at once) while node A sends and
        node B stands by: the nodes wait and go on; a host that asks again after TRY_LATER
        gets every request_id's answer; every message reaches the SMSC, at most a window
        of them twice, and each answer's message id is the one stored."""
        if not os.environ.get("SMPPGW_TEST_POSTGRES_DIR"):
            self.skipTest("SMPPGW_TEST_POSTGRES_DIR is not set: .ci/postgres start sets it")
        a, state_a = self.node("gw-a")
        yield a.ready
        yield self.simulator.when_received(1, "bind_transceiver")
        b, _ = self.node("gw-b")
        yield b.ready
        host = yield self.host(state_a)
        asked = [self.until_answered(host, i) for i in range(N)]
        yield self.simulator.when_received(N // 3, "submit_sm")
        yield deferToThread(subprocess.run, [RESTART, "restart"], check=True, timeout=120)
        self.admin.close()  # ended by the restart
        self.admin = psycopg.connect(URL, autocommit=True)
        answers = yield gatherResults(asked)
        sent = self.submitted()
        self.assertEqual(sorted(sent), sorted(destination(i).encode() for i in range(N)))
        self.assertLessEqual(sum(count - 1 for count in sent.values()), WINDOW)
        ids = self.message_ids()
        self.assertEqual([answer["message_ids"][0] for answer in answers],
                         [ids[f"f{i}"] for i in range(N)])
        yield b.stop(signal.SIGTERM)
        yield a.stop(signal.SIGTERM)

    @inlineCallbacks
    def until_answered(self, host: Host, i: int) -> Any:
        """Request ``f{i}``'s answer, asking again after each TRY_LATER (as a host does)."""
        for _ in range(200):
            try:
                answer = yield self.ask(host, i)
                return answer
            except TryLater:
                pass
            pause: Deferred[None] = Deferred()
            reactor.callLater(0.1, pause.callback, None)
            yield pause
        self.fail(f"f{i} still TRY_LATER after 200 asks")

    def when_said(self, process: GatewayProcess, text: bytes) -> Deferred[None]:
        """Fires once ``process`` has written ``text`` to its output."""
        said: Deferred[None] = Deferred()
        original = process.outReceived

        def received(data: bytes) -> None:
            original(data)
            if text in process.output and not said.called:
                said.callback(None)

        process.outReceived = received  # type: ignore[method-assign]
        process.errReceived = received  # type: ignore[method-assign]
        if text in process.output:
            said.callback(None)
        return said
