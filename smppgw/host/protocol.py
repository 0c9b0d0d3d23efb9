"""
The gateway's side of the AMP contract (`smppgw.host.commands`): one
`GatewayAMP` per host connection, built by `GatewayAMPFactory`.

Responders delegate to the gateway's outbound queue; they never reach into an
SMPP protocol.  The operator's commands (the ``smppgw`` command line's queue,
lookup, dialogs, reload and backup) are answered by `smppgw.host.operating`.  With ``[amp] secret`` set, everything but `Login` fails with
``UNAUTHORIZED`` until the host has logged in, and a wrong secret closes the
connection.  Only the contract's commands are answered: Twisted's built-in
ones (StartTLS) are not, and before Login nothing but Login is.

A connection that has not logged in is held to `LOGIN_BOX` bytes per box and
`LOGIN_TIMEOUT` seconds to log in; nothing a connection sent after a wrong
secret is read; a peer's wrong secrets are throttled (`smppgw.host.guard`); and
the factory accepts at most ``[amp] max_connections`` connections at once.

A host is untrusted input.  A command with a missing argument, or one that is
not UTF-8, gets ``BAD_REQUEST`` (Twisted's AMP would log a traceback and drop
the host); error descriptions are clipped so that the answer fits AMP's 64 KiB
value limit; a box that is neither a command nor the answer to one closes the
connection with a line in the log; and a host that sends without reading its
answers stops being read once its transport's write buffer is full, so that TCP
pushes back on it instead of the gateway buffering answers without bound.
"""

from __future__ import annotations

import hmac
import math
from functools import partial
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import fail, maybeDeferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory
from twisted.internet.threads import deferToThreadPool
from twisted.protocols import amp
from twisted.python.failure import Failure
from zope.interface import implementer

from smppgw.errors import Unauthorized
from smppgw.host.ampbox import BoxParser, BoxTooLarge, KeyTooLong
from smppgw.host.commands import Login, ServerStatus, remote_error
from smppgw.host.fastpath import SendSignalFastPath
from smppgw.host.guard import LoginThrottle, Peer, peer_of
from smppgw.host.operating import OPERATOR_COMMANDS, OperatorCommands
from smppgw.host.registry import HostRegistry, IHost
from smppgw.smpp.log import SmppLog

if TYPE_CHECKING:
    from collections.abc import Callable

    from twisted.internet.defer import Deferred

    from smppgw.relay.outbound import Outbound


_CLOSED = Failure(ConnectionDone("connection closed"))
#: The largest box read from a host: a SendSignal with every argument at AMP's
#: 65,535-byte limit is about 400 KB; anything past this is not a command.
MAX_BOX = 1024 * 1024
#: The largest box read from a connection that has not logged in (a Login is
#: well under 1 KB).
LOGIN_BOX = 64 * 1024
#: Seconds a connection has to log in, when a secret is set.
LOGIN_TIMEOUT = 10.0
#: Seconds between two log lines about connections refused for the limit.
REFUSALS_LOGGED_EVERY = 60.0
#: The commands a host sends, by wire name (SendSignal has a path of its own).
_HOST_COMMANDS = frozenset((b"Login", b"ServerStatus")) | OPERATOR_COMMANDS


@implementer(IPushProducer)
class _ReadingPause:
    """Registered as the streaming producer of a host's transport: the transport
    pauses it when its write buffer is full, and it stops reading the host."""

    def __init__(self, transport: Any) -> None:
        self.transport = transport

    def pauseProducing(self) -> None:
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        pass


