"""A malicious SMSC against a bound ESMEProtocol and Inbound: broken UDHs, huge payloads, floods."""

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

from smppgw.host.commands import DeliverSignal
from smppgw.host.protocol import GatewayAMPFactory
from smppgw.host.registry import HostRegistry
from smppgw.relay.inbound import Inbound
from smppgw.smpp.codec import PDU, Framer, decode, encode
from smppgw.smpp.constants import ESME_ROK, ESME_RX_R_APPN, ESME_RX_T_APPN
from smppgw.smpp.link import settings_for
from smppgw.smpp.log import SmppLog
from smppgw.smpp.protocol import ESMEProtocol
from smppgw.store.sqlite import Store

from . import test_inbound

FUZZ = settings(max_examples=int(os.environ.get("SMPPGW_FUZZ_EXAMPLES", "100")), deadline=None)
STATUSES = (ESME_ROK, ESME_RX_R_APPN, ESME_RX_T_APPN)
PHONE = b"79161234567"


class HostileSMSC:
    """A bound ESMEProtocol whose deliver hook is an Inbound over an in-memory store; the test is the SMSC."""

    def __init__(self, clock: Clock, registry: HostRegistry, *, max_inbox: int = 1000,
                 module: str = "") -> None:
        self.clock = clock
        self.config = test_inbound.make_config(recipient="sms@example.com", module=module)
        self.server = self.config.servers[0]
        self.store = Store(":memory:", clock)
        self.inbound = Inbound(self.config, self.store, registry, clock, None, max_inbox=max_inbox)
        self.inbound.start()
        self.transport = StringTransport()
        self.esme = ESMEProtocol(settings_for(self.server), clock, SmppLog("sim", "problems"),
                                 self.inbound.handler(self.server))
        self.esme.makeConnection(self.transport)
        self.esme.session.bind()
        [bind] = self.written()
        self.esme.dataReceived(encode(PDU("bind_transceiver_resp", bind.sequence_number, 0,
                                          {"system_id": b"SMSC"})))
        self._sequence = 100

    def stop(self) -> None:
        self.inbound.stop()
        self.esme.connectionLost(None)
        self.store.close()

    def written(self) -> list[PDU]:
        data = self.transport.value()
        self.transport.clear()
        frames = Framer().feed(data)
        assert sum(map(len, frames)) == len(data)
        return [decode(frame) for frame in frames]

    def deliver(self, *pdus_params: dict[str, Any]) -> list[int]:
        """Send deliver_sm PDUs in one write; the status of each deliver_sm_resp, in order."""
        sequences = []
        data = bytearray()
        for params in pdus_params:
            self._sequence += 1
            sequences.append(self._sequence)
            full = {"source_addr": PHONE, "source_addr_ton": 1, "destination_addr": b"15550100",
                    **params}
            data += encode(PDU("deliver_sm", self._sequence, 0, full))
        self.esme.dataReceived(bytes(data))
        self.clock.advance(0)  # the store's group commit
        answers = {p.sequence_number: p for p in self.written()}
        assert set(answers) == set(sequences), (sorted(answers), sequences)
        assert all(answers[s].command == "deliver_sm_resp" for s in sequences)
        return [answers[s].command_status for s in sequences]

    def rows(self) -> dict[str, int]:
        return self.store.counts()


def udh_message(udh: bytes, body: bytes = b"hello", data_coding: int = 0) -> dict[str, Any]:
    return {"esm_class": 0x40, "data_coding": data_coding, "short_message": udh + body}


class HostileTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        capture = capturedLogs()
        self.events = capture.__enter__()
        self.addCleanup(capture.__exit__, None, None, None)
        self.clock = Clock()
        self.registry = HostRegistry()

    def smsc(self, **kw: Any) -> HostileSMSC:
        smsc = HostileSMSC(self.clock, self.registry, **kw)
        self.addCleanup(smsc.stop)
        return smsc

    def tearDown(self) -> None:
        self.assertEqual([formatEvent(e) for e in self.events if "log_failure" in e], [])

    def problems(self) -> list[str]:
        return [formatEvent(e) for e in self.events if e.get("log_level") == LogLevel.warn]


