"""Tests for the SMSC link: binding through ClientService, backoff, reconnects and stopping."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from smppgw.config import parse_config
from smppgw.smpp.codec import PDU, Framer, decode, encode
from smppgw.smpp.constants import STATUSES
from smppgw.smpp.link import BINDING, BOUND, CONNECTING, DISCONNECTED, Link
from smppgw.smpp.session import NotBound


def server_config(**extra: str) -> Any:
    lines = "\n".join(f"{k} = {v}" for k, v in extra.items())
    return parse_config(
        f"""
[[server]]
name = "p1"
address = "127.0.0.1:2775"
system_id = "esme"
password = "pw"
keep_alive = "30s"
response_timeout = "10s"
{lines}
"""
    ).servers[0]


class FakeEndpoint:
    """A client endpoint whose connections are StringTransports the test plays the SMSC on."""

    def __init__(self) -> None:
        self.connections: list[tuple[Any, StringTransport]] = []
        self.refuse = False

    def connect(self, factory: Any) -> Deferred[Any]:
        if self.refuse:
            from twisted.internet.defer import fail
            from twisted.internet.error import ConnectionRefusedError

            return fail(ConnectionRefusedError())
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.connections.append((protocol, transport))
        return succeed(protocol)

    def last(self) -> tuple[Any, StringTransport]:
        return self.connections[-1]

    def sent(self) -> list[PDU]:
        _, transport = self.last()
        data = transport.value()
        transport.clear()
        return [decode(f) for f in Framer().feed(data)]

    def answer(self, pdu: PDU) -> None:
        protocol, _ = self.last()
        protocol.dataReceived(encode(pdu))

    def drop(self) -> None:
        protocol, transport = self.last()
        if getattr(protocol, "lost", False):
            return
        protocol.lost = True
        from twisted.internet.error import ConnectionDone

        protocol.connectionLost(Failure(ConnectionDone("closed by the SMSC")))


def to_next_call(clock: Clock) -> None:
    """Advance the clock to its earliest delayed call (a reconnect attempt, here)."""
    clock.advance(min(c.getTime() for c in clock.getDelayedCalls()) - clock.seconds())


def largest_message_deliver_sm(sequence: int) -> bytes:
    """A deliver_sm whose message_payload holds 65,535 octets, the most its 16-bit length allows."""
    body = (b"\0" + b"\x01\x01" + b"447700900123\0" + b"\x01\x01" + b"8888\0"
            + bytes(10) + (0x0424).to_bytes(2, "big") + b"\xff\xff" + b"A" * 0xFFFF)
    header = (16 + len(body)).to_bytes(4, "big") + bytes.fromhex("00000005 00000000")
    return header + sequence.to_bytes(4, "big") + body


class LinkCase(SynchronousTestCase):
    """A link on a clock and a fake endpoint, stopped cleanly after each test."""

    def make(self, log_level: str = "none", **extra: str) -> tuple[Link, FakeEndpoint, Clock]:
        clock = Clock()
        endpoint = FakeEndpoint()
        link = Link(server_config(**extra), endpoint, clock, log_level, jitter=lambda: 0.0)
        self.addCleanup(self._stop, link, clock, endpoint)
        return link, endpoint, clock

    def _stop(self, link: Link, clock: Clock, endpoint: FakeEndpoint) -> None:
        if link.running:
            d = link.stopService()
            clock.advance(0)
            if link.state in (BOUND, "unbinding"):
                for pdu in endpoint.sent():
                    if pdu.command == "unbind":
                        endpoint.answer(PDU("unbind_resp", pdu.sequence_number))
            if endpoint.connections:
                endpoint.drop()
            clock.advance(0)
            self.successResultOf(d)

    def bind_ok(self, endpoint: FakeEndpoint, clock: Clock) -> None:
        [bind] = endpoint.sent()
        endpoint.answer(PDU("bind_transceiver_resp", bind.sequence_number, 0, {"system_id": b"S"}))
        clock.advance(0)


class LinkTests(LinkCase):
    def test_binds_on_start(self) -> None:
        """Starting the link connects, binds as transceiver and reaches the bound state."""
        link, endpoint, clock = self.make()
        states: list[str] = []
        link.observe(states.append)
        d = link.when_bound()
        link.startService()
        self.assertEqual(link.state, BINDING)
        self.bind_ok(endpoint, clock)
        self.assertIs(self.successResultOf(d), link)
        self.assertEqual(states, [CONNECTING, BINDING, BOUND])

    def test_submit_through_link(self) -> None:
        """link.submit fires with the submit_sm_resp and counts the message as sent."""
        link, endpoint, clock = self.make()
        link.startService()
        self.bind_ok(endpoint, clock)
        d = link.submit(PDU("submit_sm", params={"destination_addr": b"1555"}))
        [submit] = endpoint.sent()
        endpoint.answer(PDU("submit_sm_resp", submit.sequence_number, 0, {"message_id": b"m1"}))
        self.assertEqual(self.successResultOf(d).params["message_id"], b"m1")
        self.assertEqual(link.sent, 1)

    def test_submit_while_down(self) -> None:
        """Submitting on a link that is not bound fails at once with NotBound."""
        link, endpoint, clock = self.make()
        self.failureResultOf(link.submit(PDU("submit_sm")), NotBound)

    def test_lost_during_bind_retries(self) -> None:
        """The SMSC closing the socket while the bind is pending leads to a new attempt after backoff."""
        link, endpoint, clock = self.make()
        link.startService()
        endpoint.drop()
        self.assertEqual(link.state, DISCONNECTED)
        self.assertEqual(len(endpoint.connections), 1)
        to_next_call(clock)
        self.assertEqual(len(endpoint.connections), 2)
        self.bind_ok(endpoint, clock)
        self.assertEqual(link.state, BOUND)

    def test_bind_failure_backs_off(self) -> None:
        """Refused binds are retried with growing delays and the refusal is kept as last_error."""
        link, endpoint, clock = self.make()
        link.startService()
        times = []
        for _ in range(4):
            [bind] = endpoint.sent()
            times.append(clock.seconds())
            endpoint.answer(PDU("bind_transceiver_resp", bind.sequence_number,
                                STATUSES["ESME_RINVPASWD"]))
            endpoint.drop()
            self.assertIn("ESME_RINVPASWD", link.last_error)
            to_next_call(clock)
        gaps = [b - a for a, b in zip(times, times[1:], strict=False)]
        self.assertEqual(gaps, sorted(gaps))
        self.assertGreater(gaps[-1], gaps[0])

    def test_reconnects_after_loss(self) -> None:
        """A bound link that loses its connection reconnects and binds again."""
        link, endpoint, clock = self.make()
        link.startService()
        self.bind_ok(endpoint, clock)
        endpoint.drop()
        self.assertEqual(link.state, DISCONNECTED)
        self.assertIn("closed by the SMSC", link.last_error)
        to_next_call(clock)
        self.bind_ok(endpoint, clock)
        self.assertEqual(link.state, BOUND)

    def test_smsc_unbind_reconnects(self) -> None:
        """After the SMSC's unbind the link answers unbind_resp and binds again after backoff."""
        link, endpoint, clock = self.make()
        link.startService()
        self.bind_ok(endpoint, clock)
        endpoint.answer(PDU("unbind", 5))
        [resp] = endpoint.sent()
        self.assertEqual(resp.command, "unbind_resp")
        endpoint.drop()
        to_next_call(clock)
        self.bind_ok(endpoint, clock)
        self.assertEqual(link.state, BOUND)

    def test_stop_inside_when_bound(self) -> None:
        """stopService called from a when_bound callback neither raises nor leaves the link running."""
        link, endpoint, clock = self.make()
        stopped: list[Deferred[None]] = []
        link.when_bound().addCallback(lambda bound: stopped.append(bound.stopService()))
        link.startService()
        self.bind_ok(endpoint, clock)
        self.assertEqual(len(stopped), 1)
        clock.advance(0)
        [unbind] = endpoint.sent()
        self.assertEqual(unbind.command, "unbind")
        endpoint.answer(PDU("unbind_resp", unbind.sequence_number))
        endpoint.drop()
        clock.advance(0)
        self.successResultOf(stopped[0])
        clock.advance(120)
        self.assertEqual(len(endpoint.connections), 1)

    def test_stop_waits_for_outstanding(self) -> None:
        """Stopping waits (a bounded time) for outstanding responses before it unbinds."""
        link, endpoint, clock = self.make()
        link.startService()
        self.bind_ok(endpoint, clock)
        d = link.submit(PDU("submit_sm", params={"destination_addr": b"1"}))
        [submit] = endpoint.sent()
        stopping = link.stopService()
        clock.advance(0.1)
        self.assertEqual(endpoint.sent(), [])
        endpoint.answer(PDU("submit_sm_resp", submit.sequence_number, 0, {"message_id": b"x"}))
        self.successResultOf(d)
        clock.advance(0.1)
        [unbind] = endpoint.sent()
        self.assertEqual(unbind.command, "unbind")
        endpoint.answer(PDU("unbind_resp", unbind.sequence_number))
        endpoint.drop()
        clock.advance(0)
        self.successResultOf(stopping)

    def test_stop_gives_up_waiting(self) -> None:
        """A stop whose outstanding request is never answered unbinds after the grace time anyway."""
        link, endpoint, clock = self.make()
        link.startService()
        self.bind_ok(endpoint, clock)
        d = link.submit(PDU("submit_sm", params={"destination_addr": b"1"}))
        endpoint.sent()
        stopping = link.stopService()
        for _ in range(200):
            clock.advance(0.05)
        sent = [p.command for p in endpoint.sent()]
        self.assertIn("unbind", sent)
        self.failureResultOf(d)
        endpoint.drop()
        clock.advance(10)
        self.successResultOf(stopping)

    def test_connect_refused_backs_off(self) -> None:
        """A refused connection leaves the link disconnected and retrying."""
        link, endpoint, clock = self.make()
        endpoint.refuse = True
        link.startService()
        self.assertEqual(link.state, DISCONNECTED)
        self.assertIn("cannot connect", link.last_error)
        endpoint.refuse = False
        to_next_call(clock)
        self.bind_ok(endpoint, clock)
        self.assertEqual(link.state, BOUND)

    def test_largest_message_payload_answered(self) -> None:
        """A deliver_sm of 65,588 octets (a full message_payload) is delivered and answered, not a reason to drop the link."""
        link, endpoint, clock = self.make()
        delivered: list[PDU] = []
        link.deliver = lambda pdu: delivered.append(pdu) or 0
        link.startService()
        self.bind_ok(endpoint, clock)
        protocol, transport = endpoint.last()
        data = largest_message_deliver_sm(7)
        self.assertEqual(len(data), 65588)
        for start in range(0, len(data), 4096):  # as a socket would hand it over
            protocol.dataReceived(data[start:start + 4096])
        self.assertEqual(transport.value().hex(), "00000011" "80000005" "00000000" "00000007" "00")
        [pdu] = delivered
        self.assertEqual(pdu.params["message_payload"], b"A" * 0xFFFF)
        self.assertEqual(pdu.params["source_addr"], b"447700900123")
        self.assertEqual(link.state, BOUND)
        self.assertFalse(transport.disconnecting)


