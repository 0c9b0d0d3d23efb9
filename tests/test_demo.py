"""Tests for demo mode: the phones' replies (smppgw.testing.demo), and the whole loop that README walks through."""

from __future__ import annotations

import os
import stat
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from smppgw.config import parse_config
from smppgw.errors import BadAddressError, BadRequest, TooLongError, UnknownServerError
from smppgw.smpp.codec import PDU, Framer, decode, encode
from smppgw.smpp.constants import ESME_RX_R_APPN
from smppgw.testing.demo import DemoPhones, NotBoundError, SmsRefused
from smppgw.testing.simulator import SMSCProtocol, SMSCSimulator

from .test_cli import GatewayTestCase, Lines, cli, write_config

CONFIG = """
[[server]]
name = ""
address = "127.0.0.1:2775"
system_id = "gw"
password = "pw"
dialogs = true
[[server]]
name = "bulk"
mode = "send-only"
address = "127.0.0.1:2775"
system_id = "bulk"
password = "pw"
[[server]]
name = "rx"
mode = "receive-only"
address = "127.0.0.1:2775"
system_id = "rx"
password = "pw"
sender = "+15550199"
"""


class PhonesTests(SynchronousTestCase):
    """DemoPhones over a simulator whose sessions write to StringTransports."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.simulator = SMSCSimulator(None, self.clock)
        self.phones = DemoPhones(parse_config(CONFIG), self.simulator)
        self.sessions: dict[str, tuple[SMSCProtocol, StringTransport]] = {}

    def bind(self, system_id: str, command: str = "bind_transceiver") -> None:
        protocol = self.simulator.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        protocol.dataReceived(encode(PDU(command, 1, 0, {
            "system_id": system_id.encode(), "password": b"pw", "system_type": b"",
            "interface_version": 0x34})))
        transport.clear()
        self.sessions[system_id] = (protocol, transport)

    def submit(self, system_id: str, source: bytes, ton: int, phone: bytes = b"15551234",
               text: bytes = b"hi", registered_delivery: int = 0) -> str:
        """Submit ``text`` to ``phone`` over ``system_id``'s session; the message_id it got."""
        protocol, transport = self.sessions[system_id]
        protocol.dataReceived(encode(PDU("submit_sm", 9, 0, {
            "source_addr_ton": ton, "source_addr_npi": 0, "source_addr": source,
            "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": phone,
            "registered_delivery": registered_delivery, "short_message": text})))
        [response] = [decode(frame) for frame in Framer().feed(transport.value())]
        transport.clear()
        message_id = response.get("message_id")
        assert isinstance(message_id, bytes)
        return message_id.decode()

    def delivered(self, system_id: str, status: int = 0) -> PDU:
        """The one deliver_sm written to ``system_id``'s session, answered with ``status``."""
        protocol, transport = self.sessions[system_id]
        [pdu] = [decode(frame) for frame in Framer().feed(transport.value())]
        transport.clear()
        protocol.dataReceived(encode(PDU("deliver_sm_resp", pdu.sequence_number, status)))
        return pdu

    def test_reply_goes_to_the_last_sender(self) -> None:
        """A phone's reply goes to whoever last sent it an SMS, through that sender's server."""
        self.bind("gw")
        self.bind("rx", "bind_receiver")
        self.submit("gw", b"bob@example.com", 5)
        self.submit("gw", b"alice@example.com", 5)
        self.submit("gw", b"carol", 5, phone=b"15559999")
        d = self.phones.reply("+15551234", "@b: hi")
        pdu = self.delivered("gw")
        self.assertEqual(self.successResultOf(d), {
            "server": "", "source": "+15551234", "destination": "alice@example.com"})
        self.assertEqual(
            [pdu.get(name) for name in ("source_addr", "source_addr_ton", "destination_addr",
                                        "dest_addr_ton", "short_message")],
            [b"15551234", 1, b"alice@example.com", 5, b"\x00b: hi"])

    def test_reply_to_fixed_sender(self) -> None:
        """A phone that got nothing answers the named server's fixed sender, or no address for "*"."""
        self.bind("gw")
        self.bind("rx", "bind_receiver")
        d = self.phones.reply("15551234", "hello", "rx")
        pdu = self.delivered("rx")
        self.assertEqual(self.successResultOf(d)["destination"], "+15550199")
        self.assertEqual((pdu.get("source_addr_ton"), pdu.get("destination_addr")),
                         (0, b"15550199"))
        e = self.phones.reply("+15551234", "hello")
        self.assertEqual(self.delivered("gw").get("destination_addr"), b"")
        self.assertEqual(self.successResultOf(e)["server"], "")

    def test_unknown_or_sending_only_server(self) -> None:
        """A server that does not exist, or does not receive, is UNKNOWN_SERVER, naming it."""
        with self.assertRaises(UnknownServerError) as unknown:
            self.phones.reply("+15551234", "hi", "nope")
        self.assertEqual(str(unknown.exception),
                         "no server is named 'nope' (configured: '', 'bulk', 'rx')")
        with self.assertRaises(UnknownServerError) as sending:
            self.phones.reply("+15551234", "hi", "bulk")
        self.assertEqual(str(sending.exception), "server 'bulk' is 'send-only': it receives no SMS")

    def test_bad_phone(self) -> None:
        """A phone that is not a number is BAD_ADDRESS, and nothing is sent."""
        self.bind("gw")
        with self.assertRaises(BadAddressError):
            self.phones.reply("alice", "hi")
        self.assertEqual(self.sessions["gw"][1].value(), b"")

    def test_not_bound(self) -> None:
        """No receiver bound for the server: NOT_BOUND, naming it."""
        failure = self.failureResultOf(self.phones.reply("+15551234", "hi"), NotBoundError)
        self.assertEqual(failure.getErrorMessage(),
                         "server '' (system_id 'gw') has no receiver bound to the simulator now")

    def test_seen(self) -> None:
        """The phones that got an SMS, the last one first: each message decoded, its
        dialog prefix shown, its sender and server; the last sender is whom a reply goes to."""
        self.bind("gw")
        self.bind("rx", "bind_receiver")
        self.submit("gw", b"alice@example.com", 5, text=b"\x00a=alice\x00example.com Hello")
        self.submit("gw", b"bob@example.com", 5, text=b"\x00b=bob\x00example.com Hi")
        self.submit("gw", b"15550100", 1, phone=b"15559999")
        phones = self.phones.seen()
        self.assertEqual([(p.number, p.received, p.receipts, p.last_sender) for p in phones],
                         [("+15559999", 1, 0, "+15550100"),
                          ("+15551234", 2, 0, "bob@example.com")])
        self.assertEqual([(m.message_id, m.sender, m.server, m.text, m.part, m.receipt)
                          for m in phones[1].messages],
                         [("00000002", "bob@example.com", "", "@b=bob@example.com Hi", None,
                           "not asked"),
                          ("00000001", "alice@example.com", "", "@a=alice@example.com Hello",
                           None, "not asked")])
        self.assertEqual(len(self.phones.seen(last=1)[1].messages), 1)

    def test_seen_receipts(self) -> None:
        """A message that asked for a receipt shows it due, then sent with the gateway's answer."""
        self.bind("gw")
        message_id = self.submit("gw", b"alice", 5, registered_delivery=1)
        [message] = self.phones.seen()[0].messages
        self.assertEqual(message.receipt, "asked, not sent yet")
        d = self.simulator.deliver_receipt(message_id)
        self.delivered("gw")
        self.successResultOf(d)
        [phone] = self.phones.seen()
        self.assertEqual((phone.receipts, phone.messages[0].receipt),
                         (1, "DELIVRD sent; the gateway answered ESME_ROK"))

    def test_check(self) -> None:
        """A reply without a number, without text, or longer than the server's max_parts
        is refused, each problem named by its field, and nothing is sent."""
        self.bind("gw")
        problems = self.phones.check(" ", "")
        self.assertEqual({field: (type(e), str(e)) for field, e in problems.items()}, {
            "phone": (BadAddressError, "no phone number: pick one or type one, such as"
                                       " +15551234"),
            "text": (BadRequest, "the text is empty: a phone sends at least one character")})
        long = self.phones.check("+15551234", "x" * (10 * 153 + 1))
        self.assertEqual([(field, str(e)) for field, e in long.items()], [
            ("text", "the text needs 11 SMS parts, more than the 10 that server '' takes"
                     " (its max_parts)")])
        self.assertEqual(list(self.phones.check("+15551234", "hi", "bulk")), ["server"])
        self.assertEqual(self.phones.check("+15551234", "x" * (10 * 153)), {})
        with self.assertRaises(TooLongError):
            self.phones.reply("+15551234", "x" * 2000)
        with self.assertRaises(BadRequest):
            self.phones.reply("+15551234", "")
        self.assertEqual(self.sessions["gw"][1].value(), b"")

    def test_gateway_refuses(self) -> None:
        """A deliver_sm the gateway refuses is SMS_REFUSED with the status it answered."""
        self.bind("gw")
        d = self.phones.reply("+15551234", "hi")
        self.delivered("gw", ESME_RX_R_APPN)
        failure = self.failureResultOf(d, SmsRefused)
        self.assertEqual(failure.getErrorMessage(),
                         "the gateway answered the deliver_sm with ESME_RX_R_APPN: its log says why")


