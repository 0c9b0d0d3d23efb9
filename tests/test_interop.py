"""
Interop tests: the gateway against SMPP servers written outside this project.

The first peer is node-smpp (the npm package ``smpp``, version pinned in
tests/interop/package.json), run as ``node tests/interop/smsc.js`` on 127.0.0.1.
That server logs every PDU it receives or sends as a JSON line, so these tests
assert both what our client got back and what the other implementation saw.

The second is an SMSC on smpp.twisted3's server (tests/interop/twisted_smsc.py,
the package pinned in tests/interop/requirements.txt), which reads and writes
data_coding 0 as ASCII; it runs in the test's reactor, and the whole gateway
(store, dialogs, inbound, outbound, an AMP host) talks to it over 127.0.0.1.

``.ci/interop-setup`` installs both; without node, the npm package or the Python
one, the tests that need it are skipped, except under CI=true, where they fail
and say what is missing.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Any

from twisted.internet import reactor as _reactor
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from smppgw.config import parse_config
from smppgw.host.commands import SendSignal
from smppgw.smpp.codec import PDU
from smppgw.smpp.constants import STATUSES
from smppgw.smpp.link import BOUND, Link, build_endpoint
from smppgw.sms.textcodec import decode_text, encode_text
from tests.test_inbound_e2e import start_gateway

try:
    from tests.interop.twisted_smsc import TwistedSMSC
except ImportError as error:
    TWISTED_MISSING: str | None = (
        f"smpp.twisted3 cannot be imported ({error}): run .ci/interop-setup")
else:
    TWISTED_MISSING = None

INTEROP_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "interop")
SMSC_SCRIPT = os.path.join(INTEROP_DIR, "smsc.js")
NODE = shutil.which("node")

#: GSM 03.38 text with characters outside ASCII and from the extension table
#: ({, } and € each take ESC plus a code), so both sides' tables are exercised.
TEXT = "Hi @ £5 {ok} €"


def _missing() -> str | None:
    """Why the interop tests cannot run here, or None if they can."""
    if NODE is None:
        return "node is not on PATH (run .ci/interop-setup on a machine with Node.js)"
    if not os.path.isdir(os.path.join(INTEROP_DIR, "node_modules", "smpp")):
        return "tests/interop/node_modules is missing: run .ci/interop-setup"
    return None


class SMSCDied(Exception):
    """The node SMSC exited while a test was waiting for it."""


class NodeSMSC(ProcessProtocol):
    """Runs tests/interop/smsc.js and collects its stdout: the port, then one JSON record per line."""

    def __init__(self) -> None:
        self.listening: Deferred[int] = Deferred()
        self.ended: Deferred[None] = Deferred()
        self.records: list[dict[str, Any]] = []
        self.stderr = b""
        self._partial = b""
        self._waiters: list[tuple[int, dict[str, Any], Deferred[list[dict[str, Any]]]]] = []

    def outReceived(self, data: bytes) -> None:
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line.decode("utf-8"))

    def _line(self, line: str) -> None:
        if line.startswith("LISTENING "):
            self.listening.callback(int(line.split()[1]))
            return
        self.records.append(json.loads(line))
        for waiter in list(self._waiters):
            count, fields, d = waiter
            found = self.matching(**fields)
            if len(found) >= count:
                self._waiters.remove(waiter)
                d.callback(found)

    def errReceived(self, data: bytes) -> None:
        self.stderr += data

    def processEnded(self, reason: Failure) -> None:
        error = SMSCDied(f"node SMSC exited ({reason.getErrorMessage()}): {self.stderr.decode(errors='replace')}")
        if not self.listening.called:
            self.listening.errback(error)
        waiters, self._waiters = self._waiters, []
        for _count, _fields, d in waiters:
            d.errback(error)
        self.ended.callback(None)

    def matching(self, **fields: Any) -> list[dict[str, Any]]:
        """The records so far whose fields have these values."""
        return [r for r in self.records if all(r.get(k) == v for k, v in fields.items())]

    def wait_for(self, count: int = 1, **fields: Any) -> Deferred[list[dict[str, Any]]]:
        """Fires with the matching records once there are at least ``count`` of them."""
        found = self.matching(**fields)
        if len(found) >= count:
            return succeed(found)
        d: Deferred[list[dict[str, Any]]] = Deferred()
        self._waiters.append((count, fields, d))
        return d


MISSING = _missing()
# The global reactor, typed loosely: mypy sees the module, not the reactor it becomes.
reactor: Any = _reactor


class NodeSMPPInteropTests(TestCase):
    """Our ESME against node-smpp's server over 127.0.0.1."""

    timeout = 20
    # In CI (.ci/run sets CI=true) .ci/interop-setup must have installed the
    # peer: there a missing prerequisite fails the tests instead of hiding them.
    skip = None if os.environ.get("CI") == "true" else MISSING

    def setUp(self) -> None:
        if MISSING is not None:
            self.fail(f"CI=true but {MISSING}")

    @inlineCallbacks
    def start_smsc(self) -> Any:
        smsc = NodeSMSC()
        assert NODE is not None
        reactor.spawnProcess(smsc, NODE, [NODE, SMSC_SCRIPT, "0"], env=dict(os.environ),
                             path=INTEROP_DIR)
        self.addCleanup(self.stop_smsc, smsc)
        port = yield smsc.listening
        return smsc, port

    def stop_smsc(self, smsc: NodeSMSC) -> Deferred[None]:
        """Close the SMSC's stdin (it exits on that); kill it only if it does not."""
        if smsc.ended.called:
            return smsc.ended
        transport: Any = smsc.transport
        transport.closeStdin()
        kill = reactor.callLater(5, transport.signalProcess, "KILL")

        def ended(result: None) -> None:
            if kill.active():
                kill.cancel()

        return smsc.ended.addCallback(ended)

    def link(self, port: int, password: str = "pw", **extra: str) -> Link:
        lines = "\n".join(f"{key} = {value}" for key, value in extra.items())
        server = parse_config(
            f'[[server]]\nname = "node"\naddress = "127.0.0.1:{port}"\n'
            f'system_id = "interop"\npassword = "{password}"\n{lines}\n'
        ).servers[0]
        link = Link(server, build_endpoint(reactor, server), reactor, "none",
                    initial_delay=0.05, max_delay=0.2)
        link.startService()
        self.addCleanup(self.stop_link, link)
        return link

    def stop_link(self, link: Link) -> Deferred[None] | None:
        if not link.running:
            return None
        return link.stopService()

    @staticmethod
    def submit_sm(text: str = TEXT) -> PDU:
        return PDU("submit_sm", params={
            "source_addr_ton": 5, "source_addr_npi": 0, "source_addr": b"smppgw",
            "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": b"15550001",
            "data_coding": 0, "short_message": encode_text(text, 0),
        })

    @inlineCallbacks
    def test_bind_and_submit(self) -> Any:
        """node-smpp accepts our bind_transceiver and our GSM submit_sm, reads exactly the fields we sent, and we get its message_id."""
        smsc, port = yield self.start_smsc()
        link = self.link(port)
        yield link.when_bound()
        # What node-smpp logs comes through its stdout, which may lag the socket.
        [bind] = yield smsc.wait_for(dir="in", pdu="bind_transceiver")
        self.assertEqual((bind["system_id"], bind["password"], bind["interface_version"]),
                         ("interop", "pw", 0x34))

        response = yield link.submit(self.submit_sm())

        self.assertEqual(response.params["message_id"], b"node-1")
        [seen] = yield smsc.wait_for(dir="in", pdu="submit_sm")
        self.assertEqual(
            {key: seen[key] for key in ("source_addr_ton", "source_addr_npi", "source_addr",
                                        "dest_addr_ton", "dest_addr_npi", "destination_addr",
                                        "data_coding", "esm_class", "registered_delivery")},
            {"source_addr_ton": 5, "source_addr_npi": 0, "source_addr": "smppgw",
             "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": "15550001",
             "data_coding": 0, "esm_class": 0, "registered_delivery": 0},
        )
        # Unpacked GSM 03.38: @ is 0x00, £ 0x01, and {, }, € are ESC 0x28, 0x29, 0x65.
        self.assertEqual(seen["short_message_hex"], "48692000200135201b286f6b1b29201b65")
        # node-smpp's own GSM 03.38 decoder reads our bytes as the text we meant.
        self.assertEqual(seen["short_message_text"], TEXT)

    @inlineCallbacks
    def test_deliver_sm_reaches_the_link(self) -> Any:
        """node-smpp's deliver_sm reaches link.deliver with its addresses and text, and node-smpp sees our deliver_sm_resp with status 0."""
        smsc, port = yield self.start_smsc()
        link = self.link(port)
        delivered: Deferred[PDU] = Deferred()

        def deliver(pdu: PDU) -> int:
            delivered.callback(pdu)
            return 0

        link.deliver = deliver
        yield link.when_bound()
        yield link.submit(self.submit_sm())

        pdu = yield delivered
        self.assertEqual(
            (pdu.params["source_addr_ton"], pdu.params["source_addr_npi"], pdu.params["source_addr"]),
            (1, 1, b"15550001"))
        self.assertEqual(pdu.params["destination_addr"], b"smppgw")
        self.assertEqual(pdu.params["data_coding"], 0)
        self.assertEqual(pdu.params["short_message"], encode_text("echo:" + TEXT, 0))
        self.assertEqual(decode_text(0, pdu.params["short_message"]), "echo:" + TEXT)
        [sent] = yield smsc.wait_for(dir="out", pdu="deliver_sm")
        [resp] = yield smsc.wait_for(dir="in", pdu="deliver_sm_resp")
        self.assertEqual((resp["command_status"], resp["sequence_number"]),
                         (0, sent["sequence_number"]))

    @inlineCallbacks
    def test_deliver_refused_later(self) -> Any:
        """A status that link.deliver gives later through a Deferred reaches node-smpp in the deliver_sm_resp."""
        smsc, port = yield self.start_smsc()
        link = self.link(port)
        verdict: Deferred[int] = Deferred()

        def deliver(pdu: PDU) -> Any:
            return verdict

        link.deliver = deliver
        yield link.when_bound()
        yield link.submit(self.submit_sm())
        [sent] = yield smsc.wait_for(dir="out", pdu="deliver_sm")

        verdict.callback(STATUSES["ESME_RX_T_APPN"])

        [resp] = yield smsc.wait_for(dir="in", pdu="deliver_sm_resp")
        self.assertEqual((resp["command_status"], resp["sequence_number"]),
                         (STATUSES["ESME_RX_T_APPN"], sent["sequence_number"]))

    @inlineCallbacks
    def test_wrong_password_keeps_retrying(self) -> Any:
        """A bind that node-smpp refuses leaves the link unbound with the failure in last_error, and it binds again and again."""
        smsc, port = yield self.start_smsc()
        link = self.link(port, password="wrong")

        refusals = yield smsc.wait_for(2, dir="out", pdu="bind_transceiver_resp")

        self.assertEqual([r["command_status"] for r in refusals], [STATUSES["ESME_RBINDFAIL"]] * 2)
        self.assertEqual([r["session"] for r in refusals], [1, 2])
        # The first connection was closed by us after the refusal, before the retry.
        yield smsc.wait_for(event="close", session=1)
        self.assertNotEqual(link.state, BOUND)
        self.assertIn("bind", link.last_error)
        self.assertIn("ESME_RBINDFAIL", link.last_error)

    @inlineCallbacks
    def test_smsc_unbind_then_rebind(self) -> Any:
        """When node-smpp unbinds, the link answers with unbind_resp, binds again on a new connection and submits there."""
        smsc, port = yield self.start_smsc()
        link = self.link(port)
        yield link.when_bound()

        smsc.transport.write(b"unbind\n")

        [answer] = yield smsc.wait_for(dir="in", pdu="unbind_resp")
        self.assertEqual((answer["session"], answer["command_status"]), (1, 0))
        yield smsc.wait_for(dir="out", pdu="bind_transceiver_resp", session=2, command_status=0)
        yield link.when_bound()
        response = yield link.submit(self.submit_sm())
        self.assertEqual(response.params["message_id"], b"node-1")
        [seen] = yield smsc.wait_for(dir="in", pdu="submit_sm")
        self.assertEqual(seen["session"], 2)

    @inlineCallbacks
    def test_enquire_link_when_idle(self) -> Any:
        """An idle bound link sends enquire_link every keep_alive; node-smpp answers and the link stays bound on the same session."""
        smsc, port = yield self.start_smsc()
        link = self.link(port, keep_alive='"200ms"')
        yield link.when_bound()

        answers = yield smsc.wait_for(2, dir="out", pdu="enquire_link_resp")

        self.assertEqual([(a["session"], a["command_status"]) for a in answers], [(1, 0), (1, 0)])
        enquiries = smsc.matching(dir="in", pdu="enquire_link")
        self.assertEqual([e["sequence_number"] for e in enquiries[:2]],
                         [a["sequence_number"] for a in answers])
        self.assertEqual(link.state, BOUND)

    @inlineCallbacks
    def test_stop_unbinds(self) -> Any:
        """stopService sends unbind, node-smpp answers it and the connection closes."""
        smsc, port = yield self.start_smsc()
        link = self.link(port)
        yield link.when_bound()

        yield link.stopService()

        [unbind] = yield smsc.wait_for(dir="in", pdu="unbind")
        self.assertEqual(unbind["session"], 1)
        yield smsc.wait_for(event="close", session=1)
        self.assertEqual(smsc.matching(pdu="unbind_resp")[0]["command_status"], 0)


