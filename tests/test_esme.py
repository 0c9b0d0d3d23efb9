"""Tests for smppgw.smpp.protocol: what a burst of PDUs makes the protocol write leaves at once."""

from __future__ import annotations

import socket
import struct
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from smppgw.smpp.log import SmppLog
from smppgw.smpp.protocol import FLUSH_EVERY, QUIET, ESMEProtocol
from smppgw.smpp.session import SessionSettings

ENQUIRE_LINK = 0x00000015
ENQUIRE_LINK_RESP = 0x80000015


def enquire_link(sequence: int) -> bytes:
    return struct.pack("!IIII", 16, ENQUIRE_LINK, 0, sequence)


class FlushTests(TestCase):
    """The answers to a burst go out while the burst is handled, not at the reactor's next turn."""

    def setUp(self) -> None:
        ours, self.peer = socket.socketpair()
        self.peer.setblocking(False)
        self.addCleanup(self.peer.close)
        self.lost: Deferred[None] = Deferred()
        lost = self.lost
        settings = SessionSettings(system_id="gw", password="pw")
        log = SmppLog("test", "none")

        class Tracked(ESMEProtocol):
            def connectionLost(self, reason: Any = None) -> None:
                super().connectionLost(reason)
                lost.callback(None)

        # The protocol's clock (timers, quiet spells) is a Clock; its socket is real.
        self.clock = Clock()
        self.clock.advance(1000)
        factory = Factory.forProtocol(lambda: Tracked(settings, self.clock, log))
        transport: Any = reactor.adoptStreamConnection(ours.fileno(), socket.AF_UNIX, factory)
        ours.close()  # the reactor holds its own copy of the descriptor
        self.esme: ESMEProtocol = transport.protocol

    def tearDown(self) -> Deferred[None]:
        if self.esme.transport is not None:
            self.esme.transport.loseConnection()
        return self.lost

    def received(self) -> list[tuple[int, int]]:
        """(command_id, sequence) of each PDU the peer can read right now, without the reactor running."""
        try:
            data = self.peer.recv(65536)
        except BlockingIOError:
            return []
        return [struct.unpack_from("!4xI4xI", data, at) for at in range(0, len(data), 16)]

    def test_answers_sent_before_the_next_turn(self) -> None:
        """Every enquire_link_resp of a burst is on the socket when dataReceived returns."""
        self.esme.dataReceived(b"".join(enquire_link(n) for n in range(1, 4)))
        self.assertEqual(self.received(), [(ENQUIRE_LINK_RESP, n) for n in range(1, 4)])

    def writes(self, data: bytes) -> list[tuple[int, int]]:
        """Feed `data`; for each write to the transport: (PDUs written, PDUs the peer could read just before)."""
        seen: list[tuple[int, int]] = []
        esme = self.esme
        write = esme.transport.write

        def counting(chunk: bytes) -> None:
            seen.append((len(chunk) // 16, len(self.received())))
            write(chunk)

        esme.transport.write = counting  # type: ignore[method-assign]
        esme.dataReceived(data)
        esme.transport.write = write  # type: ignore[method-assign]
        return seen

    def test_quiet_connection_answered_pdu_by_pdu(self) -> None:
        """A burst after a quiet spell: each answer leaves before the next PDU is handled."""
        burst = b"".join(enquire_link(n) for n in range(1, 5))
        self.assertEqual(self.writes(burst), [(1, 0), (1, 1), (1, 1), (1, 1)])
        self.assertEqual(self.received(), [(ENQUIRE_LINK_RESP, 4)])

    def test_near_smsc_answered_per_burst(self) -> None:
        """A burst a few milliseconds after the last (an SMSC close by, a busy machine) leaves in one write."""
        self.esme.dataReceived(enquire_link(1))
        self.received()
        self.clock.advance(0.002)
        burst = b"".join(enquire_link(n) for n in range(2, 6))
        self.assertEqual(self.writes(burst), [(4, 0)])
        self.assertEqual(self.received(), [(ENQUIRE_LINK_RESP, n) for n in range(2, 6)])

    def test_busy_connection_sends_per_burst(self) -> None:
        """A long burst right after another: the answers leave FLUSH_EVERY at a time, in one write each."""
        self.esme.dataReceived(enquire_link(1))
        self.received()
        self.clock.advance(QUIET / 2)
        burst = b"".join(enquire_link(n) for n in range(2, 2 * FLUSH_EVERY + 3))
        self.assertEqual(self.writes(burst),
                         [(FLUSH_EVERY, 0), (FLUSH_EVERY, FLUSH_EVERY), (1, FLUSH_EVERY)])
        self.assertEqual(self.received(), [(ENQUIRE_LINK_RESP, 2 * FLUSH_EVERY + 2)])

    def test_closing_connection_not_flushed(self) -> None:
        """A connection being closed is left to the reactor, which finishes the close."""
        self.esme.transport.loseConnection()
        self.esme.dataReceived(enquire_link(1))
        self.assertEqual(self.received(), [])

    def test_answer_before_close_is_sent(self) -> Deferred[None]:
        """An unbind in a burst: its unbind_resp, written just before the session closes, still goes out."""
        unbind = struct.pack("!IIII", 16, 0x00000006, 0, 7)
        self.esme.dataReceived(enquire_link(1) + unbind)

        def check(_: Any) -> None:
            self.assertEqual(self.received(), [(ENQUIRE_LINK_RESP, 1), (0x80000006, 7)])

        return self.lost.addCallback(check)
