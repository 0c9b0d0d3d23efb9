"""One ESME's connection to the SMSC simulator: framing, its bind states as a table, its requests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from smppgw.smpp.codec import (
    PDU,
    DecodeError,
    EncodeError,
    FrameError,
    Framer,
    decode,
    encode,
    response_to,
)
from smppgw.smpp.constants import (
    COMMAND_IDS,
    ESME_RINVBNDSTS,
    ESME_RINVCMDID,
    ESME_ROK,
    ESME_RTHROTTLED,
    RESPONSE_BIT,
    STATUSES,
)
from smppgw.testing.smsc.faults import Drop

if TYPE_CHECKING:
    from smppgw.testing.smsc.server import SMSCSimulator

# One namespace for the simulator's log lines, whichever of its modules writes them.
log = Logger(namespace="smppgw.testing.simulator")

ESME_RALYBND = STATUSES["ESME_RALYBND"]
ESME_RINVPASWD = STATUSES["ESME_RINVPASWD"]
ESME_RINVSYSID = STATUSES["ESME_RINVSYSID"]

#: The SMPP version the simulator announces in its bind responses.
INTERFACE_VERSION = 0x34
#: Sequence numbers run from 1 to this value, then start again at 1.
MAX_SEQUENCE = 0x7FFFFFFF

_BIND_TYPES = {
    "bind_transmitter": "transmitter",
    "bind_receiver": "receiver",
    "bind_transceiver": "transceiver",
}
_CAN_SUBMIT = frozenset({"transmitter", "transceiver"})
_CAN_RECEIVE = frozenset({"receiver", "transceiver"})
_SUBMITS = frozenset({"submit_sm", "data_sm"})


_OPEN, _BOUND, _UNBINDING, _CLOSED = "open", "bound", "unbinding", "closed"

# The session's states as a table: which method answers each request in each
# state.  A request missing from its state's row gets that state's default.
# Responses are not in the table: they complete the simulator's own requests
# in every state but closed.
_ROUTES: dict[str, dict[str, str]] = {
    _OPEN: {
        "bind_transmitter": "_bind",
        "bind_receiver": "_bind",
        "bind_transceiver": "_bind",
    },
    _BOUND: {
        "bind_transmitter": "_refuse_already_bound",
        "bind_receiver": "_refuse_already_bound",
        "bind_transceiver": "_refuse_already_bound",
        "submit_sm": "_submit",
        "data_sm": "_submit",
        "enquire_link": "_enquire_link",
        "unbind": "_unbind",
    },
    _UNBINDING: {
        "enquire_link": "_enquire_link",
        "unbind": "_unbind",
    },
    _CLOSED: {},
}
_DEFAULT_ROUTE: dict[str, str] = {
    _OPEN: "_refuse_unbound",
    _BOUND: "_refuse_unsupported",
    _UNBINDING: "_refuse_unbound",
    _CLOSED: "_ignore",
}


def _text(value: Any) -> str:
    # Latin-1 maps every byte to a character, so no credential fails to decode.
    return bytes(value).decode("latin-1") if isinstance(value, bytes) else ""

class SMSCProtocol(Protocol):
    """One ESME connection to the simulator: framing, the bind state and the simulator's own requests."""

    def __init__(self, simulator: SMSCSimulator) -> None:
        self.simulator = simulator
        #: The system_id this session is bound as, None until bound.
        self.system_id: str | None = None
        #: ``transmitter``, ``receiver`` or ``transceiver`` once bound.
        self.bind_type: str | None = None
        self.state = _OPEN
        self.pdus_received = 0
        self._framer = Framer()
        self._batch: list[bytes] | None = None
        self._sequence = 0
        self._outstanding: dict[int, Deferred[PDU]] = {}
        self._delayed: set[IDelayedCall] = set()

    # -- Protocol -------------------------------------------------------------

    def connectionMade(self) -> None:
        self.simulator.connections.append(self)
        if self.transport is not None:
            log.debug("ESME connected from {peer}", peer=self.transport.getPeer())

    def dataReceived(self, data: bytes) -> None:
        # Answers are collected and written once per read: one write per
        # packet rather than per PDU keeps the benchmarks honest.
        self._batch = []
        try:
            self._frames_received(data)
        finally:
            self._flush()
            self._batch = None

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        was_bound = self.system_id if self.state in (_BOUND, _UNBINDING) else None
        self.state = _CLOSED
        if self in self.simulator.connections:
            self.simulator.connections.remove(self)
        for call in self._delayed:
            if call.active():
                call.cancel()
        self._delayed.clear()
        outstanding, self._outstanding = self._outstanding, {}
        for d in outstanding.values():
            d.errback(reason)
        if was_bound is not None:
            log.info("ESME {system_id} disconnected", system_id=was_bound)

    # -- the simulator's requests ------------------------------------------------

    def send_request(self, pdu: PDU) -> Deferred[PDU]:
        """Number and send a request; the Deferred fires with the ESME's response (or generic_nack)."""
        if self.state == _CLOSED:
            return defer.fail(ConnectionDone("the connection is closed"))
        self._sequence = self._sequence % MAX_SEQUENCE + 1
        pdu.sequence_number = self._sequence
        try:
            data = encode(pdu)
        except EncodeError:
            return defer.fail()
        d: Deferred[PDU] = Deferred()
        self._outstanding[pdu.sequence_number] = d
        self._write(data)
        return d

    def unbind(self) -> Deferred[PDU]:
        """Send unbind; the connection closes when the ESME answers it."""
        self.state = _UNBINDING
        d = self.send_request(PDU("unbind"))

        def close(response: PDU) -> PDU:
            self.close()
            return response

        return d.addCallback(close)

    def close(self, reset: bool = False) -> None:
        """Close the connection after what is already written; `reset` aborts it instead."""
        self._flush()
        self.state = _CLOSED
        if self.transport is None:
            return
        # Not every transport can abort (ITCPTransport can); the others just close.
        abort = getattr(self.transport, "abortConnection", None) if reset else None
        if abort is not None:
            abort()
        else:
            self.transport.loseConnection()

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are, framed or not."""
        self._write(data)

    # -- reading ---------------------------------------------------------------

    def _frames_received(self, data: bytes) -> None:
        try:
            frames = self._framer.feed(data)
        except FrameError as e:
            log.warn("closing a connection whose stream cannot be framed: {error}", error=e)
            self.close(reset=True)
            return
        simulator = self.simulator
        faults = simulator.faults
        for frame in frames:
            if self.state == _CLOSED:
                return
            self.pdus_received += 1
            # The PDU that reaches drop_after is recorded but never answered:
            # the link goes down with the request outstanding.
            dropping = bool(faults.drop_after) and self.pdus_received >= faults.drop_after
            try:
                pdu = decode(frame)
            except DecodeError as e:
                log.info("malformed PDU: {error}", error=e)
                if not dropping:
                    self._decode_failed(e)
            else:
                if simulator.log_pdus:
                    log.debug("received {pdu}", pdu=pdu)
                simulator._record(self.system_id, pdu)
                if dropping:
                    pass
                elif pdu.is_response:
                    self._response(pdu)
                elif not faults.black_hole_all:
                    route = _ROUTES[self.state].get(pdu.command, _DEFAULT_ROUTE[self.state])
                    getattr(self, route)(pdu)
            if dropping:
                reset = faults.drop_with_reset
                simulator.drops.append(
                    Drop(reset, self.system_id, self.pdus_received, simulator.accepted_count)
                )
                if faults.alternate_drops:
                    faults.drop_with_reset = not reset
                self.close(reset=reset)
                return

    def _decode_failed(self, error: DecodeError) -> None:
        if error.command_id in _RESPONSE_IDS:
            # A response we cannot read: its request fails, and SMPP never
            # answers a response.
            d = self._outstanding.pop(error.sequence_number, None)
            if d is not None:
                d.errback(error)
            return
        if not self.simulator.faults.black_hole_all:
            self._send(PDU("generic_nack", error.sequence_number, error.status))

    def _response(self, pdu: PDU) -> None:
        d = self._outstanding.pop(pdu.sequence_number, None)
        if d is None:
            log.debug("response to no request of ours: {pdu}", pdu=pdu)
            return
        d.callback(pdu)

    # -- answering requests ------------------------------------------------------

    def _bind(self, pdu: PDU) -> None:
        simulator = self.simulator
        system_id = _text(pdu.get("system_id"))
        status = simulator.faults.bind_status or simulator._check_credentials(
            system_id, _text(pdu.get("password"))
        )
        if status:
            log.info(
                "refused bind of {system_id}: status 0x{status:08X}",
                system_id=system_id,
                status=status,
            )
            self._send(response_to(pdu, status))
            return
        self._send(
            response_to(
                pdu,
                ESME_ROK,
                system_id=simulator.system_id.encode("latin-1"),
                sc_interface_version=INTERFACE_VERSION,
            )
        )
        self.system_id = system_id
        self.bind_type = _BIND_TYPES[pdu.command]
        self.state = _BOUND
        log.info(
            "ESME {system_id} bound as {bind_type}", system_id=system_id, bind_type=self.bind_type
        )
        simulator._bound(self)

    def _refuse_already_bound(self, pdu: PDU) -> None:
        self._send(response_to(pdu, ESME_RALYBND))

    def _refuse_unbound(self, pdu: PDU) -> None:
        self._refuse(pdu, ESME_RINVBNDSTS)

    def _refuse_unsupported(self, pdu: PDU) -> None:
        self._refuse(pdu, ESME_RINVCMDID)

    def _refuse(self, pdu: PDU, status: int) -> None:
        if pdu.command_id | RESPONSE_BIT in _RESPONSE_IDS:
            self._send(response_to(pdu, status))
        else:
            # outbind and alert_notification have no response of their own.
            self._send(PDU("generic_nack", pdu.sequence_number, status))

    def _ignore(self, pdu: PDU) -> None:
        pass

    def _enquire_link(self, pdu: PDU) -> None:
        self._send(response_to(pdu))

    def _unbind(self, pdu: PDU) -> None:
        self._send(response_to(pdu))
        log.info("ESME {system_id} unbound", system_id=self.system_id)
        self.close()

    def _submit(self, pdu: PDU) -> None:
        if self.bind_type not in _CAN_SUBMIT:
            self._send(response_to(pdu, ESME_RINVBNDSTS))
            return
        simulator = self.simulator
        faults = simulator.faults
        simulator._submits += 1
        if faults.black_hole:
            return
        if faults.throttle_every and simulator._submits % faults.throttle_every == 0:
            status = ESME_RTHROTTLED
            simulator.throttled += 1
        else:
            status = faults.submit_status
        if not status and faults.max_rate > 0 and simulator._too_soon(self.system_id):
            status = ESME_RTHROTTLED
            simulator.throttled += 1
        if faults.response_delay > 0:
            call = simulator.clock.callLater(faults.response_delay, self._answer_later, pdu, status)
            self._delayed.add(call)
        else:
            self._answer_submit(pdu, status)

    def _answer_later(self, pdu: PDU, status: int) -> None:
        self._delayed = {call for call in self._delayed if call.active()}
        self._answer_submit(pdu, status)

    def _answer_submit(self, pdu: PDU, status: int) -> None:
        if status:
            self._send(response_to(pdu, status))
        else:
            simulator = self.simulator
            message_id = simulator._accept(pdu)
            simulator.accepted_by[message_id] = self.system_id
            self._send(response_to(pdu, ESME_ROK, message_id=message_id.encode("ascii")))
            if simulator.log_messages or simulator.receipt_delay is not None:
                simulator._accepted_for_demo(self.system_id, message_id, pdu)

    # -- writing ---------------------------------------------------------------

    def _send(self, pdu: PDU) -> None:
        if self.simulator.log_pdus:
            log.debug("sending {pdu}", pdu=pdu)
        self._write(encode(pdu))

    def _write(self, data: bytes) -> None:
        if self.state == _CLOSED:
            return
        if self._batch is not None:
            self._batch.append(data)
        elif self.transport is not None:
            self.transport.write(data)

    def _flush(self) -> None:
        if self._batch and self.transport is not None:
            self.transport.write(b"".join(self._batch))
            self._batch.clear()


_RESPONSE_IDS = frozenset(i for i in COMMAND_IDS.values() if i & RESPONSE_BIT)