class BrokenUDHTests(HostileTestCase):
    def test_udh_length_past_the_end(self) -> None:
        """A UDH length pointing past the end of short_message is refused for good, not acknowledged."""
        smsc = self.smsc()
        for udh in (b"\xff", b"\x05\x00\x03\x01", b"\xfe" + b"\x00" * 10):
            self.assertEqual(smsc.deliver(udh_message(udh, b"")), [ESME_RX_R_APPN])
        self.assertEqual(smsc.rows()["inbox"], 0)
        self.assertIn("runs past", self.problems()[0])

    def test_element_longer_than_the_udh(self) -> None:
        """A UDH element claiming more bytes than the UDH holds is refused for good."""
        smsc = self.smsc()
        # UDH of 5 octets holding an 8-bit concat element that claims 9.
        self.assertEqual(smsc.deliver(udh_message(b"\x05\x00\x09\x01\x02\x01")), [ESME_RX_R_APPN])
        self.assertEqual(smsc.rows()["inbox"] + smsc.rows()["fragments"], 0)

    def test_udh_in_64k_payload(self) -> None:
        """A UDH with a length byte of 255 at the head of a 64 KiB message_payload is read, not trusted."""
        smsc = self.smsc()
        payload = b"\xff" + b"\x70\xfd" + b"a" * 253 + b"b" * 60000
        status = smsc.deliver({"esm_class": 0x40, "data_coding": 0, "short_message": b"",
                               "message_payload": payload})
        self.assertEqual(status, [ESME_ROK])
        self.assertEqual(smsc.rows()["inbox"], 1)

    @FUZZ
    @given(st.binary(max_size=254), st.sampled_from([0x00, 0x04, 0x40, 0x43, 0x44]),
           st.sampled_from([0, 1, 3, 4, 8, 0x11, 0xF0]),
           st.fixed_dictionaries({}, optional={
               "message_payload": st.binary(max_size=2000),
               "sar_msg_ref_num": st.integers(0, 0xFFFF),
               "sar_total_segments": st.integers(0, 255),
               "sar_segment_seqnum": st.integers(0, 255)}))
    def test_random_short_message(self, data: bytes, esm_class: int, data_coding: int,
                                  tlvs: dict[str, Any]) -> None:
        """Any short_message (UDH, receipt or plain) in any coding gets exactly one answer and at most one row."""
        smsc = HostileSMSC(self.clock, self.registry)
        try:
            [status] = smsc.deliver({"esm_class": esm_class, "data_coding": data_coding,
                                     "short_message": data, **tlvs})
            self.assertIn(status, STATUSES)
            rows = smsc.rows()
            self.assertLessEqual(rows["inbox"] + rows["fragments"], 1)
            if status != ESME_ROK:
                self.assertEqual(rows["inbox"] + rows["fragments"], 0)
        finally:
            smsc.stop()


class HugeMessageTests(HostileTestCase):
    def connect_host(self) -> list[dict[str, Any]]:
        """A real AMP host on the registry, answering DeliverSignal; the signals it got."""
        received: list[dict[str, Any]] = []

        class Host(amp.AMP):
            @DeliverSignal.responder
            def deliver(self, **arguments: Any) -> dict[str, Any]:
                received.append(arguments)
                return {}

        factory = GatewayAMPFactory(None, self.registry, self.clock)  # type: ignore[arg-type]
        _, _, pump = iosim.connectedServerAndClient(
            lambda: factory.buildProtocol(None), Host, clock=self.clock)
        self.pump = pump
        return received

    def flush(self) -> None:
        for _ in range(5):
            self.clock.advance(0)
            self.pump.flush()

    def test_64k_payload_reaches_host(self) -> None:
        """A deliver_sm with 65,535 octets of GSM text in message_payload (the TLV's maximum) reaches the host whole."""
        smsc = self.smsc()
        received = self.connect_host()
        self.assertEqual(smsc.deliver({"data_coding": 0, "short_message": b"",
                                       "message_payload": b"x" * 0xFFFF}), [ESME_ROK])
        self.flush()
        [signal] = received
        self.assertEqual(signal["body"], "x" * 0xFFFF)

    def test_largest_payload_refused_when_it_cannot_be_read_or_carried(self) -> None:
        """65,535 octets that are no UCS2 text, or that make too much UTF-8 for AMP, are refused for good, the link kept."""
        smsc = self.smsc()
        self.connect_host()
        for data_coding, octet in ((8, b"\x00"), (3, b"\xe9")):
            status = smsc.deliver({"data_coding": data_coding, "short_message": b"",
                                   "message_payload": octet * 0xFFFF})
            self.assertEqual(status, [ESME_RX_R_APPN], data_coding)
        self.assertEqual(smsc.rows()["inbox"], 0)
        self.assertFalse(smsc.transport.disconnecting)

    def test_text_too_big_for_amp_refused(self) -> None:
        """A text over AMP's 65,535-byte value limit once in UTF-8 is refused for good, never acknowledged and lost."""
        smsc = self.smsc()
        received = self.connect_host()
        # 40,000 Latin-1 "é" are 80,000 bytes of UTF-8.
        status = smsc.deliver({"data_coding": 3, "short_message": b"",
                               "message_payload": b"\xe9" * 40000})
        self.assertEqual(status, [ESME_RX_R_APPN])
        self.assertEqual(smsc.rows()["inbox"], 0)
        self.flush()
        self.assertEqual(received, [])
        self.assertIn("too long", self.problems()[-1])

    def test_255_part_text_too_big_for_amp_refused(self) -> None:
        """A 255-part Latin-1 message too big for AMP is refused at its last part; its parts are dropped."""
        smsc = self.smsc()
        self.connect_host()
        statuses = smsc.deliver(*(udh_message(bytes([5, 0, 3, 9, 255, n]), b"\xe9" * 134, 3)
                                  for n in range(1, 256)))
        self.assertEqual(statuses, [ESME_ROK] * 254 + [ESME_RX_R_APPN])
        self.assertEqual(smsc.rows()["inbox"] + smsc.rows()["fragments"], 0)


