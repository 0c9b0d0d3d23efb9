"""Tests for what the AMP endpoint does with a peer that has not logged in: commands, guesses, limits."""

from __future__ import annotations

import os
import socket
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.testing import StringTransport
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.protocols import amp
from twisted.trial.unittest import SynchronousTestCase

from smppgw.config import ConfigError, parse_config
from smppgw.host.ampbox import BoxParser, BoxTooLarge, KeyTooLong
from smppgw.host.guard import BURST, REFILL, peer_of
from smppgw.host.protocol import LOGIN_BOX, LOGIN_TIMEOUT, MAX_BOX, GatewayAMPFactory
from smppgw.host.registry import HostRegistry
from smppgw.smpp.log import SmppLog

from . import test_queue
from .test_fuzz_amp import RawHost, raw_box, signal

SECRET = b"s3cret"


def ask(command: bytes, tag: bytes = b"1", **arguments: bytes) -> bytes:
    return raw_box({amp.COMMAND: command, amp.ASK: tag, **{k.encode(): v for k, v in arguments.items()}})


class GuardTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        capture = capturedLogs()
        self.events = capture.__enter__()
        self.addCleanup(capture.__exit__, None, None, None)

    def gateway(self, secret: bytes = SECRET, level: str = "problems",
                **kw: Any) -> tuple[GatewayAMPFactory, Any, Any]:
        outbound, links, clock, store = test_queue.QueueTests("test_status").make()
        self.addCleanup(outbound.stop)
        self.registry = HostRegistry()
        factory = GatewayAMPFactory(outbound, self.registry, clock, secret.decode(),
                                    SmppLog("amp", level), **kw)
        return factory, links, clock

    def peer(self, factory: GatewayAMPFactory, clock: Any, host: str = "192.0.2.7",
             port: int = 40000) -> RawHost:
        address = (IPv6Address if ":" in host else IPv4Address)("TCP", host, port)
        return RawHost(factory, clock, address)

    def lines(self, level: LogLevel | None = None) -> list[str]:
        return [formatEvent(e) for e in self.events
                if level is None or e.get("log_level") == level]

    def error_code(self, boxes: list[amp.AmpBox]) -> bytes:
        [box] = boxes
        self.assertIn(amp.ERROR, box, box)
        return box[amp.ERROR_CODE]


class OwnCommandsTests(GuardTestCase):
    def no_key_made(self) -> list[Any]:
        made: list[Any] = []
        self.patch(amp._NoCertificate, "options", lambda *a: made.append(a))
        return made

    def test_starttls_before_login(self) -> None:
        """A StartTLS before Login gets UNAUTHORIZED, no key is made and TLS never starts."""
        made = self.no_key_made()
        factory, _links, clock = self.gateway()
        peer = self.peer(factory, clock)
        self.assertEqual(self.error_code(peer.send(ask(b"StartTLS"))), b"UNAUTHORIZED")
        self.assertEqual(made, [])
        self.assertIsNone(peer.server.transport.tls)
        self.assertFalse(peer.closed)

    def test_unknown_command_before_login(self) -> None:
        """Any command but Login before Login gets UNAUTHORIZED, known to the gateway or not."""
        factory, _links, clock = self.gateway()
        peer = self.peer(factory, clock)
        for name in (b"Nonsense", b"ServerStatus", b"\xff\xfe", b"DeliverSignal"):
            self.assertEqual(self.error_code(peer.send(ask(name))), b"UNAUTHORIZED", name)
        self.assertEqual(self.registry.hosts, [])

    def test_starttls_after_login(self) -> None:
        """Logged in, StartTLS is an unknown command (UNHANDLED) and no key is made."""
        made = self.no_key_made()
        factory, _links, clock = self.gateway(secret=b"")
        peer = self.peer(factory, clock)
        self.assertEqual(self.error_code(peer.send(ask(b"StartTLS"))), amp.UNHANDLED_ERROR_CODE)
        self.assertEqual(made, [])
        self.assertIsNone(peer.server.transport.tls)
        [status] = peer.send(ask(b"ServerStatus", tag=b"2"))
        self.assertIn(b"servers", status)


