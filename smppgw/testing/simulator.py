"""
An SMPP 3.4 server (an SMSC simulator) for the demo, the tests and the benchmarks.

`SMSCSimulator` is a `ServerFactory`: listen with it on any endpoint, or hand
its protocols a `StringTransport` in unit tests.  It binds transmitters,
receivers and transceivers, accepts submit_sm and data_sm with unique message
ids, answers enquire_link and unbind, and sends deliver_sm (plain messages and
delivery receipts) to bound receivers.  Its `Faults` are plain attributes that
a test flips while it runs, to play the zoo of misbehaving SMSCs: throttling
(every Nth submit, or by spacing as a per-account rate limit does), refusing,
black-holing, slow, dropping and bind-refusing.

Everything it receives is kept in `SMSCSimulator.received`, so a test can
compare what the gateway sent with what it expected.  Message bodies are bytes
in and bytes out; text is decoded only for the demo's log (`log_messages`),
and encoded only by `deliver_text`, the SMS a phone sends.

For the demo (``twistd smppgw --demo``) it can also play the phones: with
`log_messages` it logs each SMS it accepts, decoded, and each one it delivers;
with `receipt_delay` it sends a DELIVRD receipt that long after accepting a
submit that asked for one; `deliver_text` sends a phone's text as one
deliver_sm, or several with a UDH when it is long.

Run it alone with ``python -m smppgw.testing.simulator --account smppgw:secret``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
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
    STATUS_NAMES,
    STATUSES,
)
from smppgw.sms.textcodec import (
    TooLong,
    UndecodableText,
    concat_info,
    decode_text,
    encode_message,
    split_udh,
)

if TYPE_CHECKING:
    from twisted.internet.interfaces import IAddress

__all__ = [
    "Drop",
    "Faults",
    "NotBound",
    "Received",
    "SMSCProtocol",
    "SMSCSimulator",
    "SimulatorOptions",
    "UnknownMessageId",
    "main",
    "parse_args",
]

log = Logger()

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

#: The receipt ``stat:`` words and the message_state each one reports.
RECEIPT_STATES: dict[str, int] = {
    "ENROUTE": 1,
    "DELIVRD": 2,
    "EXPIRED": 3,
    "DELETED": 4,
    "UNDELIV": 5,
    "ACCEPTD": 6,
    "UNKNOWN": 7,
    "REJECTD": 8,
}


class NotBound(Exception):
    """No session is bound that could take this PDU (no receiver, or not that system_id)."""


class UnknownMessageId(KeyError):
    """A delivery receipt was asked for a message id the simulator never accepted."""


@dataclass
class Faults:
    """
    Misbehaviours a test switches on and off while the simulator runs.

    The submit faults apply to submit_sm and data_sm alike; the first that
    applies wins, in the order black_hole_all, black_hole, throttle_every,
    submit_status, max_rate.
    """

    #: Every Nth submit (counted from 1 over the whole simulator) is answered
    #: ESME_RTHROTTLED and not accepted.
    throttle_every: int = 0
    #: When nonzero, every submit is answered with this status.
    submit_status: int = 0
    #: When nonzero, a submit that arrives sooner than 1/max_rate seconds
    #: after the last one accepted from the same system_id is answered
    #: ESME_RTHROTTLED and not accepted: a limit by spacing, as an SMSC's
    #: per-account throughput (Jasmin's, say) enforces it.
    max_rate: float = 0.0
    #: Never answer a submit (enquire_link and the rest are still answered).
    black_hole: bool = False
    #: Answer nothing at all, binds included.
    black_hole_all: bool = False
    #: Seconds to wait before answering each submit (on the injected clock).
    response_delay: float = 0.0
    #: Close a connection once it has received this many PDUs; the last one
    #: is recorded but not answered.  0 never closes.
    drop_after: int = 0
    #: Close with a TCP reset (abortConnection) rather than a clean close.
    drop_with_reset: bool = False
    #: When nonzero, refuse every bind with this status (e.g. ESME_RBINDFAIL).
    bind_status: int = 0
    #: After each drop_after close, flip drop_with_reset, so that successive
    #: drops alternate a clean close (FIN) and a reset (RST).
    alternate_drops: bool = False


@dataclass(frozen=True)
class Drop:
    """One connection the drop_after fault closed: how, whose, and when."""

    reset: bool
    system_id: str | None
    #: PDUs the connection had received, the dropping one included.
    pdus: int
    #: Submits the simulator had accepted in all (over every connection) at the drop.
    accepted: int


@dataclass(frozen=True)
class Received:
    """One PDU the simulator received, with the system_id its session was bound as (None before)."""

    system_id: str | None
    pdu: PDU


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


class SMSCSimulator(ServerFactory):
    """
    An SMSC that ESMEs bind to: the factory to listen with, and what it has seen.

    `accounts` maps system_id to password; None accepts any credentials.
    `clock` schedules delayed answers (the global reactor when None).
    `message_ids` is ``"hex"`` (``0000001a``) or ``"decimal"`` (``26``).
    `log_pdus` logs every PDU received and sent, at debug level.
    """

    noisy = False

    def __init__(
        self,
        accounts: Mapping[str, str] | None = None,
        clock: IReactorTime | None = None,
        *,
        system_id: str = "SIMSMSC",
        message_ids: str = "hex",
        log_pdus: bool = False,
        log_messages: bool = False,
        receipt_delay: float | None = None,
        alphabets: Mapping[str, str] | None = None,
    ) -> None:
        if message_ids not in _MESSAGE_ID_FORMATS:
            raise ValueError(f"message_ids must be 'hex' or 'decimal', not {message_ids!r}")
        if clock is None:
            from twisted.internet import reactor

            clock = cast(IReactorTime, reactor)
        self.clock: IReactorTime = clock
        self.accounts = dict(accounts) if accounts is not None else None
        self.system_id = system_id
        #: Log every PDU at debug level; off by default because even
        #: filtered-out log events cost time in the benchmarks.
        self.log_pdus = log_pdus
        #: Log each SMS accepted and each one delivered, with its text decoded.
        self.log_messages = log_messages
        #: Seconds after accepting a submit that asked for a delivery receipt
        #: (registered_delivery 1) before sending it DELIVRD; None sends none.
        self.receipt_delay = receipt_delay
        #: What data_coding 0 is for each system_id ("gsm" when not named):
        #: the alphabet the log reads and `deliver_text` writes it in.
        self.alphabets = dict(alphabets or {})
        self._receipt_calls: set[IDelayedCall] = set()
        self.faults = Faults()
        #: Every PDU decoded from any connection, in order.
        self.received: list[Received] = []
        #: submit_sm and data_sm answered ESME_ROK, in the order answered.
        self.accepted: list[PDU] = []
        #: message_id -> the accepted submit.
        self.message_ids: dict[str, PDU] = {}
        #: The live connections.
        self.connections: list[SMSCProtocol] = []
        #: Every connection the drop_after fault closed, in order.
        self.drops: list[Drop] = []
        #: How many submits the throttle_every and max_rate faults answered
        #: ESME_RTHROTTLED.
        self.throttled = 0
        self._format_id: Callable[[int], str] = _MESSAGE_ID_FORMATS[message_ids]
        self._next_id = 0
        self._submits = 0
        self._accepted_at: dict[str, float] = {}
        # system_id -> when the max_rate fault last let a submit through.
        self._last_allowed: dict[str | None, float] = {}
        self._counts: dict[str, int] = {}
        self._bound_waiters: list[tuple[str | None, Deferred[SMSCProtocol]]] = []
        self._received_waiters: list[tuple[str, int, Deferred[None]]] = []

    def __repr__(self) -> str:
        return f"<SMSCSimulator {self.system_id} with {len(self.connections)} connections>"

    # -- listening ---------------------------------------------------------------

    def buildProtocol(self, addr: IAddress | None) -> SMSCProtocol:
        return SMSCProtocol(self)

    def factory(self) -> ServerFactory:
        """The protocol factory to listen with (the simulator itself)."""
        return self

    # -- waiting -----------------------------------------------------------------

    def when_bound(self, system_id: str | None = None) -> Deferred[SMSCProtocol]:
        """A new Deferred firing with a session bound as `system_id` (any when None), now or next."""
        for connection in self.connections:
            if connection.state == _BOUND and system_id in (None, connection.system_id):
                return defer.succeed(connection)
        d: Deferred[SMSCProtocol] = Deferred()
        self._bound_waiters.append((system_id, d))
        return d

    def when_received(self, count: int, command: str = "submit_sm") -> Deferred[None]:
        """A new Deferred firing once `count` PDUs of `command` have been received in total."""
        if command not in COMMAND_IDS:
            raise ValueError(f"unknown SMPP command {command!r}")
        if self._counts.get(command, 0) >= count:
            return defer.succeed(None)
        d: Deferred[None] = Deferred()
        self._received_waiters.append((command, count, d))
        return d

    @property
    def accepted_count(self) -> int:
        """How many submits have been accepted in all (kept when `accepted` is cleared)."""
        return self._next_id

    def received_count(self, command: str = "submit_sm") -> int:
        """How many PDUs of `command` have been received in total (kept when `received` is cleared)."""
        if command not in COMMAND_IDS:
            raise ValueError(f"unknown SMPP command {command!r}")
        return self._counts.get(command, 0)

    # -- sending to the ESME -------------------------------------------------------

    def deliver(
        self,
        source_addr: str,
        destination_addr: str,
        short_message: bytes = b"",
        *,
        data_coding: int = 0,
        esm_class: int = 0,
        source_ton: int = 1,
        source_npi: int = 1,
        dest_ton: int = 1,
        dest_npi: int = 1,
        tlvs: Mapping[str, int | bytes] | None = None,
        system_id: str | None = None,
        command: str = "deliver_sm",
    ) -> Deferred[PDU]:
        """
        Send a deliver_sm (or data_sm) to a bound receiver or transceiver.

        It goes to the session bound as `system_id`, or the first one bound.
        The Deferred fires with the ESME's response whatever its status (a
        generic_nack included), and fails with `NotBound` when no session can
        take it, `EncodeError` when the values do not fit the PDU, or the
        connection's loss reason when it closes first.  With data_sm the
        message goes in message_payload.
        """
        if command not in ("deliver_sm", "data_sm"):
            return defer.fail(ValueError(f"deliver sends deliver_sm or data_sm, not {command!r}"))
        params: dict[str, int | bytes] = {
            "source_addr_ton": source_ton,
            "source_addr_npi": source_npi,
            "source_addr": source_addr.encode("latin-1"),
            "dest_addr_ton": dest_ton,
            "dest_addr_npi": dest_npi,
            "destination_addr": destination_addr.encode("latin-1"),
            "esm_class": esm_class,
            "data_coding": data_coding,
        }
        if command == "deliver_sm":
            params["short_message"] = short_message
        elif short_message:
            params["message_payload"] = short_message
        params.update(tlvs or {})
        connection = self._receiver(system_id)
        if connection is None:
            wanted = "any session" if system_id is None else f"system_id {system_id!r}"
            return defer.fail(NotBound(f"no receiver or transceiver bound as {wanted}"))
        return connection.send_request(PDU(command, 0, 0, params))

    def deliver_receipt(
        self,
        message_id: str,
        stat: str = "DELIVRD",
        err: str = "000",
        *,
        system_id: str | None = None,
        with_tlvs: bool = True,
    ) -> Deferred[PDU]:
        """
        Send the delivery receipt of an accepted submit, as `deliver` does.

        The text follows SMPP 3.4 appendix B: ``id:<id> sub:001 dlvrd:001
        submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000
        text:<first 20 octets>``.  It fails with `UnknownMessageId` for an id
        never accepted and ValueError for a `stat` not in `RECEIPT_STATES`.
        """
        submit = self.message_ids.get(message_id)
        if submit is None:
            return defer.fail(UnknownMessageId(message_id))
        if stat not in RECEIPT_STATES:
            return defer.fail(ValueError(f"unknown receipt stat {stat!r}"))
        body = submit.get("short_message") or submit.get("message_payload") or b""
        assert isinstance(body, bytes)
        delivered = "001" if stat == "DELIVRD" else "000"
        text = (
            f"id:{message_id} sub:001 dlvrd:{delivered}"
            f" submit date:{_receipt_date(self._accepted_at[message_id])}"
            f" done date:{_receipt_date(self.clock.seconds())}"
            f" stat:{stat} err:{err} text:"
        ).encode("ascii") + body[:20]
        tlvs: dict[str, int | bytes] = {}
        if with_tlvs:
            tlvs = {
                "receipted_message_id": message_id.encode("ascii"),
                "message_state": RECEIPT_STATES[stat],
            }
        return self.deliver(
            _text(submit.get("destination_addr")),
            _text(submit.get("source_addr")),
            text,
            esm_class=0x04,
            source_ton=_int(submit.get("dest_addr_ton")),
            source_npi=_int(submit.get("dest_addr_npi")),
            dest_ton=_int(submit.get("source_addr_ton")),
            dest_npi=_int(submit.get("source_addr_npi")),
            tlvs=tlvs,
            system_id=system_id,
        )

    def deliver_text(
        self,
        source_addr: str,
        destination_addr: str,
        text: str,
        *,
        source_ton: int = 1,
        source_npi: int = 1,
        dest_ton: int = 1,
        dest_npi: int = 1,
        system_id: str | None = None,
        reference: int = 0,
    ) -> Deferred[list[PDU]]:
        """
        Send `text` as a phone's SMS: one deliver_sm, or several with a UDH when it is long.

        It goes as `deliver` sends it, in data_coding 0 written in the
        alphabet of the receiving session's system_id (see `alphabets`) when
        that alphabet has every character, else in UCS2; a long text is cut
        into parts with an 8-bit concatenation header of `reference`.  The
        Deferred fires with the ESME's responses, one per part, whatever their
        status, and fails as `deliver` does (`TooLong` past 255 parts).
        """
        connection = self._receiver(system_id)
        if connection is None:
            wanted = "any session" if system_id is None else f"system_id {system_id!r}"
            return defer.fail(NotBound(f"no receiver or transceiver bound as {wanted}"))
        try:
            message = encode_message(
                text, "gsm", "udh", max_parts=255, reference=reference,
                default_alphabet=self.alphabets.get(connection.system_id or "", "gsm"),
            )
        except (TooLong, ValueError):
            return defer.fail()
        sent = [
            self.deliver(
                source_addr, destination_addr, part.short_message,
                data_coding=message.data_coding, esm_class=part.esm_class,
                source_ton=source_ton, source_npi=source_npi,
                dest_ton=dest_ton, dest_npi=dest_npi,
                system_id=connection.system_id,
            )
            for part in message.parts
        ]
        answers: Deferred[list[PDU]] = defer.gatherResults(sent, consumeErrors=True)

        def first_error(failure: Failure) -> Failure:
            failure.trap(defer.FirstError)
            return cast(defer.FirstError, failure.value).subFailure

        answers.addErrback(first_error)

        def logged(responses: list[PDU]) -> list[PDU]:
            if self.log_messages:
                statuses = sorted({STATUS_NAMES.get(r.command_status, f"0x{r.command_status:08X}")
                                   for r in responses})
                log.info(
                    "SMSC sent for {destination} from {source}: {text}"
                    " (ESME {system_id} answered {statuses})",
                    system_id=connection.system_id,
                    destination=_shown_address(destination_addr, dest_ton),
                    source=_shown_address(source_addr, source_ton),
                    text=json.dumps(text, ensure_ascii=False),
                    statuses=", ".join(statuses),
                )
            return responses

        return answers.addCallback(logged)

    def unbind_all(self) -> None:
        """Send unbind to every bound session; each closes when its ESME answers."""
        for connection in list(self.connections):
            if connection.state == _BOUND:
                connection.unbind().addErrback(lambda _: None)

    def drop_all(self, reset: bool = False) -> None:
        """Close every connection; `reset` aborts them (a TCP RST) instead."""
        for connection in list(self.connections):
            connection.close(reset)

    def cancel_receipts(self) -> None:
        """Forget the delivery receipts that `receipt_delay` has not sent yet."""
        for call in self._receipt_calls:
            if call.active():
                call.cancel()
        self._receipt_calls.clear()

    def send_raw(self, data: bytes, system_id: str | None = None) -> None:
        """Write raw bytes to the session bound as `system_id`, or the first connection."""
        for connection in self.connections:
            if system_id is None or connection.system_id == system_id:
                connection.send_raw(data)
                return
        raise NotBound(f"no connection bound as {system_id!r}")

    # -- called by the protocols ---------------------------------------------------

    def _check_credentials(self, system_id: str, password: str) -> int:
        if self.accounts is None:
            return ESME_ROK
        expected = self.accounts.get(system_id)
        if expected is None:
            return ESME_RINVSYSID
        if expected != password:
            return ESME_RINVPASWD
        return ESME_ROK

    def _record(self, system_id: str | None, pdu: PDU) -> None:
        self.received.append(Received(system_id, pdu))
        count = self._counts.get(pdu.command, 0) + 1
        self._counts[pdu.command] = count
        if self._received_waiters:
            ready = [w for w in self._received_waiters if w[0] == pdu.command and w[1] <= count]
            for waiter in ready:
                self._received_waiters.remove(waiter)
                waiter[2].callback(None)

    def _bound(self, connection: SMSCProtocol) -> None:
        ready = [w for w in self._bound_waiters if w[0] in (None, connection.system_id)]
        for waiter in ready:
            self._bound_waiters.remove(waiter)
            waiter[1].callback(connection)

    def _too_soon(self, system_id: str | None) -> bool:
        """Whether the max_rate fault throttles a submit from `system_id` arriving now."""
        now = self.clock.seconds()
        last = self._last_allowed.get(system_id)
        if last is not None and now - last < 1.0 / self.faults.max_rate:
            return True
        self._last_allowed[system_id] = now
        return False

    def _accept(self, pdu: PDU) -> str:
        self._next_id += 1
        message_id = self._format_id(self._next_id)
        self.accepted.append(pdu)
        self.message_ids[message_id] = pdu
        self._accepted_at[message_id] = self.clock.seconds()
        return message_id

    def _accepted_for_demo(self, system_id: str | None, message_id: str, pdu: PDU) -> None:
        """Log an accepted submit, and schedule its receipt, as `log_messages` and
        `receipt_delay` say."""
        if self.log_messages:
            text, part = _shown_text(pdu, self.alphabets.get(system_id or "", "gsm"))
            log.info(
                "SMSC got for {destination} from {source}{part}: {text}",
                destination=_shown_address(_text(pdu.get("destination_addr")),
                                           _int(pdu.get("dest_addr_ton"))),
                source=_shown_address(_text(pdu.get("source_addr")),
                                      _int(pdu.get("source_addr_ton"))),
                part=part,
                text=text,
            )
        # Bit 0 alone asks for a receipt of every final outcome (2 asks only
        # for failures, which the demo has none of).
        if self.receipt_delay is not None and _int(pdu.get("registered_delivery")) & 0x03 == 1:
            call = self.clock.callLater(self.receipt_delay, self._send_receipt, message_id,
                                        system_id)
            self._receipt_calls.add(call)

    def _send_receipt(self, message_id: str, system_id: str | None) -> None:
        self._receipt_calls = {call for call in self._receipt_calls if call.active()}

        def sent(response: PDU) -> None:
            if self.log_messages:
                log.info("SMSC sent the receipt of {message_id} (DELIVRD): {status}",
                         message_id=message_id,
                         status=STATUS_NAMES.get(response.command_status,
                                                  f"0x{response.command_status:08X}"))

        def not_sent(failure: Failure) -> None:
            log.info("SMSC cannot send the receipt of {message_id}: {error}",
                     message_id=message_id, error=failure.getErrorMessage())

        self.deliver_receipt(message_id, system_id=system_id).addCallbacks(sent, not_sent)

    def _receiver(self, system_id: str | None) -> SMSCProtocol | None:
        for connection in self.connections:
            if (
                connection.state == _BOUND
                and connection.bind_type in _CAN_RECEIVE
                and system_id in (None, connection.system_id)
            ):
                return connection
        return None


_MESSAGE_ID_FORMATS: dict[str, Callable[[int], str]] = {
    "hex": lambda n: f"{n:08x}",
    "decimal": lambda n: f"{n}",
}


def _receipt_date(seconds: float) -> str:
    return time.strftime("%y%m%d%H%M", time.gmtime(seconds))


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _shown_address(addr: str, ton: int) -> str:
    """An address as the demo's log shows it: an international number with its "+"."""
    return "+" + addr if ton == 1 and addr.isdigit() else addr


