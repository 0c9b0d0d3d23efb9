"""
Outbound: from a host's SendSignal to submit_sm PDUs accepted by an SMSC.

`Outbound` checks and shapes a request (method, route, sender, dialog prefix,
text encoding and splitting), writes it to the store, and hands it to the
`LinkQueue` of its server.  A `LinkQueue` belongs to its link and outlives
its connections: it sends parts in FIFO order per host, taking turns between
the hosts that have parts waiting, at most ``window`` in flight
and at most ``throughput`` per second, waits while the link is down, pauses
the whole link on ESME_RTHROTTLED / ESME_RMSGQFUL and then resends the
throttled parts first in their original order, spaced at the rate its
`Pacer` learns from the throttling, retries temporary failures, gives up on
a request with NOT_RELAYED once it has waited longer than
``reject_if_not_relayed_in``, and pauses while the store cannot record what
the SMSC accepted.

A request's answer comes when the SMSC has accepted every part and that fact
is in the store; a host that asks again with the same request_id gets the same
outcome and the SMS is not sent again.
"""

from __future__ import annotations

import heapq
import itertools
import random
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from smppgw.relay import router
from smppgw.relay.outcomes import (
    BY_CODE,
    BadAddressError,
    BadRequest,
    NotRelayed,
    ServerDisabledError,
    SignalError,
    SmscRejected,
    TooLongError,
    TryLater,
    UnknownServerError,
    UnsupportedMethod,
)
from smppgw.relay.servers import LiveServers
from smppgw.smpp.codec import PDU, EncodeError, PreparedPDU, prepare, split_prepared
from smppgw.smpp.constants import TEMPORARY_STATUSES, THROTTLE_STATUSES, status_text
from smppgw.smpp.log import SmppLog
from smppgw.smpp.pacing import Pacer
from smppgw.smpp.session import (
    Answer,
    CommandStatusError,
    GenericNack,
    MalformedResponse,
    RequestFailed,
    ResponseTimeout,
)
from smppgw.sms import address, textcodec
from smppgw.sms.receipts import receipt_due, submit_key
from smppgw.stats import GatewayStats, ServerStats
from smppgw.store.interfaces import OK_OUTCOME, StoreError
from smppgw.store.sqlite import DuplicateRequest

if TYPE_CHECKING:
    from smppgw.config import Config, ServerConfig
    from smppgw.relay.dialogs import DialogTable
    from smppgw.smpp.link import Link
    from smppgw.store.interfaces import OutboundRow
    from smppgw.store.sqlite import Store

MAX_REQUEST_ID = 128
#: Seconds before queued messages are read again after the store failed to.
READ_RETRY_PAUSE = 1.0
#: Attempts of one part that failed with a temporary status or timed out.
MAX_TEMPORARY_ATTEMPTS = 5
#: Text beyond this many characters cannot fit in 255 parts of any coding:
#: refuse it before encoding anything (a 10 MB body costs nothing).
MAX_TEXT_CHARS = 255 * 160
#: Jobs nearest the head of a queue that keep their payload in memory; the
#: rest reload it from the store in batches of this size.
HOT_JOBS = 1000
#: Seconds before an outcome whose write or commit failed is written again.
REWRITE_PAUSE = 1.0
#: Hosts waiting at once for the outcome of one request_id.
MAX_WAITERS = 100
#: Destinations whose concatenation reference is remembered.
MAX_REFERENCES = 100_000
#: While acceptances cannot be recorded, seconds before the first attempt to
#: record them again; each failed attempt doubles it, up to PROBE_MAX.
PROBE_FIRST = 0.5
PROBE_MAX = 8.0


