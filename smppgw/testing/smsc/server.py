"""The SMSC simulator as a server: the factory ESMEs bind to, its accounts, and what it has seen."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, cast

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.protocol import ServerFactory

from smppgw.smpp.codec import PDU
from smppgw.smpp.constants import COMMAND_IDS, ESME_ROK
from smppgw.testing.smsc.deliveries import Deliveries
from smppgw.testing.smsc.faults import Drop, Faults, NotBound, Received, SentReceipt
from smppgw.testing.smsc.session import (
    _BOUND,
    ESME_RINVPASWD,
    ESME_RINVSYSID,
    SMSCProtocol,
)

if TYPE_CHECKING:
    from twisted.internet.interfaces import IAddress


class SMSCSimulator(Deliveries, ServerFactory):
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
        #: message_id -> the system_id of the session whose submit it was.
        self.accepted_by: dict[str, str | None] = {}
        #: message_id -> the delivery receipt sent for that submit, as the ESME answered it.
        self.receipts_sent: dict[str, SentReceipt] = {}
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

    def unbind_all(self) -> None:
        """Send unbind to every bound session; each closes when its ESME answers."""
        for connection in list(self.connections):
            if connection.state == _BOUND:
                connection.unbind().addErrback(lambda _: None)

    def drop_all(self, reset: bool = False) -> None:
        """Close every connection; `reset` aborts them (a TCP RST) instead."""
        for connection in list(self.connections):
            connection.close(reset)

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


_MESSAGE_ID_FORMATS: dict[str, Callable[[int], str]] = {
    "hex": lambda n: f"{n:08x}",
    "decimal": lambda n: f"{n}",
}