class LogLineTests(LinkCase):
    """Every line a link writes is SMPP-tagged, at its level, with the server, the address and a rounded delay."""

    def logged(self, log_level: str, play: Any) -> list[str]:
        """Every log event (from Twisted too) while `play(link, endpoint, clock)` runs, formatted."""
        with capturedLogs() as events:
            link, endpoint, clock = self.make(log_level)
            play(link, endpoint, clock)
        return [formatEvent(e) for e in events]

    @staticmethod
    def refused_three_times(link: Link, endpoint: FakeEndpoint, clock: Clock) -> None:
        endpoint.refuse = True
        link.startService()
        to_next_call(clock)
        to_next_call(clock)

    def test_connection_refused(self) -> None:
        """Each refused connect is one line naming the address, the cause and the delay to the tenth."""
        self.assertEqual(self.logged("problems", self.refused_three_times), [
            "SMPP [p1] connecting to 127.0.0.1:2775",
            "SMPP [p1] cannot connect to 127.0.0.1:2775: connection refused; retry in 1.5s",
            "SMPP [p1] connecting to 127.0.0.1:2775",
            "SMPP [p1] cannot connect to 127.0.0.1:2775: connection refused; retry in 2.2s",
            "SMPP [p1] connecting to 127.0.0.1:2775",
            "SMPP [p1] cannot connect to 127.0.0.1:2775: connection refused; retry in 3.4s",
        ])

    def test_nothing_at_log_level_none(self) -> None:
        """At log_level none nothing at all is logged, ClientService's retry lines included."""
        self.assertEqual(self.logged("none", self.refused_three_times), [])

    def test_bind_refused_once(self) -> None:
        """A refused bind is one line, with the SMSC's status and the delay."""

        def play(link: Link, endpoint: FakeEndpoint, clock: Clock) -> None:
            link.startService()
            [bind] = endpoint.sent()
            endpoint.answer(PDU("bind_transceiver_resp", bind.sequence_number,
                                STATUSES["ESME_RINVPASWD"]))
            endpoint.drop()

        self.assertEqual(self.logged("problems", play), [
            "SMPP [p1] connecting to 127.0.0.1:2775",
            "SMPP [p1] bind to 127.0.0.1:2775 failed: bind_transceiver_resp"
            " 0x0000000E ESME_RINVPASWD; retry in 1.5s",
        ])

    def test_bound_link_lost(self) -> None:
        """A bound link that drops says so once, with the delay before it reconnects, as a relay report."""

        def play(link: Link, endpoint: FakeEndpoint, clock: Clock) -> None:
            link.startService()
            self.bind_ok(endpoint, clock)
            endpoint.drop()

        self.assertEqual(self.logged("major", play), [
            "SMPP [p1] connecting to 127.0.0.1:2775",
            "SMPP [p1] bound to 127.0.0.1:2775 as transceiver",
            "SMPP [p1] link to 127.0.0.1:2775 lost: closed by the SMSC; reconnecting in 1.5s",
        ])