class Job:
    """One accepted request: its parts, their message ids, and who waits for the outcome.

    The payload (the parts' submit_sm PDUs, encoded when the request was
    accepted, back to back) lives in the store; a job keeps it in memory only
    while it is near the head of its queue, so that a long backlog costs
    little memory, and cuts it into one PDU per part when it first sends.
    """

    __slots__ = ("request_id", "server", "payload", "message_ids", "expires", "seq",
                 "in_flight", "waiters", "done", "expired", "attempts", "host", "accepted")

    def __init__(self, request_id: str, server: str,
                 payload: bytes | list[bytes] | None,
                 message_ids: list[str | None], seq: int, expires: float,
                 host: Hashable = None, accepted: float | None = None) -> None:
        self.request_id = request_id
        #: When this process accepted it (None: restored from the store), for its duration.
        self.accepted = accepted
        #: Who asked (a host connection), so that hosts take turns; None for
        #: requests restored from the store.
        self.host = host
        self.server = server
        self.payload = payload
        self.message_ids = message_ids
        self.expires = expires
        self.seq = seq
        self.in_flight = 0
        # None, one waiter (the usual case: the memory of a long backlog
        # counts), or a list of them when a host asks again while waiting.
        self.waiters: Answer | list[Answer] | None = None
        self.done = False
        self.expired = False
        self.attempts: dict[int, int] | None = None

    def wait(self, answer: Answer | None = None) -> Any:
        """Have `answer` (a new Deferred if None) hear the outcome; returns it.

        Anything with a Deferred's ``callback`` and ``errback`` will do.
        """
        d: Any = Deferred() if answer is None else answer
        if self.waiters is None:
            self.waiters = d
        elif not isinstance(self.waiters, list):
            self.waiters = [self.waiters, d]
        elif len(self.waiters) >= MAX_WAITERS:
            # A host asking again and again for one pending request must not
            # grow memory: the earlier askers get the answer.
            d.errback(TryLater(f"{len(self.waiters)} requests already wait for this request_id"))
        else:
            self.waiters.append(d)
        return d

    def take_waiters(self) -> list[Answer]:
        """Every waiter for the outcome; none are left."""
        waiters, self.waiters = self.waiters, None
        if waiters is None:
            return []
        return waiters if isinstance(waiters, list) else [waiters]

    def pdu(self, index: int) -> PDU:
        """Part `index`'s submit_sm.  Raises ValueError for a payload that cannot be read."""
        p = self.payload
        assert p is not None, "payload not loaded"
        if isinstance(p, bytes):
            frames = split_prepared(p)
            if len(frames) != len(self.message_ids):
                raise ValueError(f"{len(frames)} PDUs stored for {len(self.message_ids)} parts")
            # Cut once: each later part of a long message is then one lookup.
            self.payload = p = frames
        if not isinstance(p, list):
            raise ValueError(f"a payload of {type(p).__name__} holds no PDUs")
        return PreparedPDU(p[index])

    @property
    def complete(self) -> bool:
        return None not in self.message_ids


def submit_sm(source_ton: int, source_npi: int, source: str, destination: str,
              registered_delivery: int, data_coding: int, esm_class: int, short_message: bytes,
              tlvs: Iterable[tuple[str, int | bytes]] = (), dest_ton: int = 1,
              dest_npi: int = 1) -> PDU:
    """One part's submit_sm; the destination is international (TON 1, NPI 1) unless given."""
    params: dict[str, int | bytes] = {
        "source_addr_ton": source_ton,
        "source_addr_npi": source_npi,
        "source_addr": source.encode("ascii"),
        "dest_addr_ton": dest_ton,
        "dest_addr_npi": dest_npi,
        "destination_addr": destination.encode("ascii"),
        "esm_class": esm_class,
        "registered_delivery": registered_delivery,
        "data_coding": data_coding,
        "short_message": short_message,
    }
    params.update(tlvs)
    return PDU("submit_sm", params=params)


def success(job: Job) -> dict[str, Any]:
    return {"ok": True, "server": job.server, "parts": len(job.message_ids),
            "message_ids": list(job.message_ids)}


def outcome_answer(outcome: dict[str, Any]) -> dict[str, Any] | SignalError:
    """A finished request's outcome as its answer: the result, or the error to fail with."""
    if outcome.get("ok"):
        return {"server": outcome["server"], "parts": outcome["parts"],
                "message_ids": outcome["message_ids"]}
    cls = BY_CODE.get(outcome.get("code", ""), SignalError)
    return cls(outcome.get("reason", ""))


def outcome_result(row: OutboundRow) -> Deferred[dict[str, Any]]:
    """A finished request's stored outcome as the Deferred an answer is built from."""
    outcome = row.outcome
    assert outcome is not None
    if outcome.get("ok") and "message_ids" not in outcome:
        # Stored as OK_OUTCOME (whole only after a failed commit: see _write_outcome).
        outcome = {"ok": True, "server": row.server, "parts": row.parts,
                   "message_ids": list(row.message_ids)}
    answer = outcome_answer(outcome)
    return fail(answer) if isinstance(answer, SignalError) else succeed(answer)


#: For errors in the gateway's own code, shown whatever the log_level.
_log = Logger()


class _PartAnswer:
    """Hears the SMSC's answer to one part's submit_sm (a Deferred's two methods, without one).

    Like a Deferred, it keeps an error in its handling from reaching the
    caller, which is the connection's dataReceived: there it would drop the link.
    """

    __slots__ = ("queue", "job", "index", "link")

    def __init__(self, queue: LinkQueue, job: Job, index: int, link: Any) -> None:
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


