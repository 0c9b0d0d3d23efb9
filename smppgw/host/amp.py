"""
The host-facing AMP contract, and the gateway's side of it.

Host -> gateway: `Login`, `SendSignal`, `ServerStatus`.
Gateway -> host: `DeliverSignal`, `SignalReport` (the host answers ``{}`` or
the error ``REFUSED`` / ``TRY_LATER``).

Responders delegate to the gateway's outbound queue; they never reach into an
SMPP protocol.  With ``[amp] secret`` set, everything but `Login` fails with
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
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from twisted.internet.defer import fail
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols import amp
from twisted.python.failure import Failure
from zope.interface import implementer

from smppgw.host.ampbox import BoxParser, BoxTooLarge, KeyTooLong
from smppgw.host.guard import LoginThrottle, Peer, peer_of
from smppgw.relay.outcomes import (
    BadAddressError,
    BadRequest,
    NotRelayed,
    ServerDisabledError,
    SignalError,
    SmscRejected,
    TooLongError,
    TryLater,
    Unauthorized,
    UnknownServerError,
    UnsupportedMethod,
)
from smppgw.smpp.log import SmppLog

if TYPE_CHECKING:
    from smppgw.relay.queue import Outbound


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

#: For errors in the gateway's own code, shown whatever the log_level.
_log = Logger()

#: Error descriptions longer than this (in characters) are cut: they may quote a
#: host's 64 KiB argument, and AMP refuses to send a value over 65,535 bytes.
MAX_DESCRIPTION = 1000
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
_HOST_COMMANDS = frozenset((b"Login", b"ServerStatus"))


class _Command(amp.Command):
    """A command whose bad arguments are the sender's error (BAD_REQUEST), not the receiver's bug."""

    @classmethod
    def parseArguments(cls, box: amp.AmpBox, protocol: Any) -> dict[str, Any]:
        name = cls.commandName.decode("ascii")
        for key, argument in cls.arguments:
            if key not in box:
                if not argument.optional:
                    raise amp.RemoteAmpError(b"BAD_REQUEST", f"{name}: missing argument {key.decode()}")
            elif isinstance(argument, amp.Unicode):
                try:
                    box[key].decode("utf-8")
                except UnicodeDecodeError as error:
                    raise amp.RemoteAmpError(
                        b"BAD_REQUEST", f"{name}: argument {key.decode()} is not UTF-8 ({error})"
                    ) from None
        try:
            return super().parseArguments(box, protocol)
        except Exception as error:
            raise amp.RemoteAmpError(b"BAD_REQUEST", f"{name}: bad arguments: {error}") from error


class Login(_Command):
    arguments = [(b"secret", amp.Unicode())]
    response: ClassVar[list[tuple[bytes, amp.Argument]]] = []
    errors = {Unauthorized: b"UNAUTHORIZED"}


class SendSignal(_Command):
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


#: SendSignal's arguments as (wire name, keyword, optional): every one is Unicode.
_SIGNAL_ARGUMENTS = tuple(
    (key, key.decode("ascii"), argument.optional) for key, argument in SendSignal.arguments
)
assert all(isinstance(argument, amp.Unicode) for _, argument in SendSignal.arguments)


def _signal_arguments(box: amp.AmpBox) -> dict[str, str | None]:
    """SendSignal's keyword arguments from its box: what ``SendSignal.parseArguments``
    gives, with the same BAD_REQUEST errors, in a fraction of its time."""
    kw: dict[str, str | None] = {}
    for key, name, optional in _SIGNAL_ARGUMENTS:
        raw = box.get(key)
        if raw is None:
            if not optional:
                raise amp.RemoteAmpError(b"BAD_REQUEST", f"SendSignal: missing argument {name}")
            kw[name] = None
            continue
        try:
            kw[name] = raw.decode("utf-8")
        except UnicodeDecodeError as error:
            raise amp.RemoteAmpError(
                b"BAD_REQUEST", f"SendSignal: argument {name} is not UTF-8 ({error})"
            ) from None
    return kw


def _pair(key: bytes, value: bytes) -> bytes:
    if len(value) > amp.MAX_VALUE_LENGTH:
        raise amp.TooLong(False, True, value, key)
    return len(key).to_bytes(2, "big") + key + len(value).to_bytes(2, "big") + value


class _WireBox:
    """An answer box already serialised: what ``AmpBox.serialize()`` would give,
    built directly for the one answer sent per message."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data

    def serialize(self) -> bytes:
        return self.data