@implementer(IHost)
class GatewayAMP(SendSignalFastPath, OperatorCommands, amp.AMP):
    """One host connection."""

    _reading_pause: _ReadingPause | None = None
    _login_timer: Any = None
    #: Set once the connection is being closed: nothing more it sent is read.
    _closing = False
    #: Set by a refused Login: close once its answer is written.
    _refused = False
    peer = Peer("", "(not connected)")

    def __init__(self, outbound: Outbound, registry: HostRegistry, secret: str, log: SmppLog,
                 clock: Any, throttle: LoginThrottle | None = None) -> None:
        super().__init__()
        self.clock = clock
        self.outbound = outbound
        self.registry = registry
        self.secret = secret
        self.log = log
        self.logged_in = not secret
        self.throttle = throttle or LoginThrottle(clock, log)
        self._parser = BoxParser(self._box_parsed, MAX_BOX if self.logged_in else LOGIN_BOX)

    def makeConnection(self, transport: Any) -> None:
        # Not AMP.makeConnection: it logs every connection at info level, whatever
        # the log_level; the gateway's own line is in connectionMade.
        amp.BinaryBoxProtocol.makeConnection(self, transport)

    def connectionMade(self) -> None:
        super().connectionMade()
        transport: Any = self.transport
        self.peer = peer_of(transport)
        self.log.low("AMP host {peer} connected", peer=self.peer.shown)
        self._reading_pause = _ReadingPause(transport)
        transport.registerProducer(self._reading_pause, True)
        if self.logged_in:
            self.registry.add(self)
        else:
            self._login_timer = self.clock.callLater(LOGIN_TIMEOUT, self._login_timed_out)

    def connectionLost(self, reason: Failure = _CLOSED) -> None:
        self._closing = True
        self._reading_pause = None
        if self._login_timer is not None and self._login_timer.active():
            self._login_timer.cancel()
        self._login_timer = None
        self.registry.remove(self)
        factory = getattr(self, "factory", None)
        if isinstance(factory, GatewayAMPFactory):
            factory.connection_closed()
        self.log.low("AMP host {peer} disconnected", peer=self.peer.shown)
        # Not AMP.connectionLost, for the same reason as makeConnection.
        amp.BinaryBoxProtocol.connectionLost(self, reason)
        self.transport = None

    def _login_timed_out(self) -> None:
        self._login_timer = None
        self.log.low("AMP host {peer} did not log in within {timeout:g} s: closing",
                     peer=self.peer.shown, timeout=LOGIN_TIMEOUT)
        self._close()

    # -- a hostile or broken host ---------------------------------------------------

    def _unpause(self) -> None:
        # Before any loseConnection(): a transport does not finish closing while
        # a producer is registered (TLS) or paused (TCP resumes it instead).
        transport: Any = self.transport
        if self._reading_pause is not None and transport is not None:
            self._reading_pause = None
            transport.unregisterProducer()

    def _close(self) -> None:
        self._closing = True
        self._unpause()
        if self.transport is not None:
            self.transport.loseConnection()

    def sendBox(self, box: amp.AmpBox) -> None:
        if isinstance(box, amp.QuitBox):
            self._unpause()  # AMP closes the connection right after a QuitBox
        super().sendBox(box)

    def lengthLimitExceeded(self, length: int) -> None:
        self.log.problem("AMP host {peer} sent a key of {length} bytes (255 at most): closing",
                         peer=self.peer.shown, length=length)
        self._closing = True
        self._unpause()
        super().lengthLimitExceeded(length)

    def unhandledError(self, failure: Failure) -> None:
        self._unpause()
        super().unhandledError(failure)

    def dataReceived(self, data: bytes) -> None:
        """Boxes cut out of the stream by `BoxParser` (see smppgw.host.ampbox)."""
        if self._closing:
            return
        try:
            self._parser.feed(data)
        except KeyTooLong as error:
            self.lengthLimitExceeded(error.length)
        except BoxTooLarge as error:
            self.log.problem("AMP host {peer} sent a box over {limit} bytes: closing",
                             peer=self.peer.shown, limit=error.limit)
            self._close()

    def _box_parsed(self, box: Any) -> bool:
        self.ampBoxReceived(box)
        transport: Any = self.transport
        return not self._closing and transport is not None and not transport.disconnecting

    def locateResponder(self, name: bytes) -> Any:
        # Only the contract's commands: AMP's own (StartTLS, which makes a key
        # on the reactor thread) and its amp_* fallbacks are not offered.
        if not self.logged_in and name != b"Login":
            return _login_first
        if name not in _HOST_COMMANDS:
            return None  # AMP answers UNHANDLED
        return super().locateResponder(name)

    def ampBoxReceived(self, box: amp.AmpBox) -> None:
        if amp.COMMAND in box and amp.ASK not in box:
            # Every command of the contract has an outcome the host must see;
            # without _ask a refusal could only be logged as a crash.
            self.log.problem("AMP host {peer} sent {command!r} without _ask: closing",
                             peer=self.peer.shown, command=box[amp.COMMAND])
            self._close()
            return
        if amp.ERROR in box and amp.ERROR_CODE not in box:
            # An error answer without its code would leave the question it
            # answers waiting for ever (AMP drops it before reading the code):
            # take it as an unknown error, which the caller retries.
            box[amp.ERROR_CODE] = amp.UNKNOWN_ERROR_CODE
            box.setdefault(amp.ERROR_DESCRIPTION, b"error answer without _error_code")
        if box.get(amp.COMMAND) == b"SendSignal":
            self._send_signal_box(box)  # see smppgw.host.fastpath
            return
        if type(box) is not amp.AmpBox:
            box = amp.AmpBox(box)
        try:
            super().ampBoxReceived(box)
        except (KeyError, amp.NoEmptyBoxes) as error:
            # An answer to nothing asked, or a box with neither _command nor _answer.
            self.log.problem("AMP host {peer} sent a box that is no command and answers none"
                             " ({error!r}): closing", peer=self.peer.shown, error=error)
            self._close()
            return
        if self._refused:
            # The refusal is written by now: nothing more is read from this host.
            self._close()
            return
        if amp.COMMAND in box and amp.ASK in box:
            # The arguments are parsed and handed over by now; only the ask
            # tag is needed to answer.  A SendSignal stays pending until the
            # SMSC accepts it, so keeping its box whole would hold every
            # queued message's text twice.
            ask = box[amp.ASK]
            box.clear()
            box[amp.ASK] = ask

    def _emit(self, box: amp.AmpBox) -> None:
        # The host may be gone: it loses only the answer (the message goes on).
        transport: Any = self.transport
        if transport is not None and not transport.disconnecting:
            try:
                self.sendBox(box)
            except (amp.ProtocolSwitched, ConnectionLost):
                pass

    @Login.responder
    def login(self, secret: str) -> dict[str, Any]:
        if self.secret:
            wait = self.throttle.retry_in(self.peer)
            if wait:
                # Refused unread, so that guessing gains nothing.
                self._refused = True
                raise Unauthorized(f"too many wrong secrets from this peer; try again in"
                                   f" {math.ceil(wait)} s")
            if not hmac.compare_digest(secret.encode("utf-8"), self.secret.encode("utf-8")):
                self.throttle.failed(self.peer)
                self._refused = True
                raise Unauthorized("wrong secret")
        self.logged_in = True
        self._parser.limit = MAX_BOX
        if self._login_timer is not None:
            self._login_timer.cancel()
            self._login_timer = None
        self.registry.add(self)
        return {}

    @ServerStatus.responder
    def server_status(self) -> dict[str, Any]:
        return {"servers": self.outbound.status()}