class NoLink:
    """The link of a server that is off or removed: never ready.  Its queue keeps what
    waits, until the server has a link again or the messages expire."""

    ready = False
    state = "off"
    sent = 0
    received = 0
    last_error = ""

    def __init__(self, server: ServerConfig) -> None:
        self.server = server

    def submit(self, pdu: PDU, answer: Answer) -> Answer:
        answer.errback(RequestFailed(f"server {self.server.name!r} is off"))
        return answer

    def reset(self, reason: str) -> None:
        pass

    def drop_unsent(self, reason: str) -> None:
        pass


class LinkQueue:
    """The outbound queue of one server: FIFO per host, windowed, rate-limited, durable.

    It outlives its server's links: `attach` gives it the link it sends on now
    (a re-bind replaces it), `detach` leaves it none while the server is off.
    """

    def __init__(self, link: Link | NoLink, store: Store, clock: Any, log: SmppLog,
                 finished: Callable[[Job, dict[str, Any]], None], reject_after: float,
                 stats: ServerStats | None = None) -> None:
        self.link: Any = link
        #: The counters of this server (the gateway's, which outlive the link).
        self.stats = stats if stats is not None else ServerStats(link.server.name, clock)
        self.reject_after = reject_after
        self.server = link.server
        self.store = store
        self.clock = clock
        self.log = log
        self._finished = finished
        # A part's window slot is taken again only once the SMSC's acceptance
        # of the part before is committed: a submit_sm written while the
        # answers of a burst are read leaves with the link's next flush, and
        # the store commits first (before_send); any other submit_sm waits
        # for its slot's acceptance to be committed.  Should that commit
        # fail, what was written in the burst is dropped unsent (see
        # `_hold`).  So the parts sent but not recorded as accepted are
        # never more than the window, which is what a crash can send twice.
        # Unfinished jobs in FIFO order (dicts keep insertion order).
        self.jobs: dict[str, Job] = {}
        # Parts never sent, in order, per host: a job stands for its only
        # part, a (job, index) pair for a part of a split message.  The
        # hosts with parts waiting take turns, one part each, in `_turns`.
        self._pending: dict[Hashable, deque[Job | tuple[Job, int]]] = {}
        self._turns: deque[Hashable] = deque()
        self._retry: list[tuple[int, int, Job]] = []
        self.in_flight = 0
        server = link.server
        #: Parts the SMSC accepted, over every link this queue had.
        self.accepted = 0
        #: When the next part may leave: the throttle pause and the spacing.
        self.pacer = Pacer(clock, pause=server.throttle_pause, floor=server.min_rate,
                           step=server.rate_step, period=server.rate_period,
                           ceiling=server.throughput, accepted=lambda: self.accepted)
        self._wakeup: Any = None
        self._expiry: Any = None
        self._pumping = False
        self._stalled = False
        #: Finished jobs whose outcome is not committed yet, by request_id.
        self.unrecorded: dict[str, Job] = {}
        # Outcomes whose write failed, written again after REWRITE_PAUSE.
        self._rewrites: dict[str, tuple[Job, dict[str, Any]]] = {}
        self._rewrite: Any = None
        # Acceptances written into the store's open transaction, and whether
        # the queue waits to hear of its commit.
        self._uncommitted: list[tuple[Job, int]] = []
        self._watching = False
        # Acceptances whose record was lost (a failed write or commit): while
        # there are any, the link is paused and the store probed.
        self._lost: list[tuple[Job, int]] = []
        self._paused_since: float | None = None
        self._store_error = ""
        self._probe: Any = None
        self._probe_delay = PROBE_FIRST
        self._watch(link)

    # -- the server's link -----------------------------------------------------------

    def attach(self, link: Link | NoLink) -> None:
        """Send on `link` from now on (a server started or re-bound); parts in flight
        on the link before are answered there, or sent again once this one is bound."""
        self._watch(link)
        if link.ready:
            self.clock.callLater(0, self.pump)

    def _watch(self, link: Link | NoLink) -> None:
        self.link = link
        self.server = link.server
        if isinstance(link, NoLink):
            return
        link.before_send = self.store.commit_pending
        link.observe(lambda state: self._link_state(link, state))

    def detach(self) -> None:
        """The server is off or removed: keep what waits (it expires as ever) and send nothing."""
        self.link = NoLink(self.server)

    def configure(self, server: ServerConfig) -> None:
        """New settings of the same server that need no re-bind (window, throughput...)."""
        self.server = server
        if isinstance(self.link, NoLink):
            self.link = NoLink(server)
        self.pacer.configure(server.throttle_pause, server.min_rate, server.rate_step,
                             server.rate_period, server.throughput)
        self.pump()

    def expire_after(self, reject_after: float) -> None:
        """A new ``reject_if_not_relayed_in``: for what waits too, counted from its acceptance."""
        delta = reject_after - self.reject_after
        self.reject_after = reject_after
        if not delta:
            return
        for job in self.jobs.values():
            job.expires += delta
        if self._expiry is not None and self._expiry.active():
            self._expiry.cancel()
        self._expiry = None
        self._check_expiry()

    # -- adding --------------------------------------------------------------------

    def add(self, job: Job) -> None:
        if len(self.jobs) >= HOT_JOBS:
            job.payload = None  # reloaded from the store when its turn comes
        self.jobs[job.request_id] = job
        waiting = self._pending.get(job.host)
        fresh = waiting is None
        if waiting is None:
            waiting = deque()
        for index, message_id in enumerate(job.message_ids):
            if message_id is None:
                waiting.append(job if len(job.message_ids) == 1 else (job, index))
        if fresh and waiting:
            # A host's turn ends when it has no part waiting (see _next_part).
            self._pending[job.host] = waiting
            self._turns.append(job.host)
        self._schedule_expiry()
        self.pump()

    @property
    def queued(self) -> int:
        return len(self.jobs)

    @property
    def paused(self) -> str:
        """Why the link sends nothing though it could (the store cannot record acceptances), or ""."""
        if self._paused_since is None:
            return ""
        return f"paused: store not writable ({self._store_error})"

    # -- sending -------------------------------------------------------------------

    def _link_state(self, link: Any, state: str) -> None:
        if state == "bound" and link is self.link:
            # The link announces itself after ClientService settles (link.py).
            self.clock.callLater(0, self.pump)

    def _next_part(self) -> tuple[Job, int] | None:
        while self._retry:
            _, index, job = heapq.heappop(self._retry)
            if not job.done and not job.expired and job.message_ids[index] is None:
                return job, index
        turns = self._turns
        while turns:
            host = turns[0]
            waiting = self._pending[host]
            item = waiting.popleft()
            if not waiting:
                turns.popleft()
                del self._pending[host]
            elif len(turns) > 1:
                turns.rotate(-1)
            job, index = (item, 0) if isinstance(item, Job) else item
            if not job.done and not job.expired and job.message_ids[index] is None:
                return job, index
        return None

    def pump(self, refill: bool = False) -> None:
        """Send what the window, the rate, the link and the store allow.

        `refill` is for the handler of an SMSC's answer: it may take the slot
        of an acceptance not committed yet, as the link's flush commits
        before what it writes leaves.
        """
        if self._wakeup is not None and self._wakeup.active():
            return
        if self._pumping:
            # A response that arrived synchronously inside a send: the outer
            # loop goes on sending; recursing here could go arbitrarily deep.
            return
        self._wakeup = None
        self._pumping = True
        try:
            self._pump(refill)
        finally:
            self._pumping = False

    def _pump(self, refill: bool) -> None:
        link = self.link
        window = self.server.window
        pacer = self.pacer
        self._stalled = False
        while link.ready and not self._stalled and not self._lost:
            held = 0 if refill else len(self._uncommitted)
            if self.in_flight + held >= window:
                return
            now = self.clock.seconds()
            if now < pacer.next_send:
                self._sleep(pacer.next_send - now)
                return
            item = self._next_part()
            if item is None:
                return
            if pacer.paced:
                pacer.sent(now, self.in_flight)
            self._send(*item)

    def _sleep(self, delay: float) -> None:
        self._wakeup = self.clock.callLater(delay, self._wake)

    def _wake(self) -> None:
        self._wakeup = None
        self.pump()

    def _load_payloads(self, job: Job) -> bool:
        """Load the payloads of `job` and the next jobs waiting; False if `job` has none stored."""
        batch = [job.request_id]
        ahead = [item if isinstance(item, Job) else item[0]
                 for item in itertools.islice(self._pending.get(job.host, ()), HOT_JOBS)]
        for other in ahead:
            if other.payload is None and not other.done:
                batch.append(other.request_id)
        # A payload that is not bytes holds no PDUs: its job ends as unreadable.
        found = {request_id: payload if isinstance(payload, bytes) else b""
                 for request_id, payload in self.store.payloads(list(dict.fromkeys(batch))).items()}
        for other in ahead:
            if other.payload is None:
                other.payload = found.get(other.request_id)
        job.payload = found.get(job.request_id)
        return job.payload is not None

    def _send(self, job: Job, index: int) -> None:
        if job.payload is None:
            try:
                loaded = self._load_payloads(job)
            except StoreError as e:
                # Keep the part; try again shortly rather than lose or reject it.
                self.log.problem("cannot read queued messages: {error}", error=e)
                heapq.heappush(self._retry, (job.seq, index, job))
                self._stalled = True
                if self._wakeup is None:
                    self._sleep(READ_RETRY_PAUSE)
                return
            if not loaded:
                self.log.problem("{request_id} has no stored payload", request_id=job.request_id)
                self._finish(job, {"ok": False, "code": TryLater.code, "reason": "payload lost"})
                return
        try:
            pdu = job.pdu(index)
        except ValueError as e:
            self.log.problem("{request_id}: stored payload unreadable: {error}",
                             request_id=job.request_id, error=e)
            self._finish(job, {"ok": False, "code": TryLater.code, "reason": "payload unreadable"})
            return
        self.in_flight += 1
        job.in_flight += 1
        link = self.link
        link.submit(pdu, _PartAnswer(self, job, index, link))

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
        # Recorded at once: what the SMSC accepted must be in the next
        # commit, or a crash now would send it again.
        job.message_ids[index] = message_id
        server = self.server
        try:
            self.store.set_message_id(job.request_id, index, message_id, submit_key(message_id),
                                      (job.server, len(job.message_ids)),
                                      receipt_due(server.registered_delivery,
                                                  server.receipt_timeout, self.clock.seconds()))
        except StoreError as error:
            self._lost.append((job, index))
            self._hold(error)
        else:
            self._uncommitted.append((job, index))
            if not self._watching:
                self._watching = True
                self.store.when_durable(self._committed, self._commit_failed)
        # The freed window slot is refilled before the rest of the
        # bookkeeping, so the next submit_sm leaves with the next flush.
        self.pump(refill=True)
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
            self._finish(job, {"ok": False, "code": BadRequest.code,
                               "reason": f"cannot submit: {failure.getErrorMessage()}"})
        if job.expired and job.in_flight == 0 and not job.done:
            self._expire(job)
        self.pump()

    def reject(self, request_id: str, reason: str) -> Job:
        """End queued `request_id` with NOT_RELAYED `reason`: no more of it is sent, and
        whoever waits hears that outcome once it is stored.  Raises KeyError if it is not queued."""
        job = self.jobs[request_id]
        self.log.major("{request_id}: {reason}", request_id=request_id, reason=reason)
        self._finish(job, {"ok": False, "code": NotRelayed.code, "reason": reason})
        return job

    def _reject(self, job: Job, reason: str) -> None:
        self.log.major("{request_id} rejected by the SMSC: {reason}", request_id=job.request_id,
                       reason=reason)
        self._finish(job, {"ok": False, "code": SmscRejected.code, "reason": reason})

    # -- a store that cannot record acceptances -------------------------------------

    def _committed(self) -> None:
        self._uncommitted = []
        self._watching = False
        if self._lost:
            # The store writes again: record the lost acceptances now.
            if self._probe is not None and self._probe.active():
                self._probe.cancel()
            self._probe = self.clock.callLater(0, self._record_lost)
        else:
            self.pump()  # the slots of those acceptances are free now

    def _commit_failed(self, error: StoreError) -> None:
        lost, self._uncommitted = self._uncommitted, []
        self._watching = False
        self._lost.extend(lost)
        self._hold(error)

    def _hold(self, error: StoreError) -> None:
        """Pause the link: acceptances are not recorded, and each would be sent again after a crash.

        Submits written since the commit failed to record them may take the
        window slots of those acceptances; if they would exceed the window,
        the connection is dropped before they leave (they go again, like any
        part in flight when a link drops, once the store writes again).
        """
        self._store_error = str(error)
        if self._paused_since is None:
            self._paused_since = self.clock.seconds()
            self.log.problem("paused: the store cannot record what the SMSC accepted ({error}); "
                             "no submit_sm until it can", error=error)
        if self.in_flight + len(self._lost) > self.server.window:
            self.link.drop_unsent("the store cannot record what the SMSC accepted")
        if self._probe is None:
            self._probe = self.clock.callLater(self._probe_delay, self._record_lost)

    def _record_lost(self) -> None:
        """Write the lost acceptances again and commit: the probe of a paused link."""
        self._probe = None
        if not self._lost:
            return
        self._probe_delay = min(self._probe_delay * 2, PROBE_MAX)
        try:
            for job, index in self._lost:
                message_id = job.message_ids[index]
                assert message_id is not None
                self.store.set_message_id(job.request_id, index, message_id,
                                          submit_key(message_id), (job.server, len(job.message_ids)))
            self.store.commit()
        except StoreError as error:
            self.log.low("the store still cannot record acceptances: {error}", error=error)
            self._hold(error)
            return
        if self._probe is not None and self._probe.active():
            self._probe.cancel()
        self._probe = None
        paused = self.clock.seconds() - (self._paused_since or 0.0)
        self.log.problem("the store records again: {count} acceptance(s) recorded, resuming "
                         "after {seconds}s paused", count=len(self._lost), seconds=round(paused, 1))
        self._lost = []
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
        """Write the outcome of finished `job`; its waiters hear it once that is committed.

        Until then the job stays in `unrecorded`, where a host asking again
        finds it and waits for the same outcome.  Answering only a durable
        outcome is what keeps a retry after a crash from sending the message
        again.  Should the write or its commit fail, the waiters are told
        TRY_LATER and the outcome is written again shortly, until it is stored.
        """
        self.unrecorded[job.request_id] = job
        try:
            self._write_outcome(job, outcome)
        except StoreError as error:
            self._not_recorded(job, outcome, error)
            return
        self.store.when_durable(lambda: self._recorded(job, outcome),
                                lambda error: self._not_recorded(job, outcome, error))

    def _write_outcome(self, job: Job, outcome: dict[str, Any]) -> None:
        stored = outcome
        if outcome.get("ok"):
            if self.store.failed_commits:
                # A failed commit may have rolled back the record of a part
                # accepted earlier: write them all again, and keep the whole
                # answer, so that neither a receipt nor a host asking again
                # depends on what was lost.
                known = (job.server, len(job.message_ids))
                # A part still stored keeps its deadline; one that was lost waits from now.
                due = receipt_due(self.server.registered_delivery, self.server.receipt_timeout,
                                  self.clock.seconds())
                for index, message_id in enumerate(job.message_ids):
                    if message_id is not None:
                        self.store.set_message_id(job.request_id, index, message_id,
                                                  submit_key(message_id), known, due)
            else:
                stored = OK_OUTCOME
        self.store.finish(job.request_id, stored)

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
        self._finish(job, {"ok": False, "code": NotRelayed.code, "reason": reason})

    def stop(self) -> None:
        for call in (self._wakeup, self._expiry, self._rewrite, self._probe):
            if call is not None and call.active():
                call.cancel()
        self._wakeup = self._expiry = self._rewrite = self._probe = None


