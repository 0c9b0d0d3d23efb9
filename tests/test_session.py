"""Tests for the SMPP session and its protocol shell, driven by StringTransport and Clock."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from smppgw.smpp.codec import MAX_PDU_LEN, PDU, Framer, decode, encode
from smppgw.smpp.constants import (
    ESME_RINVCMDID,
    ESME_ROK,
    ESME_RTHROTTLED,
    ESME_RX_T_APPN,
    STATUSES,
)
from smppgw.smpp.log import SmppLog
from smppgw.smpp.protocol import ESMEProtocol
from smppgw.smpp.session import (
    BOUND,
    CLOSED,
    MAX_SEQUENCE,
    BindFailed,
    CommandStatusError,
    ConnectionLost,
    GenericNack,
    MalformedResponse,
    NotBound,
    ResponseTimeout,
    SessionSettings,
)

ESME_RINVPASWD = STATUSES["ESME_RINVPASWD"]


def settings(**kw: object) -> SessionSettings:
    base: dict[str, object] = dict(
        system_id="esme", password="pw", system_type="smppgw", bind_type="transceiver",
        window=3, response_timeout=10.0, keep_alive=30.0,
    )
    base.update(kw)
    return SessionSettings(**base)  # type: ignore[arg-type]


class Harness:
    """An ESMEProtocol on a StringTransport with a Clock, and helpers to play the SMSC."""

    def __init__(self, **kw: object) -> None:
        self.clock = Clock()
        self.transport = StringTransport()
        self.protocol = ESMEProtocol(settings(**kw), self.clock, SmppLog("t", "none"))
        self.protocol.makeConnection(self.transport)
        self.session = self.protocol.session
        self._framer = Framer()

    def sent(self) -> list[PDU]:
        """PDUs the ESME wrote since the last call."""
        data = self.transport.value()
        self.transport.clear()
        return [decode(f) for f in self._framer.feed(data)]

    def feed(self, pdu: PDU) -> None:
        self.protocol.dataReceived(encode(pdu))

    def bind(self) -> PDU:
        self.session.bind()
        [bind] = self.sent()
        self.feed(PDU(bind.command + "_resp", bind.sequence_number, 0, {"system_id": b"SMSC"}))
        return bind

    def submit(self, dest: bytes = b"15550001") -> Deferred[PDU]:
        return self.session.submit(PDU("submit_sm", params={"destination_addr": dest,
                                                          "short_message": b"hi"}))


class BindTests(SynchronousTestCase):
    def test_bind_each_mode(self) -> None:
        """Each bind type sends its own bind PDU with the credentials and interface_version 0x34."""
        for bind_type, command in [("transmitter", "bind_transmitter"),
                                   ("receiver", "bind_receiver"),
                                   ("transceiver", "bind_transceiver")]:
            h = Harness(bind_type=bind_type)
            d = h.session.bind()
            [bind] = h.sent()
            self.assertEqual(bind.command, command)
            self.assertEqual(bind.params["system_id"], b"esme")
            self.assertEqual(bind.params["password"], b"pw")
            self.assertEqual(bind.params["system_type"], b"smppgw")
            self.assertEqual(bind.params["interface_version"], 0x34)
            h.feed(PDU(command + "_resp", bind.sequence_number, 0, {"system_id": b"SMSC"}))
            self.assertEqual(self.successResultOf(d).command, command + "_resp")
            self.assertEqual(h.session.state, BOUND)

    def test_bind_golden_bytes(self) -> None:
        """The bind_transceiver goes out byte for byte as SMPP 3.4 lays it out."""
        h = Harness()
        h.session.bind()
        self.assertEqual(
            h.transport.value().hex(),
            "00000023" "00000009" "00000000" "00000001"
            "65736d6500" "707700" "736d70706777" "00" "34" "00" "00" "00",
        )

    def test_bind_failure(self) -> None:
        """A refused bind fails with BindFailed carrying the status and closes the connection."""
        h = Harness()
        d = h.session.bind()
        [bind] = h.sent()
        h.feed(PDU("bind_transceiver_resp", bind.sequence_number, ESME_RINVPASWD))
        failure = self.failureResultOf(d, BindFailed)
        self.assertEqual(failure.value.status, ESME_RINVPASWD)
        self.assertIn("ESME_RINVPASWD", str(failure.value))
        self.assertTrue(h.transport.disconnecting)
        self.assertEqual(h.session.state, CLOSED)

    def test_lost_during_bind(self) -> None:
        """A connection lost while the bind is pending fails the bind (so a reconnect can follow)."""
        h = Harness()
        d = h.session.bind()
        h.protocol.connectionLost()
        self.failureResultOf(d, ConnectionLost)

    def test_bind_timeout(self) -> None:
        """A bind with no answer within response_timeout fails with ResponseTimeout and closes."""
        h = Harness()
        d = h.session.bind()
        h.clock.advance(10)
        self.failureResultOf(d, ResponseTimeout)
        self.assertTrue(h.transport.disconnecting)


class RequestTests(SynchronousTestCase):
    def test_submit_response(self) -> None:
        """A submit_sm fires with its submit_sm_resp, matched by sequence number."""
        h = Harness()
        h.bind()
        d1, d2 = h.submit(b"1"), h.submit(b"2")
        s1, s2 = h.sent()
        h.feed(PDU("submit_sm_resp", s2.sequence_number, 0, {"message_id": b"B"}))
        h.feed(PDU("submit_sm_resp", s1.sequence_number, 0, {"message_id": b"A"}))
        self.assertEqual(self.successResultOf(d1).params["message_id"], b"A")
        self.assertEqual(self.successResultOf(d2).params["message_id"], b"B")
        self.assertEqual(h.clock.getDelayedCalls()[0].getTime(), 30.0)  # only keep-alive left

    def test_error_status(self) -> None:
        """A non-zero status ends the request with CommandStatusError carrying it."""
        h = Harness()
        h.bind()
        d = h.submit()
        [s] = h.sent()
        h.feed(PDU("submit_sm_resp", s.sequence_number, ESME_RTHROTTLED))
        self.assertEqual(self.failureResultOf(d, CommandStatusError).value.status, ESME_RTHROTTLED)

    def test_vendor_status_kept(self) -> None:
        """A vendor status (0x400-0x4FF) reaches the caller exactly, not folded."""
        h = Harness()
        h.bind()
        d = h.submit()
        [s] = h.sent()
        h.protocol.dataReceived(bytes.fromhex("00000010800000040000042a") + s.sequence_number.to_bytes(4, "big"))
        self.assertEqual(self.failureResultOf(d, CommandStatusError).value.status, 0x42A)

    def test_generic_nack(self) -> None:
        """A generic_nack ends the matching request with GenericNack."""
        h = Harness()
        h.bind()
        d = h.submit()
        [s] = h.sent()
        h.feed(PDU("generic_nack", s.sequence_number, STATUSES["ESME_RINVCMDLEN"]))
        self.assertEqual(self.failureResultOf(d, GenericNack).value.status, 2)

    def test_timeout(self) -> None:
        """A request unanswered within response_timeout fails with ResponseTimeout; a late answer is ignored."""
        h = Harness()
        h.bind()
        d = h.submit()
        [s] = h.sent()
        h.clock.advance(9.9)
        self.assertNoResult(d)
        h.clock.advance(0.1)
        self.failureResultOf(d, ResponseTimeout)
        h.feed(PDU("submit_sm_resp", s.sequence_number, 0, {"message_id": b"late"}))
        self.assertEqual(h.session.outstanding, 0)

    def test_connection_lost(self) -> None:
        """Losing the connection fails outstanding and waiting requests with ConnectionLost and cancels timers."""
        h = Harness(window=1)
        h.bind()
        d1, d2 = h.submit(), h.submit()
        h.protocol.connectionLost()
        self.failureResultOf(d1, ConnectionLost)
        self.failureResultOf(d2, ConnectionLost)
        self.assertEqual(h.clock.getDelayedCalls(), [])

    def test_not_bound(self) -> None:
        """Submitting before the bind, or on a receiver, fails with NotBound and sends nothing."""
        h = Harness()
        self.failureResultOf(h.submit(), NotBound)
        r = Harness(bind_type="receiver")
        r.bind()
        self.failureResultOf(r.submit(), NotBound)
        self.assertEqual(r.sent(), [])

    def test_window(self) -> None:
        """No more than `window` requests are outstanding; the next goes out when one is answered."""
        h = Harness(window=3)
        h.bind()
        ds = [h.submit(str(i).encode()) for i in range(5)]
        first = h.sent()
        self.assertEqual([p.params["destination_addr"] for p in first], [b"0", b"1", b"2"])
        h.feed(PDU("submit_sm_resp", first[0].sequence_number, 0, {"message_id": b"x"}))
        [fourth] = h.sent()
        self.assertEqual(fourth.params["destination_addr"], b"3")
        self.assertNoResult(ds[4])

    def test_sequence_wrap(self) -> None:
        """Sequence numbers wrap from 0x7FFFFFFF to 1."""
        h = Harness()
        h.bind()
        h.session._next_sequence = MAX_SEQUENCE
        h.submit(), h.submit()
        a, b = h.sent()
        self.assertEqual((a.sequence_number, b.sequence_number), (MAX_SEQUENCE, 1))

    def test_malformed_response(self) -> None:
        """A response whose body does not parse fails its request with MalformedResponse."""
        h = Harness()
        h.bind()
        d = h.submit()
        [s] = h.sent()
        # submit_sm_resp whose message_id has no terminating NUL.
        body = b"abc"
        h.protocol.dataReceived((16 + len(body)).to_bytes(4, "big") + bytes.fromhex("8000000400000000")
                                + s.sequence_number.to_bytes(4, "big") + body)
        self.failureResultOf(d, MalformedResponse)


class KeepAliveTests(SynchronousTestCase):
    def test_enquire_after_idle(self) -> None:
        """enquire_link goes out after keep_alive with nothing sent, and not before."""
        h = Harness()
        h.bind()
        h.clock.advance(20)
        d = h.submit()
        [s] = h.sent()
        h.feed(PDU("submit_sm_resp", s.sequence_number, 0, {"message_id": b"x"}))
        self.successResultOf(d)
        h.clock.advance(29)
        self.assertEqual(h.sent(), [])
        h.clock.advance(1)
        [enquire] = h.sent()
        self.assertEqual(enquire.command, "enquire_link")

    def test_enquire_unanswered_closes(self) -> None:
        """An enquire_link not answered within response_timeout closes the connection."""
        h = Harness()
        h.bind()
        h.clock.advance(30)
        [enquire] = h.sent()
        h.clock.advance(10)
        self.assertTrue(h.transport.disconnecting)
        self.assertEqual(h.session.close_reason, "enquire_link not answered")

    def test_enquire_answered_keeps_link(self) -> None:
        """An answered enquire_link keeps the connection open."""
        h = Harness()
        h.bind()
        h.clock.advance(30)
        [enquire] = h.sent()
        h.feed(PDU("enquire_link_resp", enquire.sequence_number))
        h.clock.advance(10)
        self.assertFalse(h.transport.disconnecting)

    def test_answers_enquire_link(self) -> None:
        """The SMSC's enquire_link gets enquire_link_resp with its sequence number."""
        h = Harness()
        h.bind()
        h.feed(PDU("enquire_link", 77))
        [resp] = h.sent()
        self.assertEqual((resp.command, resp.sequence_number, resp.command_status),
                         ("enquire_link_resp", 77, 0))


