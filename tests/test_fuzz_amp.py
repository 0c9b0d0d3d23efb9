"""Fuzzing the AMP endpoint: hostile hosts send raw boxes, 64 KiB values, bad secrets, and never read."""

from __future__ import annotations

import os
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.protocols import amp
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from smppgw.host.fastpath import MAX_DESCRIPTION
from smppgw.host.protocol import GatewayAMP, GatewayAMPFactory
from smppgw.host.registry import HostRegistry

from . import test_queue

FUZZ = settings(max_examples=int(os.environ.get("SMPPGW_FUZZ_EXAMPLES", "60")), deadline=None)

GOOD_SIGNAL = {b"request_id": b"r1", b"method": b"MESSAGE", b"sender": b"a@b.c",
               b"recipient": b"+15551234@bulk._smpp", b"body": b"hi"}
REQUIRED = [b"request_id", b"method", b"sender", b"recipient", b"body"]


@implementer(amp.IBoxReceiver)
class BoxRecorder:
    """The host's side of a raw connection: every box the gateway sends, unparsed."""

    def __init__(self) -> None:
        self.boxes: list[amp.AmpBox] = []

    def startReceivingBoxes(self, sender: Any) -> None:
        pass

    def ampBoxReceived(self, box: amp.AmpBox) -> None:
        self.boxes.append(box)

    def stopReceivingBoxes(self, reason: Any) -> None:
        pass


class RawHost:
    """A host that writes whatever bytes it likes and records the gateway's answers."""

    def __init__(self, factory: GatewayAMPFactory, clock: Clock, address: Any = None) -> None:
        """``address``: the peer address the gateway sees (iosim's FakeAddress by default)."""
        self.recorder = BoxRecorder()
        self.client, self.server, self.pump = iosim.connectedServerAndClient(
            lambda: factory.buildProtocol(address), lambda: amp.BinaryBoxProtocol(self.recorder),
            serverTransportFactory=lambda p: iosim.FakeTransport(p, isServer=True,
                                                                 peerAddress=address),
            clock=clock)

    def send(self, data: bytes) -> list[amp.AmpBox]:
        """Write raw bytes; the boxes the gateway answered with."""
        self.recorder.boxes.clear()
        transport: Any = self.client.transport
        transport.write(data)
        self.pump.flush()
        return list(self.recorder.boxes)

    def ask(self, command: bytes, arguments: dict[bytes, bytes] | None = None,
            tag: bytes = b"1") -> list[amp.AmpBox]:
        box = amp.AmpBox(arguments or {})
        box.update({amp.COMMAND: command, amp.ASK: tag})
        return self.send(raw_box(box))

    @property
    def closed(self) -> bool:
        return self.server.transport is None or bool(self.server.transport.disconnecting)


def signal(**changes: bytes | None) -> dict[bytes, bytes]:
    """SendSignal's arguments as raw AMP values, with some changed (None removes one)."""
    values = dict(GOOD_SIGNAL)
    for key, value in changes.items():
        if value is None:
            values.pop(key.encode(), None)
        else:
            values[key.encode()] = value
    return values


def raw_box(values: dict[bytes, bytes]) -> bytes:
    """An AMP box serialised by hand, so that no client-side check stands in the way."""
    out = bytearray()
    for key, value in values.items():
        out += len(key).to_bytes(2, "big") + key + len(value).to_bytes(2, "big") + value
    return bytes(out + b"\x00\x00")


class AmpFuzzTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        capture = capturedLogs()
        self.events = capture.__enter__()
        self.addCleanup(capture.__exit__, None, None, None)

    def gateway(self, secret: str = "") -> tuple[GatewayAMPFactory, Any, Clock]:
        """A GatewayAMPFactory over a real Outbound whose links are FakeLinks, all bound."""
        helper = test_queue.QueueTests("test_status")
        outbound, links, clock, store = helper.make()
        self.addCleanup(outbound.stop)
        self.addCleanup(store.close)
        self.registry = HostRegistry()
        return GatewayAMPFactory(outbound, self.registry, clock, secret), links, clock

    def tearDown(self) -> None:
        self.assertEqual([formatEvent(e) for e in self.events if "log_failure" in e], [])

    def problems(self) -> list[str]:
        return [formatEvent(e) for e in self.events if e.get("log_level") == LogLevel.warn]

    def assert_serves(self, factory: GatewayAMPFactory, clock: Clock, links: Any,
                      secret: str = "") -> None:
        """Another host gets ServerStatus and a SendSignal through."""
        host = RawHost(factory, clock)
        if secret:
            [answer] = host.ask(b"Login", {b"secret": secret.encode()})
            self.assertIn(amp.ANSWER, answer)
        [status] = host.ask(b"ServerStatus")
        self.assertIn(b"servers", status)
        before = len(links["bulk"].submits)
        rid = f"other-{len(self.events)}-{before}".encode()
        self.assertEqual(host.ask(b"SendSignal", signal(request_id=rid), tag=b"2"), [])
        clock.advance(0)
        self.assertEqual(len(links["bulk"].submits), before + 1)
        links["bulk"].answer(len(links["bulk"].submits) - 1, message_id="m")
        clock.advance(0)
        host.pump.flush()
        [answer] = host.recorder.boxes
        self.assertEqual(answer[b"message_ids"], b"\x00\x01m")

    def error_of(self, boxes: list[amp.AmpBox]) -> tuple[bytes, str]:
        [box] = boxes
        self.assertIn(amp.ERROR, box, box)
        return box[amp.ERROR_CODE], box[amp.ERROR_DESCRIPTION].decode()


class MalformedCommandTests(AmpFuzzTestCase):
    @FUZZ
    @given(st.binary(min_size=1, max_size=40).filter(
        lambda name: name not in (b"Login", b"SendSignal", b"ServerStatus")))
    def test_unknown_command(self, name: bytes) -> None:
        """Any unknown command name, ASCII or not, gets UNHANDLED and the host stays connected."""
        factory, links, clock = self.gateway()
        host = RawHost(factory, clock)
        code, _ = self.error_of(host.ask(name))
        self.assertEqual(code, amp.UNHANDLED_ERROR_CODE)
        self.assertFalse(host.closed)
        [status] = host.ask(b"ServerStatus", tag=b"2")
        self.assertIn(b"servers", status)

    @FUZZ
    @given(st.sets(st.sampled_from(REQUIRED), min_size=1))
    def test_missing_arguments(self, missing: set[bytes]) -> None:
        """A SendSignal without some required argument gets BAD_REQUEST naming one that is missing."""
        factory, links, clock = self.gateway()
        host = RawHost(factory, clock)
        code, reason = self.error_of(host.ask(
            b"SendSignal", signal(**{key.decode(): None for key in missing})))
        self.assertEqual(code, b"BAD_REQUEST")
        self.assertTrue(any(f"missing argument {key.decode()}" in reason for key in missing), reason)
        self.assertFalse(host.closed)
        self.assertEqual(links["bulk"].submits, [])

    @FUZZ
    @given(st.sampled_from([*REQUIRED, b"gateway"]),
           st.binary(min_size=1, max_size=20).filter(lambda b: not _is_utf8(b)))
    def test_not_utf8(self, key: bytes, value: bytes) -> None:
        """An argument that is not UTF-8 gets BAD_REQUEST naming it, and nothing is sent."""
        factory, links, clock = self.gateway()
        host = RawHost(factory, clock)
        code, reason = self.error_of(host.ask(b"SendSignal", signal(**{key.decode(): value})))
        self.assertEqual(code, b"BAD_REQUEST")
        self.assertIn(key.decode(), reason)
        self.assertEqual(links["bulk"].submits, [])

    def test_login_without_secret_argument(self) -> None:
        """A Login without its secret gets BAD_REQUEST, not a dropped connection."""
        factory, links, clock = self.gateway(secret="s3cret")
        host = RawHost(factory, clock)
        self.assertEqual(self.error_of(host.ask(b"Login")),
                         (b"BAD_REQUEST", "Login: missing argument secret"))
        self.assertFalse(host.closed)

    @FUZZ
    @given(st.dictionaries(
        st.one_of(st.sampled_from([*REQUIRED, b"_command", b"_ask", b"_answer", b"_error",
                                   b"_error_code", b"gateway", b"secret"]),
                  st.binary(min_size=1, max_size=12)),
        st.one_of(st.sampled_from([b"SendSignal", b"Login", b"ServerStatus", b"1", b"MESSAGE",
                                   b"+15551234@bulk._smpp"]),
                  st.binary(max_size=30)),
        max_size=8))
    def test_random_boxes(self, values: dict[bytes, bytes]) -> None:
        """Any box gets at most one answer (an error if it is one) or closes that connection, never a crash."""
        factory, links, clock = self.gateway()
        host = RawHost(factory, clock)
        boxes = host.send(raw_box(values))
        clock.advance(0)
        self.assertLessEqual(len(boxes), 1)
        if boxes:
            self.assertEqual(boxes[0].get(amp.ANSWER, boxes[0].get(amp.ERROR)), values[b"_ask"])
        self.assert_serves(factory, clock, links)

    def test_boxes_that_answer_nothing_close(self) -> None:
        """A box that is no command (an answer to nothing, no _command, no _ask) closes that connection with a logged reason."""
        factory, links, clock = self.gateway()
        for values in ({b"_answer": b"99"}, {b"_error": b"7", b"_error_code": b"X"},
                       {b"hello": b"world"}, {b"_command": b"ServerStatus"}):
            host = RawHost(factory, clock)
            self.assertEqual(host.send(raw_box(values)), [])
            self.assertTrue(host.closed, values)
        self.assertEqual(len(self.problems()), 4)
        self.assert_serves(factory, clock, links)

    def test_key_too_long_closes(self) -> None:
        """A key over AMP's 255 bytes closes that connection; other hosts are served."""
        factory, links, clock = self.gateway()
        host = RawHost(factory, clock)
        host.send(b"\x01\x00" + b"k" * 256 + b"\x00\x01v\x00\x00")
        self.assertTrue(host.closed)
        self.assertIn("256", self.problems()[0])
        self.assert_serves(factory, clock, links)


