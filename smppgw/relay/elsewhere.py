"""The requests another node sends: accepted here, their outcome recorded there.

On a store several nodes share, a request for a server this node does not
bind is stored unclaimed and sent by the node that binds it; one that this
node gave up with its bind slot is sent by the next holder.  Either way its
waiters (the hosts that asked here) wait in `Elsewhere` until the outcome is
in the store: `check` reads the outcomes of those requests and answers them,
when the other node's outcome write notifies this one, and at a slow safety
interval in case a notification was missed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from smppgw.errors import SignalError
from smppgw.relay.jobs import Job, row_answer
from smppgw.smpp.log import SmppLog
from smppgw.store.interfaces import StoreError

__all__ = ["Elsewhere"]


class Elsewhere:
    """The jobs whose outcome another node records, by request_id; ``claims`` (an
    `IOutboundClaims`) reads the outcomes, ``finished(job, outcome)`` counts each one."""

    def __init__(self, claims: Any, log: SmppLog,
                 finished: Callable[[Job, dict[str, Any]], object]) -> None:
        self.claims = claims
        self.log = log
        self.finished = finished
        self.jobs: dict[str, Job] = {}

    def __len__(self) -> int:
        return len(self.jobs)

    def add(self, job: Job) -> None:
        """Wait here for the outcome of ``job`` (no longer in any queue of this node); its
        payload goes (the node that sends it reads it from the store)."""
        job.done = True
        job.payload = None
        self.jobs[job.request_id] = job

    def get(self, request_id: str) -> Job | None:
        return self.jobs.get(request_id)

    def pop(self, request_id: str) -> Job | None:
        return self.jobs.pop(request_id, None)

    def check(self, servers: Iterable[str] | None = None) -> int:
        """Answer the jobs (of ``servers``, or all) whose outcome is stored; how many."""
        wanted = None if servers is None else set(servers)
        ids = [request_id for request_id, job in self.jobs.items()
               if wanted is None or job.server in wanted]
        if not ids:
            return 0
        try:
            rows = self.claims.finished(ids)
        except StoreError as error:
            self.log.problem("cannot read the outcomes other nodes recorded: {error}", error=error)
            return 0
        for row in rows:
            job = self.jobs.pop(row.request_id, None)
            if job is None:
                continue
            self.finished(job, row.outcome)
            answer = row_answer(row)
            for waiter in job.take_waiters():
                if isinstance(answer, SignalError):
                    waiter.errback(answer)
                else:
                    waiter.callback(answer)
        return len(rows)