class UnbindTests(SynchronousTestCase):
    def test_we_unbind(self) -> None:
        """unbind waits for unbind_resp, then closes the connection."""
        h = Harness()
        h.bind()
        d = h.session.unbind()
        [unbind] = h.sent()
        self.assertEqual(unbind.command, "unbind")
        self.assertFalse(h.transport.disconnecting)
        h.feed(PDU("unbind_resp", unbind.sequence_number))
        self.successResultOf(d)
        self.assertTrue(h.transport.disconnecting)

    def test_smsc_unbinds(self) -> None:
        """The SMSC's unbind gets unbind_resp and the connection closes."""
        h = Harness()
        h.bind()
        h.feed(PDU("unbind", 9))
        [resp] = h.sent()
        self.assertEqual((resp.command, resp.sequence_number), ("unbind_resp", 9))
        self.assertTrue(h.transport.disconnecting)
        self.assertEqual(h.session.state, CLOSED)


class InboundTests(SynchronousTestCase):
    def test_deliver_default_refused_for_now(self) -> None:
        """Without an inbound hook, deliver_sm gets ESME_RX_T_APPN so the SMSC keeps it."""
        h = Harness()
        h.bind()
        h.feed(PDU("deliver_sm", 5, 0, {"source_addr": b"1", "short_message": b"x"}))
        [resp] = h.sent()
        self.assertEqual((resp.command, resp.sequence_number, resp.command_status),
                         ("deliver_sm_resp", 5, ESME_RX_T_APPN))

    def test_deliver_hook_answer_waits(self) -> None:
        """deliver_sm_resp waits for the hook's Deferred and carries its status."""
        h = Harness()
        h.bind()
        pending: Deferred[int] = Deferred()
        h.session.deliver = lambda pdu: pending
        h.feed(PDU("deliver_sm", 6, 0, {"short_message": b"x"}))
        self.assertEqual(h.sent(), [])
        pending.callback(ESME_ROK)
        [resp] = h.sent()
        self.assertEqual((resp.sequence_number, resp.command_status), (6, ESME_ROK))

    def test_deliver_hook_error_is_temporary(self) -> None:
        """A hook that raises answers ESME_RX_T_APPN rather than crashing."""
        h = Harness()
        h.bind()

        def broken(pdu: PDU) -> int:
            raise RuntimeError("store down")

        h.session.deliver = broken
        h.feed(PDU("deliver_sm", 6, 0, {"short_message": b"x"}))
        [resp] = h.sent()
        self.assertEqual(resp.command_status, ESME_RX_T_APPN)
        self.flushLoggedErrors(RuntimeError)

    def test_deliver_to_transmitter_refused(self) -> None:
        """A deliver_sm to a transmitter bind gets ESME_RINVBNDSTS."""
        h = Harness(bind_type="transmitter")
        h.bind()
        h.feed(PDU("deliver_sm", 8, 0, {"short_message": b"x"}))
        [resp] = h.sent()
        self.assertEqual(resp.command_status, STATUSES["ESME_RINVBNDSTS"])


