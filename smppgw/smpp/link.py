"""
One SMSC link: a ClientService that connects, binds and reconnects.

The bind is the ClientService's ``prepareConnection``, so a connection counts
as made only once it is bound, and a failed bind backs off like a failed
connect.  Two traps of ClientService (Twisted 26.10) are handled here:

- a connection lost while the bind is pending must fail the bind (the session
  does that in ``connectionLost``), and the service must not hear of the loss
  of a connection it never saw as made: its state machine has no transition
  for that and logs an error.  `smppgw.smpp.endpoint.GuardedEndpoint` passes
  loss notifications on only for connections that bound.
- ``stopService()`` called synchronously from a callback of the connection
  being made raises inside the state machine, so the link always leaves the
  current call stack (``callLater(0)``) before stopping it or telling its
  observers that it is bound.

ClientService logs each retry itself, at every level and naming the
endpoint's repr; the link silences it and writes one SMPP line per failed
attempt or lost connection instead, from its retry policy: what failed, for
which server and address, and the delay rounded to a tenth of a second.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.application.internet import ClientService, backoffPolicy
from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import ILogObserver, Logger
from twisted.python.failure import Failure
from zope.interface import implementer, provider

from smppgw.smpp.codec import PDU
from smppgw.smpp.endpoint import GuardedEndpoint, build_endpoint, connect_error
from smppgw.smpp.interfaces import ILink
from smppgw.smpp.log import SmppLog
from smppgw.smpp.protocol import ESMEFactory, ESMEProtocol
from smppgw.smpp.session import Answer, DeliverHook, NotBound, SessionSettings, refuse_for_now
from smppgw.smpp.tls import CertificateRefused
from smppgw.stats import ServerStats

__all__ = ["BINDING", "BOUND", "CONNECTING", "DISCONNECTED", "UNBINDING", "Link",
           "build_endpoint", "settings_for"]

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

    from smppgw.config import ServerConfig

DISCONNECTED, CONNECTING, BINDING, BOUND, UNBINDING = (
    "disconnected", "connecting", "binding", "bound", "unbinding",
)

#: How long a stopping link waits for outstanding responses and unbind_resp.
STOP_GRACE = 5.0


@provider(ILogObserver)
def _discard(event: dict[str, Any]) -> None:
    pass


class _QuietClientService(ClientService):
    """A ClientService that writes no log lines of its own (the link writes them)."""

    _log = Logger(observer=_discard)


def settings_for(server: ServerConfig) -> SessionSettings:
    return SessionSettings(
        system_id=server.system_id,
        password=server.password,
        system_type=server.system_type,
        bind_type=server.bind_type,
        window=server.window,
        response_timeout=server.response_timeout,
        keep_alive=server.keep_alive,
    )


@implementer(ILink)
class Link(Service):
    """One SMSC: connects, binds, reconnects with jittered backoff, and submits."""

    def __init__(
        self,
        server: ServerConfig,
        endpoint: Any,
        clock: IReactorTime,
        log_level: str = "problems",
        *,
        initial_delay: float = 1.0,
        max_delay: float = 60.0,
        jitter: Callable[[], float] = random.random,
        stats: ServerStats | None = None,
    ) -> None:
        self.server = server
        #: Where the link's figures go: the gateway's counters of this server
        #: name (which outlive the link), or the link's own.
        self.stats: ServerStats = stats if stats is not None else ServerStats(server.name, clock)
        self.setName(f"smsc:{server.name}")
        self.clock = clock
        self.log = SmppLog(server.name, log_level)
        self.state = DISCONNECTED
        self._last_error = ""
        self.stats.attach(self)  # a link made to replace another is the one shown
        # What ended the current attempt (or bound connection), as the retry
        # line says it, and whether it was a bound connection that was lost.
        self._attempt_failure: tuple[str, bool] | None = None
        # submit_sm accepted on connections that are gone (see `sent`).
        self._sent_before = 0
        self.received = 0
        self.deliver: DeliverHook = refuse_for_now
        self._protocol: ESMEProtocol | None = None
        self._observers: list[Callable[[str], None]] = []
        self._bound_waiters: list[Deferred[Link]] = []
        self._stopping = False
        self.factory = ESMEFactory(settings_for(server), clock, self.log, self._deliver,
                                   on_protocol=self._built)
        self.endpoint = GuardedEndpoint(endpoint, self.factory, self._connecting,
                                         self._connect_failed)
        self._backoff = backoffPolicy(initial_delay, max_delay, jitter=jitter)
        self.clientService = _QuietClientService(
            self.endpoint,
            self.factory,
            retryPolicy=self._retry_delay,
            clock=clock,
            prepareConnection=self._bind,
        )

    # -- observation ------------------------------------------------------------

    def observe(self, observer: Callable[[str], None]) -> None:
        """Call ``observer(state)`` on every state change."""
        self._observers.append(observer)

    def _set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.state = state
        self.stats.state_changed(state, self)
        for observer in list(self._observers):
            observer(state)

    def when_bound(self) -> Deferred[Link]:
        """A fresh Deferred that fires with this link when it is (or next becomes) bound."""
        if self.state == BOUND:
            return succeed(self)
        d: Deferred[Link] = Deferred()
        self._bound_waiters.append(d)
        return d

    @property
    def ready(self) -> bool:
        """Whether a submit now would go out: bound, not stopping, and the session still open."""
        esme = self._protocol
        return (self.state == BOUND and not self._stopping and esme is not None
                and esme.session.can_submit)

    def reset(self, reason: str) -> None:
        """Close the current connection (it reconnects): for an SMSC that stopped answering."""
        esme = self._protocol
        if esme is not None and esme.transport is not None:
            self.log.problem("closing the link: {reason}", reason=reason)
            esme.session.close_reason = reason
            esme.transport.loseConnection()

    @property
    def last_error(self) -> str:
        """What ended the last attempt or connection; "" once bound again."""
        return self._last_error

    @last_error.setter
    def last_error(self, text: str) -> None:
        self._last_error = text
        self.stats.error(text, self)

    @property
    def protocol(self) -> ESMEProtocol | None:
        return self._protocol if self.state == BOUND else None

    # -- connection life --------------------------------------------------------

    def _connecting(self) -> None:
        self._attempt_failure = None
        self.stats.connecting()
        self._set_state(CONNECTING)
        self.log.major("connecting to {address}", address=self.server.address)

    def _connect_failed(self, failure: Failure) -> None:
        error = connect_error(failure)
        self._failed(f"cannot connect to {self.server.address}: {error}", f"cannot connect: {error}")
        self._set_state(DISCONNECTED)

    def _failed(self, line: str, error: str, lost_bound: bool = False) -> None:
        """Keep what ended this attempt for the retry line (the first cause only) and as last_error."""
        if self._attempt_failure is None or lost_bound:
            self._attempt_failure = (line, lost_bound)
            self.last_error = error

    def _retry_delay(self, attempt: int) -> float:
        """ClientService's retry policy: the backoff delay, and the one line that says why and when."""
        delay = self._backoff(attempt)
        line, lost_bound = self._attempt_failure or (
            f"connection to {self.server.address} failed", False)
        self._attempt_failure = None
        if lost_bound:  # a relay report: the link was up
            self.log.major("{failure}; reconnecting in {delay}s", failure=line, delay=round(delay, 1))
        else:
            self.log.problem("{failure}; retry in {delay}s", failure=line, delay=round(delay, 1))
        return delay

    def _built(self, protocol: ESMEProtocol) -> None:
        def lost(reason: str) -> None:
            self._sent_before += protocol.session.submits_accepted
            self._lost(protocol, reason)

        protocol.on_lost(lost)

    @property
    def sent(self) -> int:
        """How many submit_sm the SMSC accepted on this link, over every connection."""
        esme = self._protocol
        return self._sent_before + (esme.session.submits_accepted if esme is not None else 0)

    def _bind(self, protocol: Any) -> Deferred[Any]:
        esme = self.factory.last_built
        assert esme is not None
        self._protocol = esme
        self._set_state(BINDING)

        def bound(_: Any) -> Any:
            esme.ever_bound = True
            self.last_error = ""
            self._attempt_failure = None
            self.stats.bound(self)
            self._set_state(BOUND)
            self.log.major("bound to {address} as {bind_type}", address=self.server.address,
                           bind_type=self.server.bind_type)
            # Observers run outside ClientService's transition (see module docstring).
            self.clock.callLater(0, self._announce_bound, esme)
            return protocol

        def failed(failure: Failure) -> Failure:
            # A connection lost first has said why already (a refused certificate, say).
            error = failure.getErrorMessage()
            self._failed(f"bind to {self.server.address} failed: {error}", error)
            return failure

        return esme.session.bind().addCallbacks(bound, failed)

    def _announce_bound(self, esme: ESMEProtocol) -> None:
        if self.state != BOUND or self._protocol is not esme:
            return
        waiters, self._bound_waiters = self._bound_waiters, []
        for d in waiters:
            d.callback(self)

    def _lost(self, protocol: ESMEProtocol, reason: str) -> None:
        if protocol is not self._protocol:
            return
        self._protocol = None
        address = self.server.address
        lost = protocol.lost_failure
        if lost is not None and lost.check(CertificateRefused):
            self._failed(reason, reason)  # it names the host and the check that failed
        elif protocol.ever_bound:
            self._failed(f"link to {address} lost: {reason}", reason, lost_bound=True)
        else:
            self._failed(f"connection to {address} lost before the bind: {reason}", reason)
        self._set_state(DISCONNECTED)

    def _deliver(self, pdu: PDU) -> Any:
        self.received += 1
        self.stats.delivered()
        return self.deliver(pdu)

    # -- use ----------------------------------------------------------------------

    def submit(self, pdu: PDU, answer: Answer | None = None) -> Any:
        """Send a submit_sm (or data_sm); its response, or a RequestFailed, goes to
        `answer` (see `Session.submit`), which is returned: a new Deferred if None."""
        esme = self.protocol
        if esme is None or self._stopping:
            error = NotBound(f"link {self.server.name!r} is {self.state}")
            if answer is None:
                return fail(error)
            answer.errback(error)
            return answer
        return esme.session.submit(pdu, answer)

    def configure(self, server: ServerConfig) -> None:
        """New settings of this server that need no new connection: the window, the
        response timeout and keep-alive apply to the bound session at once."""
        if server.name != self.server.name:
            raise ValueError(f"link {self.server.name!r} cannot take the settings of {server.name!r}")
        self.server = server
        settings = settings_for(server)
        self.factory.settings = settings
        esme = self._protocol
        if esme is not None:
            esme.session.settings = settings
            esme.session.window_changed()

    # -- service ------------------------------------------------------------------

    def startService(self) -> None:
        super().startService()
        self._stopping = False
        self.clientService.startService()

    def stopService(self) -> Deferred[None]:
        """Unbind if bound (waiting a bounded time for outstanding responses), then stop reconnecting."""
        super().stopService()
        self._stopping = True
        done: Deferred[None] = Deferred()
        # Never stop the ClientService from inside one of its own callbacks.
        self.clock.callLater(0, self._stop_now, done)
        return done

    def _stop_now(self, done: Deferred[None]) -> None:
        esme = self._protocol
        if esme is None or self.state != BOUND:
            self.clientService.stopService().chainDeferred(done)
            return
        deadline = self.clock.seconds() + min(STOP_GRACE, self.server.response_timeout)

        def drain() -> None:
            bound = self.state == BOUND and esme.session.bound
            if esme.session.outstanding and self.clock.seconds() < deadline and bound:
                self.clock.callLater(0.05, drain)
                return
            if bound:
                self._set_state(UNBINDING)
                d = esme.session.unbind()
                d.addErrback(lambda f: self.log.low("unbind: {error}", error=f.getErrorMessage()))
                d.addBoth(lambda _: self.clientService.stopService())
                d.addBoth(lambda _: done.callback(None))
            else:
                self.clientService.stopService().chainDeferred(done)

        drain()
