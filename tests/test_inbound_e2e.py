"""End to end over 127.0.0.1: a test host on AMP, the gateway's outbound and inbound halves, the SMSC simulator.

The two phone-screen examples of the reference manual's "SMS Dialogs" section
are played as a phone would see them: the IM users' messages go out through
SendSignal and reach the simulator with their dialog prefixes; the phone's
replies are injected by the simulator and arrive at the test host as
DeliverSignal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredQueue, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol, serverFromString
from twisted.internet.protocol import connectionDone
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from smppgw.config import Config, parse_config
from smppgw.host.commands import DeliverSignal, SendSignal, SignalReport
from smppgw.host.protocol import GatewayAMPFactory
from smppgw.host.registry import HostRegistry
from smppgw.relay.dialogs import DialogTable
from smppgw.relay.inbound import Inbound
from smppgw.relay.outbound import Outbound
from smppgw.smpp.constants import ESME_ROK, ESME_RX_R_APPN
from smppgw.smpp.link import Link, build_endpoint
from smppgw.sms.textcodec import decode_text, encode_text
from smppgw.store.sqlite import Store
from smppgw.testing.simulator import SMSCSimulator

PHONE = "74992713154"
GATEWAY_NUMBER = "15550100"


class TestHost(amp.AMP):
    """An IM server: sends SendSignal, and records each DeliverSignal and SignalReport it gets."""

    def __init__(self) -> None:
        super().__init__()
        self.signals: DeferredQueue[dict[str, str]] = DeferredQueue()
        self.reports: DeferredQueue[dict[str, str]] = DeferredQueue()
        self.lost: Deferred[None] = Deferred()

    @DeliverSignal.responder
    def deliver_signal(self, method: str, sender: str, recipient: str, body: str,
                       server: str) -> dict[str, Any]:
        self.signals.put({"method": method, "sender": sender, "recipient": recipient,
                          "body": body, "server": server})
        return {}

    @SignalReport.responder
    def signal_report(self, request_id: str, message_id: str, state: str, error: str,
                      server: str, part: int | None, parts: int | None) -> dict[str, Any]:
        self.reports.put({"request_id": request_id, "message_id": message_id, "state": state,
                          "error": error, "server": server, "part": part, "parts": parts})
        return {}

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        self.lost.callback(None)


@inlineCallbacks
def start_gateway(test: TestCase, config: Config, stop_link: Callable[[Link], Any]) -> Any:
    """The gateway's halves for the first server of ``config``, on a fresh store, with a TestHost
    logged in over AMP on 127.0.0.1; fires with the host once the link is bound.

    ``stop_link`` is the cleanup that stops the link; the rest is cleaned up here.
    """
    server = config.servers[0]
    store = Store(test.mktemp(), reactor)
    dialogs = DialogTable(reactor, config.module.dialog_timeout, store)
    registry = HostRegistry()
    inbound = Inbound(config, store, registry, reactor, dialogs)
    link = Link(server, build_endpoint(reactor, server), reactor, "none",
                initial_delay=0.05, max_delay=0.2)
    # Link.deliver is inferred from its default (an int-returning hook); a Deferred is allowed.
    link.deliver = inbound.handler(server)
    outbound = Outbound(config, {server.name: link}, store, reactor, dialogs)
    outbound.restore()
    # Cleanups run last first: the store closes after everything that writes to it.
    test.addCleanup(store.close)
    test.addCleanup(outbound.stop)
    test.addCleanup(inbound.stop)
    inbound.start()
    link.startService()
    test.addCleanup(stop_link, link)

    amp_port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
        GatewayAMPFactory(outbound, registry, reactor))
    test.addCleanup(amp_port.stopListening)
    host = yield connectProtocol(
        TCP4ClientEndpoint(reactor, "127.0.0.1", amp_port.getHost().port), TestHost())

    def disconnect_host() -> Deferred[None]:
        host.transport.loseConnection()
        return host.lost

    test.addCleanup(disconnect_host)
    yield link.when_bound()
    return host


class PhoneScreenTests(TestCase):
    timeout = 20

    @inlineCallbacks
    def setUp(self) -> Any:  # type: ignore[override]  # trial waits on a Deferred setUp
        self.simulator = SMSCSimulator({"esme": "pw"}, reactor)
        smsc_port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(self.simulator)
        self.addCleanup(smsc_port.stopListening)
        config = parse_config(
            f'[[server]]\nname = "sim"\naddress = "127.0.0.1:{smsc_port.getHost().port}"\n'
            f'system_id = "esme"\npassword = "pw"\ndialogs = true\nsender = "+{GATEWAY_NUMBER}"\n'
        )
        self.host = yield start_gateway(self, config, self.stop_link)
        self.request = 0

    @inlineCallbacks
    def stop_link(self, link: Link) -> Any:
        yield link.stopService()
        for connection in list(self.simulator.connections):
            connection.close()
        # One reactor turn (no waiting on time): the simulator sees the
        # connection close before its port goes.
        closed: Deferred[None] = Deferred()
        reactor.callLater(0, closed.callback, None)
        yield closed

    @inlineCallbacks
    def im_to_phone(self, sender: str, body: str) -> Any:
        """An IM user's message to the phone; returns the text the phone shows."""
        self.request += 1
        answer = yield self.host.callRemote(
            SendSignal, request_id=f"r{self.request}", method="MESSAGE", sender=sender,
            recipient=f"+{PHONE}@sim._smpp", body=body)
        self.assertEqual(answer["server"], "sim")
        params = self.simulator.accepted[-1].params
        self.assertEqual(params["destination_addr"], PHONE.encode())
        data_coding, short_message = params["data_coding"], params["short_message"]
        assert isinstance(data_coding, int) and isinstance(short_message, bytes)
        return decode_text(data_coding, short_message)

    @inlineCallbacks
    def phone_replies(self, text: str) -> Any:
        """The phone's reply as the SMSC delivers it; returns the deliver_sm_resp status."""
        response = yield self.simulator.deliver(PHONE, GATEWAY_NUMBER, encode_text(text, 0))
        self.assertEqual(response.command, "deliver_sm_resp")
        return response.command_status

    def from_phone(self, recipient: str, body: str) -> dict[str, str]:
        return {"method": "MESSAGE", "sender": f"+{PHONE}@sim._smpp", "recipient": recipient,
                "body": body, "server": "sim"}

    @inlineCallbacks
    def test_single_dialog(self) -> Any:
        """The manual's single dialog: the first SMS names the user, replies without a prefix reach them."""
        screen = yield self.im_to_phone("smith@company.dom", "Hi! Got good news about that contract.")
        self.assertEqual(screen, "@a=smith@company.dom Hi! Got good news about that contract.")

        status = yield self.phone_replies("Great. Signed?")
        self.assertEqual(status, ESME_ROK)
        signal = yield self.host.signals.get()
        self.assertEqual(signal, self.from_phone("smith@company.dom", "Great. Signed?"))

        screen = yield self.im_to_phone("smith@company.dom", "They've signed it, we'll get it tomorrow.")
        self.assertEqual(screen, "@a They've signed it, we'll get it tomorrow.")

        status = yield self.phone_replies("Congrats, CU!")
        self.assertEqual(status, ESME_ROK)
        signal = yield self.host.signals.get()
        self.assertEqual(signal, self.from_phone("smith@company.dom", "Congrats, CU!"))

    @inlineCallbacks
    def test_two_dialogs(self) -> Any:
        """The manual's two dialogs: with two bindings, '@a'/'@b' pick the user and an unprefixed reply is refused."""
        screen = yield self.im_to_phone("susan@company.dom", "Will you be in town this weekend?")
        self.assertEqual(screen, "@a=susan@company.dom Will you be in town this weekend?")
        status = yield self.phone_replies("Yes")
        self.assertEqual(status, ESME_ROK)
        signal = yield self.host.signals.get()
        self.assertEqual(signal, self.from_phone("susan@company.dom", "Yes"))

        screen = yield self.im_to_phone(
            "susan@company.dom", "Please come visit us on saturday, we'll be at home all day long.")
        self.assertEqual(
            screen, "@a Please come visit us on saturday, we'll be at home all day long.")
        screen = yield self.im_to_phone("smith@company.dom", "Hey, just received their signed contract!")
        self.assertEqual(screen, "@b=smith@company.dom Hey, just received their signed contract!")

        status = yield self.phone_replies("@b good! I'll be there in 30m")
        self.assertEqual(status, ESME_ROK)
        signal = yield self.host.signals.get()
        self.assertEqual(signal, self.from_phone("smith@company.dom", "good! I'll be there in 30m"))

        # Two bindings and no prefix: not accepted, and the SMSC is told so for good.
        status = yield self.phone_replies("who is this?")
        self.assertEqual(status, ESME_RX_R_APPN)

        status = yield self.phone_replies("@A Thnx a lot, I will!")
        self.assertEqual(status, ESME_ROK)
        signal = yield self.host.signals.get()
        self.assertEqual(signal, self.from_phone("susan@company.dom", "Thnx a lot, I will!"))
        self.assertEqual(len(self.host.signals.pending), 0)

    @inlineCallbacks
    def test_receipt_reported(self) -> Any:
        """The SMSC's delivery receipt for a sent SMS reaches the host as SignalReport of that request."""
        yield self.im_to_phone("smith@company.dom", "ping")
        [message_id] = list(self.simulator.message_ids)
        response = yield self.simulator.deliver_receipt(message_id)
        self.assertEqual(response.command_status, ESME_ROK)
        report = yield self.host.reports.get()
        self.assertEqual(report, {"request_id": "r1", "message_id": message_id,
                                  "state": "DELIVERED", "error": "000", "server": "sim",
                                  "part": 1, "parts": 1})

    @inlineCallbacks
    def test_concatenated_ucs2_reply(self) -> Any:
        """A two-part UCS2 reply sent last part first arrives as one message, emoji intact."""
        yield self.im_to_phone("smith@company.dom", "Party?")
        data = "Да! 🎉 до встречи".encode("utf-16-be")
        cut = data.index("🎉".encode("utf-16-be")) + 2  # between the surrogates
        statuses = []
        for sequence, chunk in [(2, data[cut:]), (1, data[:cut])]:
            udh = bytes([0x05, 0x00, 0x03, 0x42, 2, sequence])
            response = yield self.simulator.deliver(PHONE, GATEWAY_NUMBER, udh + chunk,
                                                    data_coding=0x08, esm_class=0x40)
            statuses.append(response.command_status)
        self.assertEqual(statuses, [ESME_ROK, ESME_ROK])
        signal = yield self.host.signals.get()
        self.assertEqual(signal, self.from_phone("smith@company.dom", "Да! 🎉 до встречи"))
