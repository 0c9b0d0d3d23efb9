"""
How a server's queue reads the SMSC's answer to each part (`Answers`, a base of
`smppgw.relay.linkqueue.LinkQueue`).

An accepted part's message id is recorded at once (its window slot is taken
again once that is durable); a request is answered when every part is
accepted.  ESME_RTHROTTLED / ESME_RMSGQFUL pause the link and the part goes
again first; a permanent status rejects the request with SMSC_REJECTED naming
the status; a temporary one is retried up to `MAX_TEMPORARY_ATTEMPTS` times;
a response that never came or could not be read drops the connection (the
SMSC may have accepted it: the part goes again after the re-bind, at least
once); a lost connection puts the part back for the next bind.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from smppgw.errors import BadRequest, NotRelayed, SmscRejected, failed
from smppgw.relay.jobs import Job, success
from smppgw.smpp.codec import PDU
from smppgw.smpp.constants import TEMPORARY_STATUSES, THROTTLE_STATUSES, status_text
from smppgw.smpp.session import (
    CommandStatusError,
    GenericNack,
    MalformedResponse,
    RequestFailed,
    ResponseTimeout,
)

if TYPE_CHECKING:
    from smppgw.smpp.log import SmppLog
    from smppgw.smpp.pacing import Pacer
    from smppgw.stats import ServerStats

#: Attempts of one part that failed with a temporary status or timed out.
MAX_TEMPORARY_ATTEMPTS = 5
#: For errors in the gateway's own code, shown whatever the log_level.
_log = Logger()


class PartAnswer:
    """Hears the SMSC's answer to one part's submit_sm (a Deferred's two methods, without one).

    Like a Deferred, it keeps an error in its handling from reaching the
    caller, which is the connection's dataReceived: there it would drop the link.
    """

    __slots__ = ("queue", "job", "index", "link")

    def __init__(self, queue: Answers, job: Job, index: int, link: Any) -> None:
        self.queue = queue
        self.job = job
        self.index = index
        #: The link the part went out on: a re-bind may have replaced it since.
        self.link = link

    def callback(self, response: PDU) -> None:
        self._handle(self.queue._accepted, response, "answer to")

    def errback(self, fail: Failure | BaseException | None = None) -> None:
        self._handle(self.queue._failed, fail if isinstance(fail, Failure) else Failure(fail),
                     "failure of")

    def _handle(self, handler: Callable[..., None], outcome: Any, what: str) -> None:
        try:
            handler(outcome, self.job, self.index, self.link)
        except Exception:
            _log.failure("handling the {what} part {part} of {request_id} failed", what=what,
                         part=self.index + 1, request_id=self.job.request_id)
            # The part's window slot is free by now: the queue must not wait
            # for another answer (there may be none) to send the next part.
            try:
                self.queue.pump()
            except Exception:
                _log.failure("the queue of {request_id} could not send on",
                             request_id=self.job.request_id)


class Answers:
    """The answer-reading half of `LinkQueue` (see the module docstring)."""

    # What the queue gives it (set by LinkQueue.__init__).
    log: SmppLog
    link: Any
    stats: ServerStats
    pacer: Pacer
    jobs: dict[str, Job]
    in_flight: int
    accepted: int
    _retry: list[tuple[int, int, Job]]
    _pumping: bool
    _stalled: bool
    pump: Callable[[], None]
    _finish: Callable[[Job, dict[str, Any]], None]
    _expire: Callable[[Job], None]
    _record_part: Callable[[Job, int, str], None]

    def _accepted(self, response: PDU, job: Job, index: int, link: Any = None) -> None:
        self.accepted += 1
        self.in_flight -= 1
        job.in_flight -= 1
        self.stats.accepted()
        if job.done:
            self.pump()
            return
        raw = response.params.get("message_id", b"")
        message_id = raw.decode("ascii", "replace") if isinstance(raw, bytes) else str(raw)
        # Recorded at once: what the SMSC accepted must be durable before its
        # slot is used again, or a crash would send more than the window twice.
        job.message_ids[index] = message_id
        self._record_part(job, index, message_id)
        if self.log.shows_low:
            self.log.low("part {part}/{parts} of {request_id} accepted as {message_id}",
                         part=index + 1, parts=len(job.message_ids),
                         request_id=job.request_id, message_id=message_id)
        if job.done:
            return
        if job.complete:
            self._finish(job, success(job))
        elif job.expired and job.in_flight == 0:
            self._expire(job)

    def _failed(self, failure: Failure, job: Job, index: int, link: Any = None) -> None:
        self.in_flight -= 1
        job.in_flight -= 1
        error = failure.value
        if isinstance(error, CommandStatusError | GenericNack):
            self.stats.refused(error.status)
        if job.done:
            self.pump()
            return
        if isinstance(error, CommandStatusError) and error.status in THROTTLE_STATUSES:
            # One episode per pause: the window's other parts, sent before
            # this answer came, are throttled too and go again with it.
            if self.pacer.throttled(self.in_flight):
                rate = self.pacer.rate
                self.log.low("{status}: pausing {pause}s, then sending {pace}",
                             status=status_text(error.status), pause=self.pacer.pause,
                             pace="unpaced" if rate is None else f"{rate:.3g} per second")
            heapq.heappush(self._retry, (job.seq, index, job))
        elif isinstance(error, CommandStatusError) and error.status not in TEMPORARY_STATUSES:
            self._reject(job, status_text(error.status))
        elif isinstance(error, GenericNack):
            self._reject(job, f"generic_nack {status_text(error.status)}")
        elif isinstance(error, (ResponseTimeout, MalformedResponse)):
            # The SMSC may well have accepted it: resending on this connection
            # would send it again with every late answer.  Treat the link as
            # broken instead; the part goes again after the rebind (at least
            # once, like any part in flight when a link drops).
            heapq.heappush(self._retry, (job.seq, index, job))
            (link or self.link).reset(f"{error}")
            if job.expired and job.in_flight == 0 and not job.done:
                self._expire(job)
            return
        elif isinstance(error, CommandStatusError):
            if job.attempts is None:
                job.attempts = {}
            attempts = job.attempts.get(index, 0) + 1
            job.attempts[index] = attempts
            if attempts >= MAX_TEMPORARY_ATTEMPTS:
                self._reject(job, f"{error} ({attempts} attempts)")
            else:
                self.log.problem("part {part} of {request_id}: {error}; will retry",
                                 part=index + 1, request_id=job.request_id, error=str(error))
                heapq.heappush(self._retry, (job.seq, index, job))
        elif isinstance(error, RequestFailed):
            # Connection lost or not bound: resend when the link is bound
            # again (at least once); its "bound" event restarts the pump.
            heapq.heappush(self._retry, (job.seq, index, job))
            if self._pumping:
                self._stalled = True  # failed at once: the pump must not take it again now
            if job.expired and job.in_flight == 0 and not job.done:
                self._expire(job)
            return
        else:
            self.log.problem("part {part} of {request_id} failed: {error}", part=index + 1,
                             request_id=job.request_id, error=failure.getErrorMessage())
            # Not the SMSC's refusal: a PDU this gateway cannot build or encode.
            self._finish(job, failed(BadRequest(f"cannot submit: {failure.getErrorMessage()}")))
        if job.expired and job.in_flight == 0 and not job.done:
            self._expire(job)
        self.pump()

    def reject(self, request_id: str, reason: str) -> Job:
        """End queued `request_id` with NOT_RELAYED `reason`: no more of it is sent, and
        whoever waits hears that outcome once it is stored.  Raises KeyError if it is not queued."""
        job = self.jobs[request_id]
        self.log.major("{request_id}: {reason}", request_id=request_id, reason=reason)
        self._finish(job, failed(NotRelayed(reason)))
        return job

    def _reject(self, job: Job, reason: str) -> None:
        self.log.major("{request_id} rejected by the SMSC: {reason}", request_id=job.request_id,
                       reason=reason)
        self._finish(job, failed(SmscRejected(reason)))