class WrongSecretTests(GuardTestCase):
    def test_nothing_read_after_a_wrong_secret(self) -> None:
        """500 wrong secrets then the right one and a ServerStatus, in one write, get one UNAUTHORIZED and a close."""
        factory, _links, clock = self.gateway()
        peer = self.peer(factory, clock)
        stream = b"".join(ask(b"Login", b"%d" % i, secret=b"guess%d" % i) for i in range(500))
        stream += ask(b"Login", b"500", secret=SECRET) + ask(b"ServerStatus", b"501")
        answers = peer.send(stream)
        self.assertEqual(self.error_code(answers), b"UNAUTHORIZED")
        self.assertEqual(answers[0][amp.ERROR], b"0")
        self.assertTrue(peer.closed)
        self.assertEqual(self.registry.hosts, [])

    def test_guesses_throttled_per_peer(self) -> None:
        """Past BURST wrong secrets a peer's Logins are refused unread, right secret included, until a token comes back."""
        factory, _links, clock = self.gateway()
        for i in range(BURST):
            guess = self.peer(factory, clock, port=50000 + i)
            self.assertEqual(self.error_code(guess.send(ask(b"Login", secret=b"no"))),
                             b"UNAUTHORIZED")
            self.assertTrue(guess.closed)
        right = self.peer(factory, clock)
        [refusal] = right.send(ask(b"Login", secret=SECRET))
        self.assertEqual(refusal[amp.ERROR_CODE], b"UNAUTHORIZED")
        self.assertIn(b"too many wrong secrets", refusal[amp.ERROR_DESCRIPTION])
        self.assertTrue(right.closed)
        # Another peer is not held back.
        other = self.peer(factory, clock, host="198.51.100.1")
        [answer] = other.send(ask(b"Login", secret=SECRET))
        self.assertIn(amp.ANSWER, answer)
        clock.advance(REFILL)
        again = self.peer(factory, clock)
        [answer] = again.send(ask(b"Login", secret=SECRET))
        self.assertIn(amp.ANSWER, answer)
        self.assertEqual(len(self.registry.hosts), 2)

    def test_one_line_per_burst(self) -> None:
        """200 wrong secrets from one peer give two log lines: the first guess and the start of the refusals."""
        factory, _links, clock = self.gateway()
        for i in range(200):
            self.peer(factory, clock, port=1024 + i).send(ask(b"Login", secret=b"x"))
            clock.advance(0.1)
        lines = self.lines(LogLevel.warn)
        self.assertEqual(len(lines), 2, lines)
        self.assertIn("192.0.2.7:1024 gave a wrong secret", lines[0])
        self.assertIn(f"{BURST} wrong secrets in 0 s; its Logins are refused", lines[1])

    def test_ipv6_peers_by_prefix(self) -> None:
        """Addresses in one IPv6 /64 count as one peer; another /64 is another peer."""
        factory, _links, clock = self.gateway()
        for i in range(BURST):
            self.peer(factory, clock, host=f"2001:db8:0:1::{i + 1:x}").send(
                ask(b"Login", secret=b"x"))
        near = self.peer(factory, clock, host="2001:db8:0:1::ffff")
        self.assertIn(b"too many", near.send(ask(b"Login", secret=SECRET))[0][amp.ERROR_DESCRIPTION])
        far = self.peer(factory, clock, host="2001:db8:0:2::1")
        self.assertIn(amp.ANSWER, far.send(ask(b"Login", secret=SECRET))[0])


class PeerTests(SynchronousTestCase):
    def test_tcp_peers(self) -> None:
        """A TCP peer is its address (an IPv6 one its /64, an IPv4-mapped one its IPv4 address)."""
        for address, key, shown in [
            (IPv4Address("TCP", "192.0.2.1", 5), "192.0.2.1", "192.0.2.1:5"),
            (IPv6Address("TCP", "2001:db8::1", 5), "2001:db8::/64", "[2001:db8::1]:5"),
            (IPv6Address("TCP", "::ffff:192.0.2.1", 5), "192.0.2.1", "[::ffff:192.0.2.1]:5"),
        ]:
            transport = StringTransport(peerAddress=address)
            peer = peer_of(transport)
            self.assertEqual((peer.key, peer.shown), (key, shown))

    def test_unix_peer_is_its_uid(self) -> None:
        """A unix socket peer is the uid the kernel gives for it; the log shows its pid too."""
        if not hasattr(socket, "SO_PEERCRED"):
            raise self.skipTest("no SO_PEERCRED here")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self.addCleanup(ours.close)
        self.addCleanup(theirs.close)
        transport = StringTransport(peerAddress=UNIXAddress(None))
        transport.getHandle = lambda: ours  # type: ignore[attr-defined]
        peer = peer_of(transport)
        self.assertEqual(peer.key, f"uid {os.getuid()}")
        self.assertEqual(peer.shown, f"pid {os.getpid()} uid {os.getuid()}")