def _login_first(box: amp.AmpBox) -> Any:
    """The responder of every command before Login: ``UNAUTHORIZED``."""
    return fail(remote_error(Unauthorized, "Login first"))


class GatewayAMPFactory(Factory):
    """Builds a `GatewayAMP` per host connection, at most ``max_connections`` at once."""

    noisy = False

    def __init__(self, outbound: Outbound, registry: HostRegistry, clock: Any, secret: str = "",
                 log: SmppLog | None = None, max_connections: int = 100, *,
                 reload: Callable[[], Any] | None = None,
                 run_in_thread: Callable[..., Deferred[Any]] | None = None) -> None:
        """``reload`` re-reads the configuration file and applies it, one line per change
        (the Reload command; None: this gateway cannot); ``run_in_thread`` runs a
        blocking function (a backup) off the reactor's thread, by default on
        ``clock``'s thread pool, or at once when ``clock`` has none (a test's Clock)."""
        self.clock = clock
        self.reload = reload
        if run_in_thread is None:
            run_in_thread = (partial(deferToThreadPool, clock, clock.getThreadPool())
                             if hasattr(clock, "getThreadPool") else maybeDeferred)
        self.run_in_thread = run_in_thread
        self.outbound = outbound
        self.registry = registry
        self.secret = secret
        self.log = log or SmppLog("amp", "problems")
        self.max_connections = max_connections
        self.throttle = LoginThrottle(clock, self.log)
        self.connections = 0
        self._refusals = 0
        self._refusals_logged: float | None = None

    def buildProtocol(self, addr: Any) -> GatewayAMP | None:
        if self.connections >= self.max_connections:
            # None: the listening port closes the new connection at once.
            self._refused_one()
            return None
        self.connections += 1
        protocol = GatewayAMP(self.outbound, self.registry, self.secret, self.log, self.clock,
                              self.throttle)
        protocol.reload = self.reload
        protocol.run_in_thread = self.run_in_thread
        protocol.factory = self
        return protocol

    def connection_closed(self) -> None:
        """One of this factory's connections has ended."""
        self.connections = max(0, self.connections - 1)

    def _refused_one(self) -> None:
        self._refusals += 1
        now = self.clock.seconds()
        if self._refusals_logged is None or now - self._refusals_logged >= REFUSALS_LOGGED_EVERY:
            self.log.problem("AMP endpoint has {limit} connections open, as many as [amp]"
                             " max_connections allows: closing new ones at once ({count} since"
                             " the last such line)", limit=self.max_connections,
                             count=self._refusals)
            self._refusals_logged = now
            self._refusals = 0
