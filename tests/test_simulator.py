"""
Tests for smppgw.testing.simulator: the SMSC simulator seen from an ESME's side of the wire.

Each test feeds encoded PDUs into an `SMSCProtocol` on a `StringTransport` and
decodes exactly what the simulator wrote back.
"""

from __future__ import annotations

import io
import re
import sys

from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from smppgw.smpp.codec import PDU, DecodeError, Framer, decode, encode
from smppgw.smpp.constants import (
    ESME_RINVBNDSTS,
    ESME_RINVCMDID,
    ESME_ROK,
    ESME_RTHROTTLED,
    STATUSES,
)
from smppgw.testing.simulator import (
    Drop,
    Faults,
    NotBound,
    Received,
    SMSCProtocol,
    SMSCSimulator,
    UnknownMessageId,
    parse_args,
)

BOUND_REPLY: dict[str, int | bytes] = {"system_id": b"SIMSMSC", "sc_interface_version": 0x34}


def bind_pdu(
    command: str = "bind_transceiver",
    system_id: bytes = b"smppgw",
    password: bytes = b"secret",
    sequence: int = 1,
) -> PDU:
    return PDU(
        command,
        sequence,
        0,
        {
            "system_id": system_id,
            "password": password,
            "system_type": b"",
            "interface_version": 0x34,
        },
    )


def submit_pdu(sequence: int, text: bytes = b"hello") -> PDU:
    return PDU(
        "submit_sm",
        sequence,
        0,
        {
            "source_addr_ton": 1,
            "source_addr_npi": 1,
            "source_addr": b"15550001",
            "dest_addr_ton": 1,
            "dest_addr_npi": 1,
            "destination_addr": b"15550002",
            "short_message": text,
        },
    )


def octets(pdu: PDU, name: str) -> bytes:
    """The bytes value of a PDU field, failing the test if it is missing or not bytes."""
    value = pdu.get(name)
    assert isinstance(value, bytes), f"{name} is {value!r}"
    return value


class CountingTransport(StringTransport):
    """A StringTransport that counts its write calls."""

    writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1
        super().write(data)


class SimulatorTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.simulator = SMSCSimulator({"smppgw": "secret", "other": "pw"}, self.clock)

    def tearDown(self) -> None:
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def connect(self) -> tuple[SMSCProtocol, CountingTransport]:
        protocol = self.simulator.buildProtocol(None)
        transport = CountingTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def feed(self, protocol: SMSCProtocol, *pdus: PDU, byte_by_byte: bool = False) -> None:
        data = b"".join(encode(pdu) for pdu in pdus)
        if byte_by_byte:
            for i in range(len(data)):
                protocol.dataReceived(data[i : i + 1])
        else:
            protocol.dataReceived(data)

    def written(self, transport: StringTransport) -> list[PDU]:
        """The PDUs written since the last call."""
        frames = Framer().feed(transport.value())
        transport.clear()
        return [decode(frame) for frame in frames]

    def bound(
        self, command: str = "bind_transceiver", system_id: bytes = b"smppgw"
    ) -> tuple[SMSCProtocol, CountingTransport]:
        protocol, transport = self.connect()
        self.feed(
            protocol, bind_pdu(command, system_id, b"secret" if system_id == b"smppgw" else b"pw")
        )
        [reply] = self.written(transport)
        self.assertEqual(reply.command_status, ESME_ROK)
        return protocol, transport