def _shown_text(pdu: PDU, alphabet: str) -> tuple[str, str]:
    """The text of a submit as the demo's log shows it (quoted), and which part it is."""
    data = pdu.get("short_message") or pdu.get("message_payload") or b""
    assert isinstance(data, bytes)
    params = pdu.params
    data_coding = _int(pdu.get("data_coding"))
    try:
        concat = concat_info(_int(pdu.get("esm_class")), data, params)
        body = concat.body if concat is not None else data
        if concat is None and _int(pdu.get("esm_class")) & 0x40:
            body = split_udh(data)[1]
        text = json.dumps(decode_text(data_coding, body, alphabet), ensure_ascii=False)
    except UndecodableText as error:
        return f"<{len(data)} octets: {error}>", ""
    part = "" if concat is None else f" (part {concat.sequence} of {concat.total})"
    return text, part


# -- running it alone -----------------------------------------------------------


@dataclass(frozen=True)
class SimulatorOptions:
    """The command line of ``python -m smppgw.testing.simulator``, parsed."""

    listen: tuple[str, ...] = ("tcp:2775:interface=127.0.0.1",)
    accounts: dict[str, str] | None = None
    system_id: str = "SIMSMSC"
    message_ids: str = "hex"
    faults: Faults = field(default_factory=Faults)
    log_pdus: bool = False

    def __repr__(self) -> str:
        # Passwords stay out of logs.
        accounts = None if self.accounts is None else sorted(self.accounts)
        return (
            f"SimulatorOptions(listen={self.listen}, accounts={accounts}, "
            f"system_id={self.system_id!r}, message_ids={self.message_ids!r}, faults={self.faults}, "
            f"log_pdus={self.log_pdus})"
        )


