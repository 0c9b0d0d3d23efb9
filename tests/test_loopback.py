"""Integration tests: links to the SMSC simulator over 127.0.0.1, plain TCP and TLS."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.logger import formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from smppgw.config import parse_config
from smppgw.smpp.codec import PDU
from smppgw.smpp.link import BOUND, Link, build_endpoint
from smppgw.testing.process import make_authority, make_certificate
from smppgw.testing.simulator import SMSCSimulator


class LoopbackCase(TestCase):
    """Links over 127.0.0.1 to an SMSC simulator that the test starts."""

    timeout = 20

    @inlineCallbacks
    def listen(self, description: str = "tcp:0:interface=127.0.0.1") -> Any:
        self.simulator = SMSCSimulator({"esme": "pw"}, reactor)
        port = yield serverFromString(reactor, description).listen(self.simulator)
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def link(self, address: str, source: str = "", log_level: str = "none", **extra: str) -> Link:
        lines = "\n".join(f"{k} = {v}" for k, v in extra.items())
        server = parse_config(
            f'[[server]]\nname = "sim"\naddress = "{address}"\n'
            f'system_id = "esme"\npassword = "pw"\n{lines}\n'
        ).servers[0]
        link = Link(server, build_endpoint(reactor, server, source), reactor, log_level,
                    initial_delay=0.05, max_delay=0.2, jitter=lambda: 0.0)
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


class LoopbackTests(LoopbackCase):
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


class TLSRefusalTests(LoopbackCase):
    """Each failed check of the SMSC's certificate refuses it before a byte of SMPP leaves, and says which, once."""

    @inlineCallbacks
    def serve(self, hostname: str, **certificate: Any) -> Any:
        """A TLS simulator serving a certificate for `hostname` that a test CA signed; (port, CA file)."""
        folder = self.mktemp()
        authority = make_authority(folder)
        _, both = make_certificate(f"{folder}/leaf", hostname, authority=authority, **certificate)
        port = yield self.listen(f"ssl:0:interface=127.0.0.1:privateKey={both}")
        self.built: list[Any] = []
        build = self.simulator.buildProtocol
        self.simulator.buildProtocol = lambda addr: self.built.append(build(addr)) or self.built[-1]
        return port, authority.path

    @inlineCallbacks
    def first_attempt(self, port: int, **extra: str) -> Any:
        """The gateway's log lines until it schedules its first retry (or binds), at log_level problems."""
        lines: list[str] = []
        retrying: Deferred[None] = Deferred()

        def observe(event: dict[str, Any]) -> None:
            if event.get("log_namespace") != "smppgw":
                return
            lines.append(formatEvent(event))
            if ("retry in" in lines[-1] or "bound to" in lines[-1]) and not retrying.called:
                retrying.callback(None)

        globalLogPublisher.addObserver(observe)
        self.addCleanup(globalLogPublisher.removeObserver, observe)
        link = self.link(f"tls:localhost:{port}", log_level="problems", **extra)
        yield retrying
        # The server saw the connection, and not one SMPP byte on it.
        self.assertEqual(self.simulator.received, [])
        self.assertTrue(self.built)
        self.assertEqual([c.pdus_received for c in self.built], [0] * len(self.built))
        self.assertNotEqual(link.state, BOUND)
        return lines

    @inlineCallbacks
    def assert_refused(self, hostname: str, reason: str, trusted: str | None = None,
                       **certificate: Any) -> Any:
        """A certificate for `hostname` is refused for tls:localhost with one line giving `reason`.

        The link trusts the CA that signed it, or the certificate file `trusted`.
        """
        port, ca = yield self.serve(hostname, **certificate)
        lines = yield self.first_attempt(port, ca_file=f'"{trusted or ca}"')
        self.assertEqual(lines, [
            f"SMPP [sim] connecting to tls:localhost:{port}",
            f"SMPP [sim] TLS certificate of localhost refused: {reason}; retry in 0.1s"])

    def test_no_subject_alt_name(self) -> Any:
        """A CA-signed certificate with CN=evil.attacker.example and no subjectAltName is refused for tls:localhost."""
        return self.assert_refused(
            "evil.attacker.example",
            "no subjectAltName (the certificate names CN=evil.attacker.example)",
            subject_alt_name=False)

    def test_no_subject_alt_name_even_for_the_right_cn(self) -> Any:
        """Without a subjectAltName even CN=localhost is refused: the CN is never read as a name."""
        return self.assert_refused("localhost", "no subjectAltName (the certificate names CN=localhost)",
                                   subject_alt_name=False)

    def test_name_mismatch(self) -> Any:
        """A CA-signed certificate for another name is refused as a name mismatch."""
        return self.assert_refused(
            "smsc.example", "name mismatch (the certificate names CN=smsc.example, DNS:smsc.example)")

    def test_expired(self) -> Any:
        """A CA-signed certificate for the right name whose validity has ended is refused as expired."""
        return self.assert_refused(
            "localhost", "expired (the certificate names CN=localhost, DNS:localhost)", expired=True)

    def test_untrusted_issuer(self) -> Any:
        """A certificate signed by a CA the link does not trust is refused as from an untrusted issuer."""
        other = make_authority(self.mktemp(), "another CA")
        return self.assert_refused(
            "localhost", "untrusted issuer (the certificate names CN=localhost, DNS:localhost)",
            trusted=other.path)

    @inlineCallbacks
    def test_matching_subject_alt_name_binds(self) -> Any:
        """A CA-signed certificate whose subjectAltName is the host binds, and the bind reaches the SMSC."""
        port, ca = yield self.serve("localhost")
        link = self.link(f"tls:localhost:{port}", ca_file=f'"{ca}"')
        yield link.when_bound()
        self.assertEqual([r.pdu.command for r in self.simulator.received], ["bind_transceiver"])