class BindTests(SimulatorTestCase):
    def test_each_bind_type(self) -> None:
        """Each bind, fed one byte at a time, is answered by its own resp naming the SMSC and version 3.4."""
        for command, bind_type in [
            ("bind_transmitter", "transmitter"),
            ("bind_receiver", "receiver"),
            ("bind_transceiver", "transceiver"),
        ]:
            protocol, transport = self.connect()
            self.feed(protocol, bind_pdu(command, sequence=7), byte_by_byte=True)
            self.assertEqual(
                self.written(transport), [PDU(f"{command}_resp", 7, ESME_ROK, BOUND_REPLY)]
            )
            self.assertEqual((protocol.system_id, protocol.bind_type), ("smppgw", bind_type))

    def test_bad_password(self) -> None:
        """A wrong password is refused with ESME_RINVPASWD and the session stays unbound."""
        protocol, transport = self.connect()
        self.feed(protocol, bind_pdu(password=b"wrong"))
        self.assertEqual(
            self.written(transport), [PDU("bind_transceiver_resp", 1, STATUSES["ESME_RINVPASWD"])]
        )
        self.assertIsNone(protocol.system_id)

    def test_unknown_system_id(self) -> None:
        """An unknown system_id is refused with ESME_RINVSYSID."""
        protocol, transport = self.connect()
        self.feed(protocol, bind_pdu("bind_transmitter", system_id=b"nobody"))
        self.assertEqual(
            self.written(transport), [PDU("bind_transmitter_resp", 1, STATUSES["ESME_RINVSYSID"])]
        )

    def test_any_credentials_without_accounts(self) -> None:
        """A simulator made without accounts binds any system_id and password."""
        self.simulator = SMSCSimulator(None, self.clock, system_id="OTHER")
        protocol, transport = self.connect()
        self.feed(protocol, bind_pdu(system_id=b"anyone", password=b"anything"))
        self.assertEqual(
            self.written(transport),
            [
                PDU(
                    "bind_transceiver_resp",
                    1,
                    ESME_ROK,
                    {"system_id": b"OTHER", "sc_interface_version": 0x34},
                )
            ],
        )

    def test_bind_status_fault(self) -> None:
        """faults.bind_status refuses even good credentials with that status."""
        self.simulator.faults.bind_status = STATUSES["ESME_RBINDFAIL"]
        protocol, transport = self.connect()
        self.feed(protocol, bind_pdu())
        self.assertEqual(
            self.written(transport), [PDU("bind_transceiver_resp", 1, STATUSES["ESME_RBINDFAIL"])]
        )

    def test_already_bound(self) -> None:
        """A second bind on a bound session gets ESME_RALYBND and changes nothing."""
        protocol, transport = self.bound("bind_transmitter")
        self.feed(protocol, bind_pdu("bind_receiver", sequence=2))
        self.assertEqual(
            self.written(transport), [PDU("bind_receiver_resp", 2, STATUSES["ESME_RALYBND"])]
        )
        self.assertEqual(protocol.bind_type, "transmitter")

    def test_requests_before_bind(self) -> None:
        """submit_sm and enquire_link before a bind are refused with ESME_RINVBNDSTS."""
        protocol, transport = self.connect()
        self.feed(protocol, submit_pdu(3), PDU("enquire_link", 4))
        self.assertEqual(
            self.written(transport),
            [
                PDU("submit_sm_resp", 3, ESME_RINVBNDSTS),
                PDU("enquire_link_resp", 4, ESME_RINVBNDSTS),
            ],
        )
        self.assertEqual(self.simulator.accepted, [])

    def test_receiver_cannot_submit(self) -> None:
        """A session bound as receiver gets ESME_RINVBNDSTS for submit_sm."""
        protocol, transport = self.bound("bind_receiver")
        self.feed(protocol, submit_pdu(2))
        self.assertEqual(self.written(transport), [PDU("submit_sm_resp", 2, ESME_RINVBNDSTS)])

    def test_when_bound(self) -> None:
        """when_bound fires with the session once that system_id binds, and at once when already bound."""
        any_session = self.simulator.when_bound()
        other = self.simulator.when_bound("other")
        protocol, _ = self.bound()
        self.assertIs(self.successResultOf(any_session), protocol)
        self.assertNoResult(other)
        other_protocol, _ = self.bound(system_id=b"other")
        self.assertIs(self.successResultOf(other), other_protocol)
        self.assertIs(self.successResultOf(self.simulator.when_bound("smppgw")), protocol)


class FramingTests(SimulatorTestCase):
    def test_unknown_command_id(self) -> None:
        """An unknown command_id gets generic_nack ESME_RINVCMDID with the same sequence number."""
        protocol, transport = self.bound()
        protocol.dataReceived(bytes.fromhex("00000010 00000099 00000000 0000002a"))
        self.assertEqual(self.written(transport), [PDU("generic_nack", 42, ESME_RINVCMDID)])
        self.assertFalse(transport.disconnecting)

    def test_malformed_body(self) -> None:
        """A submit_sm whose body does not parse gets generic_nack with the codec's status."""
        protocol, transport = self.bound()
        frame = bytes.fromhex("00000011 00000004 00000000 00000007 ff")
        with self.assertRaises(DecodeError) as caught:
            decode(frame)
        protocol.dataReceived(frame)
        self.assertEqual(self.written(transport), [PDU("generic_nack", 7, caught.exception.status)])
        self.assertNotEqual(caught.exception.status, ESME_ROK)

    def test_impossible_length_aborts(self) -> None:
        """A command_length of 8 aborts the connection without an answer."""
        protocol, transport = self.bound()
        protocol.dataReceived(bytes.fromhex("00000008 00000015 00000000 00000002"))
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnected)

    def test_answers_written_in_one_batch(self) -> None:
        """All answers to PDUs that arrive together go out in one write."""
        protocol, transport = self.bound()
        transport.writes = 0
        self.feed(protocol, PDU("enquire_link", 2), submit_pdu(3), PDU("enquire_link", 4))
        self.assertEqual(transport.writes, 1)
        self.assertEqual(
            [pdu.command for pdu in self.written(transport)],
            ["enquire_link_resp", "submit_sm_resp", "enquire_link_resp"],
        )

    def test_received_records_everything(self) -> None:
        """received holds every PDU in order, with the system_id bound when it arrived."""
        protocol, _ = self.bound()
        self.feed(protocol, PDU("enquire_link", 2), submit_pdu(3))
        self.assertEqual(
            [(r.system_id, r.pdu.command, r.pdu.sequence_number) for r in self.simulator.received],
            [
                (None, "bind_transceiver", 1),
                ("smppgw", "enquire_link", 2),
                ("smppgw", "submit_sm", 3),
            ],
        )
        self.assertIsInstance(self.simulator.received[0], Received)

    def test_send_raw(self) -> None:
        """send_raw writes the bytes as they are to the session bound as that system_id."""
        _, transport = self.bound()
        self.simulator.send_raw(b"\x00\x01", "smppgw")
        self.assertEqual(transport.value(), b"\x00\x01")
        self.assertRaises(NotBound, self.simulator.send_raw, b"x", "nobody")


