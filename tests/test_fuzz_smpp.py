"""Fuzzing the SMPP framer and session: random, truncated and mutated bytes from a hostile SMSC."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from smppgw.smpp.codec import PDU, Framer, decode, encode
from smppgw.smpp.constants import ESME_RINVCMDID, ESME_RX_T_APPN, RESPONSE_BIT
from smppgw.smpp.log import SmppLog
from smppgw.smpp.protocol import ESMEProtocol
from smppgw.smpp.session import BOUND, RequestFailed, SessionSettings

#: Outstanding submit_sm sequence numbers: the bind takes 1, the submits 2..4.
SUBMITS = (2, 3, 4)
#: Examples per property; SMPPGW_FUZZ_EXAMPLES=5000 makes a longer hunt.
FUZZ = settings(max_examples=int(os.environ.get("SMPPGW_FUZZ_EXAMPLES", "150")), deadline=None)


class BoundESME:
    """An ESMEProtocol bound as transceiver over a StringTransport; the test plays the SMSC."""

    def __init__(self, name: str, log_level: str = "all") -> None:
        self.clock = Clock()
        self.transport = StringTransport()
        self.protocol = ESMEProtocol(
            SessionSettings(system_id="esme", password="pw", window=5, response_timeout=10.0,
                            keep_alive=30.0),
            self.clock, SmppLog(name, log_level))
        self.protocol.makeConnection(self.transport)
        self.session = self.protocol.session
        self.session.bind()
        [bind] = self.written()
        self.protocol.dataReceived(
            encode(PDU("bind_transceiver_resp", bind.sequence_number, 0, {"system_id": b"SMSC"})))
        self.outcomes: list[Any] = []

    def written(self) -> list[PDU]:
        """The PDUs the ESME wrote since the last call, each checked to be one whole frame."""
        data = self.transport.value()
        self.transport.clear()
        frames = Framer().feed(data)
        assert sum(map(len, frames)) == len(data), f"a partial PDU was written: {data.hex()}"
        return [decode(frame) for frame in frames]

    def submit(self) -> Deferred[PDU]:
        d = self.session.submit(PDU("submit_sm", params={"destination_addr": b"15550001",
                                                          "short_message": b"hi"}))
        d.addBoth(self.outcomes.append)
        return d


def valid_pdus() -> st.SearchStrategy[PDU]:
    """PDUs an SMSC may send (and a few it should not), with plausible and odd values."""
    seq = st.one_of(st.sampled_from(SUBMITS), st.integers(1, 0x7FFFFFFF))
    text = st.binary(max_size=160)
    deliver_params = st.fixed_dictionaries(
        {"source_addr": st.binary(max_size=20).filter(lambda b: b"\0" not in b),
         "destination_addr": st.just(b"15550100"),
         "esm_class": st.sampled_from([0, 0x04, 0x40]),
         "data_coding": st.sampled_from([0, 3, 4, 8, 0xF0]),
         "short_message": text},
        optional={"message_payload": st.binary(max_size=600)},
    )
    return st.one_of(
        st.builds(lambda s: PDU("enquire_link", s), seq),
        st.builds(lambda s: PDU("unbind", s), seq),
        st.builds(lambda s, p: PDU("deliver_sm", s, 0, p), seq, deliver_params),
        st.builds(lambda s, p: PDU("data_sm", s, 0, {"source_addr": b"1", "destination_addr": b"2",
                                                      **p}),
                  seq, st.fixed_dictionaries({}, optional={"message_payload": text})),
        st.builds(lambda s, status, mid: PDU("submit_sm_resp", s, status, {"message_id": mid}),
                  seq, st.sampled_from([0, 0x58, 0x14]),
                  st.binary(max_size=64).filter(lambda b: b"\0" not in b)),
        st.builds(lambda s, status: PDU("generic_nack", s, status), seq, st.integers(0, 0xFFFF)),
        st.builds(lambda s: PDU("enquire_link_resp", s), seq),
        st.builds(lambda s: PDU("alert_notification", s, 0, {"source_addr": b"1",
                                                              "esme_addr": b"2"}), seq),
        st.builds(lambda s: PDU("bind_transceiver", s, 0, {"system_id": b"x", "password": b"y",
                                                            "interface_version": 0x34}), seq),
    )


def mutated(frame: bytes, data: st.DataObject) -> bytes:
    """``frame`` with a few bytes replaced, cut short (its length fixed up or not), or grown."""
    how = data.draw(st.sampled_from(["flip", "cut", "cut-fixed", "grow-fixed"]))
    out = bytearray(frame)
    if how == "flip":
        for _ in range(data.draw(st.integers(1, 4))):
            out[data.draw(st.integers(0, len(out) - 1))] = data.draw(st.integers(0, 255))
    elif how == "cut":
        del out[data.draw(st.integers(0, len(out) - 1)):]
    elif how == "cut-fixed":
        del out[data.draw(st.integers(16, max(16, len(out) - 1))):]
        out[:4] = struct.pack("!I", len(out))
    else:
        out += data.draw(st.binary(min_size=1, max_size=40))
        out[:4] = struct.pack("!I", len(out))
    return bytes(out)


def chunked(stream: bytes, data: st.DataObject) -> list[bytes]:
    """``stream`` cut at random places, as TCP may deliver it."""
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=6)))
    edges = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in zip(edges, edges[1:], strict=False)]


class FuzzTestCase(SynchronousTestCase):
    def hostile(self, chunks: Iterable[bytes]) -> tuple[BoundESME, list[PDU]]:
        """Feed ``chunks`` to one bound ESME beside another; check what must hold whatever the bytes.

        No exception leaves dataReceived, nothing is logged as an error, every byte
        the ESME writes back is a whole, decodable response, every outstanding submit
        ends (if it ends) with a PDU or a typed RequestFailed, and the other link
        neither wrote anything nor stopped working.
        """
        victim, bystander = BoundESME("victim"), BoundESME("bystander", "none")
        for _ in SUBMITS:
            victim.submit()
        self.assertEqual([p.sequence_number for p in victim.written()], list(SUBMITS))
        with capturedLogs() as events:
            for chunk in chunks:
                victim.protocol.dataReceived(chunk)
                if victim.transport.disconnecting:
                    break  # a real transport delivers nothing more
            answers = victim.written()
            victim.clock.advance(60)  # timeouts and keep-alives after the garbage
            victim.written()
        self.assertEqual([e for e in events if "log_failure" in e], [])
        for answer in answers:
            self.assertTrue(answer.command_id & RESPONSE_BIT, answer)
        for outcome in victim.outcomes:
            if isinstance(outcome, Failure):
                self.assertIsInstance(outcome.value, RequestFailed)
            else:
                self.assertEqual(outcome.command, "submit_sm_resp")
        self.assert_untouched(bystander)
        return victim, answers

    def assert_untouched(self, bystander: BoundESME) -> None:
        self.assertEqual(bystander.transport.value(), b"")
        self.assertEqual(bystander.session.state, BOUND)
        bystander.submit()
        [submit] = bystander.written()
        bystander.protocol.dataReceived(
            encode(PDU("submit_sm_resp", submit.sequence_number, 0, {"message_id": b"m"})))
        [response] = bystander.outcomes
        self.assertEqual(response.params["message_id"], b"m")


class RandomBytesTests(FuzzTestCase):
    @FUZZ
    @given(st.binary(max_size=2048), st.data())
    def test_random_bytes(self, garbage: bytes, data: st.DataObject) -> None:
        """Random bytes in random chunks never raise, log an error or disturb another link."""
        self.hostile(chunked(garbage, data))

    @FUZZ
    @given(st.binary(min_size=12, max_size=300), st.integers(16, 400), st.data())
    def test_random_body_plausible_length(self, rest: bytes, length: int,
                                          data: st.DataObject) -> None:
        """Random bytes behind a plausible command_length reach the decoder and are survived."""
        self.hostile(chunked(struct.pack("!I", length) + rest, data))

    @FUZZ
    @given(st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF), st.integers(0, 0xFFFFFFFF),
           st.binary(max_size=64))
    @example(0x15, 0, 0, b"")  # enquire_link with sequence number 0
    @example(0x05, 0, 0, b"")  # a header-only deliver_sm with sequence number 0
    @example(0x12345, 0, 0, b"")  # an unknown command with sequence number 0
    @example(0x80000004, 0, 0, b"")  # a response with sequence number 0
    def test_random_header(self, command_id: int, status: int, sequence: int, body: bytes) -> None:
        """Any command_id, status and sequence number behind a right command_length is survived."""
        frame = struct.pack("!IIII", 16 + len(body), command_id, status, sequence) + body
        victim, answers = self.hostile([frame])
        if not command_id & RESPONSE_BIT and not victim.transport.disconnecting:
            # A request gets one answer with its own sequence number, or none when it
            # is one an ESME ignores.
            if command_id not in (0x102, 0x0B):
                self.assertEqual([a.sequence_number for a in answers], [sequence])


class ValidAndMutatedTests(FuzzTestCase):
    @FUZZ
    @given(st.lists(valid_pdus(), min_size=1, max_size=8), st.data())
    def test_valid_stream_any_chunking(self, pdus: list[PDU], data: st.DataObject) -> None:
        """Valid PDUs in any chunking are answered exactly as when fed one byte at a time."""
        stream = b"".join(encode(pdu) for pdu in pdus)
        _, whole = self.hostile(chunked(stream, data))
        closed, bytewise = self.hostile(stream[i:i + 1] for i in range(len(stream)))
        if closed.transport.disconnecting:
            # Once closed (by an unbind) no more bytes come, but the rest of a chunk
            # already read is still answered: harmless, and only a prefix must match.
            whole = whole[:len(bytewise)]
        self.assertEqual(whole, bytewise)

    @FUZZ
    @given(valid_pdus(), st.data())
    def test_mutated_pdu(self, pdu: PDU, data: st.DataObject) -> None:
        """A valid PDU with bytes flipped, cut or added is survived."""
        self.hostile(chunked(mutated(encode(pdu), data), data))

    @FUZZ
    @given(st.lists(valid_pdus(), min_size=2, max_size=5), st.data())
    def test_mutated_pdu_among_valid(self, pdus: list[PDU], data: st.DataObject) -> None:
        """One mutated PDU among valid ones is survived, and the ESME answers with responses only."""
        frames = [encode(pdu) for pdu in pdus]
        index = data.draw(st.integers(0, len(frames) - 1))
        frames[index] = mutated(frames[index], data)
        self.hostile(chunked(b"".join(frames), data))

    def test_truncated_deliver_nacked(self) -> None:
        """A deliver_sm cut short (its command_length fixed up) gets generic_nack with its sequence number."""
        frame = encode(PDU("deliver_sm", 77, 0, {"source_addr": b"1555", "destination_addr": b"1",
                                                 "short_message": b"hello"}))
        for cut in range(16, len(frame) - 1):
            short = struct.pack("!I", cut) + frame[4:cut]
            victim, answers = self.hostile([short])
            self.assertFalse(victim.transport.disconnecting)
            [nack] = answers
            self.assertEqual((nack.command, nack.sequence_number), ("generic_nack", 77))
            self.assertNotEqual(nack.command_status, 0)


class CommandLengthTests(FuzzTestCase):
    def test_absurd_lengths_abort(self) -> None:
        """command_length 0, 15 and 2**31 abort the connection at once, whatever follows."""
        for length in (0, 15, 2**31, 0xFFFFFFFF):
            header = struct.pack("!IIII", length, 0x15, 0, 9)
            for chunks in ([header], [header[:4]], [header[i:i + 1] for i in range(16)]):
                victim, answers = self.hostile(chunks)
                self.assertTrue(victim.transport.disconnecting, length)
                self.assertEqual(answers, [])
                self.assertIn(str(length), victim.session.close_reason)

    def test_length_16(self) -> None:
        """command_length 16 is a header alone: enquire_link is answered, an unknown command nacked."""
        victim, answers = self.hostile([struct.pack("!IIII", 16, 0x15, 0, 9)])
        self.assertEqual([(a.command, a.sequence_number) for a in answers],
                         [("enquire_link_resp", 9)])
        victim, answers = self.hostile([struct.pack("!IIII", 16, 0x77, 0, 9)])
        self.assertEqual([(a.command, a.command_status, a.sequence_number) for a in answers],
                         [("generic_nack", ESME_RINVCMDID, 9)])
        victim, answers = self.hostile([struct.pack("!IIII", 16, 0x05, 0, 9)])
        self.assertEqual([(a.command, a.sequence_number) for a in answers], [("generic_nack", 9)])

    def test_deliver_refused_for_now(self) -> None:
        """A valid deliver_sm on a link without an inbound hook gets a temporary error, not silence."""
        pdu = PDU("deliver_sm", 5, 0, {"source_addr": b"1", "destination_addr": b"2",
                                       "short_message": b"x"})
        _, answers = self.hostile([encode(pdu)])
        self.assertEqual([(a.command, a.command_status) for a in answers],
                         [("deliver_sm_resp", ESME_RX_T_APPN)])
