"""
The host-facing AMP contract, and the gateway's side of it.

Host -> gateway: `Login`, `SendSignal`, `ServerStatus`.
Gateway -> host: `DeliverSignal`, `SignalReport` (the host answers ``{}`` or
the error ``REFUSED`` / ``TRY_LATER``).

Responders delegate to the gateway's outbound queue; they never reach into an
SMPP protocol.  With ``[amp] secret`` set, everything but `Login` fails with
``UNAUTHORIZED`` until the host has logged in, and a wrong secret closes the
connection.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.protocol import Factory
from twisted.protocols import amp

from .errors import (
    BadAddressError,
    BadRequest,
    NotRelayed,
    ServerDisabledError,
    SmscRejected,
    TooLongError,
    TryLater,
    Unauthorized,
    UnknownServerError,
    UnsupportedMethod,
)
from .smpplog import SmppLog

if TYPE_CHECKING:
    from .queue import Outbound


class Refused(Exception):
    """The host refused a DeliverSignal / SignalReport for good."""


class HostTryLater(Exception):
    """The host cannot take a DeliverSignal / SignalReport now."""


_SIGNAL_ERRORS: dict[type[Exception], bytes] = {
    UnsupportedMethod: b"UNSUPPORTED_METHOD",
    BadRequest: b"BAD_REQUEST",
    BadAddressError: b"BAD_ADDRESS",
    UnknownServerError: b"UNKNOWN_SERVER",
    ServerDisabledError: b"SERVER_DISABLED",
    TooLongError: b"TOO_LONG",
    NotRelayed: b"NOT_RELAYED",
    SmscRejected: b"SMSC_REJECTED",
    TryLater: b"TRY_LATER",
    Unauthorized: b"UNAUTHORIZED",
}
_HOST_ERRORS: dict[type[Exception], bytes] = {Refused: b"REFUSED", HostTryLater: b"TRY_LATER"}


class Login(amp.Command):
    arguments = [(b"secret", amp.Unicode())]
    response: list[tuple[bytes, amp.Argument]] = []
    errors = {Unauthorized: b"UNAUTHORIZED"}


class SendSignal(amp.Command):
    arguments = [
        (b"request_id", amp.Unicode()),
        (b"method", amp.Unicode()),
        (b"sender", amp.Unicode()),
        (b"recipient", amp.Unicode()),
        (b"body", amp.Unicode()),
        (b"gateway", amp.Unicode(optional=True)),
    ]
    response = [
        (b"server", amp.Unicode()),
        (b"parts", amp.Integer()),
        (b"message_ids", amp.ListOf(amp.Unicode())),
    ]
    errors = _SIGNAL_ERRORS


class ServerStatus(amp.Command):
    arguments: list[tuple[bytes, amp.Argument]] = []
    response = [
        (b"servers", amp.AmpList([
            (b"name", amp.Unicode()),
            (b"mode", amp.Unicode()),
            (b"address", amp.Unicode()),
            (b"state", amp.Unicode()),
            (b"queued", amp.Integer()),
            (b"sent", amp.Integer()),
            (b"received", amp.Integer()),
            (b"last_error", amp.Unicode()),
        ])),
    ]
    errors = {Unauthorized: b"UNAUTHORIZED"}


class DeliverSignal(amp.Command):
    arguments = [
        (b"method", amp.Unicode()),
        (b"sender", amp.Unicode()),
        (b"recipient", amp.Unicode()),
        (b"body", amp.Unicode()),
        (b"server", amp.Unicode()),
    ]
    response: list[tuple[bytes, amp.Argument]] = []
    errors = _HOST_ERRORS


class SignalReport(amp.Command):
    arguments = [
        (b"request_id", amp.Unicode()),
        (b"message_id", amp.Unicode()),
        (b"state", amp.Unicode()),
        (b"error", amp.Unicode()),
        (b"server", amp.Unicode()),
    ]
    response: list[tuple[bytes, amp.Argument]] = []
    errors = _HOST_ERRORS


class HostRegistry:
    """The logged-in host connections, for handing them inbound messages round-robin."""

    def __init__(self) -> None:
        self.hosts: list[GatewayAMP] = []
        self._next = 0
        self._observers: list[Callable[[], None]] = []

    def add(self, host: GatewayAMP) -> None:
        if host not in self.hosts:
            self.hosts.append(host)
            for observer in list(self._observers):
                observer()

    def remove(self, host: GatewayAMP) -> None:
        if host in self.hosts:
            self.hosts.remove(host)

    def on_host(self, observer: Callable[[], None]) -> None:
        """Call ``observer()`` whenever a host becomes available."""
        self._observers.append(observer)

    def pick(self) -> GatewayAMP | None:
        if not self.hosts:
            return None
        self._next %= len(self.hosts)
        host = self.hosts[self._next]
        self._next += 1
        return host


class GatewayAMP(amp.AMP):
    """One host connection."""

    def __init__(self, outbound: Outbound, registry: HostRegistry, secret: str, log: SmppLog,
                 clock: Any) -> None:
        super().__init__()
        self.clock = clock
        self.outbound = outbound
        self.registry = registry
        self.secret = secret
        self.log = log
        self.logged_in = not secret

    def connectionMade(self) -> None:
        super().connectionMade()
        if self.logged_in:
            self.registry.add(self)

    def connectionLost(self, reason: Any) -> None:
        self.registry.remove(self)
        super().connectionLost(reason)

    def ampBoxReceived(self, box: amp.AmpBox) -> None:
        super().ampBoxReceived(box)
        if amp.COMMAND in box and amp.ASK in box:
            # The arguments are parsed and handed over by now; only the ask
            # tag is needed to answer.  A SendSignal stays pending until the
            # SMSC accepts it, so keeping its box whole would hold every
            # queued message's text twice.
            ask = box[amp.ASK]
            box.clear()
            box[amp.ASK] = ask

    def _check(self) -> None:
        if not self.logged_in:
            raise Unauthorized("Login first")

    @Login.responder
    def login(self, secret: str) -> dict[str, Any]:
        if self.secret and not hmac.compare_digest(secret.encode("utf-8"), self.secret.encode("utf-8")):
            self.log.problem("AMP host {peer} gave a wrong secret: closing", peer=self.transport.getPeer())
            # Close once the error answer below has been written.
            self.clock.callLater(0, self.transport.loseConnection)
            raise Unauthorized("wrong secret")
        self.logged_in = True
        self.registry.add(self)
        return {}

    @SendSignal.responder
    def send_signal(self, request_id: str, method: str, sender: str, recipient: str, body: str,
                    gateway: str | None = None) -> Deferred[dict[str, Any]]:
        if not self.logged_in:
            return fail(Unauthorized("Login first"))
        return self.outbound.send_signal(request_id, method, sender, recipient, body, gateway)

    @ServerStatus.responder
    def server_status(self) -> dict[str, Any]:
        self._check()
        return {"servers": self.outbound.status()}


class GatewayAMPFactory(Factory):
    """Builds a `GatewayAMP` per host connection."""

    noisy = False

    def __init__(self, outbound: Outbound, registry: HostRegistry, clock: Any, secret: str = "",
                 log: SmppLog | None = None) -> None:
        self.clock = clock
        self.outbound = outbound
        self.registry = registry
        self.secret = secret
        self.log = log or SmppLog("amp", "problems")

    def buildProtocol(self, addr: Any) -> GatewayAMP:
        protocol = GatewayAMP(self.outbound, self.registry, self.secret, self.log, self.clock)
        protocol.factory = self
        return protocol
