"""
Inbound: deliver_sm / data_sm from an SMSC to a host's DeliverSignal / SignalReport.

Two halves meet in the store's inbox:

- A link's *handler* reads each deliver_sm. A delivery receipt becomes a
  ``report`` row for the request that sent that message id. A message is
  decoded by its data_coding, reassembled first if it is one part of several
  (parts wait in the store, so a restart between parts loses none), routed by
  the server's Dialogs and Recipient settings (`smppgw.relay.dialogs.route_incoming`)
  and becomes a ``deliver`` row. The SMSC hears ESME_ROK only once the row (or
  the part) is committed; a refusal by the rules, or a text too long for an
  AMP value (65,535 bytes of UTF-8), gets ESME_RX_R_APPN (permanent), a store
  failure or a full inbox ESME_RX_T_APPN (the SMSC keeps the message and tries
  again). The parts of incomplete messages count against ``max_inbox`` too, so
  an SMSC sending parts that never complete cannot fill the store. No message
  that goes nowhere gets ESME_ROK.
- The *dispatcher* hands the inbox, oldest row first, to the logged-in hosts
  round-robin, at most `MAX_IN_FLIGHT` rows at a time, each host at most its
  share of them (so that a host that stops answering cannot hold up the
  others), and each row to one host only. A row leaves the inbox when a host
  answers ``{}`` or ``REFUSED``; ``TRY_LATER``, any other error answer, and no
  answer within `HOST_ANSWER_TIMEOUT` are retried with exponential backoff,
  and after ``max_attempts`` of them the row is logged at ``problems`` and
  dropped. A connection that answers a DeliverSignal ``UNHANDLED`` (a
  monitoring client) leaves the round-robin; one that answers a SignalReport
  ``UNHANDLED`` stays for messages, and reports wait (parked) while no
  logged-in host takes them; a host that disconnects gives its rows back;
  none of these costs the row an attempt. With no host logged
  in, rows wait; the registry wakes the dispatcher when one logs in.

Senders reach the host as ``number@name._smpp`` (``number@smpp`` for the
empty-named server), the number written by `smppgw.sms.address.inbound_number`
from its TON and NPI, so that a reply goes back through the same SMSC with the
same type of number. An alphanumeric sender such as ``MyBank`` becomes
``MyBank@name._smpp`` in the same way: the host sees which server it came
through, and a reply to it fails at the router as a bad address, which is
right, since no SMS can reach it. The destination, when it decides the
recipient (``number@telnum``), is written the same way.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.task import LoopingCall

from smppgw.host.registry import HostRegistry
from smppgw.relay.dialogs import DialogTable
from smppgw.smpp.log import SmppLog
from smppgw.store.interfaces import InboxRow, StoreError

if TYPE_CHECKING:
    from smppgw.config import Config
    from smppgw.stats import IStats
    from smppgw.store.sqlite import Store

from smppgw.relay.dispatch import Dispatch, _Call
from smppgw.relay.expiry import _MAX_EXPIRY_INTERVAL, Expiry
from smppgw.relay.intake import Intake, fragment_key
from smppgw.relay.sharedinbox import SharedInbox

__all__ = ["Inbound", "fragment_key"]


class Inbound(Intake, Expiry, SharedInbox, Dispatch):
    """Turns deliver_sm into inbox rows, and inbox rows into DeliverSignal / SignalReport."""

    def __init__(
        self,
        config: Config,
        store: Store,
        registry: HostRegistry,
        clock: Any,
        dialogs: DialogTable | None,
        *,
        max_inbox: int = 100_000,
        max_attempts: int = 10,
        stats: IStats | None = None,
        maintains: Callable[[], bool] = lambda: True,
    ) -> None:
        if max_inbox < 1 or max_attempts < 1:
            raise ValueError("max_inbox and max_attempts must be at least 1")
        self._config = config
        self._store = store
        self._registry = registry
        self._clock = clock
        self._dialogs = dialogs
        self._max_inbox = max_inbox
        self._max_attempts = max_attempts
        self._stats = stats
        self._maintains = maintains
        self._logs: dict[str, SmppLog] = {}
        self._module_log = self._log("*")
        try:
            counts = store.counts()
            self._inbox_size, self._fragment_rows = counts["inbox"], counts["fragments"]
        except StoreError as error:
            self._module_log.problem("cannot count the inbox: {error}", error=error)
            self._inbox_size = self._fragment_rows = 0
        # Distinct parts stored per incomplete message, as last seen, to count new rows.
        self._parts_stored: dict[str, int] = {}
        self._full = False
        # Servers already told that their data_coding 0 looks like another alphabet.
        self._alphabet_hinted: set[str] = set()
        # The dispatcher's state.
        self._running = False
        self._observing = False
        self._pump_waiting = False
        self._pumping = False
        self._cursor = 0  # the highest inbox id read from the store
        self._ready: deque[InboxRow] = deque()
        # Delivery reports while every logged-in host refuses SignalReport:
        # they wait here (and in the store) for one that takes them.
        self._parked: deque[InboxRow] = deque()
        self._in_flight: dict[int, _Call] = {}
        self._host_load: dict[Any, int] = {}  # rows in flight per host
        # Rows waiting out a backoff: (due time, id, row), and their ids.
        self._retries: list[tuple[float, int, InboxRow]] = []
        self._held: set[int] = set()
        self._retry_call: Any = None
        self._retry_due: float | None = None
        # Whose claims the rows are handed out under, for how long (a shared store's).
        self._node, self._lease = config.node.name, config.node.lease
        self._tending: LoopingCall | None = None
        self._expiry: LoopingCall | None = None
        self._receipt_check: Any = None  # the DelayedCall of the next look at receipt deadlines

    def _log(self, server: str) -> SmppLog:
        log = self._logs.get(server)
        if log is None:
            log = self._logs[server] = SmppLog(server, self._config.module.log_level)
        return log

    @property
    def inbox_size(self) -> int:
        """Messages and reports stored and not yet taken by a host."""
        return self._inbox_size

    # -- life ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the reassembly expiry timer and hand the stored inbox to the hosts."""
        if self._running:
            return
        self._running = True
        if not self._observing:
            # HostRegistry keeps its observers forever: register once, check _running.
            self._registry.on_host(self._wake)
            self._observing = True
        timeout = self._config.module.reassembly_timeout
        if timeout > 0:
            self._expiry = LoopingCall(self.expire_fragments)
            self._expiry.clock = self._clock
            self._expiry.start(min(_MAX_EXPIRY_INTERVAL, timeout / 4), now=True)
        self._check_receipts()
        self._start_tending()
        for call in self._in_flight.values():
            # Calls made before a stop: their answers still count, and so does silence.
            self._arm(call)
        self._wake()

    def configure(self, config: Config, dialogs: DialogTable | None) -> None:
        """Apply a new configuration live: the servers' receipt and reassembly settings,
        the dialog table (one may exist only now)."""
        old, self._config, self._dialogs = self._config, config, dialogs
        if self._running and old.module.reassembly_timeout != config.module.reassembly_timeout:
            if self._expiry is not None and self._expiry.running:
                self._expiry.stop()
            self._expiry = None
            timeout = config.module.reassembly_timeout
            if timeout > 0:
                self._expiry = LoopingCall(self.expire_fragments)
                self._expiry.clock = self._clock
                self._expiry.start(min(_MAX_EXPIRY_INTERVAL, timeout / 4), now=False)

    def stop(self) -> None:
        """Cancel the timers; stored rows and parts stay for the next start."""
        self._running = False
        if self._expiry is not None and self._expiry.running:
            self._expiry.stop()
        self._expiry = None
        if self._receipt_check is not None and self._receipt_check.active():
            self._receipt_check.cancel()
        self._receipt_check = None
        self._stop_tending()
        self._cancel_retry_call()
        for call in self._in_flight.values():
            if call.timer is not None and call.timer.active():
                call.timer.cancel()
            call.timer = None
        # Forget what was read: the next start reads the store again from the top
        # (skipping rows still in flight).
        self._ready.clear()
        self._parked.clear()
        self._retries.clear()
        self._held.clear()
        self._cursor = 0