class LimitTests(GuardTestCase):
    def test_login_timeout(self) -> None:
        """A connection that has not logged in LOGIN_TIMEOUT seconds after it opened is closed."""
        factory, _links, clock = self.gateway(level="low-level")
        peer = self.peer(factory, clock)
        clock.advance(LOGIN_TIMEOUT - 0.1)
        self.assertFalse(peer.closed)
        clock.advance(0.1)
        peer.pump.flush()
        self.assertTrue(peer.closed)
        self.assertTrue(any("did not log in within 10 s" in line for line in self.lines()))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_no_timeout_once_logged_in(self) -> None:
        """A connection that logged in stays, idle or not, and leaves no timer behind."""
        factory, _links, clock = self.gateway()
        peer = self.peer(factory, clock)
        peer.send(ask(b"Login", secret=SECRET))
        clock.advance(LOGIN_TIMEOUT * 100)
        self.assertFalse(peer.closed)
        self.assertNotIn("_login_timed_out", repr(clock.getDelayedCalls()))

    def test_small_box_before_login(self) -> None:
        """Before Login a box may hold LOGIN_BOX bytes; a header promising more closes at once."""
        factory, _links, clock = self.gateway()
        peer = self.peer(factory, clock)
        pairs = b"".join(b"\x00\x02k%c\x03\xe8" % (i,) + b"v" * 1000 for i in range(60))
        peer.send(pairs)
        self.assertFalse(peer.closed)
        peer.send(b"\x00\x01z\xff\xff")  # a pair that would take the box past the limit
        self.assertTrue(peer.closed)
        self.assertIn(f"sent a box over {LOGIN_BOX} bytes", self.lines(LogLevel.warn)[0])

    def test_many_keys_before_login(self) -> None:
        """Small pairs count for the memory each key costs: 2,000 keys of 7 bytes close before Login."""
        factory, _links, clock = self.gateway()
        peer = self.peer(factory, clock)
        peer.send(b"".join(b"\x00\x02%c%c\x00\x01v" % divmod(i, 256) for i in range(1, 2000)))
        self.assertTrue(peer.closed)

    def test_large_box_once_logged_in(self) -> None:
        """Logged in, a box of 300 KB in small reads is read whole and answered."""
        factory, links, clock = self.gateway()
        peer = self.peer(factory, clock)
        peer.send(ask(b"Login", secret=SECRET))
        big = ask(b"SendSignal", **{k.decode(): v for k, v in signal(
            request_id=b"big", body=b"x" * 65535, sender=b"a" * 65535).items()},
            gateway=b"g" * 65535, extra=b"e" * 65535, more=b"m" * 65535)
        self.assertGreater(len(big), 300_000)
        self.assertLess(len(big), MAX_BOX)
        answers = []
        for i in range(0, len(big), 4096):
            answers += peer.send(big[i:i + 4096])
        self.assertFalse(peer.closed)
        self.assertEqual(len(answers), 1)

    def test_connection_limit(self) -> None:
        """Past max_connections a new connection is refused at once, logged at most once a minute."""
        factory, _links, clock = self.gateway(secret=b"", max_connections=2)
        first, second = self.peer(factory, clock), self.peer(factory, clock)
        self.assertIsNone(factory.buildProtocol(None))
        self.assertIsNone(factory.buildProtocol(None))
        self.assertEqual(len(self.lines(LogLevel.warn)), 1)
        self.assertIn("2 connections open, as many as [amp] max_connections",
                      self.lines(LogLevel.warn)[0])
        clock.advance(60)
        self.assertIsNone(factory.buildProtocol(None))
        self.assertIn("(2 since the last such line)", self.lines(LogLevel.warn)[1])
        first.client.transport.loseConnection()
        first.pump.flush()
        third = self.peer(factory, clock)
        self.assertFalse(third.closed)
        self.assertFalse(second.closed)

    def test_max_connections_config(self) -> None:
        """[amp] max_connections is 100 unless set; a value out of range names the key."""
        self.assertEqual(parse_config("").amp.max_connections, 100)
        self.assertEqual(parse_config("[amp]\nmax_connections = 5").amp.max_connections, 5)
        for bad in ("0", "-1", '"10"', "100001"):
            error = self.assertRaises(ConfigError, parse_config, f"[amp]\nmax_connections = {bad}")
            self.assertIn("amp.max_connections", str(error))