class MalformedInputTests(SynchronousTestCase):
    def test_unknown_command_id(self) -> None:
        """An unknown command_id gets generic_nack ESME_RINVCMDID with its sequence number."""
        h = Harness()
        h.bind()
        h.protocol.dataReceived(bytes.fromhex("0000001000000099000000000000002a"))
        [nack] = h.sent()
        self.assertEqual((nack.command, nack.command_status, nack.sequence_number),
                         ("generic_nack", ESME_RINVCMDID, 42))

    def test_unparseable_body(self) -> None:
        """A deliver_sm whose body does not parse gets generic_nack with a specific status."""
        h = Harness()
        h.bind()
        h.protocol.dataReceived(bytes.fromhex("00000014000000050000000000000007") + b"\x00\x01\x01\x41")
        [nack] = h.sent()
        self.assertEqual(nack.command, "generic_nack")
        self.assertEqual(nack.sequence_number, 7)
        self.assertNotEqual(nack.command_status, 0)
        self.assertFalse(h.transport.disconnecting)

    def test_absurd_length_closes(self) -> None:
        """A command_length under 16 or over the largest a valid PDU can have aborts the connection."""
        for length in (0, 15, MAX_PDU_LEN + 1, 2**31):
            h = Harness()
            h.bind()
            h.protocol.dataReceived(length.to_bytes(4, "big"))
            self.assertTrue(h.transport.disconnecting, length)

    def test_byte_by_byte(self) -> None:
        """PDUs fed one byte at a time are decoded exactly as when fed whole."""
        h = Harness()
        d = h.session.bind()
        [bind] = h.sent()
        resp = encode(PDU("bind_transceiver_resp", bind.sequence_number, 0, {"system_id": b"SMSC"}))
        deliver = encode(PDU("deliver_sm", 3, 0, {"short_message": b"hello"}))
        for i in range(len(resp + deliver)):
            h.protocol.dataReceived((resp + deliver)[i : i + 1])
        self.successResultOf(d)
        [answer] = h.sent()
        self.assertEqual((answer.command, answer.sequence_number), ("deliver_sm_resp", 3))