class LoopTests(GatewayTestCase):
    """The demo gateway on loopback: send -> receipt -> reply -> dialog, through the command line."""

    @inlineCallbacks
    def start_demo(self) -> Any:
        yield self.start(demo=True, dialogs=True, registered_delivery=True, sender="*")

    @inlineCallbacks
    def test_whole_loop(self) -> Any:
        """Two IM users send to a phone, the host gets both receipts, and the phone's "@b:" reply reaches the second."""
        yield self.start_demo()
        self.simulator.receipt_delay = 0.0
        host_out, host_err = Lines(), Lines()
        hosting = cli.run(reactor, cli.parse_args(["-c", self.config, "host"]), host_out, host_err)
        yield host_err.when("logged in")
        with capturedLogs() as events:
            for sender, text in (("alice", "Hello"), ("bob", "Hi there")):
                status, _, _ = yield self.run_cli("send", "+15551234", text, "--sender",
                                                  f"{sender}@example.com", "--request-id", sender)
                self.assertEqual(status, 0)
            yield host_out.when("SignalReport alice")
            yield host_out.when("SignalReport bob")
            status, out, err = yield self.run_cli("demo-reply", "+15551234", "@b: hi")
            self.assertEqual((status, err), (0, []))
            reply = yield host_out.when("DeliverSignal")
        self.assertEqual(out, ['+15551234 sent it to bob@example.com through server ""; the'
                               ' gateway took it'])
        self.assertEqual(reply, 'DeliverSignal MESSAGE from +15551234@smpp to bob@example.com,'
                                ' server "": "hi"')
        self.assertEqual(sorted(line for line in host_out.lines() if "SignalReport" in line), [
            'SignalReport alice part 1/1: DELIVERED (error 000), message 00000001, server ""',
            'SignalReport bob part 1/1: DELIVERED (error 000), message 00000002, server ""'])
        logged = [formatEvent(e) for e in events]
        self.assertIn('SMSC got for +15551234 from alice@example.com: "@a=alice@example.com Hello"',
                      logged)
        self.assertIn('SMSC got for +15551234 from bob@example.com: "@b=bob@example.com Hi there"',
                      logged)
        for host in list(self.gateway.registry.hosts):
            host.transport.loseConnection()
        yield hosting

    @inlineCallbacks
    def test_pending_receipt_cancelled_on_stop(self) -> Any:
        """A receipt still waiting for its second when the demo stops is cancelled with it (trial sees no timer left)."""
        yield self.start_demo()
        status, _, _ = yield self.run_cli("send", "+15551234", "hi")
        self.assertEqual((status, self.simulator.received_count("deliver_sm")), (0, 0))

    @inlineCallbacks
    def test_demo_socket_is_private(self) -> Any:
        """The demo socket sits beside the store, in the folder the gateway made, readable by its user only."""
        yield self.start_demo()
        mode = os.stat(os.path.join(self.state, "var", "demo.sock")).st_mode
        self.assertEqual((stat.S_ISSOCK(mode), stat.S_IMODE(mode)), (True, 0o600))

    @inlineCallbacks
    def test_demo_reply_error(self) -> Any:
        """A reply the demo cannot send (no such server, no text) is one line with its code, exit status 1."""
        yield self.start_demo()
        status, out, err = yield self.run_cli("demo-reply", "+15551234", "hi", "--server", "x")
        self.assertEqual((status, out), (1, []))
        self.assertEqual(err, ["not sent: UNKNOWN_SERVER: no server is named 'x' (configured: '')"])
        status, out, err = yield self.run_cli("demo-reply", "+15551234", "")
        self.assertEqual((status, out), (1, []))
        self.assertEqual(err, ["not sent: BAD_REQUEST: the text is empty: a phone sends at"
                               " least one character"])

    @inlineCallbacks
    def test_demo_reply_without_demo(self) -> Any:
        """demo-reply to a gateway run without --demo says so, and how to start the demo."""
        yield self.start()
        status, _, err = yield self.run_cli("demo-reply", "+15551234", "hi")
        self.assertEqual(status, 1)
        self.assertEqual(err, [f"smppgw is not running in demo mode: cannot connect to"
                               f" unix:{self.state}/demo.sock (No such file or directory); start"
                               " it with bin/demo (twistd smppgw --demo)"])

    @inlineCallbacks
    def test_demo_reply_without_gateway(self) -> Any:
        """demo-reply with no gateway at all gives the not-running line of the AMP endpoint."""
        config = write_config(self.state, 9)
        status, _, err = yield self.run_cli("demo-reply", "+15551234", "hi", config=config)
        self.assertEqual(status, 1)
        self.assertEqual(err, [f"smppgw is not running: cannot connect to"
                               f" unix:{self.state}/amp.sock (No such file or directory)"])