PHONE = "15550001"
GATEWAY_NUMBER = "15550100"


class TwistedSMSCInteropTests(TestCase):
    """The whole gateway against an smpp.twisted3 SMSC that uses ASCII for data_coding 0, over 127.0.0.1."""

    timeout = 20
    skip = None if os.environ.get("CI") == "true" else TWISTED_MISSING

    def setUp(self) -> None:
        if TWISTED_MISSING is not None:
            self.fail(f"CI=true but {TWISTED_MISSING}")
        capture = capturedLogs()
        self.events = capture.__enter__()
        self.addCleanup(capture.__exit__, None, None, None)
        self.request = 0

    @inlineCallbacks
    def start(self, alphabet: str | None) -> Any:
        """The SMSC, and a gateway bound to it with Dialogs on and a desk as Recipient."""
        self.smsc = TwistedSMSC()
        port = yield self.smsc.listen(reactor)
        self.addCleanup(self.smsc.stop)
        setting = "" if alphabet is None else f'default_alphabet = "{alphabet}"\n'
        config = parse_config(
            f'[[server]]\nname = "tw"\naddress = "127.0.0.1:{port}"\nsystem_id = "interop"\n'
            f'password = "pw"\ndialogs = true\nrecipient = "desk@example.com"\n'
            f'sender = "+{GATEWAY_NUMBER}"\n{setting}'
        )
        self.host = yield start_gateway(self, config, lambda link: link.stopService())

    @inlineCallbacks
    def im_to_phone(self, sender: str, body: str) -> Any:
        """An IM user's message to the phone; returns the submit_sm the SMSC got."""
        self.request += 1
        answer = yield self.host.callRemote(
            SendSignal, request_id=f"r{self.request}", method="MESSAGE", sender=sender,
            recipient=f"+{PHONE}@tw._smpp", body=body)
        self.assertEqual(answer["message_ids"], [f"tw-{self.request}"])
        return self.smsc.submits[-1]

    @inlineCallbacks
    def phone_replies(self, text: str) -> Any:
        """The phone's reply, sent by the SMSC in ASCII; returns the IM message the host got."""
        response = yield self.smsc.deliver(PHONE, GATEWAY_NUMBER, text)
        self.assertEqual(response.status.name, "ESME_ROK")
        signal = yield self.host.signals.get()
        self.assertEqual((signal["sender"], signal["server"]), (f"+{PHONE}@tw._smpp", "tw"))
        return signal["recipient"], signal["body"]

    def hints(self) -> list[str]:
        return [formatEvent(e) for e in self.events
                if e.get("log_level") == LogLevel.warn and "default_alphabet" in formatEvent(e)]

    @inlineCallbacks
    def two_dialogs(self) -> Any:
        """Alice and Bob write to the phone; returns the short_message bytes the SMSC got for each."""
        alice = yield self.im_to_phone("alice@example.com", "Lunch?")
        bob = yield self.im_to_phone("bob@example.com", "Call me")
        return alice.params["short_message"], bob.params["short_message"]

    @inlineCallbacks
    def test_dialog_replies_with_the_default_setting(self) -> Any:
        """On a link left at gsm, the SMSC's ASCII "@b: fine" reaches Bob and "@@ ..." the desk; one problems line suggests ascii."""
        yield self.start(None)
        alice, bob = yield self.two_dialogs()
        # GSM on the way out, as configured: the SMSC reads "@" as NUL.
        self.assertEqual(alice, b"\x00a=alice\x00example.com Lunch?")
        self.assertEqual(bob[:4].hex(" "), "00 62 3d 62")

        self.assertEqual((yield self.phone_replies("@b: fine")), ("bob@example.com", "fine"))
        self.assertEqual((yield self.phone_replies("@a yes")), ("alice@example.com", "yes"))
        self.assertEqual((yield self.phone_replies("@@ for the desk")),
                         ("desk@example.com", "for the desk"))
        [hint] = self.hints()
        self.assertIn('default_alphabet = "ascii" would fit', hint)

    @inlineCallbacks
    def test_dialog_replies_with_ascii(self) -> Any:
        """With default_alphabet = "ascii" the SMSC reads our prefixes as written, and "@" in a reply stays "@"."""
        yield self.start("ascii")
        alice, bob = yield self.two_dialogs()
        self.assertEqual(alice, b"@a=alice@example.com Lunch?")
        self.assertEqual(TwistedSMSC.text(self.smsc.submits[1]), "@b=bob@example.com Call me")

        self.assertEqual((yield self.phone_replies("@B: at 12 @ Joe's")),
                         ("bob@example.com", "at 12 @ Joe's"))
        self.assertEqual((yield self.phone_replies("@@ mail desk@example.com")),
                         ("desk@example.com", "mail desk@example.com"))
        self.assertEqual(self.hints(), [])