class FragmentTests(HostileTestCase):
    def test_255_parts_never_completed_expire(self) -> None:
        """254 of 255 parts are stored (no more), and dropped with a log line after reassembly_timeout."""
        smsc = self.smsc(module='reassembly_timeout = "10m"')
        parts = [udh_message(bytes([5, 0, 3, 42, 255, n]), b"part") for n in range(1, 255)]
        self.assertEqual(smsc.deliver(*parts), [ESME_ROK] * 254)
        self.assertEqual(smsc.deliver(*parts[:10]), [ESME_ROK] * 10)  # resent parts
        self.assertEqual(smsc.rows()["fragments"], 254)
        self.assertEqual(smsc.rows()["inbox"], 0)
        self.clock.advance(9 * 60)
        self.assertEqual(smsc.rows()["fragments"], 254)
        self.clock.advance(2 * 60)
        self.assertEqual(smsc.rows()["fragments"], 0)
        self.assertIn("254 of 255 parts", self.problems()[-1])

    def test_many_incomplete_messages_bounded(self) -> None:
        """Parts of ever new incomplete messages count against the inbox limit: beyond it, a temporary error."""
        smsc = self.smsc(max_inbox=50)
        parts = [udh_message(bytes([6, 8, 4, n >> 8, n & 0xFF, 2, 1]), b"half")
                 for n in range(200)]
        statuses = smsc.deliver(*parts)
        self.assertEqual(statuses, [ESME_ROK] * 50 + [ESME_RX_T_APPN] * 150)
        self.assertEqual(smsc.rows()["fragments"], 50)


class FloodTests(HostileTestCase):
    BURST = 20_000

    def test_mo_burst_against_small_inbox(self) -> None:
        """20,000 MO messages with no host: the first max_inbox are stored, the rest get ESME_RX_T_APPN."""
        smsc = self.smsc(max_inbox=100)
        message = {"data_coding": 0, "short_message": b"flood"}
        statuses: list[int] = []
        for _ in range(self.BURST // 1000):
            statuses += smsc.deliver(*[message] * 1000)
        self.assertEqual(statuses, [ESME_ROK] * 100 + [ESME_RX_T_APPN] * (self.BURST - 100))
        self.assertEqual(smsc.rows()["inbox"], 100)
        self.assertEqual(smsc.esme.session.outstanding, 0)
        # One line says the inbox is full, not one per refused message.
        self.assertEqual(len([p for p in self.problems() if "inbox holds" in p]), 1)

    def test_accepts_again_once_drained(self) -> None:
        """Once a host takes the inbox, the SMSC's retries are accepted again."""
        smsc = self.smsc(max_inbox=10)
        message = {"data_coding": 0, "short_message": b"again"}
        self.assertEqual(smsc.deliver(*[message] * 20), [ESME_ROK] * 10 + [ESME_RX_T_APPN] * 10)
        host = test_inbound.FakeHost(auto=True)
        self.registry.add(host)  # type: ignore[arg-type]
        self.clock.advance(0)
        self.assertEqual(len(host.signals()), 10)
        self.assertEqual(smsc.rows()["inbox"], 0)
        self.assertEqual(smsc.deliver(*[message] * 10), [ESME_ROK] * 10)