def _signal_answer(ask: bytes, result: dict[str, Any]) -> _WireBox:
    """SendSignal's answer box, byte for byte as ``SendSignal.makeResponse`` and
    ``AmpBox.serialize`` make it (keys in sorted order)."""
    ids = []
    for message_id in result["message_ids"]:
        encoded = message_id.encode("utf-8")
        ids.append(len(encoded).to_bytes(2, "big") + encoded)
    return _WireBox(b"".join((
        _pair(amp.ANSWER, ask),
        _pair(b"message_ids", b"".join(ids)),
        _pair(b"parts", b"%d" % result["parts"]),
        _pair(b"server", result["server"].encode("utf-8")),
        b"\x00\x00",
    )))


class ServerStatus(_Command):
    arguments: ClassVar[list[tuple[bytes, amp.Argument]]] = []
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
            # The rate (submits/s) the link learned from the SMSC's throttling;
            # absent until the SMSC throttled.  Optional: hosts built before it
            # read the other fields as ever.
            (b"rate", amp.Float(optional=True)),
        ])),
    ]
    errors = {Unauthorized: b"UNAUTHORIZED"}


class DeliverSignal(_Command):
    arguments = [
        (b"method", amp.Unicode()),
        (b"sender", amp.Unicode()),
        (b"recipient", amp.Unicode()),
        (b"body", amp.Unicode()),
        (b"server", amp.Unicode()),
    ]
    response: ClassVar[list[tuple[bytes, amp.Argument]]] = []
    errors = _HOST_ERRORS


class SignalReport(_Command):
    """A delivery report of one part: ``part`` (from 1) of ``parts``.

    ``part`` and ``parts`` are optional so that a host whose SignalReport
    lacks them still takes the command (AMP ignores keys it does not know);
    the gateway always sends them, except for a report stored by a version
    that did not (a host then gets None for both).
    """

    arguments = [
        (b"request_id", amp.Unicode()),
        (b"message_id", amp.Unicode()),
        (b"state", amp.Unicode()),
        (b"error", amp.Unicode()),
        (b"server", amp.Unicode()),
        (b"part", amp.Integer(optional=True)),
        (b"parts", amp.Integer(optional=True)),
    ]
    response: ClassVar[list[tuple[bytes, amp.Argument]]] = []
    errors = _HOST_ERRORS


class HostRegistry:
    """The logged-in host connections, for handing them inbound messages round-robin.

    A logged-in connection need not be a host: ``python -m smppgw.host.client
    status`` logs in too, and has no DeliverSignal responder.  One that answers
    a DeliverSignal ``UNHANDLED`` is `exclude`-d from the round-robin for as
    long as it stays connected.  A host that answers a SignalReport
    ``UNHANDLED`` stays, for messages only (`refuses_reports`).
    """

    def __init__(self) -> None:
        self.hosts: list[GatewayAMP] = []
        self._next = 0
        self._observers: list[Callable[[], None]] = []
        self._excluded: set[GatewayAMP] = set()
        self._no_reports: set[GatewayAMP] = set()

    def add(self, host: GatewayAMP) -> None:
        """``host`` logged in: hand it inbound messages, unless it was excluded."""
        if host not in self.hosts and host not in self._excluded:
            self.hosts.append(host)
            for observer in list(self._observers):
                observer()

    def remove(self, host: GatewayAMP) -> None:
        """``host`` disconnected: forget it."""
        self._excluded.discard(host)
        self._no_reports.discard(host)
        if host in self.hosts:
            self.hosts.remove(host)

    def exclude(self, host: GatewayAMP) -> None:
        """Hand ``host`` no more inbound messages, even if it logs in again, until it disconnects.

        For a connection that does not handle DeliverSignal / SignalReport (it
        answered ``UNHANDLED``): a monitoring or command-line client, not a host.
        """
        if host in self.hosts:
            self.hosts.remove(host)
            self._excluded.add(host)

    def refuses_reports(self, host: GatewayAMP) -> None:
        """``host`` answered a SignalReport ``UNHANDLED``: it gets messages but no more reports."""
        if host in self.hosts:
            self._no_reports.add(host)

    def takes(self, host: GatewayAMP, reports: bool) -> bool:
        """Whether ``host`` takes messages (or, with ``reports``, delivery reports)."""
        return not reports or host not in self._no_reports

    def any_takes_reports(self) -> bool:
        return any(host not in self._no_reports for host in self.hosts)

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


