"""Integration tests: links to the SMSC simulator over 127.0.0.1, plain TCP and TLS."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.trial.unittest import TestCase

from smppgw.codec import PDU
from smppgw.config import parse_config
from smppgw.link import BOUND, Link, build_endpoint
from smppgw.simulator import SMSCSimulator
from smppgw.testing import make_certificate


class LoopbackTests(TestCase):
    timeout = 20

    @inlineCallbacks
    def listen(self, description: str = "tcp:0:interface=127.0.0.1") -> Any:
        self.simulator = SMSCSimulator({"esme": "pw"}, reactor)
        port = yield serverFromString(reactor, description).listen(self.simulator)
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def link(self, address: str, source: str = "", **extra: str) -> Link:
        lines = "\n".join(f"{k} = {v}" for k, v in extra.items())
        server = parse_config(
            f'[[server]]\nname = "sim"\naddress = "{address}"\n'
            f'system_id = "esme"\npassword = "pw"\n{lines}\n'
        ).servers[0]
        link = Link(server, build_endpoint(reactor, server, source), reactor, "none",
                    initial_delay=0.05, max_delay=0.2)
        link.startService()
        self.addCleanup(self.stop, link)
        return link

    @inlineCallbacks
    def stop(self, link: Link) -> Any:
        yield link.stopService()
        # Let the simulator see the connection close before the port goes.
        for connection in list(self.simulator.connections):
            connection.close()
        d: Deferred[None] = Deferred()
        reactor.callLater(0, d.callback, None)
        yield d

    @inlineCallbacks
    def test_bind_and_submit(self) -> Any:
        """A link binds to the simulator over TCP and a submit_sm reaches it and gets a message id."""
        port = yield self.listen()
        link = self.link(f"127.0.0.1:{port}")
        yield link.when_bound()
        response = yield link.submit(PDU("submit_sm", params={
            "source_addr": b"smppgw", "destination_addr": b"15550001",
            "dest_addr_ton": 1, "dest_addr_npi": 1, "short_message": b"hello"}))
        self.assertTrue(response.params["message_id"])
        [accepted] = self.simulator.accepted
        self.assertEqual(accepted.params["short_message"], b"hello")
        self.assertEqual(accepted.params["destination_addr"], b"15550001")

    @inlineCallbacks
    def test_source_address(self) -> Any:
        """[module] source_address is the local address of the SMPP connection."""
        port = yield self.listen()
        link = self.link(f"127.0.0.1:{port}", source="127.0.0.2")
        yield link.when_bound()
        [connection] = self.simulator.connections
        self.assertEqual(connection.transport.getPeer().host, "127.0.0.2")

    @inlineCallbacks
    def test_smsc_unbind_then_rebind(self) -> Any:
        """When the SMSC unbinds, the link answers and binds again by itself."""
        port = yield self.listen()
        link = self.link(f"127.0.0.1:{port}")
        yield link.when_bound()
        self.simulator.unbind_all()
        yield self.simulator.when_received(1, "unbind_resp")
        waiting = link.when_bound()
        self.assertNotEqual(link.state, BOUND)
        yield waiting
        self.assertEqual(link.state, BOUND)

    @inlineCallbacks
    def test_tls_verified(self) -> Any:
        """Over TLS with the SMSC's certificate as ca_file, the link verifies it and binds."""
        cert, both = make_certificate(self.mktemp())
        port = yield self.listen(f"ssl:0:interface=127.0.0.1:privateKey={both}")
        link = self.link(f"tls:localhost:{port}", ca_file=f'"{cert}"')
        yield link.when_bound()
        self.assertEqual(link.state, BOUND)

    @inlineCallbacks
    def test_tls_unverified_refused(self) -> Any:
        """A self-signed certificate that no trusted CA signed is refused by default: no bind."""
        cert, both = make_certificate(self.mktemp())
        port = yield self.listen(f"ssl:0:interface=127.0.0.1:privateKey={both}")
        link = self.link(f"tls:localhost:{port}")
        seen: Deferred[None] = Deferred()
        link.observe(lambda state: state == "disconnected" and not seen.called and seen.callback(None))
        yield seen
        self.assertNotEqual(link.state, BOUND)
        self.assertEqual(self.simulator.received, [])
        self.assertIn("certificate", link.last_error.lower())

    @inlineCallbacks
    def test_tls_wrong_hostname_refused(self) -> Any:
        """A trusted certificate for another hostname is refused: hostnames are checked."""
        cert, both = make_certificate(self.mktemp(), hostname="smsc.example")
        port = yield self.listen(f"ssl:0:interface=127.0.0.1:privateKey={both}")
        link = self.link(f"tls:localhost:{port}", ca_file=f'"{cert}"')
        seen: Deferred[None] = Deferred()
        link.observe(lambda state: state == "disconnected" and not seen.called and seen.callback(None))
        yield seen
        self.assertEqual(self.simulator.received, [])

    @inlineCallbacks
    def test_tls_verify_off(self) -> Any:
        """verify = false (for test SMSCs) binds despite an untrusted certificate."""
        cert, both = make_certificate(self.mktemp())
        port = yield self.listen(f"ssl:0:interface=127.0.0.1:privateKey={both}")
        link = self.link(f"tls:localhost:{port}", verify="false")
        yield link.when_bound()
        self.assertEqual(link.state, BOUND)
