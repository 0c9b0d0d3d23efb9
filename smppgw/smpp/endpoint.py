"""
Where a link connects: the client endpoint of a server's ``[tls:]host[:port]``
(TLS verified by `smppgw.smpp.tls`, bound to the module's source address), and
the guard that keeps ClientService from hearing of a connection lost before
its bind succeeded (see `smppgw.smpp.link`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet import endpoints
from twisted.internet.defer import Deferred
from twisted.internet.error import (
    ConnectionDone,
    ConnectionRefusedError,
    DNSLookupError,
    TCPTimedOutError,
    TimeoutError,
)
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from smppgw.smpp.log import SmppLog
from smppgw.smpp.protocol import ESMEFactory, ESMEProtocol
from smppgw.smpp.tls import VerifyingClientTLS

if TYPE_CHECKING:
    from smppgw.config import ServerConfig


def connect_error(failure: Failure) -> str:
    """A failed connect in a few words."""
    if failure.check(ConnectionRefusedError):
        return "connection refused"
    if failure.check(TimeoutError, TCPTimedOutError):
        return "connection timed out"
    if failure.check(DNSLookupError):
        return "host name not found"
    return failure.getErrorMessage()


class _LossGuard(Protocol):
    """Forwards everything to the wrapped protocol, but hides from ClientService
    the loss of a connection whose bind never succeeded."""

    def __init__(self, wrapped: Any, esme: ESMEProtocol) -> None:
        self.wrapped = wrapped
        self.esme = esme

    def makeConnection(self, transport: Any) -> None:
        Protocol.makeConnection(self, transport)
        self.wrapped.makeConnection(transport)

    def dataReceived(self, data: bytes) -> None:
        self.wrapped.dataReceived(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if reason is None:
            reason = Failure(ConnectionDone("connection lost"))
        if self.esme.ever_bound:
            self.wrapped.connectionLost(reason)
        else:
            self.esme.connectionLost(reason)


class _GuardFactory(Factory):
    def __init__(self, wrapped: Any, esme_factory: ESMEFactory) -> None:
        self.wrapped = wrapped
        self.esme_factory = esme_factory

    def buildProtocol(self, addr: Any) -> Protocol | None:
        proxy = self.wrapped.buildProtocol(addr)
        if proxy is None:
            return None
        esme = self.esme_factory.last_built
        assert esme is not None  # built by the call just above
        return _LossGuard(proxy, esme)

    def doStart(self) -> None:
        self.wrapped.doStart()

    def doStop(self) -> None:
        self.wrapped.doStop()


@implementer(IStreamClientEndpoint)
class GuardedEndpoint:
    def __init__(
        self,
        endpoint: Any,
        esme_factory: ESMEFactory,
        on_connect: Callable[[], None],
        on_failed: Callable[[Failure], None],
    ) -> None:
        self.endpoint = endpoint
        self.esme_factory = esme_factory
        self.on_connect = on_connect
        self.on_failed = on_failed

    def connect(self, factory: Any) -> Deferred[Any]:
        self.on_connect()
        d = self.endpoint.connect(_GuardFactory(factory, self.esme_factory))

        def failed(failure: Failure) -> Failure:
            self.on_failed(failure)
            return failure

        return d.addCallbacks(lambda guard: guard.wrapped, failed)

    def __repr__(self) -> str:
        return repr(self.endpoint)


def load_ca_bundle(path: str) -> Any:
    """A trust root holding every certificate of a PEM bundle (not only the first)."""
    from twisted.internet import ssl

    with open(path, "rb") as f:
        data = f.read()
    marker = b"-----BEGIN CERTIFICATE-----"
    chunks = [marker + rest for rest in data.split(marker)[1:]]
    if not chunks:
        raise ValueError(f"{path} holds no PEM certificate")
    return ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(c) for c in chunks])


def build_endpoint(reactor: Any, server: ServerConfig, source_address: str = "", log: SmppLog | None = None) -> Any:
    """The client endpoint for ``[tls:]host[:port]``, bound to ``source_address`` if set."""
    bind = (source_address, 0) if source_address else None
    tcp = endpoints.HostnameEndpoint(reactor, server.host, server.port, timeout=30, bindAddress=bind)
    if not server.tls:
        return tcp
    from twisted.internet import ssl

    if not server.verify:
        if log is not None:
            log.problem("TLS certificate verification is OFF for {address}: for test SMSCs only",
                        address=server.address)
        options: Any = ssl.CertificateOptions(verify=False)
        return endpoints.wrapClientTLS(options, tcp)
    trust = load_ca_bundle(server.ca_file) if server.ca_file else None
    client = None
    if server.client_cert:
        with open(server.client_cert, "rb") as f:
            client = ssl.PrivateCertificate.loadPEM(f.read())
    return endpoints.wrapClientTLS(VerifyingClientTLS(server.host, trust, client), tcp)