def _clipped(failure: Failure) -> Failure:
    """The same refusal with its reason cut to `MAX_DESCRIPTION` characters."""
    error = failure.value
    if isinstance(error, SignalError) and len(error.reason) > MAX_DESCRIPTION:
        return Failure(type(error)(error.reason[:MAX_DESCRIPTION] + "..."))
    return failure


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


class _PendingAnswer:
    """What a pending SendSignal keeps until its outcome: the connection and the
    ask tag, heard with a Deferred's two methods (and without a Deferred)."""

    __slots__ = ("protocol", "ask")

    def __init__(self, protocol: GatewayAMP, ask: bytes) -> None:
        self.protocol = protocol
        self.ask = ask

    # Like a Deferred, neither lets an error of its own reach the caller (the
    # loop answering every request a commit settled).

    def callback(self, result: dict[str, Any]) -> None:
        try:
            self.protocol._signal_answered(result, self.ask)
        except Exception:
            _log.failure("answering SendSignal {ask!r} failed", ask=self.ask)

    def errback(self, fail: Failure | BaseException | None = None) -> None:
        try:
            self.protocol._signal_refused(fail if isinstance(fail, Failure) else Failure(fail),
                                          self.ask)
        except Exception:
            _log.failure("answering SendSignal {ask!r} failed", ask=self.ask)


class GatewayAMP(amp.AMP):
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
            self._send_signal_box(box)
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

    # -- SendSignal, answered without AMP's generic dispatch --------------------------
    #
    # A SendSignal stays pending until the SMSC has accepted the message, which
    # may be hours while a link is down; AMP's generic dispatch keeps several
    # Deferreds, closures and the whole box per pending command.  This path
    # keeps one callback pair and the ask tag, and uses the command's own
    # (de)serialisation, so the wire format is exactly the contract's.

    def _send_signal_box(self, box: amp.AmpBox) -> None:
        ask = box[amp.ASK]
        try:
            if not self.logged_in:
                raise Unauthorized("Login first")
            kw = _signal_arguments(box)
            self.outbound.send_signal(**kw, answer=_PendingAnswer(self, ask),  # type: ignore[arg-type]
                                      host=self)
        except Exception:
            self._signal_refused(Failure(), ask)

    def _signal_answered(self, result: dict[str, Any], ask: bytes) -> None:
        try:
            answer: Any = _signal_answer(ask, result)
        except amp.TooLong:
            self._signal_refused(Failure(), ask)
            return
        self._emit(answer)

    def _signal_refused(self, failure: Failure, ask: bytes) -> None:
        error: Any = _clipped(failure).value
        if isinstance(error, amp.RemoteAmpError):
            code, description = error.errorCode, error.description
        elif type(error) in _SIGNAL_ERRORS:
            code, description = _SIGNAL_ERRORS[type(error)], str(error)
        else:
            self.log.problem("SendSignal failed: {error}", error=failure.getTraceback())
            code, description = amp.UNKNOWN_ERROR_CODE, "internal error"
        if isinstance(description, str):
            description = description.encode("utf-8", "replace")
        self._emit(amp.AmpBox({amp.ERROR: ask, amp.ERROR_CODE: code,
                               amp.ERROR_DESCRIPTION: description}))

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
    return fail(amp.RemoteAmpError(b"UNAUTHORIZED", "Login first"))


class GatewayAMPFactory(Factory):
    """Builds a `GatewayAMP` per host connection, at most ``max_connections`` at once."""

    noisy = False

    def __init__(self, outbound: Outbound, registry: HostRegistry, clock: Any, secret: str = "",
                 log: SmppLog | None = None, max_connections: int = 100) -> None:
        self.clock = clock
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
