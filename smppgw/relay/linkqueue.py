"""
The outbound queue of one server (`LinkQueue`): FIFO per host, windowed,
rate-limited, sending on the server's link of the moment.

It sends parts in FIFO order per host, taking turns between the hosts that
have parts waiting, at most ``window`` in flight and at most ``throughput``
per second, waits while the link is down, pauses the whole link on
ESME_RTHROTTLED / ESME_RMSGQFUL and then resends the throttled parts first in
their original order, spaced at the rate its `Pacer` learns from the
throttling, and retries temporary failures.  How it reads the SMSC's answers is its base
`Answers`; what it records in the store, and how it carries on when the store
fails, is its base `Recorder`.

On a store several nodes share, a queue sends only what its node claimed
under the server's bind slot (`claim_with`, `release_claim`): its writes go
through the claim's fenced writes, and each part is marked as being
submitted, the mark committed, before its submit_sm leaves.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from smppgw.errors import (
    TryLater,
    failed,
)
from smppgw.relay.answers import Answers, PartAnswer
from smppgw.relay.jobs import Job
from smppgw.relay.recorder import PROBE_FIRST, Recorder
from smppgw.smpp.codec import PDU
from smppgw.smpp.interfaces import ILink
from smppgw.smpp.log import SmppLog
from smppgw.smpp.pacing import Pacer
from smppgw.smpp.session import (
    Answer,
    RequestFailed,
)
from smppgw.stats import ServerStats
from smppgw.store.claiming import Claim, IClaimedWrites
from smppgw.store.interfaces import LeaseLost, StoreError

if TYPE_CHECKING:
    from smppgw.config import ServerConfig
    from smppgw.smpp.link import Link
    from smppgw.store.sqlite import Store

#: Seconds before queued messages are read again after the store failed to.
READ_RETRY_PAUSE = 1.0
#: Jobs nearest the head of a queue that keep their payload in memory; the
#: rest reload it from the store in batches of this size.
HOT_JOBS = 1000

#: For errors in the gateway's own code, shown whatever the log_level.
_log = Logger()


@implementer(ILink)
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

    def observe(self, observer: Callable[[str], None]) -> None:
        pass  # it stays off: a server that comes back gets a new link


class LinkQueue(Answers, Recorder):
    """The outbound queue of one server: FIFO per host, windowed, rate-limited, durable.

    It outlives its server's links: `attach` gives it the link it sends on now
    (a re-bind replaces it), `detach` leaves it none while the server is off.
    """

    def __init__(self, link: Link | NoLink, store: Store, clock: Any, log: SmppLog,
                 finished: Callable[[Job, dict[str, Any]], None], reject_after: float,
                 stats: ServerStats | None = None, shared: bool = False) -> None:
        self.link: Any = link
        #: Whether several nodes may bind this server (a shared store): its throughput
        #: is then the total of its binds, each node's share `max_binds`-th of it.
        self.shared = shared
        #: The counters of this server (the gateway's, which outlive the link).
        self.stats = stats if stats is not None else ServerStats(link.server.name, clock)
        self.reject_after = reject_after
        self.server = link.server
        self.store = store
        self.clock = clock
        self.log = log
        self._finished = finished
        # A part's window slot is taken again only once the store says the
        # SMSC's acceptance of the part before is durable (see `_record_part`):
        # so the parts sent but not recorded as accepted are never more than
        # the window, which is what a crash can send twice.
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
                           ceiling=self._ceiling(server), accepted=lambda: self.accepted)
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
        self._uncommitted = 0
        self._probing = False
        # Acceptances whose record was lost (a failed write or commit): while
        # there are any, the link is paused and the store probed.
        self._lost: list[tuple[Job, int]] = []
        self._paused_since: float | None = None
        self._store_error = ""
        self._probe: Any = None
        self._probe_delay = PROBE_FIRST
        #: On a shared store, the claim this queue sends under (None: it sends nothing of
        #: its own); a single node's queue has none and sends what it is given.
        self.claim: Claim | None = None
        # The claim's marking of a part before its submit_sm leaves (None: no mark).
        self._mark: Callable[[str, int], Deferred[None] | None] | None = None
        #: Where jobs go that this queue gives up without an outcome (its claim lost).
        self.hand_over: Callable[[Job], object] = lambda job: None
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
                             server.rate_period, self._ceiling(server))
        self.pump()

    def _ceiling(self, server: ServerConfig) -> float:
        """This node's most submits per second to `server` (0: no limit): its throughput,
        shared out equally among its bind slots where several nodes may hold them."""
        if self.shared and server.throughput:
            return server.throughput / server.max_binds
        return server.throughput

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

    # -- claims (a shared store) -------------------------------------------------------

    def claim_with(self, writes: IClaimedWrites) -> None:
        """Send under ``writes.claim`` from now on, writing through ``writes`` (fenced)."""
        self.claim = writes.claim
        self.store = writes  # type: ignore[assignment]
        self._mark = writes.mark_submitting

    def release_claim(self) -> list[Job]:
        """The claim is given up or lost: drop every job, unanswered (the next holder claims
        them), and return them.  Writes still under way go through the old claim's fence."""
        self.claim = None
        self._mark = None
        dropped = list(self.jobs.values())
        self.jobs.clear()
        self._pending.clear()
        self._turns.clear()
        self._retry.clear()
        for job in dropped:
            job.done = True
        return dropped

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

    def pump(self) -> None:
        """Send what the window, the rate, the link and the store allow."""
        if self._wakeup is not None and self._wakeup.active():
            return
        if self._pumping:
            # A response that arrived synchronously inside a send: the outer
            # loop goes on sending; recursing here could go arbitrarily deep.
            return
        self._wakeup = None
        self._pumping = True
        try:
            self._pump()
        finally:
            self._pumping = False

    def _pump(self) -> None:
        link = self.link
        window = self.server.window
        pacer = self.pacer
        self._stalled = False
        while link.ready and not self._stalled and not self._lost:
            if self.in_flight + self._uncommitted >= window:
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
                self._finish(job, failed(TryLater("payload lost")))
                return
        try:
            pdu = job.pdu(index)
        except ValueError as e:
            self.log.problem("{request_id}: stored payload unreadable: {error}",
                             request_id=job.request_id, error=e)
            self._finish(job, failed(TryLater("payload unreadable")))
            return
        self.in_flight += 1
        job.in_flight += 1
        marked = None if self._mark is None else self._mark(job.request_id, index)
        if marked is not None:
            marked.addCallbacks(self._marked, self._not_marked,
                                callbackArgs=(job, index, pdu, self.claim),
                                errbackArgs=(job, index))
            return
        link = self.link
        link.submit(pdu, PartAnswer(self, job, index, link))

    def _marked(self, _: object, job: Job, index: int, pdu: PDU, claim: Claim | None) -> None:
        """The part is marked as being submitted: it leaves, unless the claim went meanwhile."""
        if self.claim is not claim or job.done:
            self.in_flight -= 1
            job.in_flight -= 1
            if self.claim is claim:  # the job ended meanwhile: its window slot is free
                self.pump()
            return
        link = self.link
        link.submit(pdu, PartAnswer(self, job, index, link))

    def _not_marked(self, failure: Failure, job: Job, index: int) -> None:
        self.in_flight -= 1
        job.in_flight -= 1
        error = failure.value
        if isinstance(error, LeaseLost):
            self._fenced_off(error)
            return
        self.log.problem("cannot mark part {part} of {request_id} as being submitted: {error};"
                         " trying again", part=index + 1, request_id=job.request_id,
                         error=failure.getErrorMessage())
        if not job.done:
            heapq.heappush(self._retry, (job.seq, index, job))
        if self._wakeup is None:
            self._sleep(READ_RETRY_PAUSE)

    def stop(self) -> None:
        for call in (self._wakeup, self._expiry, self._rewrite, self._probe):
            if call is not None and call.active():
                call.cancel()
        self._wakeup = self._expiry = self._rewrite = self._probe = None