class LargeValueTests(AmpFuzzTestCase):
    def test_64k_values(self) -> None:
        """Each SendSignal argument at AMP's 65,535-byte limit gets its own error, clipped to fit an answer."""
        factory, links, clock = self.gateway()
        host = RawHost(factory, clock)
        big = 65535
        cases = [
            ({"request_id": b"r" * big}, b"BAD_REQUEST"),
            ({"method": b"M" * big}, b"UNSUPPORTED_METHOD"),
            ({"sender": b"a" * big, "recipient": b"+15551234@smpp"}, b"BAD_ADDRESS"),
            ({"recipient": b"+1" + b"5" * (big - 2)}, b"BAD_ADDRESS"),
            ({"recipient": b"+1555@" + b"x" * (big - 12) + b"._smpp"}, b"UNKNOWN_SERVER"),
            ({"body": b"x" * big}, b"TOO_LONG"),
            ({"body": "\u00e9".encode() * (big // 2)}, b"TOO_LONG"),
        ]
        for number, (changes, expected) in enumerate(cases):
            values = signal(**{"request_id": b"big%d" % number, **changes})
            code, reason = self.error_of(host.ask(b"SendSignal", values))
            self.assertEqual(code, expected, changes.keys())
            self.assertLessEqual(len(reason), MAX_DESCRIPTION + 3)
            self.assertFalse(host.closed)
        clock.advance(0)
        for link in links.values():
            self.assertEqual(link.submits, [])
        self.assert_serves(factory, clock, links)

    def test_64k_gateway_argument(self) -> None:
        """A 64 KiB gateway argument naming no server gets UNKNOWN_SERVER, clipped."""
        factory, links, clock = self.gateway()
        host = RawHost(factory, clock)
        code, reason = self.error_of(host.ask(
            b"SendSignal", signal(recipient=b"+15551234@telnum", gateway=b"g" * 65535)))
        self.assertIn(code, (b"UNKNOWN_SERVER", b"BAD_ADDRESS"))
        self.assertLessEqual(len(reason), MAX_DESCRIPTION + 3)


class LoginTests(AmpFuzzTestCase):
    def test_commands_before_login(self) -> None:
        """With a secret set, SendSignal and ServerStatus before Login get UNAUTHORIZED and send nothing."""
        factory, links, clock = self.gateway(secret="s3cret")
        host = RawHost(factory, clock)
        self.assertEqual(self.error_of(host.ask(b"SendSignal", signal()))[0], b"UNAUTHORIZED")
        self.assertEqual(self.error_of(host.ask(b"ServerStatus", tag=b"2"))[0], b"UNAUTHORIZED")
        clock.advance(0)
        self.assertEqual(links["bulk"].submits, [])
        self.assertFalse(host.closed)
        self.assertEqual(self.registry.hosts, [])

    @FUZZ
    @given(st.text(max_size=300).filter(lambda s: s != "s3cret"))
    def test_wrong_secret(self, guess: str) -> None:
        """Any wrong secret gets UNAUTHORIZED and that connection closes; other hosts keep working."""
        factory, links, clock = self.gateway(secret="s3cret")
        host = RawHost(factory, clock)
        self.assertEqual(self.error_of(host.ask(b"Login", {b"secret": guess.encode()}))[0],
                         b"UNAUTHORIZED")
        clock.advance(0)
        host.pump.flush()
        self.assertTrue(host.closed)
        self.assertEqual(self.registry.hosts, [])
        self.assert_serves(factory, clock, links, secret="s3cret")


class ChokingTransport(StringTransport):
    """A transport to a host that never reads: past ``limit`` unwritten bytes it pauses its
    producer, as a TCP transport does past its bufferSize, and resumes it once drained."""

    def __init__(self, limit: int = 65536) -> None:
        super().__init__()
        self.limit = limit
        self.producer_paused = False

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.producer is not None and not self.producer_paused and len(self.value()) > self.limit:
            self.producer_paused = True
            self.producer.pauseProducing()

    def drain(self) -> bytes:
        """The host reads everything buffered."""
        data = self.value()
        self.clear()
        if self.producer is not None and self.producer_paused:
            self.producer_paused = False
            self.producer.resumeProducing()
        return data


class NeverReadsTests(AmpFuzzTestCase):
    COMMANDS = 10_000
    READ = 65536  # what one read from a TCP socket may bring

    def test_host_that_never_reads(self) -> None:
        """A host sending 10,000 ServerStatus without reading is no longer read once its buffer is full."""
        factory, links, clock = self.gateway()
        transport = ChokingTransport()
        gateway: GatewayAMP = factory.buildProtocol(None)
        gateway.makeConnection(transport)
        box = amp.AmpBox(_command=b"ServerStatus", _ask=b"1").serialize()
        stream = box * self.COMMANDS
        offset = 0

        def read_while_reading() -> None:
            # The reactor reads a socket only while its transport is producing.
            nonlocal offset
            while offset < len(stream) and transport.producerState == "producing":
                gateway.dataReceived(stream[offset:offset + self.READ])
                offset += self.READ

        read_while_reading()
        self.assertLess(offset, len(stream), "the gateway kept reading a host that does not read")
        buffered = transport.value()
        answered = len(amp.parse(_BytesFile(buffered)))
        # The gateway stops after the read that filled the buffer: the answers
        # to one read's worth of commands at most (about 0.9 MB here, where
        # reading on would buffer 4.9 MB, and more for each command sent).
        self.assertLessEqual(answered, -(-self.READ // len(box)))
        self.assert_serves(factory, clock, links)

        # Once the host reads, the gateway reads again, and every command is answered.
        received = BoxRecorder()
        parser = amp.BinaryBoxProtocol(received)
        parser.makeConnection(StringTransport())
        while offset < len(stream) or transport.value():
            parser.dataReceived(transport.drain())
            read_while_reading()
        self.assertEqual(len(received.boxes), self.COMMANDS)
        self.assertTrue(all(b"servers" in b for b in received.boxes))

    def test_wrong_secret_while_paused_still_closes(self) -> None:
        """A host whose answers are piling up and who then gives a wrong secret is still disconnected."""
        factory, links, clock = self.gateway(secret="s3cret")
        transport = ChokingTransport(limit=100)
        gateway = factory.buildProtocol(None)
        gateway.makeConnection(transport)
        # One read: the answers fill the buffer before the Login is reached.
        gateway.dataReceived(amp.AmpBox(_command=b"ServerStatus", _ask=b"1").serialize() * 20
                             + amp.AmpBox(_command=b"Login", _ask=b"2", secret=b"x").serialize())
        self.assertEqual(transport.producerState, "paused")
        clock.advance(0)
        self.assertTrue(transport.disconnecting)
        self.assertIsNone(transport.producer, "a registered producer keeps a TLS transport open")


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


class _BytesFile:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self) -> bytes:
        return self.data