class SubmitTests(SimulatorTestCase):
    def test_submit_gets_unique_ids(self) -> None:
        """Each accepted submit_sm gets a new hex message id and is recorded."""
        protocol, transport = self.bound("bind_transmitter")
        submits = [submit_pdu(n, b"text %d" % n) for n in (2, 3, 4)]
        self.feed(protocol, *submits)
        self.assertEqual(
            self.written(transport),
            [
                PDU("submit_sm_resp", 2, ESME_ROK, {"message_id": b"00000001"}),
                PDU("submit_sm_resp", 3, ESME_ROK, {"message_id": b"00000002"}),
                PDU("submit_sm_resp", 4, ESME_ROK, {"message_id": b"00000003"}),
            ],
        )
        self.assertEqual(
            [pdu.get("short_message") for pdu in self.simulator.accepted],
            [b"text 2", b"text 3", b"text 4"],
        )
        self.assertEqual(self.simulator.message_ids["00000002"].get("short_message"), b"text 3")

    def test_decimal_message_ids(self) -> None:
        """message_ids="decimal" numbers messages 1, 2, ..."""
        self.simulator = SMSCSimulator(None, self.clock, message_ids="decimal")
        protocol, transport = self.bound()
        self.feed(protocol, submit_pdu(2), submit_pdu(3))
        self.assertEqual([pdu.get("message_id") for pdu in self.written(transport)], [b"1", b"2"])

    def test_unknown_message_id_format(self) -> None:
        """An unknown message_ids format is refused when the simulator is made."""
        self.assertRaises(ValueError, SMSCSimulator, None, self.clock, message_ids="uuid")

    def test_data_sm(self) -> None:
        """data_sm is accepted with a message id in data_sm_resp."""
        protocol, transport = self.bound()
        self.feed(
            protocol,
            PDU(
                "data_sm",
                5,
                0,
                {"source_addr": b"1", "destination_addr": b"2", "message_payload": b"payload"},
            ),
        )
        self.assertEqual(
            self.written(transport), [PDU("data_sm_resp", 5, ESME_ROK, {"message_id": b"00000001"})]
        )
        self.assertEqual(self.simulator.accepted[0].get("message_payload"), b"payload")

    def test_throttle_every_third(self) -> None:
        """throttle_every=3 answers the 3rd and 6th submits ESME_RTHROTTLED and does not accept them."""
        self.simulator.faults.throttle_every = 3
        protocol, transport = self.bound()
        self.feed(protocol, *[submit_pdu(n) for n in range(2, 8)])
        self.assertEqual(
            [pdu.command_status for pdu in self.written(transport)],
            [ESME_ROK, ESME_ROK, ESME_RTHROTTLED, ESME_ROK, ESME_ROK, ESME_RTHROTTLED],
        )
        self.assertEqual(len(self.simulator.accepted), 4)

    def test_max_rate_throttles_by_spacing(self) -> None:
        """max_rate=5 answers ESME_RTHROTTLED to a submit sooner than 0.2 s after the last accepted one."""
        self.simulator.faults.max_rate = 5
        protocol, transport = self.bound()
        statuses = []
        for sequence, delay in enumerate([0.0, 0.0, 0.1, 0.1, 0.19, 0.2], start=2):
            self.clock.advance(delay)
            self.feed(protocol, submit_pdu(sequence))
            [answer] = self.written(transport)
            statuses.append((answer.sequence_number, answer.command_status))
        self.assertEqual(
            statuses,
            [(2, ESME_ROK), (3, ESME_RTHROTTLED), (4, ESME_RTHROTTLED), (5, ESME_ROK),
             (6, ESME_RTHROTTLED), (7, ESME_ROK)],
        )
        self.assertEqual((len(self.simulator.accepted), self.simulator.throttled), (3, 3))

    def test_max_rate_per_system_id(self) -> None:
        """max_rate counts each system_id's submits apart, as a per-account limit does."""
        self.simulator.faults.max_rate = 1
        first, first_transport = self.bound()
        second, second_transport = self.bound(system_id=b"other")
        self.feed(first, submit_pdu(2))
        self.feed(second, submit_pdu(2))
        self.assertEqual([p.command_status for p in self.written(first_transport)], [ESME_ROK])
        self.assertEqual([p.command_status for p in self.written(second_transport)], [ESME_ROK])

    def test_submit_status(self) -> None:
        """faults.submit_status answers every submit with that status and accepts none."""
        self.simulator.faults.submit_status = STATUSES["ESME_RINVDSTADR"]
        protocol, transport = self.bound()
        self.feed(protocol, submit_pdu(2))
        self.assertEqual(
            self.written(transport), [PDU("submit_sm_resp", 2, STATUSES["ESME_RINVDSTADR"])]
        )
        self.assertEqual((self.simulator.accepted, self.simulator.message_ids), ([], {}))

    def test_black_hole(self) -> None:
        """A black hole never answers submits but still answers enquire_link and records the submit."""
        self.simulator.faults.black_hole = True
        protocol, transport = self.bound()
        self.feed(protocol, submit_pdu(2), PDU("enquire_link", 3))
        self.assertEqual(self.written(transport), [PDU("enquire_link_resp", 3)])
        self.assertEqual(self.simulator.received[-2].pdu.command, "submit_sm")

    def test_black_hole_all(self) -> None:
        """black_hole_all answers nothing, not even a bind."""
        self.simulator.faults = Faults(black_hole_all=True)
        protocol, transport = self.connect()
        self.feed(protocol, bind_pdu(), PDU("enquire_link", 2))
        self.assertEqual(transport.value(), b"")
        self.assertEqual(len(self.simulator.received), 2)

    def test_response_delay(self) -> None:
        """response_delay holds each submit_sm_resp for that long on the clock."""
        self.simulator.faults.response_delay = 2.0
        protocol, transport = self.bound()
        self.feed(protocol, submit_pdu(2))
        self.clock.advance(1.9)
        self.assertEqual(self.written(transport), [])
        self.clock.advance(0.1)
        self.assertEqual(
            self.written(transport),
            [PDU("submit_sm_resp", 2, ESME_ROK, {"message_id": b"00000001"})],
        )

    def test_delayed_answer_cancelled_on_disconnect(self) -> None:
        """A connection lost before a delayed answer leaves no timer and accepts nothing."""
        self.simulator.faults.response_delay = 2.0
        protocol, _ = self.bound()
        self.feed(protocol, submit_pdu(2))
        protocol.connectionLost(Failure(ConnectionLost()))
        self.assertEqual(self.simulator.accepted, [])
        self.assertEqual(self.simulator.connections, [])

    def test_drop_after(self) -> None:
        """drop_after=2 answers the bind, records the submit without answering it, and closes."""
        self.simulator.faults.drop_after = 2
        protocol, transport = self.connect()
        self.feed(protocol, bind_pdu(), submit_pdu(2))
        self.assertEqual(
            self.written(transport), [PDU("bind_transceiver_resp", 1, ESME_ROK, BOUND_REPLY)]
        )
        self.assertEqual(self.simulator.received[-1].pdu.command, "submit_sm")
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)

    def test_drop_with_reset(self) -> None:
        """drop_with_reset aborts the connection instead of closing it."""
        self.simulator.faults = Faults(drop_after=1, drop_with_reset=True)
        protocol, transport = self.connect()
        self.feed(protocol, bind_pdu())
        self.assertTrue(transport.disconnected)

    def test_drops_recorded(self) -> None:
        """Each drop_after close is recorded with how it closed, whose session it was and its PDU count."""
        self.simulator.faults = Faults(drop_after=2)
        protocol, transport = self.connect()
        self.feed(protocol, bind_pdu(), submit_pdu(2))
        self.assertEqual(
            self.simulator.drops, [Drop(reset=False, system_id="smppgw", pdus=2, accepted=0)]
        )

    def test_alternate_drops(self) -> None:
        """alternate_drops makes successive drops alternate a clean close and a reset."""
        self.simulator.faults = Faults(drop_after=2, alternate_drops=True)
        transports = []
        for _ in range(3):
            protocol, transport = self.connect()
            self.feed(protocol, bind_pdu(), submit_pdu(2))
            transports.append(transport)
        # A clean close waits for the transport; only a reset disconnects at once.
        self.assertEqual([t.disconnected for t in transports], [False, True, False])
        self.assertEqual([d.reset for d in self.simulator.drops], [False, True, False])
        self.assertTrue(self.simulator.faults.drop_with_reset)

    def test_drops_without_alternate_keep_their_kind(self) -> None:
        """Without alternate_drops every drop closes the same way."""
        self.simulator.faults = Faults(drop_after=1, drop_with_reset=True)
        for _ in range(2):
            protocol, _ = self.connect()
            self.feed(protocol, bind_pdu())
        self.assertEqual([d.reset for d in self.simulator.drops], [True, True])

    def test_throttled_count(self) -> None:
        """throttled counts the submits the throttle_every fault refused."""
        self.simulator.faults.throttle_every = 2
        protocol, _ = self.bound()
        self.feed(protocol, *[submit_pdu(n) for n in range(2, 7)])
        self.assertEqual(self.simulator.throttled, 2)
        self.assertEqual(len(self.simulator.accepted), 3)

    def test_received_count_survives_clearing(self) -> None:
        """received_count counts every PDU of a command even after `received` was emptied."""
        protocol, _ = self.bound()
        self.feed(protocol, submit_pdu(2), submit_pdu(3))
        self.simulator.received.clear()
        self.feed(protocol, submit_pdu(4))
        self.assertEqual(self.simulator.received_count(), 3)
        self.assertEqual(self.simulator.received_count("bind_transceiver"), 1)
        self.assertEqual(self.simulator.received_count("deliver_sm"), 0)
        self.assertRaises(ValueError, self.simulator.received_count, "no_such_command")

    def test_accepted_count_survives_clearing(self) -> None:
        """accepted_count counts every accepted submit even after `accepted` was emptied; a drop records it."""
        self.simulator.faults.drop_after = 4
        protocol, _ = self.bound()
        self.feed(protocol, submit_pdu(2), submit_pdu(3))
        self.simulator.accepted.clear()
        self.feed(protocol, submit_pdu(4))
        self.assertEqual(self.simulator.accepted_count, 2)
        self.assertEqual(self.simulator.drops[0].accepted, 2)

    def test_when_received(self) -> None:
        """when_received fires once that many PDUs of the command have arrived in total."""
        protocol, _ = self.bound()
        two_submits = self.simulator.when_received(2)
        self.feed(protocol, submit_pdu(2))
        self.assertNoResult(two_submits)
        self.feed(protocol, submit_pdu(3))
        self.successResultOf(two_submits)
        self.successResultOf(self.simulator.when_received(1, "bind_transceiver"))


