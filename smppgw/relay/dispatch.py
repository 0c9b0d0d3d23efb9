"""
The hosts' half of inbound traffic: the inbox, oldest row first, to the logged-in hosts.

Round-robin, at most `MAX_IN_FLIGHT` rows at a time, each host at most its share
of them, each row to one host only; retries with exponential backoff, parked
reports while no host takes them (see `smppgw.relay.inbound` for the whole
contract).
"""

from __future__ import annotations

import dataclasses
import heapq
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.error import ConnectionClosed
from twisted.protocols.amp import UnhandledCommand
from twisted.python.failure import Failure

from smppgw.host.commands import DeliverSignal, Refused, SignalReport
from smppgw.host.registry import HostRegistry
from smppgw.relay.dialogs import DialogTable
from smppgw.smpp.log import SmppLog
from smppgw.store.interfaces import InboxRow, StoreError, UnknownRow

if TYPE_CHECKING:
    from smppgw.config import Config
    from smppgw.stats import IStats
    from smppgw.store.sqlite import Store

#: Rows handed to hosts and not yet answered, at most.
MAX_IN_FLIGHT = 50
#: A host that has not answered a DeliverSignal / SignalReport after this many
#: seconds counts as having answered TRY_LATER.
HOST_ANSWER_TIMEOUT = 60.0
#: The first retry after a host error waits this long; each later one twice as long...
RETRY_DELAY = 1.0
#: ...but never longer than this.
MAX_RETRY_DELAY = 300.0
#: How long the dispatcher waits before reading the inbox again after the store failed.
STORE_RETRY_DELAY = 5.0
#: Inbox rows read from the store at a time.
_PAGE = 200
_COMMANDS = {"deliver": DeliverSignal, "report": SignalReport}


@dataclasses.dataclass
class _Call:
    """A row handed to a host and not yet answered (mutable: its timer comes and goes)."""

    host: Any
    row: InboxRow
    timer: Any = None  # the DelayedCall of HOST_ANSWER_TIMEOUT, while running
    timed_out: bool = False
    deferred: Deferred[Any] | None = None


