"""The benchmark's AMP host (bench/_host.py) speaks AMP boxes itself: it must agree with Twisted's AMP."""

from __future__ import annotations

import importlib.util
import os
import sys
from types import ModuleType
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from smppgw.errors import NotRelayed, TryLater, Unauthorized
from smppgw.host.commands import SendSignal, ServerStatus, SignalReport

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


def load_host() -> ModuleType:
    """bench/_host.py as a module (it imports bench/_messages.py, so bench/ is on the path meanwhile)."""
    sys.path.insert(0, BENCH)
    try:
        spec = importlib.util.spec_from_file_location("_bench_host_under_test",
                                                      os.path.join(BENCH, "_host.py"))
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(BENCH)


host_module = load_host()
messages_module = sys.modules["_messages"]


class FakeGateway(amp.AMP):
    """Twisted's own AMP on the gateway's side; SendSignals are answered when the test says."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[dict[str, Any]] = []
        self.answers: list[tuple[Deferred[dict[str, Any]], int]] = []
        self.refusals: dict[int, Exception] = {}

    @SendSignal.responder
    def send_signal(self, request_id: str, method: str, sender: str, recipient: str, body: str,
                    gateway: str | None = None) -> Deferred[dict[str, Any]]:
        self.requests.append({"request_id": request_id, "method": method, "sender": sender,
                              "recipient": recipient, "body": body, "gateway": gateway})
        d: Deferred[dict[str, Any]] = Deferred()
        self.answers.append((d, len(self.requests) - 1))
        return d

    def answer_all(self) -> int:
        answers, self.answers = self.answers, []
        for d, i in answers:
            if i in self.refusals:
                d.errback(self.refusals[i])
            else:
                d.callback({"server": "", "parts": 1 + i % 3, "message_ids": [f"m{i}"]})
        return len(answers)

    @ServerStatus.responder
    def server_status(self) -> dict[str, Any]:
        return {"servers": [{"name": "", "mode": "send-and-receive", "address": "127.0.0.1:1",
                             "state": "bound", "queued": 0, "sent": 0, "received": 0,
                             "last_error": ""}]}


class LockedGateway(FakeGateway):
    @ServerStatus.responder
    def server_status(self) -> dict[str, Any]:
        raise Unauthorized("Login first")


class LoadRunTests(SynchronousTestCase):
    def connect(self) -> tuple[Any, FakeGateway, iosim.IOPump]:
        client, server, pump = iosim.connectedServerAndClient(FakeGateway, host_module.RawAMP)
        return client, server, pump

    def run_load(self, messages: int, concurrency: int, mix: str = "mixed",
                 refusals: dict[int, Exception] | None = None) -> tuple[Any, FakeGateway, list[int]]:
        client, server, pump = self.connect()
        server.refusals = refusals or {}
        load = host_module.LoadRun(client, messages, concurrency, mix, "t-", {})
        done = load.start()
        outstanding = []
        while True:
            pump.flush()
            outstanding.append(len(server.answers))
            if not server.answer_all():
                break
        pump.flush()
        self.successResultOf(done)
        return load, server, outstanding

    def test_requests_and_answers(self) -> None:
        """Every request carries the contract's arguments; the window stays full and is never exceeded."""
        load, server, outstanding = self.run_load(messages=11, concurrency=4)
        self.assertEqual(outstanding[:3], [4, 4, 3])
        self.assertEqual(len(server.requests), 11)
        for i, request in enumerate(server.requests):
            self.assertEqual(request, {
                "request_id": f"t-{i}", "method": "MESSAGE", "sender": "alice@example.com",
                "recipient": f"+{messages_module.number(i)}@smpp",
                "body": messages_module.body(i, "mixed"), "gateway": None})
        result = load.result()
        self.assertEqual(result["messages"], 11)
        self.assertEqual(result["ok"], 11)
        self.assertEqual(result["errors"], {})
        self.assertEqual(result["parts"], sum(1 + i % 3 for i in range(11)))
        self.assertEqual(len(load.latencies), 11)
        self.assertEqual(set(result["latency_ms"]), {"p50", "p95", "p99", "max", "mean"})
        self.assertEqual(set(result["cpu_s"]), {"host", "machine"})

    def test_errors_named_as_twisted_amp_names_them(self) -> None:
        """An error answer counts under the exception's name that callRemote would fail with."""
        refusals: dict[int, Exception] = {1: TryLater("busy"), 2: NotRelayed("no"),
                                          3: TryLater("busy")}
        load, _, _ = self.run_load(messages=7, concurrency=3, refusals=refusals)
        result = load.result()
        self.assertEqual(result["errors"], {"TryLater": 2, "NotRelayed": 1})
        self.assertEqual(result["ok"], 4)
        self.assertEqual(result["parts"], sum(1 + i % 3 for i in (0, 4, 5, 6)))

    def test_error_names_match_twisted(self) -> None:
        """The name for each code is the exception Twisted's AMP client gets for it."""
        for code in [*SendSignal.errors.values(), amp.UNHANDLED_ERROR_CODE, b"SOMETHING_ELSE"]:
            box = amp.AmpBox({amp.ERROR: b"1", amp.ERROR_CODE: code,
                              amp.ERROR_DESCRIPTION: b"why"})
            client = amp.AMP()
            client.makeConnection(StringTransport())
            d = client.callRemote(SendSignal, request_id="r", method="MESSAGE", sender="a",
                                  recipient="b", body="c")
            failures: list[Failure] = []
            d.addErrback(failures.append)
            client.ampBoxReceived(box)
            self.assertEqual(host_module.SIGNAL_ERRORS.get(code, host_module.UNKNOWN_ERROR),
                             failures[0].value.__class__.__name__)

    def test_server_status(self) -> None:
        """callRemote serves ServerStatus (for wait_bound) with the command's own parsing."""
        client, _, pump = self.connect()
        d = client.callRemote(ServerStatus)
        pump.flush()
        self.assertEqual(self.successResultOf(d)["servers"][0]["state"], "bound")

    def test_server_status_error(self) -> None:
        """An error answer fails callRemote with the command's own exception class."""
        client, _, pump = iosim.connectedServerAndClient(LockedGateway, host_module.RawAMP)
        d = client.callRemote(ServerStatus)
        pump.flush()
        self.failureResultOf(d, Unauthorized)

    def test_command_from_gateway_unhandled(self) -> None:
        """A SignalReport from the gateway gets UNHANDLED, as from AMP without a responder."""
        client, server, pump = self.connect()
        load = host_module.LoadRun(client, 2, 2, "gsm160", "t-", {})
        done = load.start()
        report = server.callRemote(SignalReport, request_id="t-0", message_id="m0",
                                   state="DELIVRD", error="", server="")
        failures: list[Failure] = []
        report.addErrback(failures.append)
        pump.flush()
        self.assertTrue(failures[0].check(amp.UnhandledCommand))
        server.answer_all()
        pump.flush()
        self.successResultOf(done)
        self.assertEqual(load.result()["ok"], 2)

    def test_boxes_split_anywhere(self) -> None:
        """Answers read one byte at a time are all found, and each refills the window."""
        client = host_module.RawAMP()
        transport = StringTransport()
        client.makeConnection(transport)
        load = host_module.LoadRun(client, 6, 3, "ucs2-70", "t-", {})
        done = load.start()
        written = amp.parseString(transport.value())
        transport.clear()
        self.assertEqual([box[b"request_id"] for box in written], [b"t-0", b"t-1", b"t-2"])
        self.assertEqual(written[2][b"body"], messages_module.body(2, "ucs2-70").encode("utf-8"))
        while written:
            stream = b""
            for box in written:
                answer = SendSignal.makeResponse({"server": "x", "parts": 2, "message_ids": ["a", "b"]},
                                                 None)
                answer[amp.ANSWER] = box[amp.ASK]
                stream += answer.serialize()
            for k in range(len(stream)):
                client.dataReceived(stream[k:k + 1])
            written = amp.parseString(transport.value())
            transport.clear()
        self.successResultOf(done)
        self.assertEqual(load.result()["parts"], 12)
        self.assertEqual(load.answered, 6)

    def test_connection_lost(self) -> None:
        """The outstanding requests fail with the reason, the rest is not sent, and the run fails."""
        client = host_module.RawAMP()
        transport = StringTransport()
        client.makeConnection(transport)
        load = host_module.LoadRun(client, 10, 3, "gsm160", "t-", {})
        done = load.start()
        client.connectionLost(Failure(ConnectionLost("gone")))
        failure = self.failureResultOf(done, ConnectionError)
        self.assertIn("lost after 3 answers", str(failure.value))
        self.assertEqual(load.errors, {"ConnectionLost": 3})
        self.assertEqual(load.sent, 3)
        self.failureResultOf(client.callRemote(ServerStatus), ConnectionLost)