def _account(text: str) -> tuple[str, str]:
    system_id, colon, password = text.partition(":")
    if not colon or not system_id:
        raise argparse.ArgumentTypeError(f"expected SYSTEM_ID:PASSWORD, got {text!r}")
    return system_id, password


def _status(text: str) -> int:
    if text in STATUSES:
        return STATUSES[text]
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a status number (0x58) or name (ESME_RTHROTTLED), got {text!r}"
        ) from None


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if not 0 <= rate < float("inf"):
        raise argparse.ArgumentTypeError(
            f"expected submits per second, a number of 0 (no limit) or more, got {text!r}"
        )
    return rate


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m smppgw.testing.simulator",
        description="Run the smppgw SMSC simulator (an SMPP 3.4 server).",
    )
    parser.add_argument(
        "--listen",
        action="append",
        metavar="ENDPOINT",
        help="a Twisted server endpoint, repeatable (default tcp:2775:interface=127.0.0.1)",
    )
    parser.add_argument(
        "--account",
        action="append",
        type=_account,
        metavar="SYSTEM_ID:PASSWORD",
        help="an account that may bind, repeatable; without any, every bind is accepted",
    )
    parser.add_argument(
        "--system-id", default="SIMSMSC", help="the system_id the SMSC answers binds with"
    )
    parser.add_argument("--message-ids", choices=sorted(_MESSAGE_ID_FORMATS), default="hex")
    parser.add_argument("--log-pdus", action="store_true", help="log every PDU received and sent")
    faults = parser.add_argument_group("faults")
    faults.add_argument("--throttle-every", type=int, default=0, metavar="N")
    faults.add_argument("--submit-status", type=_status, default=0, metavar="STATUS")
    faults.add_argument(
        "--max-rate",
        type=_rate,
        default=0.0,
        metavar="N",
        help="throttle (ESME_RTHROTTLED) any submit sooner than 1/N s after the last accepted",
    )
    faults.add_argument("--black-hole", action="store_true")
    faults.add_argument("--black-hole-all", action="store_true")
    faults.add_argument("--response-delay", type=float, default=0.0, metavar="SECONDS")
    faults.add_argument("--drop-after", type=int, default=0, metavar="N")
    faults.add_argument("--drop-with-reset", action="store_true")
    faults.add_argument(
        "--alternate-drops", action="store_true", help="alternate clean closes and resets"
    )
    faults.add_argument("--bind-status", type=_status, default=0, metavar="STATUS")
    return parser


