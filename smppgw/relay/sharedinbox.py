"""The dispatcher's side of an inbox that several nodes share (a PostgreSQL store).

On a store that is `shared` (`smppgw.store.interfaces.IStore`), a row goes to
a host only under this node's claim (`IStore.claim_inbox`), and each row goes
to one host of one node:

- The dispatcher claims only as many rows as it has room for in flight, so
  that the rows it cannot hand out yet stay for the other nodes; delivery
  reports only while one of its hosts takes them.
- Every third of ``[node] lease`` it renews the claims of the rows it holds
  (in flight, or waiting for a host), since a host may take up to
  `HOST_ANSWER_TIMEOUT` to answer, longer than a lease; a row whose claim
  could not be renewed (another node may hold it now) leaves its queue.
- A host's answer removes the row, or counts an attempt, under the claim it
  was handed out under: once another node holds the row, a late answer
  changes nothing.  A row to retry is released in the store with the time
  its retry is due, for whichever node claims it then.
- It counts the inbox again at each renewal, since other nodes add and remove
  rows: ``max_inbox`` and the inbox size shown are the cluster's.
- It learns of rows other nodes add through `inbox_news` (what a
  LISTEN/NOTIFY `smppgw.cluster.notifier.Notifier` calls), and claims again
  at each renewal: rows released for a retry, the rows of a node that died
  (once their claims lapse) and news missed while the notifier reconnected
  are claimed within a third of the lease, with no tighter polling.

A store of one process (SQLite, memory) needs none of this: its claims
always hold, and the dispatcher pages through its inbox (`dispatch`).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from smppgw.cluster.connection import connect
from smppgw.cluster.notifier import Notifier
from smppgw.host.registry import HostRegistry
from smppgw.relay.dispatch import retry_delay
from smppgw.smpp.log import SmppLog
from smppgw.store.interfaces import InboxRow, StoreError, UnknownRow

if TYPE_CHECKING:
    from smppgw.config import Config
    from smppgw.relay.dispatch import _Call
    from smppgw.store.sqlite import Store


class SharedInbox:
    """What `Inbound` does on a shared inbox (see the module docstring)."""

    _store: Store
    _registry: HostRegistry
    _clock: Any
    _module_log: SmppLog
    _running: bool
    _max_attempts: int
    _node: str
    _lease: float
    _tending: LoopingCall | None
    _ready: deque[InboxRow]
    _parked: deque[InboxRow]
    _in_flight: dict[int, _Call]

    _wake: Callable[[], None]
    _recount: Callable[[], None]
    _schedule_retry: Callable[..., None]
    _retry_later: Callable[[int, InboxRow, SmppLog, str], None]
    _retrying: Callable[[int, InboxRow, SmppLog, str, float], None]

    def inbox_news(self, channel: str = "", node: str = "") -> None:
        """Node ``node`` added inbox rows (a notification; none named: rows may have been
        missed): claim what there is room for.  This node's own rows woke it already."""
        if node != self._node or not node:
            self._wake()

    def _start_tending(self) -> None:
        if self._store.shared and self._tending is None:
            self._tending = LoopingCall(self._tend)
            self._tending.clock = self._clock
            self._tending.start(self._lease / 3, now=False)

    def _stop_tending(self) -> None:
        if self._tending is not None and self._tending.running:
            self._tending.stop()
        self._tending = None

    def _claim(self, limit: int) -> list[InboxRow]:
        """Claim up to ``limit`` rows; the new ones, for the ready queue."""
        kinds = None if self._registry.any_takes_reports() else ("deliver",)
        rows = self._store.claim_inbox(self._node, limit, self._lease, kinds=kinds)
        parked = {row.id for row in self._parked}
        fresh = []
        for row in rows:
            call = self._in_flight.get(row.id)
            if call is not None:
                # Its claim lapsed and came back to this node: the answer counts under the new one.
                call.row = row
                continue
            if row.id in parked:
                self._drop_queued({row.id})
            fresh.append(row)
        return fresh

    def _tend(self) -> None:
        """Count the shared inbox again (other nodes add and remove rows: the inbox
        size is the cluster's, for max_inbox), renew the claims of the rows held, then
        claim what waits."""
        self._recount()
        held = [call.row for call in self._in_flight.values()] + [*self._ready, *self._parked]
        if held:
            try:
                renewed = self._store.renew_inbox(self._node, held, self._lease)
            except StoreError as error:
                self._module_log.problem("cannot renew the claims of inbox rows: {error}",
                                         error=error)
                return
            lost = {row.id for row in held} - renewed
            if lost:
                self._module_log.problem(
                    "{count} inbox row(s) not held by this node any more (their claims lapsed):"
                    " left to whichever node claims them", count=len(lost))
                self._drop_queued(lost)
        self._wake()

    def _drop_queued(self, ids: set[int]) -> None:
        for queue in (self._ready, self._parked):
            kept = [row for row in queue if row.id not in ids]
            queue.clear()
            queue.extend(kept)

    def _release(self, row: InboxRow, log: SmppLog, error: str) -> None:
        """A row not taken: count the attempt and release it until its retry is due (or drop it)."""
        attempts = row.attempts + 1
        if attempts >= self._max_attempts:
            self._retry_later(attempts, row, log, error)
            return
        delay = retry_delay(attempts)
        self._store.bump_inbox(row.id, row.claim, delay).addCallbacks(
            self._released, self._not_released, callbackArgs=(row, log, error, delay),
            errbackArgs=(row,))

    def _released(self, attempts: int, row: InboxRow, log: SmppLog, error: str,
                  delay: float) -> None:
        self._retrying(attempts, row, log, error, delay)
        if self._running:
            self._schedule_retry(self._clock.seconds() + delay)
        self._wake()

    def _not_released(self, failure: Failure, row: InboxRow) -> None:
        if failure.check(UnknownRow):
            return  # gone, or another node holds it now: it is that node's
        failure.trap(StoreError)
        self._module_log.problem(
            "cannot count an attempt of inbox row {id}: {error}; it goes again once its claim"
            " lapses", id=row.id, error=failure.getErrorMessage())



def inbox_news(config: Config, store: Any, inbound: Any, reactor: Any, log: SmppLog) -> Notifier:
    """A started `Notifier` that tells ``inbound``'s dispatcher of the inbox rows other nodes
    add, and of what it may have missed while its connection was down (PostgreSQL)."""
    url, password = config.store.url, config.store.password
    params: dict[str, Any] = {"password": password} if password else {}
    news = Notifier(lambda: connect(url, **params), [store.inbox_channel], reactor,
                    inbound.inbox_news, inbound.inbox_news, log)
    news.start()
    return news
