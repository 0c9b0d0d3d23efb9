"""The outbound queue on a store several nodes share: parts leave once marked, writes under a
claim that is fenced off stop the queue, and the jobs it gives up wait for another node's outcome.

The store is the memory store made to answer as a shared one (claims, fenced writes, marks
the test commits by hand); no database, a task.Clock, a FakeLink.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from smppgw.config import parse_config
from smppgw.errors import TryLater
from smppgw.relay.outbound import Outbound
from smppgw.relay.recorder import PROBE_MAX, REWRITE_PAUSE
from smppgw.store.claiming import Claim, IOutboundClaims
from smppgw.store.interfaces import LeaseLost, StoreError
from smppgw.store.memory import MemoryStore
from smppgw.store.sole import SoleClaims, SoleWrites
from smppgw.store.writes import Then, then_deferred

from .test_queue import CONFIG, FakeLink

CLAIM = Claim("", 7, "gw-1", 1)


class FencedWrites(SoleWrites):
    """The memory store's writes under a claim, refused once the store says it is fenced;
    each mark waits for the test (`SharedMemory.commit_marks`)."""

    store: SharedMemory

    def add_outbound(self, *args: Any, then: Then | None = None,
                     **kw: Any) -> Deferred[int] | None:
        added = super().add_outbound(*args, **kw)
        if self.store.answer_lost:  # committed, but the answer is lost with the connection
            return then_deferred(fail(StoreError("the connection was lost during the commit")),
                                 then)
        return then_deferred(added, then)

    def set_message_id(self, *args: Any, then: Then | None = None,
                       **kw: Any) -> Deferred[None] | None:
        return then_deferred(self._fenced() or super().set_message_id(*args, **kw), then)

    def finish(self, *args: Any, then: Then | None = None, **kw: Any) -> Deferred[None] | None:
        return then_deferred(self._fenced() or super().finish(*args, **kw), then)

    def mark_submitting(self, request_id: str, index: int) -> Deferred[None]:  # type: ignore[override]
        marked: Deferred[None] = Deferred()
        self.store.marks.append(((request_id, index), marked))
        return marked

    def _fenced(self) -> Deferred[None] | None:
        return fail(LeaseLost("'gw-1' no longer holds the lease 7")) if self.store.fenced else None


@implementer(IOutboundClaims)
class SharedMemory(MemoryStore):
    """A memory store that answers as a shared one."""

    shared = True

    def __init__(self) -> None:
        super().__init__()
        self.fenced = False
        self.answer_lost = False
        self.marks: list[tuple[tuple[str, int], Deferred[None]]] = []

    def claim_outbound(self, claim: Claim, limit: int = 10000, after: int = 0) -> Any:
        return SoleClaims(self).claim_outbound(claim, limit, after)

    def under(self, claim: Claim) -> FencedWrites:
        return FencedWrites(self, claim)

    def finished(self, request_ids: list[str]) -> Any:
        return SoleClaims(self).finished(request_ids)

    def commit_marks(self) -> list[tuple[str, int]]:
        """Commit the marks written so far; which parts they were."""
        marks, self.marks = self.marks, []
        for _, marked in marks:
            marked.callback(None)
        return [part for part, _ in marks]


class ClaimedQueueTests(SynchronousTestCase):
    """A queue that sends what its node claimed, on a shared store."""

    def setUp(self) -> None:
        self.clock, self.store = Clock(), SharedMemory()
        config = parse_config(CONFIG.format(extra='sender = "*"\nwindow = 2'))
        self.link = FakeLink(config.server(""))
        self.link.log.set_level("problems")
        self.outbound = Outbound(config, {"": self.link}, self.store, self.clock)  # type: ignore[arg-type]
        self.addCleanup(self.outbound.stop)
        self.outbound.take("", self.store.under(CLAIM))
        self.link.set_state("bound")
        self.clock.advance(0)

    def send(self, request_id: str) -> Deferred[Any]:
        answer = self.outbound.send_signal(request_id, "MESSAGE", "alice@example.com",
                                           "+15551234@smpp", request_id)
        self.clock.advance(0)
        return answer  # type: ignore[no-any-return]

    def test_a_part_leaves_once_marked(self) -> None:
        """A request accepted under the claim is queued; its part's submit_sm leaves only once
        its mark as being submitted is committed, and the request is answered as ever."""
        answer = self.send("r1")
        self.assertEqual(self.link.submits, [])
        self.assertEqual(self.store.commit_marks(), [("r1", 0)])
        self.assertEqual(len(self.link.submits), 1)
        self.link.answer(message_id="M1")
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(answer)["message_ids"], ["M1"])

    def test_fenced_off_write_stops_the_queue(self) -> None:
        """The SMSC's answer whose record is fenced off (the node lost the server's slot): the
        queue says so once, sends no more, retries nothing, and its jobs wait unanswered for
        the outcome another node records; that outcome answers them."""
        first, second = self.send("r1"), self.send("r2")
        self.store.commit_marks()
        self.link.answer(0, message_id="M1")
        self.store.fenced = True
        with capturedLogs() as events:
            self.link.answer(0, message_id="M2")
            self.clock.advance(0)
        self.assertEqual([formatEvent(e) for e in events if "no longer holds" in formatEvent(e)],
                         ['SMPP [""] this node no longer holds the bind slot its queue sends under'
                          " ('gw-1' no longer holds the lease 7): it stops sending; the next"
                          " holder sends what is left"])
        self.assertEqual(self.successResultOf(first)["message_ids"], ["M1"])
        self.assertNoResult(second)
        self.assertEqual(self.store.outbound("r2").outcome, None)  # type: ignore[union-attr]
        self.assertIsNone(self.outbound.queues[""].claim)
        self.clock.advance(REWRITE_PAUSE + PROBE_MAX)
        self.send("r3")
        self.assertEqual((self.store.marks, self.link.submits), ([], []))
        self.assertEqual([self.store.outbound(r).outcome for r in ("r2", "r3")],  # type: ignore[union-attr]
                         [None, None])
        self.store.finish("r2", {"ok": True, "server": "", "parts": 1, "message_ids": ["N2"]})
        self.outbound.elsewhere.check([""])
        self.assertEqual(self.successResultOf(second)["message_ids"], ["N2"])

    def test_given_up_jobs_wait_and_are_adopted_again(self) -> None:
        """A slot given up drops the queue's jobs unanswered, none sent; claimed again (the next
        epoch), they are queued with their waiters and sent."""
        answer = self.send("r1")
        self.outbound.give_up("")
        self.assertEqual(self.store.commit_marks(), [("r1", 0)])
        self.assertEqual((self.link.submits, self.outbound.queues[""].jobs), ([], {}))
        self.assertNoResult(answer)
        again = Claim("", 7, "gw-1", 2)
        self.outbound.take("", self.store.under(again))
        (row,) = self.successResultOf(self.store.claim_outbound(again)).rows
        self.assertEqual(self.outbound.adopt(again, [row]), 1)
        self.store.commit_marks()
        self.link.answer(message_id="M1")
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(answer)["message_ids"], ["M1"])

    def test_adopt_under_a_claim_gone(self) -> None:
        """Rows claimed under a claim the queue no longer holds are left for the next holder."""
        self.store.add_outbound("r1", "", b"pdu", 1, 0.0)
        rows = self.successResultOf(self.store.claim_outbound(CLAIM)).rows
        self.outbound.give_up("")
        self.assertEqual(self.outbound.adopt(CLAIM, rows), 0)
        self.assertEqual((self.outbound.queues[""].jobs, self.link.submits), ({}, []))

    def test_asked_again_after_an_answer_lost(self) -> None:
        """A request whose claimed insert was committed though it failed (TRY_LATER): asked
        again, it is sent by this queue (no other node would claim it) and answered."""
        self.store.answer_lost = True
        self.failureResultOf(self.send("r1"), TryLater)
        self.store.answer_lost = False
        again = self.send("r1")
        self.assertEqual(self.store.commit_marks(), [("r1", 0)])
        self.link.answer(message_id="M1")
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(again)["message_ids"], ["M1"])


class SharedThroughputTests(SynchronousTestCase):
    """A server's `throughput` is the total of its binds: on a shared store each node's
    queue paces at its share, `max_binds`-th of it; on a store of one node, all of it."""

    def outbound(self, store: Any, extra: str) -> Outbound:
        config = parse_config(CONFIG.format(extra=extra))
        link = FakeLink(config.server(""))
        outbound = Outbound(config, {"": link}, store, Clock())  # type: ignore[arg-type]
        self.addCleanup(outbound.stop)
        return outbound

    def test_each_node_paces_at_its_share(self) -> None:
        shared = self.outbound(SharedMemory(), "throughput = 10\nmax_binds = 2")
        alone = self.outbound(MemoryStore(), "throughput = 10\nmax_binds = 2")
        self.assertEqual((shared.queues[""].pacer.ceiling, alone.queues[""].pacer.ceiling),
                         (5.0, 10.0))
        # A reload that changes max_binds or throughput applies the new share live.
        config = parse_config(CONFIG.format(extra="throughput = 12\nmax_binds = 4"))
        shared.configure(config)
        self.assertEqual(shared.queues[""].pacer.ceiling, 3.0)
        unlimited = self.outbound(SharedMemory(), "max_binds = 3")
        self.assertEqual(unlimited.queues[""].pacer.ceiling, 0.0)
