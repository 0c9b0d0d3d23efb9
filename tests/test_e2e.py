"""End-to-end tests: a host over AMP -> the whole gateway -> the SMSC simulator, on loopback."""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import tomllib
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol, serverFromString
from twisted.protocols import amp
from twisted.trial.unittest import TestCase

from smppgw.config import parse_config
from smppgw.errors import NotRelayed
from smppgw.host.commands import DeliverSignal, SendSignal, ServerStatus, SignalReport
from smppgw.service import build_gateway
from smppgw.testing.process import gateway_config
from smppgw.testing.simulator import SMSCSimulator


def config_text(state: str, port: int, reject: str = "10m", **server: str) -> str:
    """A gateway configuration; `server` values are TOML literals ("10", "true")."""
    values = {k: tomllib.loads(f"v = {v}")["v"] for k, v in server.items()}
    return gateway_config(state, port, module={"reject_if_not_relayed_in": reject},
                          **{"sender": "+15550100", "response_timeout": "5s", **values})


class Host(amp.AMP):
    """A test IM host that records what the gateway hands it."""

    def __init__(self) -> None:
        super().__init__()
        self.delivered: list[dict[str, str]] = []
        self.reports: list[dict[str, str]] = []
        self.waiting: list[tuple[list[Any], int, Deferred[None]]] = []

    def _arrived(self) -> None:
        for entry in list(self.waiting):
            seen, count, d = entry
            if len(seen) >= count:
                self.waiting.remove(entry)
                d.callback(None)

    def when(self, seen: list[Any], count: int) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.waiting.append((seen, count, d))
        self._arrived()
        return d

    @DeliverSignal.responder
    def deliver_signal(self, **kw: str) -> dict[str, Any]:
        self.delivered.append(kw)
        self._arrived()
        return {}

    @SignalReport.responder
    def signal_report(self, **kw: str) -> dict[str, Any]:
        self.reports.append(kw)
        self._arrived()
        return {}


def turn() -> Deferred[None]:
    d: Deferred[None] = Deferred()
    reactor.callLater(0, d.callback, None)
    return d


class GatewayTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def start(self, listening: bool = True, reject: str = "10m", **server: str) -> Any:
        # Unix socket paths must be short (108 bytes): not under trial's temp folder.
        self.state = tempfile.mkdtemp(prefix="smppgw-")
        self.addCleanup(shutil.rmtree, self.state, True)
        self.simulator = SMSCSimulator({"gw": "pw"}, reactor)
        port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(self.simulator)
        self.port_number = port.getHost().port
        self.addCleanup(self._stop_listening)
        if listening:
            self.listening = port
        else:
            yield port.stopListening()
            self.listening = None
        server.setdefault("window", "10")
        config = parse_config(config_text(self.state, self.port_number, reject, **server))
        self.gateway = build_gateway(config, reactor)
        for link in self.gateway.links.values():
            link.clientService._retryPolicy = lambda attempt: 0.05  # reconnect quickly in tests
        self.gateway.startService()
        self.addCleanup(self._stop_gateway)
        if listening:
            yield self.gateway.links[""].when_bound()
        host = yield connectProtocol(UNIXClientEndpoint(reactor, f"{self.state}/amp.sock"), Host())
        self.addCleanup(host.transport.loseConnection)
        return host

    @inlineCallbacks
    def _stop_gateway(self) -> Any:
        yield self.gateway.stopService()
        for connection in list(self.simulator.connections):
            connection.close()
        yield turn()

    def _stop_listening(self) -> Any:
        if self.listening is not None:
            return self.listening.stopListening()
        return None

    @inlineCallbacks
    def listen_now(self) -> Any:
        self.listening = yield serverFromString(
            reactor, f"tcp:{self.port_number}:interface=127.0.0.1").listen(self.simulator)

    def send(self, host: Host, rid: str, number: str = "+15551234", body: str = "hello") -> Deferred[Any]:
        return host.callRemote(SendSignal, request_id=rid, method="MESSAGE",
                               sender="alice@example.com", recipient=f"{number}@smpp", body=body)

    @inlineCallbacks
    def test_store_checkpointed_and_closed(self) -> Any:
        """The gateway checkpoints its store in the background; once stopped, the log is gone."""
        host = yield self.start()
        yield self.send(host, "r1")
        checkpointer = self.gateway.checkpointer
        checkpointer.tick()
        yield checkpointer._running
        self.assertEqual(checkpointer.runs, 1)
        path = f"{self.state}/smppgw.sqlite"
        self.assertTrue(os.path.exists(path + "-wal"))
        yield self.gateway.stopService()
        # SQLite removes the log only when the last connection closes: the
        # checkpointer's was closed before the store's.
        self.assertFalse(os.path.exists(path + "-wal"))
        db = sqlite3.connect(path)
        self.addCleanup(db.close)
        self.assertEqual(db.execute("SELECT request_id FROM outbound").fetchall(), [("r1",)])

    @inlineCallbacks
    def test_message_reaches_smsc(self) -> Any:
        """A SendSignal becomes a submit_sm at the SMSC and the host gets its message id."""
        host = yield self.start()
        answer = yield self.send(host, "r1")
        [accepted] = self.simulator.accepted
        self.assertEqual(answer["server"], "")
        self.assertEqual(answer["parts"], 1)
        self.assertIn(answer["message_ids"][0], self.simulator.message_ids)
        self.assertEqual(accepted.params["destination_addr"], b"15551234")
        self.assertEqual(accepted.params["source_addr"], b"15550100")
        self.assertEqual(accepted.params["short_message"], b"hello")

    @inlineCallbacks
    def test_queued_while_smsc_down(self) -> Any:
        """Messages sent while the SMSC is down wait, then go out when it comes up."""
        host = yield self.start(listening=False)
        answers = [self.send(host, f"q{i}", f"+1555000{i}") for i in range(3)]
        status = yield host.callRemote(ServerStatus)
        self.assertEqual(status["servers"][0]["queued"], 3)
        self.assertEqual(self.simulator.accepted, [])
        yield self.listen_now()
        results = yield gatherResults(answers)
        self.assertEqual([r["parts"] for r in results], [1, 1, 1])
        self.assertEqual([p.params["destination_addr"] for p in self.simulator.accepted],
                         [b"15550000", b"15550001", b"15550002"])

    @inlineCallbacks
    def test_not_relayed(self) -> Any:
        """A message queued longer than reject_if_not_relayed_in ends with NOT_RELAYED."""
        host = yield self.start(listening=False, reject="300ms")
        yield self.assertFailure(self.send(host, "late"), NotRelayed)

    @inlineCallbacks
    def test_throttling_keeps_order(self) -> Any:
        """With every 3rd submit throttled (window 1), all messages arrive, in the order they were sent."""
        host = yield self.start(window="1")
        self.simulator.faults.throttle_every = 3
        answers = [self.send(host, f"t{i}", f"+155500{i:02d}") for i in range(12)]
        yield gatherResults(answers)
        self.assertEqual([p.params["destination_addr"] for p in self.simulator.accepted],
                         [f"155500{i:02d}".encode() for i in range(12)])

    @inlineCallbacks
    def test_throttling_resends_first(self) -> Any:
        """With a window of 10, throttled submits go out again before anything newer, and each message once."""
        host = yield self.start()
        self.simulator.faults.throttle_every = 4
        answers = [self.send(host, f"w{i}", f"+155500{i:02d}") for i in range(30)]
        yield gatherResults(answers)
        accepted = [p.params["destination_addr"] for p in self.simulator.accepted]
        self.assertEqual(sorted(accepted), [f"155500{i:02d}".encode() for i in range(30)])
        submits = [r.pdu.params["destination_addr"] for r in self.simulator.received
                   if r.pdu.command == "submit_sm"]
        # The simulator throttles every 4th submit it receives and answers at
        # once, in order.  When the gateway reads the throttled answer of the
        # submit at position t, the window holds it and at most window - 1
        # later ones; so from t + window on, until the throttled one goes
        # again, everything sent must itself be a resend, never a first send.
        window = 10
        throttled = [(t, submits[t]) for t in range(3, len(submits), 4)]
        self.assertTrue(throttled)
        for t, number in throttled:
            retry = submits.index(number, t + 1)
            for position in range(t + window, retry):
                self.assertIn(submits[position], submits[:position],
                              f"{submits[position]!r} first sent at {position}, before the "
                              f"throttled {number!r} (sent at {t}) went again at {retry}")

    @inlineCallbacks
    def test_drops_with_submits_in_flight(self) -> Any:
        """The SMSC dropping the link with submits in flight loses nothing: every message is answered."""
        host = yield self.start()
        self.simulator.faults.drop_after = 30
        answers = yield gatherResults([self.send(host, f"d{i}", f"+155500{i:02d}") for i in range(60)])
        self.assertEqual(len(answers), 60)
        accepted = {p.params["destination_addr"] for p in self.simulator.accepted}
        self.assertEqual(accepted, {f"155500{i:02d}".encode() for i in range(60)})

    @inlineCallbacks
    def test_retry_does_not_send_twice(self) -> Any:
        """A request_id sent again gets the same answer and the SMSC sees it once."""
        host = yield self.start()
        first = yield self.send(host, "same")
        second = yield self.send(host, "same")
        self.assertEqual(first, second)
        self.assertEqual(len(self.simulator.accepted), 1)

    @inlineCallbacks
    def test_long_message(self) -> Any:
        """A 300-character text goes as concatenated parts that the SMSC receives in order."""
        host = yield self.start()
        answer = yield self.send(host, "long", body="0123456789" * 30)
        self.assertEqual(answer["parts"], 2)
        bodies = [p.params["short_message"] for p in self.simulator.accepted]
        self.assertEqual(b"".join(b[6:] for b in bodies), b"0123456789" * 30)

    @inlineCallbacks
    def test_mobile_originated_reaches_host(self) -> Any:
        """An SMS from a phone reaches the connected host as DeliverSignal, and the SMSC gets ESME_ROK."""
        host = yield self.start()
        response = yield self.simulator.deliver("15557654", "15550100", b"hi there")
        self.assertEqual(response.command_status, 0)
        yield host.when(host.delivered, 1)
        self.assertEqual(host.delivered, [{
            "method": "MESSAGE", "sender": "+15557654@smpp", "recipient": "+15550100@telnum",
            "body": "hi there", "server": ""}])

    @inlineCallbacks
    def test_receipt_reaches_host(self) -> Any:
        """A delivery receipt for a sent message reaches the host as SignalReport for its request."""
        host = yield self.start(registered_delivery="true")
        answer = yield self.send(host, "rcpt")
        [message_id] = answer["message_ids"]
        self.assertEqual(self.simulator.accepted[0].params["registered_delivery"], 1)
        yield self.simulator.deliver_receipt(message_id, "DELIVRD")
        yield host.when(host.reports, 1)
        self.assertEqual(host.reports, [{"request_id": "rcpt", "message_id": message_id,
                                         "state": "DELIVERED", "error": "000", "server": "",
                                         "part": 1, "parts": 1}])
