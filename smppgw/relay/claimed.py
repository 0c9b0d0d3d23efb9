"""What `smppgw.relay.outbound.Outbound` does on a store several nodes share (its base `Claimed`).

A server's queue holds what this node claimed while it holds one of the
server's bind slots (`smppgw.cluster.claims` calls `take`, `adopt` and
`give_up`); a request asked again that is stored unfinished waits for its
outcome (`_wait_for`), through this node's queue or another node's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from smppgw.relay.jobs import Job, success

if TYPE_CHECKING:
    from smppgw.config import Config
    from smppgw.relay.elsewhere import Elsewhere
    from smppgw.relay.linkqueue import LinkQueue
    from smppgw.smpp.log import SmppLog
    from smppgw.store.claiming import Claim, ClaimedRow, IClaimedWrites

__all__ = ["Claimed"]


class Claimed:
    """The claims half of `Outbound` (see the module docstring)."""

    # What Outbound gives it.
    config: Config
    log: SmppLog
    queues: dict[str, LinkQueue]
    elsewhere: Elsewhere
    _uncertain: dict[str, Claim]
    _next_seq: Any

    def take(self, server: str, writes: IClaimedWrites) -> None:
        """This node holds a bind slot of ``server``: its queue sends under ``writes.claim``."""
        queue = self.queues.get(server)
        if queue is not None:  # none for a receive-only server: nothing to send
            queue.claim_with(writes)

    def give_up(self, server: str) -> None:
        """This node no longer holds a bind slot of ``server``: its queue's jobs wait here for
        the outcome the next holder records."""
        queue = self.queues.get(server)
        if queue is not None:
            for job in queue.release_claim():
                self.elsewhere.add(job)
        # Stored under a claim gone or not at all: the next holder claims them, if stored.
        for request_id in [r for r, claim in self._uncertain.items() if claim.server == server]:
            del self._uncertain[request_id]

    def adopt(self, claim: Claim, rows: list[ClaimedRow]) -> int:
        """Queue the requests claimed under ``claim`` (unless the claim went meanwhile: the
        rows then wait for the next holder); how many were queued."""
        queue = self.queues.get(claim.server)
        if queue is None or queue.claim != claim:
            return 0
        reject_after = self.config.module.reject_if_not_relayed_in
        count = 0
        for row in rows:
            if row.request_id in queue.jobs or row.request_id in queue.unrecorded:
                continue
            job = Job(row.request_id, claim.server, None, list(row.message_ids),
                      self._next_seq(), row.created + reject_after)
            waiting = self.elsewhere.pop(row.request_id)
            if waiting is not None:  # asked here: its host waits, and takes its turn
                job.host, job.accepted = waiting.host, waiting.accepted
                for waiter in waiting.take_waiters():
                    job.wait(waiter)
            for index in row.in_doubt:
                self.log.problem("part {part} of {request_id} is in doubt (its submit_sm may"
                                 " have reached the SMSC through another node): sending it"
                                 " again", part=index + 1, request_id=row.request_id)
            if job.complete:
                queue._finish(job, success(job))
                continue
            queue.add(job)
            count += 1
        return count

    def _wait_for(self, job: Job, message_ids: tuple[str | None, ...]) -> None:
        """On a shared store, a request asked again that is stored unfinished: its queue here
        sends it if it was stored claimed by this queue's claim (its insert answered as failed,
        though committed); else it waits for the node that sends it."""
        claim = self._uncertain.pop(job.request_id, None)
        queue = self.queues.get(job.server)
        if claim is not None and queue is not None and queue.claim == claim:
            job.done = False
            job.message_ids = list(message_ids)
            queue.add(job)
        else:
            self.elsewhere.add(job)