def parse_args(argv: list[str]) -> SimulatorOptions:
    """The options in `argv` (without the program name); exits with a usage message on bad ones."""
    args = _parser().parse_args(argv)
    return SimulatorOptions(
        listen=tuple(args.listen or SimulatorOptions.listen),
        accounts=dict(args.account) if args.account else None,
        system_id=args.system_id,
        message_ids=args.message_ids,
        log_pdus=args.log_pdus,
        faults=Faults(
            throttle_every=args.throttle_every,
            submit_status=args.submit_status,
            max_rate=args.max_rate,
            black_hole=args.black_hole,
            black_hole_all=args.black_hole_all,
            response_delay=args.response_delay,
            drop_after=args.drop_after,
            drop_with_reset=args.drop_with_reset,
            bind_status=args.bind_status,
            alternate_drops=args.alternate_drops,
        ),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the simulator on the global reactor, logging to stdout, until interrupted."""
    options = parse_args(sys.argv[1:] if argv is None else argv)

    from twisted.internet import reactor as global_reactor
    from twisted.internet.endpoints import serverFromString
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    reactor: Any = global_reactor
    level = LogLevel.debug if options.log_pdus else LogLevel.info
    globalLogBeginner.beginLoggingTo(
        [
            FilteringLogObserver(
                textFileLogObserver(sys.stdout), [LogLevelFilterPredicate(defaultLogLevel=level)]
            )
        ]
    )
    simulator = SMSCSimulator(
        options.accounts,
        reactor,
        system_id=options.system_id,
        message_ids=options.message_ids,
        log_pdus=options.log_pdus,
    )
    simulator.faults = options.faults
    failed: list[Failure] = []

    def listening(port: Any, description: str) -> None:
        log.info("SMSC simulator listening on {endpoint}", endpoint=description)

    def not_listening(failure: Failure, description: str) -> None:
        log.failure("cannot listen on {endpoint}", failure, endpoint=description)
        failed.append(failure)
        if len(failed) == 1:
            reactor.stop()

    def start() -> None:
        for description in options.listen:
            d = serverFromString(reactor, description).listen(simulator)
            d.addCallback(listening, description)
            d.addErrback(not_listening, description)

    reactor.callWhenRunning(start)
    reactor.run()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
