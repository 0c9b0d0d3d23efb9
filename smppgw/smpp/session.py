"""
The SMPP session: a state machine with no IO.

PDUs and connection events go in; PDUs to write and a request to close come
out through two callables the protocol shell provides.  The session numbers
requests (wrapping 0x7FFFFFFF -> 1), keeps one table of outstanding requests
(sequence number -> Deferred and deadline), limits them to a window, keeps the
link alive with enquire_link, and answers what the SMSC asks of an ESME.

Time comes from an injected clock; the reactor is never imported here.  What a
request fails with is `smppgw.smpp.failures`, the settings and the state table
`smppgw.smpp.states`; both are offered here too.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.python.failure import Failure

from smppgw.smpp.codec import PDU, DecodeError, response_to
from smppgw.smpp.constants import (
    COMMAND_IDS,
    ESME_RINVBNDSTS,
    ESME_ROK,
    ESME_RX_T_APPN,
    RESPONSE_BIT,
    status_text,
)
from smppgw.smpp.failures import (
    BindFailed,
    CommandStatusError,
    ConnectionLost,
    GenericNack,
    MalformedResponse,
    NotBound,
    RequestFailed,
    ResponseTimeout,
)
from smppgw.smpp.log import SmppLog
from smppgw.smpp.states import (
    BIND_COMMANDS,
    BINDING,
    BOUND,
    CLOSED,
    MAY_RECEIVE,
    MAY_SEND,
    OPEN,
    TRANSITIONS,
    UNBINDING,
    InvalidTransition,
    SessionSettings,
)

if TYPE_CHECKING:
    from twisted.internet.interfaces import IDelayedCall, IReactorTime

MAX_SEQUENCE = 0x7FFFFFFF
#: submit_sm_resp and data_sm_resp: what `Session.submits_accepted` counts.
_SUBMIT_RESPONSES = frozenset({COMMAND_IDS["submit_sm_resp"], COMMAND_IDS["data_sm_resp"]})
INTERFACE_VERSION = 0x34

__all__ = [
    "BIND_COMMANDS", "BINDING", "BOUND", "CLOSED", "MAY_RECEIVE", "MAY_SEND", "OPEN",
    "TRANSITIONS", "UNBINDING", "Answer", "BindFailed", "CommandStatusError", "ConnectionLost",
    "DeliverHook", "GenericNack", "InvalidTransition", "MalformedResponse", "NotBound",
    "RequestFailed", "ResponseTimeout", "Session", "SessionSettings", "refuse_for_now",
]


DeliverHook = Callable[[PDU], "Deferred[int] | int"]


def refuse_for_now(pdu: PDU) -> int:
    """The default inbound hook: a temporary error, so the SMSC keeps the message."""
    return ESME_RX_T_APPN


class Answer(Protocol):
    """Who hears of a request's outcome: a Deferred, or any object with the same two methods
    (a caller sending thousands of submits a second saves a Deferred per PDU)."""

    def callback(self, result: Any) -> object: ...

    def errback(self, fail: Failure | BaseException | None = None) -> object: ...


@dataclass(slots=True)
class _Outstanding:
    request: PDU
    answer: Answer
    deadline: float


class Session:
    """One SMPP session over one connection.  Create a new one for each connection."""

    def __init__(
        self,
        settings: SessionSettings,
        clock: IReactorTime,
        send: Callable[[PDU], None],
        close: Callable[[], None],
        log: SmppLog | None = None,
        deliver: DeliverHook = refuse_for_now,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self._send = send
        self._close = close
        self.log = log or SmppLog("?", "none")
        self.deliver = deliver
        self.state = OPEN
        self._next_sequence = 1
        # In sending order, which is also deadline order (one response_timeout
        # for all): one timer, for the oldest, watches them all.
        self._outstanding: dict[int, _Outstanding] = {}
        self._deadline_timer: IDelayedCall | None = None
        self._waiting: deque[tuple[PDU, Answer]] = deque()
        self._keepalive: IDelayedCall | None = None
        self._observers: list[Callable[[str], None]] = []
        self.close_reason = ""
        #: submit_sm and data_sm the SMSC accepted on this session.
        self.submits_accepted = 0

    # -- state table --------------------------------------------------------------

    def _fire(self, event: str) -> str:
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            raise InvalidTransition(f"{event} in state {self.state}")
        if new != self.state:
            self.state = new
            for observer in list(self._observers):
                observer(new)
        return new

    def observe(self, observer: Callable[[str], None]) -> None:
        """Call ``observer(state)`` on every state change."""
        self._observers.append(observer)

    @property
    def outstanding(self) -> int:
        return len(self._outstanding)

    @property
    def bound(self) -> bool:
        return self.state == BOUND

    @property
    def can_submit(self) -> bool:
        """Bound, and as a bind type that may send submit_sm."""
        return self.state == BOUND and "submit_sm" in MAY_SEND[self.settings.bind_type]

    # -- requests out ---------------------------------------------------------------

    def bind(self) -> Deferred[PDU]:
        """Send the bind for this session's bind type; fires with the bind_resp or fails with BindFailed."""
        self._fire("bind")
        s = self.settings
        pdu = PDU(
            BIND_COMMANDS[s.bind_type],
            params={
                "system_id": s.system_id.encode("ascii"),
                "password": s.password.encode("ascii"),
                "system_type": s.system_type.encode("ascii"),
                "interface_version": INTERFACE_VERSION,
                "addr_ton": 0,
                "addr_npi": 0,
                "address_range": s.address_range.encode("ascii"),
            },
        )
        self.log.low("binding as {bind_type} with system_id {system_id}",
                     bind_type=s.bind_type, system_id=s.system_id)
        d = self._request(pdu)
        d.addCallbacks(self._bound, self._bind_failed)
        return d

    def _bound(self, response: PDU) -> PDU:
        if self.state == BINDING:
            self._fire("bind_ok")
            self.log.low("bind accepted")
            self._reset_keepalive()
        return response

    def _bind_failed(self, failure: Failure) -> Failure:
        if failure.check(CommandStatusError) and not failure.check(BindFailed):
            refusal: Any = failure.value
            failure = Failure(BindFailed(refusal.response))
        # A protocol event here: the link says it as a problem, with its retry delay.
        self.log.low("bind failed: {error}", error=failure.getErrorMessage())
        if self.state == BINDING:
            self._fire("bind_failed")
            self.close_reason = f"bind failed: {failure.getErrorMessage()}"
            self._close()
        return failure

    def submit(self, pdu: PDU, answer: Answer | None = None) -> Any:
        """Send a submit_sm (or data_sm) once the window lets it out.

        Its response (or failure) goes to `answer`, which is returned; without
        one, to a new Deferred.
        """
        if answer is None:
            answer = Deferred()
        if self.state != BOUND or pdu.command not in MAY_SEND[self.settings.bind_type]:
            answer.errback(NotBound(
                f"cannot send {pdu.command} while {self.state} as {self.settings.bind_type}"))
        elif len(self._outstanding) >= self.settings.window:
            self._waiting.append((pdu, answer))
        else:
            self._request(pdu, answer)
        return answer

    def unbind(self) -> Deferred[PDU]:
        """Send unbind; the session closes when unbind_resp arrives (or it times out)."""
        self._fire("unbind")
        self.log.low("unbinding")
        d = self._request(PDU("unbind"))

        def done(result: Any) -> Any:
            if self.state == UNBINDING:
                self._fire("unbind_done")
                self.close_reason = self.close_reason or "unbound"
                self._close()
            return result

        d.addBoth(done)
        return d

    def _enquire(self) -> None:
        self._keepalive = None
        if self.state != BOUND:
            return
        self.log.low("idle for {keep_alive}s: enquire_link", keep_alive=self.settings.keep_alive)
        d = self._request(PDU("enquire_link"))

        def timeout(failure: Failure) -> None:
            if failure.check(ResponseTimeout):
                self.log.problem("no enquire_link_resp within {timeout}s: closing",
                                 timeout=self.settings.response_timeout)
                self.close_reason = "enquire_link not answered"
                self._close()
            elif not failure.check(ConnectionLost):
                self.log.problem("enquire_link failed: {error}", error=failure.getErrorMessage())

        d.addCallbacks(lambda _: None, timeout)

    def _request(self, pdu: PDU, answer: Any = None) -> Any:
        """Send a request; its outcome goes to `answer` (a new Deferred if None), which is returned."""
        if answer is None:
            answer = Deferred()
        sequence = self._allocate_sequence()
        pdu.sequence_number = sequence
        timeout = self.settings.response_timeout
        self._outstanding[sequence] = _Outstanding(pdu, answer, self.clock.seconds() + timeout)
        if self._deadline_timer is None:
            self._deadline_timer = self.clock.callLater(timeout, self._check_deadlines)
        try:
            self._write(pdu)
        except Exception:
            # Not sent (a value the PDU cannot carry): nothing may stay outstanding.
            self._finish(sequence)
            answer.errback(Failure())
        return answer

    def _allocate_sequence(self) -> int:
        while True:
            sequence = self._next_sequence
            self._next_sequence = 1 if sequence >= MAX_SEQUENCE else sequence + 1
            if sequence not in self._outstanding:
                return sequence

    def _write(self, pdu: PDU) -> None:
        self.log.trace("out", pdu)
        self._send(pdu)
        if self.state == BOUND:
            self._reset_keepalive()

    def _reset_keepalive(self) -> None:
        if self._keepalive is not None and self._keepalive.active():
            self._keepalive.reset(self.settings.keep_alive)
        else:
            self._keepalive = self.clock.callLater(self.settings.keep_alive, self._enquire)

    def _check_deadlines(self) -> None:
        self._deadline_timer = None
        now = self.clock.seconds()
        late = []
        for sequence, entry in self._outstanding.items():
            if entry.deadline > now:
                break
            late.append(sequence)
        for sequence in late:
            self._timed_out(sequence)
        # Requests sent by the errbacks above may have started a timer for
        # their own (later) deadline: the oldest decides.
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        if self._outstanding and self.state != CLOSED:
            oldest = next(iter(self._outstanding.values()))
            self._deadline_timer = self.clock.callLater(max(0.0, oldest.deadline - now),
                                                        self._check_deadlines)

    def _timed_out(self, sequence: int) -> None:
        entry = self._outstanding.pop(sequence, None)
        if entry is None:
            return
        self.log.problem("no response to {command} #{seq} within {timeout}s",
                         command=entry.request.command, seq=sequence,
                         timeout=self.settings.response_timeout)
        entry.answer.errback(ResponseTimeout(
            f"no response to {entry.request.command} within {self.settings.response_timeout}s"))
        self._release_window()

    def _finish(self, sequence: int) -> _Outstanding | None:
        entry = self._outstanding.pop(sequence, None)
        if not self._outstanding and self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        return entry

    def window_changed(self) -> None:
        """The settings' window may have grown: send what waited for a slot."""
        self._release_window()

    def _release_window(self) -> None:
        while self._waiting and len(self._outstanding) < self.settings.window:
            pdu, d = self._waiting.popleft()
            if self.state != BOUND:
                d.errback(ConnectionLost(f"session {self.state} before {pdu.command} was sent"))
                continue
            self._request(pdu, d)

    # -- PDUs in ----------------------------------------------------------------------

    def pdu_received(self, pdu: PDU) -> None:
        """A decoded PDU from the SMSC."""
        self.log.trace("in", pdu)
        if pdu.command_id & RESPONSE_BIT:
            self._response(pdu)
        else:
            self._peer_request(pdu)

    def decode_failed(self, error: DecodeError) -> None:
        """A frame that did not decode: nack a request, fail the matching request for a response."""
        if error.command_id & RESPONSE_BIT:
            entry = self._finish(error.sequence_number)
            self.log.problem("malformed response #{seq}: {reason}",
                             seq=error.sequence_number, reason=error.reason)
            if entry is not None:
                entry.answer.errback(MalformedResponse(error.reason))
                self._release_window()
            return
        self.log.problem("malformed PDU #{seq}: {reason}: generic_nack {status}",
                         seq=error.sequence_number, reason=error.reason,
                         status=status_text(error.status))
        self._write(PDU("generic_nack", error.sequence_number, error.status))

    def _response(self, pdu: PDU) -> None:
        if pdu.command == "generic_nack" and pdu.sequence_number == 0:
            self.log.problem("generic_nack without a sequence number: {status}",
                             status=status_text(pdu.command_status))
            return
        entry = self._finish(pdu.sequence_number)
        if entry is None:
            self.log.problem("unexpected {command} #{seq}", command=pdu.command,
                             seq=pdu.sequence_number)
            return
        if pdu.command == "generic_nack":
            entry.answer.errback(GenericNack(pdu.command_status))
        elif pdu.command_id != (entry.request.command_id | RESPONSE_BIT):
            entry.answer.errback(MalformedResponse(
                f"{pdu.command} in answer to {entry.request.command}"))
        elif pdu.command_status != ESME_ROK:
            entry.answer.errback(CommandStatusError(pdu))
        else:
            if pdu.command_id in _SUBMIT_RESPONSES:
                self.submits_accepted += 1
            entry.answer.callback(pdu)
        self._release_window()

    def _peer_request(self, pdu: PDU) -> None:
        command = pdu.command
        if command == "enquire_link":
            self._write(response_to(pdu))
        elif command == "unbind":
            self.log.low("the SMSC unbinds")
            self._write(response_to(pdu))
            if self.state in (BOUND, BINDING, UNBINDING):
                self._fire("peer_unbind")
            self.close_reason = "unbound by the SMSC"
            self._close()
        elif command in MAY_RECEIVE[self.settings.bind_type] and self.state in (BOUND, UNBINDING):
            self._inbound(pdu)
        elif command in ("deliver_sm", "data_sm", "alert_notification", "outbind"):
            if command in ("alert_notification", "outbind"):
                self.log.low("ignoring {command}", command=command)
                return
            self._write(response_to(pdu, ESME_RINVBNDSTS))
        else:
            # A request no SMSC sends to an ESME (submit_sm, bind_*...).
            self._write(PDU("generic_nack", pdu.sequence_number, 0x00000003))

    def _inbound(self, pdu: PDU) -> None:
        def answer(status: Any) -> None:
            if not isinstance(status, int):
                status = ESME_RX_T_APPN
            if self.state not in (BOUND, UNBINDING):
                return  # the SMSC will redeliver: we never answered
            params = {"message_id": b""} if pdu.command == "data_sm" else {}
            self._write(response_to(pdu, status, **params))

        def broken(failure: Failure) -> int:
            self.log.problem("inbound {command} failed: {error}", command=pdu.command,
                             error=failure.getErrorMessage())
            return ESME_RX_T_APPN

        maybeDeferred(self.deliver, pdu).addErrback(broken).addCallback(answer)

    # -- the connection -----------------------------------------------------------

    def connection_lost(self, reason: str = "connection lost") -> None:
        """Fail every outstanding and waiting request; stop the timers."""
        if self.state != CLOSED:
            self._fire("lost")
        if self._keepalive is not None and self._keepalive.active():
            self._keepalive.cancel()
        self._keepalive = None
        if not self.close_reason:
            self.close_reason = reason
        outstanding = list(self._outstanding.values())
        self._outstanding.clear()
        waiting = list(self._waiting)
        self._waiting.clear()
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
        for entry in outstanding:
            entry.answer.errback(ConnectionLost(f"{reason} before {entry.request.command} was answered"))
        for pdu, d in waiting:
            d.errback(ConnectionLost(f"{reason} before {pdu.command} was sent"))
