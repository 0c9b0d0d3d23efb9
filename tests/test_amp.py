"""Tests for the AMP endpoint: the contract's commands, errors and login, over an in-memory connection."""

from __future__ import annotations

from typing import Any

from twisted.internet.task import Clock
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from smppgw.config import parse_config
from smppgw.errors import Unauthorized
from smppgw.host.commands import Login, SendSignal, ServerStatus, SignalReport
from smppgw.host.protocol import GatewayAMPFactory
from smppgw.host.registry import HostRegistry
from smppgw.relay.inbound import Inbound
from smppgw.store.sqlite import Store

from . import test_queue


class Host(amp.AMP):
    """A test host."""


# The host's own view of the commands: one bare exception class per error
# code, named after it, so that the tests read the codes as they travel.
CODES = [b"UNSUPPORTED_METHOD", b"BAD_REQUEST", b"BAD_ADDRESS", b"UNKNOWN_SERVER",
         b"SERVER_DISABLED", b"TOO_LONG", b"NOT_RELAYED", b"SMSC_REJECTED", b"TRY_LATER",
         b"UNAUTHORIZED"]
WIRE_ERRORS = {type(code.decode(), (Exception,), {}): code for code in CODES}


class WireSendSignal(amp.Command):
    commandName = b"SendSignal"
    arguments = SendSignal.arguments
    response = SendSignal.response
    errors = WIRE_ERRORS


class WireServerStatus(amp.Command):
    commandName = b"ServerStatus"
    response = ServerStatus.response
    errors = WIRE_ERRORS


class ServerStatusBeforeRate(amp.Command):
    """ServerStatus as hosts built before its rate field know it."""

    commandName = b"ServerStatus"
    response = [(b"servers", amp.AmpList([
        (b"name", amp.Unicode()), (b"mode", amp.Unicode()), (b"address", amp.Unicode()),
        (b"state", amp.Unicode()), (b"queued", amp.Integer()), (b"sent", amp.Integer()),
        (b"received", amp.Integer()), (b"last_error", amp.Unicode())]))]


class WireLogin(amp.Command):
    commandName = b"Login"
    arguments = Login.arguments
    errors = WIRE_ERRORS