class DeliverTests(SimulatorTestCase):
    def test_deliver(self) -> None:
        """deliver sends a deliver_sm to the bound receiver and fires with the ESME's deliver_sm_resp."""
        protocol, transport = self.bound("bind_receiver")
        d = self.simulator.deliver("15550002", "15550001", b"hi there", data_coding=8)
        [sent] = self.written(transport)
        self.assertEqual((sent.command, sent.sequence_number), ("deliver_sm", 1))
        self.assertEqual(
            (
                sent.get("source_addr"),
                sent.get("destination_addr"),
                sent.get("short_message"),
                sent.get("data_coding"),
                sent.get("source_addr_ton"),
                sent.get("esm_class"),
            ),
            (b"15550002", b"15550001", b"hi there", 8, 1, 0),
        )
        self.assertNoResult(d)
        self.feed(protocol, PDU("deliver_sm_resp", 1, STATUSES["ESME_RX_T_APPN"]))
        response = self.successResultOf(d)
        self.assertEqual(
            (response.command, response.sequence_number, response.command_status),
            ("deliver_sm_resp", 1, STATUSES["ESME_RX_T_APPN"]),
        )

    def test_deliver_numbers_its_requests(self) -> None:
        """The simulator numbers its own requests from 1 and a generic_nack answers them too."""
        protocol, transport = self.bound()
        first = self.simulator.deliver("1", "2", b"a")
        second = self.simulator.deliver("1", "2", b"b", command="data_sm")
        sent = self.written(transport)
        self.assertEqual(
            [(p.command, p.sequence_number) for p in sent], [("deliver_sm", 1), ("data_sm", 2)]
        )
        self.assertEqual(sent[1].get("message_payload"), b"b")
        self.feed(protocol, PDU("generic_nack", 2, ESME_RINVCMDID), PDU("deliver_sm_resp", 1))
        self.assertEqual(self.successResultOf(second).command, "generic_nack")
        self.assertEqual(self.successResultOf(first).command, "deliver_sm_resp")

    def test_deliver_without_receiver(self) -> None:
        """deliver fails with NotBound when only a transmitter is bound."""
        self.bound("bind_transmitter")
        self.failureResultOf(self.simulator.deliver("1", "2", b"x"), NotBound)
        self.failureResultOf(self.simulator.deliver("1", "2", b"x", system_id="other"), NotBound)

    def test_deliver_fails_when_connection_lost(self) -> None:
        """An unanswered deliver fails with the reason the connection was lost."""
        protocol, _ = self.bound()
        d = self.simulator.deliver("1", "2", b"x")
        protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(d, ConnectionLost)

    def test_deliver_receipt(self) -> None:
        """A receipt goes from the submit's destination to its source with the SMPP 3.4 text and TLVs."""
        self.clock.advance(1_700_000_000)  # 2023-11-14 22:13 UTC
        protocol, transport = self.bound()
        self.feed(protocol, submit_pdu(2, b"a message longer than twenty octets"))
        [resp] = self.written(transport)
        message_id = octets(resp, "message_id").decode()
        self.clock.advance(120)
        d = self.simulator.deliver_receipt(message_id)
        [receipt] = self.written(transport)
        fields = re.fullmatch(
            rb"id:(\S+) sub:(\d{3}) dlvrd:(\d{3}) submit date:(\d{10}) done date:(\d{10})"
            rb" stat:(\w+) err:(\d{3}) text:(.*)",
            octets(receipt, "short_message"),
        )
        assert fields is not None
        self.assertEqual(
            fields.groups(),
            (
                message_id.encode(),
                b"001",
                b"001",
                b"2311142213",
                b"2311142215",
                b"DELIVRD",
                b"000",
                b"a message longer tha",
            ),
        )
        self.assertEqual(
            (
                receipt.get("esm_class"),
                receipt.get("source_addr"),
                receipt.get("destination_addr"),
                receipt.get("receipted_message_id"),
                receipt.get("message_state"),
            ),
            (0x04, b"15550002", b"15550001", message_id.encode(), 2),
        )
        self.feed(protocol, PDU("deliver_sm_resp", receipt.sequence_number))
        self.assertEqual(self.successResultOf(d).command_status, ESME_ROK)

    def test_receipt_without_tlvs(self) -> None:
        """with_tlvs=False sends an undelivered receipt with only its text."""
        protocol, transport = self.bound()
        self.feed(protocol, submit_pdu(2))
        self.written(transport)
        self.simulator.deliver_receipt("00000001", "UNDELIV", "005", with_tlvs=False)
        [receipt] = self.written(transport)
        self.assertIn(b" dlvrd:000 ", receipt.get("short_message"))
        self.assertIn(b" stat:UNDELIV err:005 ", receipt.get("short_message"))
        self.assertNotIn("receipted_message_id", receipt.params)
        self.assertNotIn("message_state", receipt.params)

    def test_receipt_for_unknown_message(self) -> None:
        """A receipt for a message id never accepted fails with UnknownMessageId."""
        self.bound()
        self.failureResultOf(self.simulator.deliver_receipt("deadbeef"), UnknownMessageId)


