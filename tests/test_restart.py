"""A gateway killed with SIGKILL while messages are queued sends each of them exactly once after restart."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol, serverFromString
from twisted.protocols import amp
from twisted.trial.unittest import TestCase

from smppgw.amp import SendSignal, ServerStatus
from smppgw.simulator import SMSCSimulator
from smppgw.testing import GatewayProcess, gateway_config

N = 20


class Host(amp.AMP):
    pass


class RestartTests(TestCase):
    timeout = 60

    def spawn(self, config: str) -> GatewayProcess:
        return GatewayProcess.spawn(reactor, config)

    def stop(self, process: GatewayProcess, sig: int) -> Deferred[None]:
        return process.stop(sig)

    @inlineCallbacks
    def host(self, state: str) -> Any:
        client = yield connectProtocol(UNIXClientEndpoint(reactor, f"{state}/amp.sock"), Host())
        self.addCleanup(client.transport.loseConnection)
        return client

    def send_all(self, host: Host) -> list[Deferred[Any]]:
        return [host.callRemote(SendSignal, request_id=f"k{i}", method="MESSAGE",
                                sender="alice@example.com", recipient=f"+15550{i:03d}@smpp",
                                body=f"message {i}") for i in range(N)]

    @inlineCallbacks
    def test_sigkill_with_queue(self) -> Any:
        """Queued messages survive SIGKILL: after restart each request_id is sent once and answered."""
        state = tempfile.mkdtemp(prefix="smppgw-")
        self.addCleanup(shutil.rmtree, state, True)
        simulator = SMSCSimulator({"gw": "pw"}, reactor)
        probe = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(simulator)
        port = probe.getHost().port
        yield probe.stopListening()
        config = os.path.join(state, "smppgw.toml")
        with open(config, "w") as f:
            f.write(gateway_config(state, port, module={"log_level": "major"}, sender="smppgw"))
        first = self.spawn(config)
        self.addCleanup(self.stop, first, signal.SIGKILL)
        yield first.ready
        host = yield self.host(state)
        pending = self.send_all(host)
        for p in pending:
            p.addErrback(lambda f: None)  # the answers die with the process
        status = yield host.callRemote(ServerStatus)
        status = yield host.callRemote(ServerStatus)
        self.assertEqual(status["servers"][0]["queued"], N)
        yield self.stop(first, signal.SIGKILL)

        listening = yield serverFromString(
            reactor, f"tcp:{port}:interface=127.0.0.1").listen(simulator)
        self.addCleanup(listening.stopListening)
        second = self.spawn(config)
        self.addCleanup(self.stop, second, signal.SIGTERM)
        yield second.ready
        # The restored messages go out by themselves, before any host asks again.
        yield simulator.when_received(N, "submit_sm")
        host = yield self.host(state)
        answers = yield gatherResults(self.send_all(host))
        numbers = [p.params["destination_addr"] for p in simulator.accepted]
        self.assertEqual(sorted(numbers), [f"15550{i:03d}".encode() for i in range(N)])
        self.assertEqual(sorted(a["message_ids"][0] for a in answers), sorted(simulator.message_ids))
        yield self.stop(second, signal.SIGTERM)
        for connection in list(simulator.connections):
            connection.close()
