"""
Outbound: from a host's SendSignal to the queue of its server.

`Outbound` checks and shapes a request (method, route, and the parts built by
`Composer`), writes it to the store, and hands it to the `LinkQueue` of its
server; it keeps one queue per server name, following the live set of
servers, restores what the store holds unfinished at start-up, and lists
each server's state for ServerStatus, the admin and the metrics.

On a store several nodes share, a queue holds what its node claimed (its
base `Claimed`), nothing is restored at start, and a request for a server
another node binds is stored unclaimed and waits in `elsewhere` for the
outcome that node records.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import fail
from twisted.python.failure import Failure

from smppgw.errors import (
    BadRequest,
    ServerDisabledError,
    SignalError,
    TryLater,
    UnsupportedMethod,
    failed,
)
from smppgw.relay import router
from smppgw.relay.claimed import Claimed
from smppgw.relay.compose import Composer
from smppgw.relay.elsewhere import Elsewhere
from smppgw.relay.jobs import Job, outcome_result, row_answer, success
from smppgw.relay.linkqueue import LinkQueue, NoLink
from smppgw.relay.servers import LiveServers
from smppgw.smpp.log import SmppLog
from smppgw.smpp.session import (
    Answer,
)
from smppgw.stats import GatewayStats
from smppgw.store.claiming import Claim
from smppgw.store.interfaces import DuplicateRequest, StoreError
from smppgw.store.sole import claims_of
from smppgw.store.writes import deferred

if TYPE_CHECKING:
    from smppgw.config import Config, ServerConfig
    from smppgw.relay.dialogs import DialogTable
    from smppgw.smpp.link import Link
    from smppgw.store.sqlite import Store

MAX_REQUEST_ID = 128


class Outbound(Claimed):
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
        #: The store's claims (no-ops on a store of one node), and whether they count.
        self.claims = claims_of(store)
        self.shared: bool = self.claims.shared
        #: The requests accepted here whose outcome another node records.
        self.elsewhere = Elsewhere(self.claims, self.log, self._finished)
        self.queues: dict[str, LinkQueue] = {}
        for link in self.links.values():
            if link.server.can_send:  # receive-only: nothing to queue
                self._queue_for(link)
        self.links.observe(self._link_changed)
        #: Accepted jobs whose row is not yet committed (then they join their queue).
        self._accepting: dict[str, Job] = {}
        #: On a shared store, requests whose claimed insert failed (it may have been
        #: committed all the same), and the claim it was made under.
        self._uncertain: dict[str, Claim] = {}
        self._seq = 0
        #: Told (claim, reason) when a queue's write under its claim was refused (the
        #: gateway gives that bind slot up at once).
        self.on_fenced: Callable[[Claim, str], object] | None = None
        #: Builds each request's parts; keeps the concatenation references.
        self.composer = Composer()

    # -- the live set of servers -------------------------------------------------------

    def _queue_for(self, link: Link | NoLink) -> LinkQueue:
        name = link.server.name
        queue = self.queues.get(name)
        if queue is None:
            log = getattr(link, "log", None) or SmppLog(name, self.config.module.log_level)
            queue = self.queues[name] = LinkQueue(
                link, self.store, self.clock, log, self._finished,
                self.config.module.reject_if_not_relayed_in, self.stats.server(name),
                shared=self.shared)
            queue.hand_over = self.elsewhere.add
            queue.on_fenced = self._fenced
        elif queue.link is not link:
            queue.attach(link)
        return queue

    def _fenced(self, claim: Claim, reason: str) -> None:
        if self.on_fenced is not None:
            self.on_fenced(claim, reason)

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
        """Queue again every request the store holds unfinished; returns how many (none on
        a shared store: there each node claims the requests of the servers it binds)."""
        if self.shared:  # each node claims what it sends, as it takes a server's bind slot
            return 0
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
                    deferred(self.store.finish(request_id, failed(ServerDisabledError(
                        f"server {server!r} is no longer configured")))).addErrback(
                        self._not_ended, request_id)
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
        job = self._accepting.get(request_id) or self.elsewhere.get(request_id)
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
        now = self.clock.seconds()
        queue = self.queues.get(server.name)
        claim = None if queue is None else queue.claim
        writes: Any = self.store if queue is None or claim is None else queue.store
        job = Job(request_id, server.name, payload, [None] * parts, self._next_seq(),
                  now + self.config.module.reject_if_not_relayed_in, host, now)
        self._accepting[request_id] = job
        waiting = job.wait(answer)
        try:
            writes.add_outbound(request_id, server.name, payload, parts, now,
                                then=(partial(self._stored, job, claim),
                                      partial(self._not_stored, job, claim)))
        except Exception as e:
            self._accepting.pop(request_id, None)
            job.done = True
            job.take_waiters()
            self.log.problem("cannot store {request_id}: {error}", request_id=request_id, error=e)
            return fail(TryLater(f"the gateway cannot store the message: {e}"))
        return waiting

    def _stored(self, job: Job, claim: Claim | None) -> None:
        """The request is durable: it joins its server's queue (the answer comes from there),
        or, on a shared store, waits for the node that sends it unless it was stored
        under the claim this node's queue still holds."""
        self._accepting.pop(job.request_id, None)
        queue = self.queues.get(job.server)
        if job.done:
            return
        if self.shared and (queue is None or claim is None or queue.claim != claim):
            self.elsewhere.add(job)
        elif queue is not None:
            queue.add(job)

    def _not_stored(self, job: Job, claim: Claim | None, error: Exception) -> None:
        self._accepting.pop(job.request_id, None)
        job.done = True
        answer: dict[str, Any] | SignalError
        if isinstance(error, DuplicateRequest):
            # Finished before (this process or an earlier one): the same outcome again.
            if error.row.outcome is not None:
                answer = row_answer(error.row)
            elif self.shared:  # queued (through any node) or in doubt: wait for its outcome
                self._wait_for(job, error.row.message_ids)
                return
            else:
                answer = TryLater(f"request {job.request_id!r} is being restored; ask again")
        else:
            if claim is not None:
                # Its insert may have been committed nonetheless, claimed by this node: a
                # host asking again then finds it (see _wait_for).
                self._uncertain[job.request_id] = claim
            answer = TryLater(f"the gateway cannot store the message: {error}")
        for w in job.take_waiters():
            if isinstance(answer, SignalError):
                w.errback(answer)
            else:
                w.callback(answer)

    def _not_ended(self, failure: Failure, request_id: str) -> None:
        self.log.problem("cannot record the outcome of {request_id}: {error}; it is restored"
                         " again at the next start", request_id=request_id,
                         error=failure.getErrorMessage())

    def _prepare(self, method: str, sender: str, recipient: str, body: str,
                 gateway: str | None) -> tuple[ServerConfig, bytes, int]:
        """The server for a request, its parts' submit_sm PDUs encoded back to back, and their count."""
        if method.upper() != "MESSAGE":
            raise UnsupportedMethod(f"only MESSAGE signals are relayed, not {method!r}")
        server, target = router.route(recipient, self.config.servers,
                                      self.config.module.default_gateway, gateway or None)
        queue = self.queues.get(server.name)
        # A server that stands by here (a shared store: another node binds it) takes the
        # request, which that node sends; one that is off or removed has no link.
        if (queue is None or isinstance(queue.link, NoLink)) and not self.links.standing_by(
                server.name):
            raise ServerDisabledError(f"server {server.name!r} has no link")
        payload, parts = self.composer.parts(server, target, sender, body, self.dialogs)
        return server, payload, parts

    # -- status ----------------------------------------------------------------------

    def status(self) -> list[dict[str, Any]]:
        """One row per configured server: its counters (from `stats`) and its live figures.

        The keys of ServerStatus come first; the rest are for the admin's Status page
        and /metrics (an AMP host reads only the keys its command declares).
        """
        queued = {name: len(queue.jobs) for name, queue in self.queues.items()}
        for job in self._accepting.values():
            queued[job.server] = queued.get(job.server, 0) + 1
        if self.shared:
            # The cluster's queue: what waits on any node (a standby node's own is empty).
            try:
                queued = self.claims.queued()
            except StoreError as error:
                self.log.low("cannot count the cluster's queue: {error}", error=error)
        rows = []
        named = {server.name for server in self.config.servers}
        # A removed server is listed while messages still wait for its return.
        gone = [queue.server for name, queue in self.queues.items()
                if name not in named and queue.jobs]
        for server in [*self.config.servers, *gone]:
            queue = self.queues.get(server.name)
            stats = self.stats.server(server.name)
            paused = queue.paused if queue is not None else ""
            rows.append({
                "name": server.name,
                "mode": server.mode if server.name in named else "removed",
                "address": server.address,
                "state": self.links.state(server.name),
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