class Dispatch:
    """What `Inbound` does for the hosts' side (see the module docstring)."""

    # What the service gives it (set by Inbound.__init__).
    _config: Config
    _store: Store
    _registry: HostRegistry
    _clock: Any
    _dialogs: DialogTable | None
    _stats: IStats | None
    _max_inbox: int
    _max_attempts: int
    _module_log: SmppLog
    _inbox_size: int
    _running: bool
    _observing: bool
    _pump_waiting: bool
    _pumping: bool
    _cursor: int
    _ready: deque[InboxRow]
    _parked: deque[InboxRow]
    _in_flight: dict[int, _Call]
    _host_load: dict[Any, int]
    _retries: list[tuple[float, int, InboxRow]]
    _held: set[int]
    _retry_call: Any
    _retry_due: float | None
    _node: str
    _lease: float

    _log: Callable[[str], SmppLog]
    _claim: Callable[[int], list[InboxRow]]
    _release: Callable[[InboxRow, SmppLog, str], None]

    # -- the host side -------------------------------------------------------------

    def _wake(self) -> None:
        """Hand out what can go now.

        The store lists only durable rows, so a row whose write then fails (and
        so was answered ESME_RX_T_APPN) never reaches a host.
        """
        if not self._running or self._pump_waiting or self._pumping:
            # While pumping, the running loop re-checks hosts, rows and room itself.
            return
        self._pump()

    def _pump(self, _: object = None) -> None:
        self._pump_waiting = False
        if not self._running:
            return
        self._pumping = True
        try:
            if self._parked and self._registry.any_takes_reports():
                self._ready.extendleft(reversed(self._parked))
                self._parked.clear()
            while self._has_room():
                row = self._next_row()
                if row is None:
                    break
                reports = row.kind == "report"
                host = self._pick_host(reports)
                if host is not None:
                    self._send(host, row)
                elif reports and not self._registry.any_takes_reports():
                    self._parked.append(row)
                else:
                    self._ready.appendleft(row)  # its hosts are busy: wait for room
                    break
        finally:
            self._pumping = False
        self._schedule_retry()

    def _host_share(self) -> int:
        """How many rows one host may hold unanswered: a silent host must leave room for the others."""
        return max(1, MAX_IN_FLIGHT // max(1, len(self._registry.hosts)))

    def _has_room(self) -> bool:
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            return False
        share = self._host_share()
        return any(self._host_load.get(host, 0) < share for host in self._registry.hosts)

    def _pick_host(self, reports: bool) -> Any:
        """The next host round-robin that takes the row's kind and holds less than its share; or None."""
        share = self._host_share()
        for _ in range(len(self._registry.hosts)):
            host = self._registry.pick()
            if (host is not None and self._host_load.get(host, 0) < share
                    and self._registry.takes(host, reports)):
                return host
        return None

    def _next_row(self) -> InboxRow | None:
        if self._retries and self._retries[0][0] <= self._clock.seconds():
            _, row_id, row = heapq.heappop(self._retries)
            self._held.discard(row_id)
            return row
        if not self._ready:
            self._refill()
        return self._ready.popleft() if self._ready else None

    def _refill(self) -> None:
        try:
            if self._store.shared:
                rows = self._claim(max(1, MAX_IN_FLIGHT - len(self._in_flight)))
            else:
                rows = self._store.claim_inbox(self._node, _PAGE, self._lease,
                                               after_id=self._cursor)
        except StoreError as error:
            self._module_log.problem("cannot read the inbox: {error}", error=error)
            self._schedule_retry(self._clock.seconds() + STORE_RETRY_DELAY)
            return
        for row in rows:
            self._cursor = max(self._cursor, row.id)
            if row.id not in self._in_flight and row.id not in self._held:
                self._ready.append(row)

    def _send(self, host: Any, row: InboxRow) -> None:
        command = _COMMANDS.get(row.kind)
        if command is None:
            self._log(str(row.payload.get("server", "*"))).problem(
                "inbox row {id} of unknown kind {kind!r} dropped", id=row.id, kind=row.kind)
            self._forget(row)
            return
        call = _Call(host, row)
        self._in_flight[row.id] = call
        self._host_load[host] = self._host_load.get(host, 0) + 1
        self._arm(call)
        d = call.deferred = maybeDeferred(host.callRemote, command, **row.payload)
        d.addCallbacks(self._answered, self._failed, callbackArgs=(call,), errbackArgs=(call,))
        d.addErrback(lambda failure: self._module_log.problem(
            "inbox dispatch failed: {error}", error=failure.getErrorMessage()))

    def _arm(self, call: _Call) -> None:
        if call.timer is None:
            call.timer = self._clock.callLater(HOST_ANSWER_TIMEOUT, self._time_out, call)

    def _time_out(self, call: _Call) -> None:
        call.timer = None
        call.timed_out = True
        assert call.deferred is not None
        # Errbacks with CancelledError; a late answer from the host is then ignored.
        call.deferred.cancel()

    def _settle(self, call: _Call) -> None:
        """``call`` has its outcome: it no longer holds a place in flight."""
        if call.timer is not None and call.timer.active():
            call.timer.cancel()
        call.timer = None
        if self._in_flight.get(call.row.id) is call:
            del self._in_flight[call.row.id]
        load = self._host_load.get(call.host, 0) - 1
        if load > 0:
            self._host_load[call.host] = load
        else:
            self._host_load.pop(call.host, None)

    def _answered(self, _: object, call: _Call) -> None:
        self._settle(call)
        row = call.row
        self._log(str(row.payload.get("server", "*"))).major(
            "{what} handed to a host", what=_describe(row))
        self._forget(row)
        self._wake()

    def _failed(self, failure: Failure, call: _Call) -> None:
        self._settle(call)
        row = call.row
        log = self._log(str(row.payload.get("server", "*")))
        if failure.check(Refused):
            log.problem("{what} refused by the host: dropped", what=_describe(row))
            self._forget(row)
            self._wake()
            return
        if failure.check(UnhandledCommand, ConnectionClosed) and not call.timed_out:
            # Not the host's answer about this row: it goes to another host,
            # and the attempts are kept for hosts that do answer.
            if failure.check(UnhandledCommand) and row.kind == "report":
                self._module_log.problem(
                    "a host does not handle SignalReport: it gets messages only, and delivery"
                    " reports wait for a host that takes them (registered_delivery = false"
                    " stops asking the SMSC for them)")
                self._registry.refuses_reports(call.host)
            elif failure.check(UnhandledCommand):
                self._module_log.low("a connection without DeliverSignal"
                                     " (a monitoring client?) is no delivery host")
                self._registry.exclude(call.host)
            else:
                self._registry.remove(call.host)
            if self._running:
                self._ready.appendleft(row)
            self._wake()
            return
        if call.timed_out and failure.check(CancelledError):
            error = f"no answer within {HOST_ANSWER_TIMEOUT:g}s"
        else:
            error = failure.getErrorMessage()
        if self._store.shared:
            self._release(row, log, error)  # for whichever node claims it when it is due
            return
        self._store.bump_inbox(row.id).addCallbacks(
            self._retry_later, self._not_bumped, callbackArgs=(row, log, error),
            errbackArgs=(row, log, error))

    def _not_bumped(self, failure: Failure, row: InboxRow, log: SmppLog, error: str) -> None:
        if failure.check(UnknownRow):
            return  # gone already (a rolled-back write): nothing left to deliver
        failure.trap(StoreError)
        self._retry_later(row.attempts + 1, row, log, error)

    def _retry_later(self, attempts: int, row: InboxRow, log: SmppLog, error: str) -> None:
        """A row not taken, `attempts` times now: again after a backoff, or dropped."""
        if attempts >= self._max_attempts:
            log.problem("{what} not taken by a host after {attempts} attempts ({error}): dropped",
                        what=_describe(row), attempts=attempts, error=error)
            self._forget(row)
            self._wake()
            return
        delay = retry_delay(attempts)
        self._retrying(attempts, row, log, error, delay)
        if self._running:
            retry = dataclasses.replace(row, attempts=attempts)
            heapq.heappush(self._retries, (self._clock.seconds() + delay, row.id, retry))
            self._held.add(row.id)
        self._wake()

    def _retrying(self, attempts: int, row: InboxRow, log: SmppLog, error: str,
                  delay: float) -> None:
        log.problem("{what} not taken by a host ({error}): attempt {attempts} of {max},"
                    " next in {delay:g}s", what=_describe(row), error=error,
                    attempts=attempts, max=self._max_attempts, delay=delay)

    def _forget(self, row: InboxRow) -> None:
        self._inbox_size = max(0, self._inbox_size - 1)
        self._store.remove_inbox(row.id, row.claim).addErrback(self._not_forgotten, row)

    def _not_forgotten(self, failure: Failure, row: InboxRow) -> None:
        # It stays in the store and goes to a host again after a restart.
        self._inbox_size += 1
        self._module_log.problem("cannot remove inbox row {id}: {error}", id=row.id,
                                 error=failure.getErrorMessage())

    def _schedule_retry(self, due: float | None = None) -> None:
        """Wake the dispatcher at ``due``, or when the first row in backoff is due."""
        if due is None:
            if not self._retries or not self._has_room():
                return  # nothing waits, or a host logging in or answering will wake us
            due = self._retries[0][0]
        if self._retry_call is not None and self._retry_due is not None and self._retry_due <= due:
            return
        self._cancel_retry_call()
        self._retry_due = due
        self._retry_call = self._clock.callLater(max(0.0, due - self._clock.seconds()),
                                                 self._retry_now)

    def _retry_now(self) -> None:
        self._retry_call = self._retry_due = None
        self._wake()

    def _cancel_retry_call(self) -> None:
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = self._retry_due = None


def retry_delay(attempts: int) -> float:
    """How long a row waits after its ``attempts``-th attempt was not taken."""
    return min(MAX_RETRY_DELAY, RETRY_DELAY * 2 ** (attempts - 1))


def _describe(row: InboxRow) -> str:
    payload = row.payload
    if row.kind == "report":
        return (f"delivery report for {payload.get('request_id')}"
                f" ({payload.get('message_id')} {payload.get('state')})")
    return f"SMS from {payload.get('sender')} for {payload.get('recipient')}"
