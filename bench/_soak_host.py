"""The chaos soak's IM host: SendSignal over AMP, reconnecting and re-sending until each request has its outcome.

`HostConnection` keeps one AMP connection to the gateway's unix socket and
connects again, every `retry_delay` seconds, whenever it is lost (the gateway
was killed).  A `SendPass` sends a list of requests through it with at most
`outstanding` in flight; a request whose call died with the connection, or
that got TRY_LATER, is sent again with the same request_id until it gets a
final outcome: success, or any contract error but TRY_LATER.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionClosed, ConnectionDone, ConnectionLost
from twisted.internet.protocol import connectionDone
from twisted.protocols import amp
from twisted.python.failure import Failure

from smppgw.errors import SignalError, TryLater
from smppgw.host.commands import SendSignal

#: Call errors that mean "the connection went away, the answer with it": send again.
CONNECTION_ERRORS = (ConnectionClosed, ConnectionDone, ConnectionLost)


@dataclass(frozen=True)
class Message:
    """One SendSignal of the soak."""

    request_id: str
    recipient: str
    body: str


@dataclass(frozen=True)
class Outcome:
    """A final answer: success with its message ids, or a contract error code with its reason."""

    code: str
    message_ids: tuple[str, ...] = ()
    reason: str = ""

    @property
    def ok(self) -> bool:
        return self.code == "OK"


class _HostAMP(amp.AMP):
    """An AMP connection that tells its `HostConnection` first when it is lost."""

    def __init__(self, owner: HostConnection) -> None:
        super().__init__()
        self.owner = owner

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        # Forget the connection before AMP fails the outstanding calls, so that
        # their errbacks queue them again instead of sending on a dead connection.
        self.owner._lost(self)
        super().connectionLost(reason)


class HostConnection:
    """The host's connection to the gateway's AMP socket, made again whenever it is lost."""

    def __init__(self, reactor: Any, socket_path: str, retry_delay: float = 0.1) -> None:
        self.reactor = reactor
        self.socket_path = socket_path
        self.retry_delay = retry_delay
        self.protocol: _HostAMP | None = None
        #: Connections made and lost so far.
        self.connections = 0
        self.losses = 0
        self._stopping = False
        self._connecting = False
        self._observers: list[Callable[[], None]] = []

    def on_connected(self, observer: Callable[[], None]) -> None:
        """Call ``observer()`` whenever a connection is made."""
        self._observers.append(observer)

    def start(self) -> None:
        self._stopping = False
        self._connect()

    def stop(self) -> None:
        self._stopping = True
        if self.protocol is not None and self.protocol.transport is not None:
            self.protocol.transport.loseConnection()

    def _connect(self) -> None:
        if self._stopping or self._connecting or self.protocol is not None:
            return
        self._connecting = True
        endpoint = UNIXClientEndpoint(self.reactor, self.socket_path, timeout=5)
        d = connectProtocol(endpoint, _HostAMP(self))
        d.addCallbacks(self._connected, self._not_connected)

    def _connected(self, protocol: _HostAMP) -> None:
        self._connecting = False
        if self._stopping:
            if protocol.transport is not None:
                protocol.transport.loseConnection()
            return
        self.protocol = protocol
        self.connections += 1
        for observer in list(self._observers):
            observer()

    def _not_connected(self, failure: Failure) -> None:
        # The socket is missing or nobody listens on it: the gateway is restarting.
        self._connecting = False
        self.reactor.callLater(self.retry_delay, self._connect)

    def _lost(self, protocol: _HostAMP) -> None:
        if self.protocol is protocol:
            self.protocol = None
            self.losses += 1
            if not self._stopping:
                self.reactor.callLater(self.retry_delay, self._connect)


class SendPass:
    """
    Sends `messages` through `connection` until every one has a final outcome.

    `outcomes` maps a message's index to its first final outcome; a second one
    (which would break "exactly one outcome per request_id") goes to `extra`.
    Errors outside the contract (an unknown AMP error) are final too, under
    their class name, so that the soak reports them rather than looping.
    """

    def __init__(self, reactor: Any, connection: HostConnection, messages: Sequence[Message],
                 outstanding: int, try_later_delay: float = 0.5) -> None:
        self.reactor = reactor
        self.connection = connection
        self.messages = messages
        self.outstanding = outstanding
        self.try_later_delay = try_later_delay
        self.outcomes: dict[int, Outcome] = {}
        self.extra: list[tuple[int, Outcome]] = []
        self.sends = 0
        self.resends = 0
        self.try_later = 0
        self.started_at = 0.0
        self.finished_at = 0.0
        self.done: Deferred[None] = Deferred()
        self._progress: list[Callable[[int], None]] = []
        self._next = 0
        self._again: deque[int] = deque()
        # Index -> True while its call is on the wire, False while it waits out a TRY_LATER.
        self._in_flight: dict[int, bool] = {}
        self._sent_once: set[int] = set()
        connection.on_connected(self._fill)

    def on_progress(self, observer: Callable[[int], None]) -> None:
        """Call ``observer(final_outcomes)`` after each new final outcome."""
        self._progress.append(observer)

    def start(self) -> Deferred[None]:
        self.started_at = time.monotonic()
        if not self.messages:
            self.finished_at = self.started_at
            self.done.callback(None)
        self._fill()
        return self.done

    @property
    def in_flight(self) -> int:
        return len(self._in_flight)

    def _fill(self) -> None:
        while (self.connection.protocol is not None and not self.done.called
               and len(self._in_flight) < self.outstanding):
            if self._again:
                index = self._again.popleft()
                if index in self.outcomes:
                    continue
            elif self._next < len(self.messages):
                index = self._next
                self._next += 1
            else:
                return
            self._send(index)

    def _send(self, index: int) -> None:
        protocol = self.connection.protocol
        assert protocol is not None
        message = self.messages[index]
        self._in_flight[index] = True
        self.sends += 1
        if index in self._sent_once:
            self.resends += 1
        self._sent_once.add(index)
        d = protocol.callRemote(SendSignal, request_id=message.request_id, method="MESSAGE",
                                sender="soak@example.com", recipient=message.recipient,
                                body=message.body)
        d.addCallbacks(self._answered, self._failed, callbackArgs=(index,), errbackArgs=(index,))

    def _answered(self, answer: dict[str, Any], index: int) -> None:
        self._final(index, Outcome("OK", tuple(answer["message_ids"])))

    def _failed(self, failure: Failure, index: int) -> None:
        error = failure.value
        if isinstance(error, CONNECTION_ERRORS):
            del self._in_flight[index]
            self._again.append(index)
            self._fill()
        elif isinstance(error, TryLater):
            self.try_later += 1
            self._in_flight[index] = False
            self.reactor.callLater(self.try_later_delay, self._try_again, index)
        elif isinstance(error, SignalError):
            self._final(index, Outcome(error.code, (), error.reason))
        else:
            self._final(index, Outcome(type(error).__name__, (), str(error)))

    def _try_again(self, index: int) -> None:
        self._in_flight.pop(index, None)
        self._again.appendleft(index)
        self._fill()

    def _final(self, index: int, outcome: Outcome) -> None:
        self._in_flight.pop(index, None)
        if index in self.outcomes:
            self.extra.append((index, outcome))
        else:
            self.outcomes[index] = outcome
            for observer in list(self._progress):
                observer(len(self.outcomes))
        if len(self.outcomes) == len(self.messages) and not self.done.called:
            self.finished_at = time.monotonic()
            self.done.callback(None)
            return
        self._fill()
