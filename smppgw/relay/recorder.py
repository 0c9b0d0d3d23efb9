"""
What a server's queue records in the store, and how it carries on when the store fails.

A request's answer comes when the SMSC has accepted every part and that fact
is in the store; a host that asks again with the same request_id gets the same
outcome and the SMS is not sent again.  While the store cannot record what the
SMSC accepted, the link pauses and the store is probed; an outcome whose write
failed is written again; a request waiting past ``reject_if_not_relayed_in``
ends with NOT_RELAYED.  On a shared store, a write fenced off (`LeaseLost`:
this node no longer holds the server's bind slot) is not tried again: the
queue gives up its claim and its jobs (`_fenced_off`), whose waiters hear
the outcome the next holder records.
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, FirstError, gatherResults
from twisted.python.failure import Failure

from smppgw.errors import (
    NotRelayed,
    SignalError,
    TryLater,
    failed,
)
from smppgw.relay.jobs import Job, outcome_answer
from smppgw.sms.receipts import receipt_due, submit_key
from smppgw.store.interfaces import OK_OUTCOME, LeaseLost, StoreError
from smppgw.store.writes import deferred

if TYPE_CHECKING:
    from collections.abc import Callable

    from smppgw.config import ServerConfig
    from smppgw.smpp.log import SmppLog
    from smppgw.store.sqlite import Store

#: Seconds before an outcome whose write or commit failed is written again.
REWRITE_PAUSE = 1.0
#: While acceptances cannot be recorded, seconds before the first attempt to
#: record them again; each failed attempt doubles it, up to PROBE_MAX.
PROBE_FIRST = 0.5
PROBE_MAX = 8.0


class Recorder:
    """The store-facing half of `LinkQueue` (see the module docstring)."""

    # What the queue gives it (set by LinkQueue.__init__).
    store: Store
    clock: Any
    log: SmppLog
    server: ServerConfig
    link: Any
    reject_after: float
    in_flight: int
    jobs: dict[str, Job]
    _finished: Callable[[Job, dict[str, Any]], None]
    # Its own state.
    #: Finished jobs whose outcome is not committed yet, by request_id.
    unrecorded: dict[str, Job]
    _rewrites: dict[str, tuple[Job, dict[str, Any]]]
    _rewrite: Any
    #: Acceptances written whose write is not durable yet: their slots stay taken.
    _uncommitted: int
    #: Whether the lost acceptances are being written again.
    _probing: bool
    _lost: list[tuple[Job, int]]
    _paused_since: float | None
    _store_error: str
    _probe: Any
    _probe_delay: float
    _expiry: Any

    pump: Callable[..., None]
    claim: Any
    hand_over: Callable[[Job], object]
    release_claim: Callable[[], list[Job]]
    #: Told (claim, reason) when a write under the queue's claim was refused: the node
    #: then gives the server's bind slot up at once (set by `Outbound`).
    on_fenced: Callable[[Any, str], object] | None = None

    # -- what the SMSC accepted -------------------------------------------------------

    def _record_part(self, job: Job, index: int, message_id: str) -> None:
        """Write that the SMSC accepted part `index` of `job` as `message_id`.

        Until that write is durable the part's window slot stays taken
        (`_uncommitted`), so that the parts sent but not recorded as accepted
        are never more than the window: what a crash can send twice.
        """
        server = self.server
        # Taken before the write: a store may say at once that it is durable.
        self._uncommitted += 1
        try:
            self.store.set_message_id(
                job.request_id, index, message_id, submit_key(message_id),
                (job.server, len(job.message_ids)),
                receipt_due(server.registered_delivery, server.receipt_timeout,
                            self.clock.seconds()),
                then=(self._part_recorded, partial(self._part_not_recorded, job, index)))
        except BaseException:
            self._uncommitted -= 1
            raise

    def _part_recorded(self) -> None:
        self._uncommitted -= 1
        if self._lost:
            # The store writes again: record the lost acceptances now.
            if self._probe is not None and self._probe.active():
                self._probe.cancel()
            self._probe = self.clock.callLater(0, self._record_lost)
        else:
            self.pump()  # that acceptance's slot is free now

    def _part_not_recorded(self, job: Job, index: int, error: Exception) -> None:
        self._uncommitted -= 1
        if isinstance(error, LeaseLost):
            self._fenced_off(error)
            return
        # Its outcome, when it comes, is written whole, with every part again.
        job.unsure = True
        self._lost.append((job, index))
        self._hold(error if isinstance(error, StoreError) else StoreError(str(error)))

    # -- a store that cannot record acceptances -------------------------------------

    def _hold(self, error: StoreError) -> None:
        """Pause the link: acceptances are not recorded, and each would be sent again after a crash.

        The slots of those acceptances stay taken: nothing more is sent until
        they are recorded, which the probe tries at growing intervals.
        """
        self._store_error = str(error)
        if self._paused_since is None:
            self._paused_since = self.clock.seconds()
            self.log.problem("paused: the store cannot record what the SMSC accepted ({error}); "
                             "no submit_sm until it can", error=error)
        if self._probe is None and not self._probing:
            self._probe = self.clock.callLater(self._probe_delay, self._record_lost)

    def _record_lost(self) -> None:
        """Write the lost acceptances again: the probe of a paused link."""
        self._probe = None
        if not self._lost or self._probing:
            return
        self._probe_delay = min(self._probe_delay * 2, PROBE_MAX)
        lost = list(self._lost)
        # A part whose record was lost awaits its receipt from now.
        due = receipt_due(self.server.registered_delivery, self.server.receipt_timeout,
                          self.clock.seconds())
        writes = []
        for job, index in lost:
            message_id = job.message_ids[index]
            assert message_id is not None
            writes.append(deferred(self.store.set_message_id(
                job.request_id, index, message_id, submit_key(message_id),
                (job.server, len(job.message_ids)), due)))
        self._probing = True
        gatherResults(writes, consumeErrors=True).addCallbacks(
            self._lost_recorded, self._lost_not_recorded, callbackArgs=(lost,))

    def _lost_not_recorded(self, failure: Failure) -> None:
        self._probing = False
        error = failure.value
        if isinstance(error, FirstError):
            error = error.subFailure.value
        if isinstance(error, LeaseLost):
            self._fenced_off(error)
            return
        self.log.low("the store still cannot record acceptances: {error}", error=error)
        self._hold(error if isinstance(error, StoreError) else StoreError(str(error)))

    def _lost_recorded(self, _: object, lost: list[tuple[Job, int]]) -> None:
        self._probing = False
        recorded = set(map(id, lost))
        self._lost = [item for item in self._lost if id(item) not in recorded]
        if self._lost:
            # Lost meanwhile (answers still in flight when the store failed): again.
            self._probe = self.clock.callLater(0, self._record_lost)
            return
        if self._probe is not None and self._probe.active():
            self._probe.cancel()
        self._probe = None
        paused = self.clock.seconds() - (self._paused_since or 0.0)
        self.log.problem("the store records again: {count} acceptance(s) recorded, resuming "
                         "after {seconds}s paused", count=len(lost), seconds=round(paused, 1))
        self._paused_since = None
        self._store_error = ""
        self._probe_delay = PROBE_FIRST
        self.pump()

    # -- finishing -------------------------------------------------------------------

    def _finish(self, job: Job, outcome: dict[str, Any]) -> None:
        job.done = True
        self.jobs.pop(job.request_id, None)
        if outcome.get("ok") and self.log.shows_major:
            self.log.major("{request_id} relayed in {parts} part(s)",
                           request_id=job.request_id, parts=len(job.message_ids))
        self._finished(job, outcome)
        job.payload = None
        self._record(job, outcome)

    def _record(self, job: Job, outcome: dict[str, Any]) -> None:
        """Write the outcome of finished `job`; its waiters hear it once that is durable.

        Until then the job stays in `unrecorded`, where a host asking again
        finds it and waits for the same outcome.  Answering only a durable
        outcome is what keeps a retry after a crash from sending the message
        again.  Should the write fail, the waiters are told TRY_LATER and the
        outcome is written again shortly, until it is stored.
        """
        self.unrecorded[job.request_id] = job
        if not job.unsure and outcome.get("ok"):
            # The usual case, one write: no Deferred (see `Then`).
            self.store.finish(job.request_id, OK_OUTCOME,
                              then=(partial(self._recorded, job, outcome),
                                    partial(self._outcome_failed, job, outcome)))
            return
        self._write_outcome(job, outcome).addCallbacks(
            self._outcome_recorded, self._outcome_not_recorded,
            callbackArgs=(job, outcome), errbackArgs=(job, outcome))

    def _outcome_recorded(self, _: object, job: Job, outcome: dict[str, Any]) -> None:
        self._recorded(job, outcome)

    def _outcome_failed(self, job: Job, outcome: dict[str, Any], error: Exception) -> None:
        self._not_recorded(job, outcome,
                           error if isinstance(error, StoreError) else StoreError(str(error)))

    def _outcome_not_recorded(self, failure: Failure, job: Job, outcome: dict[str, Any]) -> None:
        error = failure.value
        if isinstance(error, FirstError):
            error = error.subFailure.value
        self._not_recorded(job, outcome,
                           error if isinstance(error, StoreError) else StoreError(str(error)))

    def _write_outcome(self, job: Job, outcome: dict[str, Any]) -> Deferred[Any]:
        stored = outcome
        writes = []
        if outcome.get("ok"):
            if job.unsure:
                # The record of a part of it was lost once: write them all again,
                # and keep the whole answer, so that neither a receipt nor a host
                # asking again depends on what was lost.
                known = (job.server, len(job.message_ids))
                # A part still stored keeps its deadline; one that was lost waits from now.
                due = receipt_due(self.server.registered_delivery, self.server.receipt_timeout,
                                  self.clock.seconds())
                for index, message_id in enumerate(job.message_ids):
                    if message_id is not None:
                        writes.append(deferred(self.store.set_message_id(
                            job.request_id, index, message_id, submit_key(message_id), known,
                            due)))
            else:
                stored = OK_OUTCOME
        finished = deferred(self.store.finish(job.request_id, stored))
        if not writes:
            return finished
        return gatherResults([*writes, finished], consumeErrors=True)

    def _recorded(self, job: Job, outcome: dict[str, Any]) -> None:
        if self.unrecorded.get(job.request_id) is job:
            del self.unrecorded[job.request_id]
        waiters = job.take_waiters()
        if waiters:
            result = outcome_answer(outcome)
            for w in waiters:
                if isinstance(result, SignalError):
                    w.errback(result)
                else:
                    w.callback(result)

    def _not_recorded(self, job: Job, outcome: dict[str, Any], error: StoreError) -> None:
        if isinstance(error, LeaseLost):
            if self.unrecorded.get(job.request_id) is job:
                del self.unrecorded[job.request_id]
            self.hand_over(job)
            self._fenced_off(error)
            return
        self.log.problem("cannot store the outcome of {request_id}: {error}; trying again in {pause}s",
                         request_id=job.request_id, error=error, pause=REWRITE_PAUSE)
        for w in job.take_waiters():
            w.errback(TryLater("the gateway cannot store the outcome; ask again"))
        self._rewrites[job.request_id] = (job, outcome)
        if self._rewrite is None:
            self._rewrite = self.clock.callLater(REWRITE_PAUSE, self._record_again)

    def _record_again(self) -> None:
        self._rewrite = None
        pending, self._rewrites = self._rewrites, {}
        for job, outcome in pending.values():
            self._record(job, outcome)

    # -- fenced off (a shared store) ------------------------------------------------

    def _fenced_off(self, error: LeaseLost) -> None:
        """A write under the queue's claim was refused: the node lost the server's bind slot.
        Nothing more is sent or recorded here; the jobs go to `hand_over`, unanswered."""
        self._lost = []
        if self._probe is not None and self._probe.active():
            self._probe.cancel()
        self._probe = None
        self._paused_since = None
        self._store_error = ""
        for job, _ in self._rewrites.values():
            self.hand_over(job)
        self._rewrites = {}
        claim = self.claim
        if claim is None:
            return
        self.log.problem("this node no longer holds the bind slot its queue sends under ({error}):"
                         " it stops sending; the next holder sends what is left", error=error)
        for job in self.release_claim():
            self.hand_over(job)
        if self.on_fenced is not None:
            self.on_fenced(claim, str(error))

    def _schedule_expiry(self) -> None:
        if self._expiry is not None and self._expiry.active():
            return
        for job in self.jobs.values():
            if not job.expired:
                delay = max(0.0, job.expires - self.clock.seconds())
                self._expiry = self.clock.callLater(delay, self._check_expiry)
                return

    def _check_expiry(self) -> None:
        self._expiry = None
        now = self.clock.seconds()
        due = []
        for job in self.jobs.values():  # oldest first: stop at the first not due
            if job.expires > now:
                break
            if not job.expired:
                due.append(job)
        for job in due:
            job.expired = True
            if job.in_flight == 0:
                try:
                    self._expire(job)
                except StoreError as e:
                    self.log.problem("cannot record that {request_id} expired: {error}",
                                     request_id=job.request_id, error=e)
        self._schedule_expiry()

    def _expire(self, job: Job) -> None:
        sent = sum(1 for m in job.message_ids if m is not None)
        reason = (f"not relayed within {self.reject_after:g}s"
                  + (f" ({sent} of {len(job.message_ids)} parts sent)" if sent else ""))
        self.log.major("{request_id}: {reason}", request_id=job.request_id, reason=reason)
        self._finish(job, failed(NotRelayed(reason)))