class NoiseTests(GuardTestCase):
    def test_no_twisted_connection_lines(self) -> None:
        """A connection opened and closed leaves no line of Twisted's at any level, and SMPP lines only at low-level."""
        for level, expected in (("none", 0), ("problems", 0), ("low-level", 2)):
            self.events.clear()
            factory, _links, clock = self.gateway(secret=b"", level=level)
            peer = self.peer(factory, clock)
            peer.client.transport.loseConnection()
            peer.pump.flush()
            self.assertEqual([e.get("log_namespace") for e in self.events
                              if not e.get("log_namespace", "").startswith("smppgw")], [])
            lines = [line for line in self.lines() if line.startswith("SMPP [amp]")]
            self.assertEqual(len(lines), expected, lines)
            self.assertTrue(all(line.startswith("SMPP [amp] AMP host 192.0.2.7:40000")
                                for line in lines), lines)


class ParserTests(SynchronousTestCase):
    def parse(self, data: bytes, pieces: list[int], limit: int = MAX_BOX) -> list[dict[bytes, bytes]]:
        boxes: list[dict[bytes, bytes]] = []
        parser = BoxParser(lambda box: boxes.append(box) or True, limit)
        pos = 0
        for size in pieces:
            parser.feed(data[pos:pos + size])
            pos += size
        parser.feed(data[pos:])
        return boxes

    @settings(max_examples=200, deadline=None)
    @given(st.lists(st.dictionaries(st.binary(min_size=1, max_size=255), st.binary(max_size=300),
                                    max_size=6), max_size=5),
           st.lists(st.integers(min_value=0, max_value=400)))
    def test_same_boxes_as_amp(self, boxes: list[dict[bytes, bytes]], pieces: list[int]) -> None:
        """Any stream of boxes, cut in any pieces, gives the boxes AMP's own parser gives."""
        data = b"".join(raw_box(box) for box in boxes)
        self.assertEqual(self.parse(data, pieces), [dict(b) for b in amp._ParserHelper.parseString(data)])

    def test_one_byte_at_a_time(self) -> None:
        """A box fed one byte at a time comes out whole, once."""
        data = ask(b"SendSignal", **{k.decode(): v for k, v in signal().items()})
        self.assertEqual(self.parse(data, [1] * len(data)), self.parse(data, []))

    def test_stops_when_told(self) -> None:
        """A receiver that answers False gets no further box from that feed."""
        boxes: list[Any] = []
        parser = BoxParser(lambda box: boxes.append(box) and False, MAX_BOX)
        parser.feed(raw_box({b"a": b"1"}) + raw_box({b"b": b"2"}))
        self.assertEqual(boxes, [{b"a": b"1"}])

    def test_errors(self) -> None:
        """A key over 255 bytes and a box over the limit raise, naming the figures."""
        parser = BoxParser(lambda box: True, 100)
        self.assertEqual(self.assertRaises(KeyTooLong, parser.feed, b"\x01\x00").length, 256)
        error = self.assertRaises(BoxTooLarge, BoxParser(lambda box: True, 100).feed,
                                  b"\x00\x01k\x00\x64")
        self.assertEqual((error.size, error.limit), (105, 100))

    def test_linear(self) -> None:
        """An unfinished box of 6-byte pairs in 6,000-byte reads costs a connection as much per byte at 600 KB as at 60 KB."""

        def cost(size: int, repeat: int) -> float:
            data = b"\x00\x01k\x00\x01v" * (size // 6)
            best = float("inf")
            for _ in range(repeat):
                factory = GatewayAMPFactory(None, HostRegistry(), None)  # type: ignore[arg-type]
                gateway = factory.buildProtocol(None)
                gateway.makeConnection(StringTransport())
                started = time.perf_counter()
                for i in range(0, len(data), 6000):
                    gateway.dataReceived(data[i:i + 6000])
                best = min(best, time.perf_counter() - started)
                self.assertFalse(gateway.transport.disconnecting)
            return best

        small, large = cost(60_000, 5), cost(600_000, 2)
        # Linear: about 10 times; parsing again from the box's start: about 100 times.
        self.assertLess(large / small, 30, (small, large))