class Outbound:
    """Accepts SendSignal requests for every server and answers them.

    Its queues follow the live set of servers (`LiveServers`): a server that
    gets a link has its queue attached to it, one that loses its link (off,
    removed) keeps its queue, detached, until its messages expire or a server
    of that name returns.
    """

    def __init__(self, config: Config, links: Mapping[str, Link], store: Store, clock: Any,
                 dialogs: DialogTable | None = None, stats: GatewayStats | None = None) -> None:
        self.config = config
        #: The gateway's counters: `status` reads them, and so does /metrics.
        self.stats = stats if stats is not None else GatewayStats(clock)
        self.links = links if isinstance(links, LiveServers) else LiveServers(links)
        self.store = store
        self.clock = clock
        self.dialogs = dialogs
        self.log = SmppLog("*", config.module.log_level)
        self.queues: dict[str, LinkQueue] = {}
        for link in self.links.values():
            if link.server.can_send:  # receive-only: nothing to queue
                self._queue_for(link)
        self.links.observe(self._link_changed)
        #: Accepted jobs whose row is not yet committed (then they join their queue).
        self._accepting: dict[str, Job] = {}
        self._seq = 0
        self._references: dict[str, int] = {}
        self._rng = random.Random()

    # -- the live set of servers -------------------------------------------------------

    def _queue_for(self, link: Link | NoLink) -> LinkQueue:
        name = link.server.name
        queue = self.queues.get(name)
        if queue is None:
            log = getattr(link, "log", None) or SmppLog(name, self.config.module.log_level)
            queue = self.queues[name] = LinkQueue(
                link, self.store, self.clock, log, self._finished,
                self.config.module.reject_if_not_relayed_in, self.stats.server(name))
        elif queue.link is not link:
            queue.attach(link)
        return queue

    def _link_changed(self, name: str, link: Link | None) -> None:
        if link is not None and link.server.can_send:
            self._queue_for(link)
        elif name in self.queues:
            self.queues[name].detach()

    def configure(self, config: Config) -> None:
        """Apply `config` to the requests from now on and to what waits: the servers'
        order and settings, the default gateway, ``reject_if_not_relayed_in``."""
        self.config = config
        servers = {server.name: server for server in config.servers}
        for name, queue in self.queues.items():
            server = servers.get(name)
            if server is not None and server != queue.server and queue.link.server is not server:
                queue.configure(server)
            queue.expire_after(config.module.reject_if_not_relayed_in)

    # -- start-up --------------------------------------------------------------------

    def restore(self) -> int:
        """Queue again every request the store holds unfinished; returns how many."""
        count = 0
        reject_after = self.config.module.reject_if_not_relayed_in
        servers = {s.name: s for s in self.config.servers}
        for request_id, server, _parts, message_ids, created in self.store.unfinished_brief():
            queue = self.queues.get(server)
            if queue is None:
                # Off, receive-only now, or gone from the file: the message waits
                # (a server of that name may come back) until it expires.
                config = servers.get(server)
                if config is None and self.config.servers:
                    # Gone from the file: its settings matter only if it returns, and
                    # then they are the returning server's.
                    config = replace(self.config.servers[0], name=server)
                if config is None:
                    self.store.finish(request_id, {
                        "ok": False, "code": ServerDisabledError.code,
                        "reason": f"server {server!r} is no longer configured"})
                    continue
                queue = self._queue_for(NoLink(config))
            job = Job(request_id, server, None, list(message_ids), self._next_seq(),
                      created + reject_after)
            if job.complete:
                queue._finish(job, success(job))
                continue
            queue.add(job)
            count += 1
        if count:
            self.log.major("{count} queued message(s) restored from the store", count=count)
        return count

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _finished(self, job: Job, outcome: dict[str, Any]) -> None:
        self._accepting.pop(job.request_id, None)
        seconds = None if job.accepted is None else self.clock.seconds() - job.accepted
        self.stats.request_finished("ok" if outcome.get("ok") else outcome.get("code", "ERROR"),
                                    seconds)

    def job(self, request_id: str) -> Job | None:
        """The job of `request_id` while it is unfinished or its outcome uncommitted, if any."""
        job = self._accepting.get(request_id)
        if job is None:
            for queue in self.queues.values():
                job = queue.jobs.get(request_id) or queue.unrecorded.get(request_id)
                if job is not None:
                    break
        return job

    # -- requests --------------------------------------------------------------------

    def send_signal(self, request_id: str, method: str, sender: str, recipient: str,
                    body: str, gateway: str | None = None, answer: Answer | None = None,
                    host: Hashable = None) -> Any:
        """Fires with {server, parts, message_ids} once the SMSC accepted every part, or fails with a SignalError.

        The outcome goes to `answer` (anything with a Deferred's ``callback``
        and ``errback``), which is returned; without one, to a new Deferred.
        `host` says who asks (its connection, say): hosts take turns on a link.
        """
        result = self._accept(request_id, method, sender, recipient, body, gateway, answer, host)
        if answer is not None and result is not answer:
            result.addCallbacks(answer.callback, answer.errback)
            return answer
        return result

    def _accept(self, request_id: str, method: str, sender: str, recipient: str,
                body: str, gateway: str | None, answer: Answer | None, host: Hashable) -> Any:
        if not 1 <= len(request_id) <= MAX_REQUEST_ID:
            self.stats.request_finished(BadRequest.code, None)
            return fail(BadRequest(f"request_id must be 1 to {MAX_REQUEST_ID} characters, "
                                   f"got {len(request_id)}"))
        job = self.job(request_id)
        if job is not None:
            return job.wait(answer)
        if self.dialogs is not None:
            # Preparing a message touches its dialog binding: a request that
            # already has its outcome must not, so look it up first.
            row = self.store.outbound(request_id)
            if row is not None and row.outcome is not None:
                return outcome_result(row)
        try:
            server, payload, parts = self._prepare(method, sender, recipient, body, gateway)
        except SignalError as e:
            row = self.store.outbound(request_id)
            if row is not None and row.outcome is not None:
                return outcome_result(row)  # an earlier outcome stands
            self.log.problem("{request_id} refused: {code} {reason}", request_id=request_id[:128],
                             code=e.code, reason=e.reason[:300])
            self.stats.request_finished(e.code, None)
            return fail(e)
        try:
            self.store.add_outbound(request_id, server.name, payload, parts, self.clock.seconds())
        except DuplicateRequest as e:
            # Finished before (this process or an earlier one): the same outcome again.
            if e.row.outcome is not None:
                return outcome_result(e.row)
            return fail(TryLater(f"request {request_id!r} is being restored; ask again"))
        except Exception as e:
            self.log.problem("cannot store {request_id}: {error}", request_id=request_id, error=e)
            return fail(TryLater(f"the gateway cannot store the message: {e}"))
        now = self.clock.seconds()
        job = Job(request_id, server.name, payload, [None] * parts, self._next_seq(),
                  now + self.config.module.reject_if_not_relayed_in, host, now)
        self._accepting[request_id] = job
        waiting = job.wait(answer)
        queue = self.queues[server.name]

        def durable() -> None:
            self._accepting.pop(request_id, None)
            if not job.done:
                queue.add(job)

        def not_durable(error: StoreError) -> None:
            self._accepting.pop(request_id, None)
            job.done = True
            for w in job.take_waiters():
                w.errback(TryLater(f"the gateway cannot store the message: {error}"))

        self.store.when_durable(durable, not_durable)
        return waiting

    def _prepare(self, method: str, sender: str, recipient: str, body: str,
                 gateway: str | None) -> tuple[ServerConfig, bytes, int]:
        """The server for a request, its parts' submit_sm PDUs encoded back to back, and their count."""
        if method.upper() != "MESSAGE":
            raise UnsupportedMethod(f"only MESSAGE signals are relayed, not {method!r}")
        try:
            server, target = router.route(recipient, self.config.servers, self.config.module.default_gateway,
                                          gateway or None)
            source = address.compose_sender(server.sender, sender, server.source_ton,
                                            server.source_npi)
        except address.BadAddress as e:
            raise BadAddressError(str(e)) from None
        except router.UnknownServer as e:
            raise UnknownServerError(str(e)) from None
        except router.ServerDisabled as e:
            raise ServerDisabledError(str(e)) from None
        queue = self.queues.get(server.name)
        if queue is None or isinstance(queue.link, NoLink):
            raise ServerDisabledError(f"server {server.name!r} has no link")
        if len(body) > MAX_TEXT_CHARS:
            raise TooLongError(f"body of {len(body)} characters cannot fit in {server.max_parts} parts")
        text = body
        if server.dialogs and self.dialogs is not None:
            text = self.dialogs.outgoing_prefix("+" + target.number, sender) + body
        try:
            encoded = textcodec.encode_message(text, server.encoding, server.long_messages,
                                               server.max_parts,
                                               default_alphabet=server.default_alphabet)
            if len(encoded.parts) > 1:
                # Only split messages need a concatenation reference.
                encoded = textcodec.encode_message(
                    text, server.encoding, server.long_messages, server.max_parts,
                    self._reference(target.number, server.long_messages),
                    server.default_alphabet)
        except textcodec.TooLong as e:
            raise TooLongError(str(e)) from None
        except (ValueError, textcodec.UnencodableText) as e:
            raise BadRequest(f"body cannot be encoded: {e}") from None
        registered_delivery = 1 if server.registered_delivery else 0
        frames = []
        try:
            for part in encoded.parts:
                frames.append(prepare(submit_sm(
                    source.ton, source.npi, source.addr, target.number, registered_delivery,
                    encoded.data_coding, part.esm_class, part.short_message, part.tlvs,
                    target.ton, target.npi)))
        except (EncodeError, UnicodeEncodeError) as e:
            raise BadRequest(f"cannot submit: {e}") from None
        return server, b"".join(frames), len(frames)

    def _reference(self, number: str, long_messages: str) -> int:
        modulus = 0x10000 if long_messages == "sar" else 0x100
        if len(self._references) > MAX_REFERENCES:
            # References only need to differ between messages in flight to
            # one phone; forgetting old ones keeps the table bounded.
            self._references.clear()
        current = self._references.get(number)
        if current is None:
            current = self._rng.randrange(modulus)
        current = (current + 1) % modulus
        self._references[number] = current
        return current

    # -- status ----------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """One row per configured server: its counters (from `stats`) and its live figures.

        The keys of ServerStatus come first; the rest are for the admin's Status page
        and /metrics (an AMP host reads only the keys its command declares).
        """
        queued = {name: len(queue.jobs) for name, queue in self.queues.items()}
        for job in self._accepting.values():
            queued[job.server] = queued.get(job.server, 0) + 1
        rows = []
        named = {server.name for server in self.config.servers}
        # A removed server is listed while messages still wait for its return.
        gone = [queue.server for name, queue in self.queues.items()
                if name not in named and queue.jobs]
        for server in [*self.config.servers, *gone]:
            link = self.links.get(server.name)
            queue = self.queues.get(server.name)
            stats = self.stats.server(server.name)
            paused = queue.paused if queue is not None else ""
            rows.append({
                "name": server.name,
                "mode": server.mode if server.name in named else "removed",
                "address": server.address,
                "state": link.state if link is not None else "disconnected",
                "queued": queued.get(server.name, 0),
                "sent": stats.sent,
                "received": stats.received,
                "last_error": paused or stats.last_error,
                "rate": queue.pacer.rate if queue is not None else None,
                "since": stats.since,
                "bound_since": stats.bound_since,
                "bind_type": server.bind_type if server.enabled else "",
                "in_flight": queue.in_flight if queue is not None else 0,
                "window": server.window,
                "failed": stats.failed_total,
                "errors": dict(stats.failed),
                "throttled": stats.throttled,
                "binds": stats.binds,
                "reconnects": stats.reconnects,
                "per_second": stats.rate(),
                "last_error_at": stats.last_error_at,
                "paused": paused,
            })
        return rows

    def stop(self) -> None:
        for queue in self.queues.values():
            queue.stop()