class AmpTests(SynchronousTestCase):
    def connect(self, secret: str = "") -> tuple[Host, Any, iosim.IOPump, Any, Clock]:
        helper = test_queue.QueueTests("test_status")
        outbound, links, clock, store = helper.make()
        self.addCleanup(outbound.stop)
        self.registry = HostRegistry()
        factory = GatewayAMPFactory(outbound, self.registry, clock, secret)
        client, server, pump = iosim.connectedServerAndClient(
            lambda: factory.buildProtocol(None), Host, clock=clock)
        return client, links, pump, server, clock

    def call(self, pump: iosim.IOPump, client: Host, command: Any, **kw: Any) -> Any:
        """The outcome of a command: its result, or the Failure.  (AMP drops the
        connection if an error answer finds no errback, so one is attached first.)"""
        outcome: list[Any] = []
        client.callRemote(command, **kw).addBoth(outcome.append)
        pump.flush()
        return outcome[0] if outcome else None

    def code(self, outcome: Any) -> bytes:
        self.assertIsInstance(outcome, Failure)
        return type(outcome.value).__name__.encode()

    def test_send_signal(self) -> None:
        """SendSignal answers with server, parts and message ids once the SMSC accepted the message."""
        client, links, pump, server, clock = self.connect()
        d = client.callRemote(SendSignal, request_id="r1", method="MESSAGE", sender="a@b.c",
                              recipient="+15551234@bulk._smpp", body="hi")
        pump.flush()
        clock.advance(0)
        self.assertNoResult(d)
        links["bulk"].answer(message_id="77")
        clock.advance(0)
        pump.flush()
        self.assertEqual(self.successResultOf(d), {"server": "bulk", "parts": 1, "message_ids": ["77"]})

    def test_error_codes(self) -> None:
        """Each refusal reaches the host as its own AMP error code with a reason."""
        client, links, pump, server, clock = self.connect()
        for recipient, method, code in [
            ("+1555@nowhere._smpp", "MESSAGE", b"UNKNOWN_SERVER"),
            ("+1555@inbox._smpp", "MESSAGE", b"SERVER_DISABLED"),
            ("15a5@smpp", "MESSAGE", b"BAD_ADDRESS"),
            ("+1555@smpp", "SUBSCRIBE", b"UNSUPPORTED_METHOD"),
        ]:
            d = self.call(pump, client, WireSendSignal, request_id=code.decode(), method=method,
                          sender="a@b.c", recipient=recipient, body="x")
            self.assertEqual(self.code(d), code)
            self.assertTrue(str(d.value))

    def test_server_status(self) -> None:
        """ServerStatus lists each server with the contract's fields."""
        client, links, pump, server, clock = self.connect()
        d = self.call(pump, client, ServerStatus)
        servers = d["servers"]
        self.assertEqual([s["name"] for s in servers], ["", "bulk", "inbox", "spare"])
        self.assertEqual(set(servers[0]), {"name", "mode", "address", "state", "queued", "sent",
                                           "received", "last_error", "rate"})
        self.assertEqual(servers[0]["state"], "bound")
        self.assertIsNone(servers[0]["rate"])

    def test_server_status_learned_rate(self) -> None:
        """Once the SMSC throttled, ServerStatus shows the rate the link learned; older hosts read the rest."""
        client, links, pump, server, clock = self.connect()
        self.call(pump, client, SendSignal, request_id="t1", method="MESSAGE", sender="a@b.c",
                  recipient="+15551234@bulk._smpp", body="hi")
        clock.advance(0)
        links["bulk"].answer(status=0x58)
        clock.advance(0)
        servers = self.call(pump, client, ServerStatus)["servers"]
        self.assertEqual([s["rate"] for s in servers], [None, 1.0, None, None])
        old = self.call(pump, client, ServerStatusBeforeRate)["servers"]
        self.assertEqual([set(s) for s in old], [set(servers[0]) - {"rate"}] * 4)
        self.assertEqual(old[1]["queued"], 1)

    def test_login_required(self) -> None:
        """With a secret set, commands before Login fail with UNAUTHORIZED; after it they work."""
        client, links, pump, server, clock = self.connect(secret="s3cret")
        d = self.call(pump, client, WireServerStatus)
        self.assertEqual(self.code(d), b"UNAUTHORIZED")
        d = self.call(pump, client, WireSendSignal, request_id="x", method="MESSAGE", sender="a@b.c",
                      recipient="+1555@smpp", body="x")
        self.assertEqual(self.code(d), b"UNAUTHORIZED")
        self.assertEqual(links[""].submits, [])
        self.assertEqual(self.call(pump, client, Login, secret="s3cret"), {})
        self.assertIn("servers", self.call(pump, client, ServerStatus))
        self.assertEqual(self.registry.hosts, [server])

    def test_wrong_secret_closes(self) -> None:
        """A wrong secret gets UNAUTHORIZED and the connection is closed."""
        client, links, pump, server, clock = self.connect(secret="s3cret")
        d = self.call(pump, client, WireLogin, secret="guess")
        self.assertEqual(self.code(d), b"UNAUTHORIZED")
        clock.advance(0)
        pump.flush()
        # AMP drops its transport once the connection is gone.
        self.assertIsNone(server.transport)
        self.assertEqual(self.registry.hosts, [])

    def test_unknown_command(self) -> None:
        """An unknown command gets AMP's UNHANDLED error and the connection keeps serving."""
        client, links, pump, server, clock = self.connect()

        class Nonsense(amp.Command):
            arguments = [(b"x", amp.Unicode())]

        d = self.call(pump, client, Nonsense, x="y")
        self.assertIsInstance(d.value, amp.UnhandledCommand)
        self.assertIn("servers", self.call(pump, client, ServerStatus))

    def test_disconnect_while_pending(self) -> None:
        """A host that goes away with a SendSignal pending loses only the answer; a retry gets the outcome."""
        client, links, pump, server, clock = self.connect()
        client.callRemote(SendSignal, request_id="keep", method="MESSAGE", sender="a@b.c",
                          recipient="+1555@bulk._smpp", body="x").addErrback(lambda f: None)
        pump.flush()
        clock.advance(0)
        client.transport.loseConnection()
        pump.flush()
        links["bulk"].answer(message_id="42")
        clock.advance(0)
        client2, _, pump2, _, _ = self._reconnect(server, clock)
        d = self.call(pump2, client2, SendSignal, request_id="keep", method="MESSAGE", sender="a@b.c",
                      recipient="+1555@bulk._smpp", body="x")
        self.assertEqual(d["message_ids"], ["42"])
        self.assertEqual(links["bulk"].submits, [])

    def _reconnect(self, server: Any, clock: Clock) -> tuple[Host, Any, iosim.IOPump, Any, Clock]:
        factory = server.factory
        client, server2, pump = iosim.connectedServerAndClient(
            lambda: factory.buildProtocol(None), Host, clock=clock)
        return client, None, pump, server2, clock

    def test_excluded_connection_stays_out(self) -> None:
        """A connection excluded from delivery is not handed messages again when it logs in again."""
        client, _links, pump, server, _clock = self.connect(secret="s3cret")
        client.callRemote(WireLogin, secret="s3cret")
        pump.flush()
        self.assertEqual(self.registry.hosts, [server])
        self.registry.exclude(server)
        self.assertEqual(self.registry.hosts, [])
        client.callRemote(WireLogin, secret="s3cret")
        pump.flush()
        self.assertEqual(self.registry.hosts, [])
        client.transport.loseConnection()
        pump.flush()
        self.assertEqual(self.registry.hosts, [])

    def test_host_refusing_reports(self) -> None:
        """A host that refuses reports still takes messages; the mark goes with its connection."""
        client, _links, pump, server, _clock = self.connect(secret="s3cret")
        client.callRemote(WireLogin, secret="s3cret")
        pump.flush()
        self.assertTrue(self.registry.any_takes_reports())
        self.registry.refuses_reports(server)
        self.assertEqual(self.registry.hosts, [server])
        self.assertTrue(self.registry.takes(server, reports=False))
        self.assertFalse(self.registry.takes(server, reports=True))
        self.assertFalse(self.registry.any_takes_reports())
        client.transport.loseConnection()
        pump.flush()
        self.assertEqual(self.registry.hosts, [])
        self.assertEqual(self.registry._no_reports, set())

    def test_typed_errors_with_shared_commands(self) -> None:
        """A host using smppgw.host.commands' command classes gets the contract's exception classes back."""
        client, links, pump, server, clock = self.connect(secret="s3cret")
        d = self.call(pump, client, ServerStatus)
        self.assertIsInstance(d.value, Unauthorized)

    def test_endless_box_closes(self) -> None:
        """A box that never ends (keys without end) is cut off at MAX_BOX and the connection closed."""
        from smppgw.host.protocol import MAX_BOX

        client, links, pump, server, clock = self.connect()
        chunk = b"".join(len(k).to_bytes(2, "big") + k + (1000).to_bytes(2, "big") + b"x" * 1000
                         for k in (f"k{i}".encode() for i in range(100)))
        for _ in range(MAX_BOX // len(chunk) + 2):
            if server.transport is None:
                break
            server.dataReceived(chunk)
        pump.flush()
        self.assertIsNone(server.transport)

    def test_boxes_split_anywhere(self) -> None:
        """Commands arriving one byte at a time are parsed exactly as when whole."""
        client, links, pump, server, clock = self.connect()
        box = amp.AmpBox({b"_command": b"ServerStatus", b"_ask": b"7"}).serialize()
        sent: list[bytes] = []
        server.transport.write = sent.append  # type: ignore[method-assign]
        for i in range(len(box)):
            server.dataReceived(box[i : i + 1])
        answer = b"".join(sent)
        self.assertIn(b"_answer", answer)
        self.assertIn(b"servers", answer)

    def test_error_answer_without_code_settles_the_question(self) -> None:
        """A host's error answer that lacks _error_code fails the gateway's question instead of leaving it pending."""
        from smppgw.host.commands import DeliverSignal

        client, links, pump, server, clock = self.connect()
        outcome: list[Any] = []
        server.callRemote(DeliverSignal, method="MESSAGE", sender="+1@smpp", recipient="a@b",
                          body="x", server="").addBoth(outcome.append)
        server.dataReceived(amp.AmpBox({b"_error": b"1"}).serialize())
        [failure] = outcome
        self.assertIsInstance(failure, Failure)
        self.assertIsNotNone(server.transport)  # the connection stays up


class ContractTests(SynchronousTestCase):
    """The contract's pieces: one table of error codes, and the host seam."""

    def test_error_codes_from_one_table(self) -> None:
        """Every command's errors are the codes the outcome classes declare, and SendSignal's are the contract's ten."""
        from smppgw.errors import HOST_ERRORS, OUTCOMES
        from smppgw.host.commands import DeliverSignal

        self.assertEqual(sorted(SendSignal.errors.values()), sorted(CODES))
        self.assertEqual(SendSignal.errors, {cls: cls.code.encode() for cls in OUTCOMES})
        self.assertEqual(DeliverSignal.errors, {cls: cls.code.encode() for cls in HOST_ERRORS})
        self.assertEqual(sorted(SignalReport.errors.values()), [b"REFUSED", b"TRY_LATER"])
        self.assertEqual(Login.errors, ServerStatus.errors)
        self.assertEqual(list(ServerStatus.errors.values()), [b"UNAUTHORIZED"])

    def test_gateway_amp_is_a_host(self) -> None:
        """A host connection provides IHost, what the registry's users need of it."""
        from zope.interface.verify import verifyObject

        from smppgw.host.protocol import GatewayAMP
        from smppgw.host.registry import IHost
        from smppgw.smpp.log import SmppLog

        host = GatewayAMP(object(), HostRegistry(), "", SmppLog("amp", "none"), Clock())  # type: ignore[arg-type]
        self.assertTrue(verifyObject(IHost, host))


class WireFormatTests(SynchronousTestCase):
    """SendSignal's own parsing and answer are exactly what Twisted's AMP machinery makes."""

    def test_answer_bytes_match_amp(self) -> None:
        """The hand-built answer box is byte for byte AmpBox.serialize() of makeResponse()."""
        from smppgw.host.fastpath import signal_answer

        for result in (
            {"server": "smsc1", "parts": 1, "message_ids": ["a1"]},
            {"server": "sérveur", "parts": 3, "message_ids": ["1", "", "x" * 65]},
            {"server": "s", "parts": 0, "message_ids": []},
        ):
            expected = SendSignal.makeResponse(result, None)
            expected[amp.ANSWER] = b"17"
            self.assertEqual(signal_answer(b"17", result).serialize(), expected.serialize())

    def test_answer_over_amp_limit(self) -> None:
        """An answer value over 65,535 bytes raises AMP's TooLong rather than sending a broken box."""
        from smppgw.host.fastpath import signal_answer

        result = {"server": "s" * 70_000, "parts": 1, "message_ids": ["1"]}
        self.assertRaises(amp.TooLong, signal_answer, b"1", result)

    def test_arguments_match_amp(self) -> None:
        """The arguments read from a box equal SendSignal.parseArguments(), optional ones included."""
        from smppgw.host.fastpath import signal_arguments

        box = amp.AmpBox(request_id=b"r", method=b"MESSAGE", sender="é@x".encode(),
                         recipient=b"+1@smpp", body="ünï 😀".encode())
        self.assertEqual(signal_arguments(box), SendSignal.parseArguments(box, None))
        box[b"gateway"] = b"smsc2"
        self.assertEqual(signal_arguments(box), SendSignal.parseArguments(box, None))

    def test_bad_arguments(self) -> None:
        """A missing argument or one that is not UTF-8 is BAD_REQUEST naming it."""
        from smppgw.host.fastpath import signal_arguments

        box = amp.AmpBox(request_id=b"r", method=b"MESSAGE", sender=b"a@x", recipient=b"+1@smpp")
        error = self.assertRaises(amp.RemoteAmpError, signal_arguments, box)
        self.assertEqual((error.errorCode, error.description),
                         (b"BAD_REQUEST", "SendSignal: missing argument body"))
        box[b"body"] = b"\xff"
        error = self.assertRaises(amp.RemoteAmpError, signal_arguments, box)
        self.assertEqual(error.errorCode, b"BAD_REQUEST")
        self.assertIn("argument body is not UTF-8", error.description)


class OldSignalReport(amp.Command):
    """SignalReport as hosts built before it named the part declare it."""

    commandName = b"SignalReport"
    arguments = [(b"request_id", amp.Unicode()), (b"message_id", amp.Unicode()),
                 (b"state", amp.Unicode()), (b"error", amp.Unicode()), (b"server", amp.Unicode())]
    errors = {Exception: b"REFUSED"}


def reporting_host(command: type[amp.Command]) -> type[amp.AMP]:
    """A host whose responder of ``command`` (a SignalReport) records what it is given."""

    class ReportingHost(amp.AMP):
        def __init__(self) -> None:
            super().__init__()
            self.reports: list[dict[str, Any]] = []

        @command.responder
        def signal_report(self, **report: Any) -> dict[str, Any]:
            self.reports.append(report)
            return {}

    return ReportingHost


#: A host built with SignalReport as it was, and one with smppgw.host.commands'.
OldHost = reporting_host(OldSignalReport)
NewHost = reporting_host(SignalReport)


class ReportPartTests(SynchronousTestCase):
    """SignalReport names the part (part of parts) without breaking hosts that do not know it."""

    REPORT = {"request_id": "r1", "message_id": "M2", "state": "DELIVERED", "error": "000",
              "server": "sim"}

    def deliver(self, host: type[amp.AMP],
                part: dict[str, int] | None = None) -> tuple[Any, Store]:
        """A stored report (of part 2 of 3 unless ``part`` says), handed by the gateway to ``host`` over AMP."""
        clock = Clock()
        store = Store(":memory:", clock)
        registry = HostRegistry()
        config = parse_config('[[server]]\nname = "sim"\naddress = "127.0.0.1"\n'
                              'system_id = "esme"\npassword = "pw"\n')
        inbound = Inbound(config, store, registry, clock, None)
        self.addCleanup(store.close)
        self.addCleanup(inbound.stop)
        store.add_inbox("report", {**self.REPORT, **({"part": 2, "parts": 3} if part is None else part)},
                        0.0)
        clock.advance(0)  # durable: the dispatcher hands it out
        inbound.start()
        factory = GatewayAMPFactory(None, registry, clock)  # type: ignore[arg-type]
        client, _server, pump = iosim.connectedServerAndClient(
            lambda: factory.buildProtocol(None), host, clock=clock)
        for _ in range(3):
            clock.advance(0)
            pump.flush()
        return client, store

    def test_old_host_gets_its_report(self) -> None:
        """A host whose SignalReport has no part/parts gets the report and its {} answer removes it."""
        client, store = self.deliver(OldHost)
        self.assertEqual(client.reports, [self.REPORT])
        self.assertEqual(store.inbox(), [])

    def test_new_host_sees_the_part(self) -> None:
        """A host with smppgw.host.commands' SignalReport sees part 2 of 3."""
        client, store = self.deliver(NewHost)
        self.assertEqual(client.reports, [{**self.REPORT, "part": 2, "parts": 3}])
        self.assertEqual(store.inbox(), [])

    def test_report_stored_without_part(self) -> None:
        """A report stored by an earlier version, without part and parts, reaches a new host as None."""
        client, store = self.deliver(NewHost, part={})
        self.assertEqual(client.reports, [{**self.REPORT, "part": None, "parts": None}])
        self.assertEqual(store.inbox(), [])
