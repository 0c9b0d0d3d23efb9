"""
The ESME protocol: a thin Twisted shell around a `Session`.

It frames the byte stream, turns frames into PDUs through the codec adapter,
hands them to the session and writes what the session sends.  A frame with an
absurd command_length means the stream is lost: the connection is aborted
(and the link reconnects).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure

from smppgw.smpp.codec import PDU, DecodeError, EncodeError, FrameError, Framer, decode, encode
from smppgw.smpp.directwrite import writable_socket, write_now
from smppgw.smpp.log import SmppLog
from smppgw.smpp.session import DeliverHook, Session, SessionSettings, refuse_for_now

if TYPE_CHECKING:
    from twisted.internet.interfaces import IReactorTime

#: While reading a burst of PDUs, what their handling wrote (the next
#: submit_sm for each response, say) goes out every this many PDUs rather
#: than after the whole burst, so that a very long burst does not hold the
#: SMSC's work back to its end.  Bursts of a window's answers (50 or so) go
#: out whole: against node-smpp with an ordinary host (bench/bench_user.py,
#: 20,000 messages, window 50, two runs each on a quiet machine) a flush
#: every 16 PDUs gave 7,080 and 6,450 msg/s at 95 and 92 µs of gateway CPU
#: per message, a flush per burst 7,448 and 7,315 msg/s at 90 µs: each flush
#: wakes the SMSC for a part of the burst, and every wake-up costs all three
#: processes CPU on machines where they share the cores.
FLUSH_EVERY = 64
#: A burst that comes after the gateway sat idle this long (seconds) since
#: the previous one is answered PDU by PDU: the gateway is waiting on a
#: distant SMSC (a window against a long round trip), so each submit_sm
#: leaves at once; a send (and a commit of the store) per PDU costs CPU,
#: which such a gateway has to spare.  Shorter gaps mean an SMSC close by
#: whose answers come a few at a time while the machine is busy (the host
#: and the SMSC share its cores): there a send per PDU would only add CPU,
#: so the gateway sends per burst.  Idle is the time between the bursts less
#: the CPU time the reactor's thread spent meanwhile (on AMP hosts, the store).
QUIET = 0.005


class ESMEProtocol(Protocol):
    """One connection to an SMSC.  ``session`` exists from construction on."""

    def __init__(
        self,
        settings: SessionSettings,
        clock: IReactorTime,
        log: SmppLog,
        deliver: DeliverHook = refuse_for_now,
    ) -> None:
        self.log = log
        self.clock = clock
        self.framer = Framer()
        self.session = Session(settings, clock, self._write_pdu, self._close, log, deliver)
        self._lost_observers: list[Callable[[str], None]] = []
        self.ever_bound = False
        #: Why the connection was lost (a `CertificateRefused`, say), once it is.
        self.lost_failure: Failure | None = None
        # Whether something was written since the last flush.
        self._unflushed = False
        # While a burst is read, what is written waits here and reaches the
        # transport in one write per flush, not one per PDU.
        self._reading = False
        self._out: list[bytes] = []
        # When the last burst was handled: the clock's time and the thread's CPU time.
        self._read_at = float("-inf")
        self._cpu_at = 0.0

    def _write_pdu(self, pdu: PDU) -> None:
        try:
            data = encode(pdu)
        except EncodeError as e:
            if pdu.is_response:
                # An answer carries the SMSC's own values (a sequence number
                # of 0, say, which the codec refuses): raising here would
                # escape from dataReceived.  A peer that cannot be answered
                # gets the connection closed, and the link reconnects.
                self.log.problem("cannot answer the SMSC with {command} #{seq}: {error}: closing",
                                 command=pdu.command, seq=pdu.sequence_number, error=e)
                self.session.close_reason = f"cannot answer the SMSC: {e}"
                self._close()
                return
            # A request we built ourselves that cannot be encoded is a bug in
            # the caller's values, not a reason to drop the link.
            self.log.problem("cannot encode {command}: {error}", command=pdu.command, error=e)
            raise
        if self.transport is not None:
            if self._reading:
                self._out.append(data)
            else:
                self.transport.write(data)
            self._unflushed = True

    def _push(self) -> None:
        """Hand what waits in `_out` to the transport, in order."""
        if self._out:
            out, self._out = self._out, []
            if self.transport is not None:
                self.transport.write(out[0] if len(out) == 1 else b"".join(out))

    def flush(self) -> None:
        """Send what was written now rather than at the reactor's next turn
        (see smppgw.smpp.directwrite)."""
        if not self._unflushed:
            return
        socket = writable_socket(self.transport)
        if socket is not None:
            self._push()
            self._unflushed = False
            write_now(socket)
        else:
            self._push()
            self._unflushed = False

    def _close(self) -> None:
        self._push()  # what was written before the close goes first
        if self.transport is not None:
            self.transport.loseConnection()

    def connectionMade(self) -> None:
        transport: Any = self.transport
        self.log.low("connected to {peer}", peer=transport.getPeer())
        # PDUs are small and pipelined: Nagle's algorithm would hold each
        # write back until the previous one is acknowledged.
        no_delay = getattr(self.transport, "setTcpNoDelay", None)
        if no_delay is not None:
            no_delay(True)

    def dataReceived(self, data: bytes) -> None:
        try:
            frames = self.framer.feed(data)
        except FrameError as e:
            self.log.problem("{error}: closing the connection", error=e)
            self.session.close_reason = str(e)
            frames = []
            transport: Any = self.transport
            if transport is not None:
                transport.abortConnection()
            return
        idle = (self.clock.seconds() - self._read_at) - (time.thread_time() - self._cpu_at)
        every = 1 if idle > QUIET else FLUSH_EVERY
        handled = 0
        self._reading = True
        try:
            for frame in frames:
                try:
                    pdu = decode(frame)
                except DecodeError as e:
                    self.session.decode_failed(e)
                    continue
                self.session.pdu_received(pdu)
                handled += 1
                if handled % every == 0:
                    self.flush()
        finally:
            self._reading = False
        self.flush()
        self._read_at = self.clock.seconds()
        self._cpu_at = time.thread_time()

    def connectionLost(self, reason: Failure | None = None) -> None:
        # Failing the pending bind here is what lets ClientService retry: a
        # bind that never settles would stall it for good.
        if self.session.close_reason:  # we closed it, and said why
            why = self.session.close_reason
        elif reason is not None and reason.check(ConnectionDone):
            why = "closed by the SMSC"
        else:
            why = reason.getErrorMessage() if reason is not None else "connection lost"
        self.lost_failure = reason
        self.log.low("disconnected: {reason}", reason=why)
        # Observers first: whoever resends the failed requests below must
        # already see the link as down.
        for observer in self._lost_observers:
            observer(why)
        self.session.connection_lost(why)

    def on_lost(self, observer: Callable[[str], None]) -> None:
        self._lost_observers.append(observer)


class ESMEFactory(Factory):
    """Builds an `ESMEProtocol` per connection for one server."""

    noisy = False

    def __init__(
        self,
        settings: SessionSettings,
        clock: IReactorTime,
        log: SmppLog,
        deliver: DeliverHook = refuse_for_now,
        on_protocol: Callable[[ESMEProtocol], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.log = log
        self.deliver = deliver
        self.on_protocol = on_protocol
        #: The protocol built most recently: the connection being made.
        self.last_built: ESMEProtocol | None = None

    def buildProtocol(self, addr: Any) -> ESMEProtocol:
        protocol = ESMEProtocol(self.settings, self.clock, self.log, self._deliver)
        protocol.factory = self
        self.last_built = protocol
        if self.on_protocol is not None:
            self.on_protocol(protocol)
        return protocol

    def _deliver(self, pdu: PDU) -> Any:
        # Looked up per PDU so that the inbound hook can be installed after
        # the link is built.
        return self.deliver(pdu)