class UnbindTests(SimulatorTestCase):
    def test_esme_unbind(self) -> None:
        """An unbind from the ESME is answered with unbind_resp, then the connection closes."""
        protocol, transport = self.bound()
        self.feed(protocol, PDU("unbind", 9), PDU("enquire_link", 10))
        self.assertEqual(self.written(transport), [PDU("unbind_resp", 9)])
        self.assertTrue(transport.disconnecting)

    def test_unbind_all(self) -> None:
        """unbind_all sends unbind to bound sessions and closes each once its ESME answers."""
        protocol, transport = self.bound()
        _, unbound_transport = self.connect()
        self.simulator.unbind_all()
        self.assertEqual(self.written(transport), [PDU("unbind", 1)])
        self.assertEqual(unbound_transport.value(), b"")
        self.assertFalse(transport.disconnecting)
        self.feed(protocol, PDU("unbind_resp", 1))
        self.assertTrue(transport.disconnecting)

    def test_drop_all(self) -> None:
        """drop_all closes every connection, or aborts them with reset=True."""
        _, first = self.bound()
        _, second = self.connect()
        self.simulator.drop_all(reset=True)
        self.assertTrue(first.disconnected and second.disconnected)


class DemoTests(SimulatorTestCase):
    """What the simulator does for the demo: log each SMS, send receipts, send a phone's text."""

    def demo(self, **options: object) -> None:
        self.simulator = SMSCSimulator({"smppgw": "secret", "other": "pw"}, self.clock,
                                       **options)  # type: ignore[arg-type]

    def submit(self, protocol: SMSCProtocol, transport: StringTransport, **params: int | bytes
               ) -> PDU:
        pdu = submit_pdu(2)
        pdu.params.update(params)
        self.feed(protocol, pdu)
        [answer] = self.written(transport)
        return answer

    def lines(self, events: list[dict[str, object]]) -> list[str]:
        return [formatEvent(e) for e in events if str(e.get("log_format", "")).startswith("SMSC")]

    def test_logs_each_sms_decoded(self) -> None:
        """With log_messages, each accepted SMS is one line: to whom, from whom, its text with the prefix."""
        self.demo(log_messages=True)
        protocol, transport = self.bound()
        with capturedLogs() as events:
            self.submit(protocol, transport, source_addr=b"alice@example.com", source_addr_ton=5,
                        destination_addr=b"15551234",
                        short_message=b"\x00a=alice\x00example.com Hello")
        self.assertEqual(self.lines(events),
                         ['SMSC got for +15551234 from alice@example.com: "@a=alice@example.com Hello"'])

    def test_logs_in_the_links_alphabet(self) -> None:
        """data_coding 0 is read in the alphabet given for the session's system_id; UCS2 as UCS2."""
        self.demo(log_messages=True, alphabets={"smppgw": "ascii"})
        protocol, transport = self.bound()
        with capturedLogs() as events:
            self.submit(protocol, transport, short_message=b"@b hi")
            self.submit(protocol, transport, data_coding=8, short_message="né €".encode("utf-16-be"))
        self.assertEqual(self.lines(events), ['SMSC got for +15550002 from +15550001: "@b hi"',
                                              'SMSC got for +15550002 from +15550001: "né €"'])

    def test_logs_parts(self) -> None:
        """A part of a long SMS is logged with its place; binary data by its size."""
        self.demo(log_messages=True)
        protocol, transport = self.bound()
        with capturedLogs() as events:
            self.submit(protocol, transport, esm_class=0x40,
                        short_message=bytes([5, 0, 3, 7, 2, 1]) + b"first half")
            self.submit(protocol, transport, data_coding=4, short_message=b"\xff\xfe")
        self.assertEqual(self.lines(events), [
            'SMSC got for +15550002 from +15550001 (part 1 of 2): "first half"',
            "SMSC got for +15550002 from +15550001: <2 octets: data_coding 0x04 is 8-bit"
            " binary data, not text>",
        ])

    def test_no_log_by_default(self) -> None:
        """Without log_messages, an accepted SMS writes no line."""
        protocol, transport = self.bound()
        with capturedLogs() as events:
            self.submit(protocol, transport)
        self.assertEqual(self.lines(events), [])

    def test_receipt_after_delay(self) -> None:
        """With receipt_delay, a submit asking for a receipt gets DELIVRD that long after, not sooner."""
        self.demo(receipt_delay=1.0)
        protocol, transport = self.bound()
        answer = self.submit(protocol, transport, registered_delivery=1)
        self.clock.advance(0.9)
        self.assertEqual(self.written(transport), [])
        self.clock.advance(0.1)
        [receipt] = self.written(transport)
        self.assertEqual(receipt.command, "deliver_sm")
        self.assertEqual(receipt.get("esm_class"), 0x04)
        self.assertEqual(receipt.get("receipted_message_id"), answer.get("message_id"))
        self.assertIn(b" stat:DELIVRD err:000 ", octets(receipt, "short_message"))
        self.assertEqual(octets(receipt, "destination_addr"), b"15550001")

    def test_receipt_only_when_asked(self) -> None:
        """No receipt for registered_delivery 0, nor for 2 (failures only)."""
        self.demo(receipt_delay=0.0)
        protocol, transport = self.bound()
        self.submit(protocol, transport)
        self.submit(protocol, transport, registered_delivery=2)
        self.clock.advance(10)
        self.assertEqual(self.written(transport), [])

    def test_receipt_without_receiver_is_logged(self) -> None:
        """A receipt for a transmitter's submit, which nothing can take, is one log line."""
        self.demo(receipt_delay=0.0)
        protocol, transport = self.bound("bind_transmitter")
        answer = self.submit(protocol, transport, registered_delivery=1)
        with capturedLogs() as events:
            self.clock.advance(0)
        message_id = octets(answer, "message_id").decode()
        self.assertEqual(self.lines(events), [
            f"SMSC cannot send the receipt of {message_id}: no receiver or transceiver bound as"
            " system_id 'smppgw'"])

    def test_cancel_receipts(self) -> None:
        """cancel_receipts forgets the receipts not sent yet."""
        self.demo(receipt_delay=5.0)
        protocol, transport = self.bound()
        self.submit(protocol, transport, registered_delivery=1)
        self.simulator.cancel_receipts()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_deliver_text(self) -> None:
        """deliver_text sends a phone's text in data_coding 0 of the link's alphabet, and logs it."""
        self.demo(log_messages=True, alphabets={"other": "ascii"})
        protocol, transport = self.bound()
        ascii_protocol, ascii_transport = self.bound(system_id=b"other")
        with capturedLogs() as events:
            d = self.simulator.deliver_text("15551234", "alice@example.com", "@b: hi",
                                            dest_ton=5, dest_npi=0)
            e = self.simulator.deliver_text("15551234", "15550100", "@b: hi", system_id="other")
            [gsm] = self.written(transport)
            [ascii] = self.written(ascii_transport)
            self.feed(protocol, PDU("deliver_sm_resp", gsm.sequence_number))
            self.feed(ascii_protocol, PDU("deliver_sm_resp", ascii.sequence_number, 0x64))
        self.assertEqual(octets(gsm, "short_message"), b"\x00b: hi")
        self.assertEqual(octets(ascii, "short_message"), b"@b: hi")
        self.assertEqual((gsm.get("data_coding"), gsm.get("dest_addr_ton")), (0, 5))
        self.assertEqual(octets(gsm, "destination_addr"), b"alice@example.com")
        self.assertEqual([r.command_status for r in self.successResultOf(d)], [ESME_ROK])
        self.assertEqual([r.command_status for r in self.successResultOf(e)], [0x64])
        self.assertEqual(self.lines(events), [
            'SMSC sent for alice@example.com from +15551234: "@b: hi" (ESME smppgw answered'
            " ESME_ROK)",
            'SMSC sent for +15550100 from +15551234: "@b: hi" (ESME other answered'
            " ESME_RX_T_APPN)",
        ])

    def test_deliver_long_text(self) -> None:
        """A text longer than one SMS goes as parts with a concatenation header; one that needs UCS2 as UCS2."""
        protocol, transport = self.bound()
        d = self.simulator.deliver_text("15551234", "15550100", "x" * 200 + "€", reference=9)
        parts = self.written(transport)
        self.assertEqual([p.get("esm_class") for p in parts], [0x40, 0x40])
        self.assertEqual([octets(p, "short_message")[:6] for p in parts],
                         [bytes([5, 0, 3, 9, 2, 1]), bytes([5, 0, 3, 9, 2, 2])])
        self.feed(protocol, *(PDU("deliver_sm_resp", p.sequence_number) for p in parts))
        self.assertEqual(len(self.successResultOf(d)), 2)
        self.simulator.deliver_text("15551234", "15550100", "Привет")
        [ucs2] = self.written(transport)
        self.assertEqual((ucs2.get("data_coding"), octets(ucs2, "short_message")),
                         (8, "Привет".encode("utf-16-be")))

    def test_deliver_text_without_receiver(self) -> None:
        """deliver_text with no receiver bound fails with NotBound and writes nothing."""
        self.failureResultOf(self.simulator.deliver_text("1", "2", "hi"), NotBound)


class CommandLineTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """Without arguments the simulator listens on loopback port 2775 and accepts any account."""
        options = parse_args([])
        self.assertEqual(options.listen, ("tcp:2775:interface=127.0.0.1",))
        self.assertIsNone(options.accounts)
        self.assertEqual(options.faults, Faults())

    def test_options(self) -> None:
        """Accounts, endpoints and faults are parsed; statuses take names or numbers."""
        options = parse_args(
            [
                "--listen",
                "tcp:2776",
                "--listen",
                "unix:/tmp/s",
                "--account",
                "smppgw:se:cret",
                "--account",
                "b:",
                "--message-ids",
                "decimal",
                "--throttle-every",
                "5",
                "--submit-status",
                "ESME_RSYSERR",
                "--bind-status",
                "0x0d",
                "--response-delay",
                "0.5",
                "--alternate-drops",
                "--max-rate",
                "5",
            ]
        )
        self.assertEqual(options.listen, ("tcp:2776", "unix:/tmp/s"))
        self.assertEqual(options.accounts, {"smppgw": "se:cret", "b": ""})
        self.assertEqual(options.message_ids, "decimal")
        self.assertEqual(
            options.faults,
            Faults(
                throttle_every=5,
                submit_status=8,
                bind_status=0x0D,
                response_delay=0.5,
                alternate_drops=True,
                max_rate=5.0,
            ),
        )
        self.assertNotIn("se:cret", repr(options))

    def test_bad_max_rate(self) -> None:
        """A max rate that is not a number of 0 or more is a usage error naming what is expected."""
        for bad in ("-1", "fast", "nan", "inf"):
            err = io.StringIO()
            self.patch(sys, "stderr", err)
            self.assertRaises(SystemExit, parse_args, ["--max-rate", bad])
            self.assertIn("submits per second", err.getvalue())

    def test_bad_account(self) -> None:
        """An account without a colon is a usage error."""
        self.patch(sys, "stderr", io.StringIO())
        self.assertRaises(SystemExit, parse_args, ["--account", "nopassword"])