class DeadlineTests(SynchronousTestCase):
    def test_each_request_has_its_own_deadline(self) -> None:
        """Requests sent at different times each time out response_timeout after their own sending."""
        h = Harness(window=10)
        h.bind()
        first = h.submit(b"1")
        h.clock.advance(4)
        second = h.submit(b"2")
        h.clock.advance(6)
        self.failureResultOf(first, ResponseTimeout)
        self.assertNoResult(second)
        h.clock.advance(3.9)
        self.assertNoResult(second)
        h.clock.advance(0.1)
        self.failureResultOf(second, ResponseTimeout)

    def test_request_sent_after_a_timeout_keeps_older_deadline(self) -> None:
        """A request let out by a timed-out one does not push back the deadline of older ones."""
        h = Harness(window=2)
        h.bind()
        a = h.submit(b"a")
        h.clock.advance(5)
        b = h.submit(b"b")
        c = h.submit(b"c")  # waits for the window
        h.clock.advance(5)  # a times out; c goes out now, due at 20
        self.failureResultOf(a, ResponseTimeout)
        h.clock.advance(5)  # b is due at 15
        self.failureResultOf(b, ResponseTimeout)
        self.assertNoResult(c)
        h.clock.advance(5)
        self.failureResultOf(c, ResponseTimeout)
        # Only the keep-alive is left (30 s after c went out at 10).
        self.assertEqual([call.getTime() for call in h.clock.getDelayedCalls()], [40.0])


class EncodeFailureTests(SynchronousTestCase):
    def test_unencodable_request_leaves_nothing_outstanding(self) -> None:
        """A request the codec refuses fails at once and holds no window slot or timer."""
        from smppgw.smpp.codec import EncodeError

        h = Harness()
        h.bind()
        d = h.session.submit(PDU("submit_sm", params={"source_addr_npi": 2}))
        self.failureResultOf(d, EncodeError)
        self.assertEqual(h.session.outstanding, 0)
        self.assertEqual(h.sent(), [])
        self.flushLoggedErrors(EncodeError)
