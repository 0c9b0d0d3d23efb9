"""OutboundClaims without a database: what a slot taken, a notification and a safety round
claim, and what the maintaining node expires.

The store is the memory store answering as a shared one (see test_queue_claims), which
records the claims asked of it and answers them when the test says.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from smppgw.cluster.claims import BATCH, EXPIRE_EVERY, OutboundClaims
from smppgw.cluster.leases import LeaseKey, Tenure
from smppgw.config import parse_config
from smppgw.relay.outbound import Outbound
from smppgw.store.claiming import Claim, ClaimBatch, ClaimedRow
from smppgw.store.postgres.claims import OUTCOMES, QUEUED

from .test_queue import CONFIG, FakeLink
from .test_queue_claims import SharedMemory

TENURE = Tenure(LeaseKey.bind(""), "gw-1", 3, 7)
CLAIM = Claim("", 7, "gw-1", 3)


class Claiming(SharedMemory):
    """Claims wait for the test: `asked` lists (claim, after) with each one's Deferred."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: list[tuple[Claim, int, Deferred[ClaimBatch]]] = []
        self.expired: list[tuple[float, dict[str, Any]]] = []

    def claim_outbound(self, claim: Claim, limit: int = 10000, after: int = 0) -> Any:
        answer: Deferred[ClaimBatch] = Deferred()
        self.asked.append((claim, after, answer))
        return answer

    def expire_unclaimed(self, before: float, outcome: dict[str, Any]) -> Deferred[int]:
        self.expired.append((before, outcome))
        return succeed(0)

    def answer(self, rows: list[ClaimedRow], seen: int) -> tuple[Claim, int]:
        claim, after, answer = self.asked.pop(0)
        answer.callback(ClaimBatch(rows, seen))
        return claim, after


class OutboundClaimsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock, self.store = Clock(), Claiming()
        self.config = parse_config(CONFIG.format(extra='sender = "*"'))
        self.link = FakeLink(self.config.server(""))
        self.outbound = Outbound(self.config, {"": self.link}, self.store, self.clock)  # type: ignore[arg-type]
        self.addCleanup(self.outbound.stop)
        self.maintaining = False
        self.claims = OutboundClaims(self.outbound, self.store, lambda: None, self.clock,  # type: ignore[arg-type, return-value]
                                     3.0, maintains=lambda: self.maintaining)

    def test_slot_taken_then_notified(self) -> None:
        """A slot taken claims every request of its server and queues them; a notification of
        a request stored claims again from the highest seq the last claim saw, once more at
        most after the claim under way however many come meanwhile."""
        self.claims.took(TENURE)
        self.store.add_outbound("r1", "", b"pdu", 1, 0.0)
        self.assertEqual(self.store.answer([ClaimedRow("r1", 1, (None,), 0.0, (), 40)], 40),
                         (CLAIM, 0))
        self.assertEqual(list(self.outbound.queues[""].jobs), ["r1"])
        self.claims.received(QUEUED, "")
        self.claims.received(QUEUED, "")
        self.claims.received(QUEUED, "")
        self.claims.received(QUEUED, "other")
        self.assertEqual(self.store.answer([], 45), (CLAIM, 40))
        self.assertEqual(self.store.answer([], 45), (CLAIM, 45))
        self.assertEqual(self.store.asked, [])

    def test_a_full_batch_is_followed_by_the_next(self) -> None:
        """A claim that took a full batch claims the rest at once, from where it ended."""
        self.claims.took(TENURE)
        rows = [ClaimedRow(f"r{n}", 1, (None,), 0.0, (), n) for n in range(1, BATCH + 1)]
        self.store.answer(rows, BATCH)
        self.assertEqual([(claim, after) for claim, after, _ in self.store.asked],
                         [(CLAIM, BATCH)])

    def test_safety_round(self) -> None:
        """A safety round claims every request of each server held and answers the hosts whose
        outcome another node recorded; only the maintaining node expires what no node sends,
        once a minute at most."""
        waiting = self.outbound.send_signal("r1", "MESSAGE", "alice@example.com",
                                            "+15551234@smpp", "hello")
        self.clock.advance(0)
        self.claims.took(TENURE)
        self.store.answer([], 10)
        self.claims.safety()
        self.assertEqual([(claim, after) for claim, after, _ in self.store.asked], [(CLAIM, 0)])
        self.assertEqual(self.store.expired, [])
        self.store.finish("r1", {"ok": True, "server": "", "parts": 1, "message_ids": ["M1"]})
        self.maintaining = True
        self.clock.advance(1000)
        self.claims.safety()
        self.assertEqual(self.successResultOf(waiting)["message_ids"], ["M1"])
        self.assertEqual(self.store.expired, [(400.0, {
            "ok": False, "code": "NOT_RELAYED",
            "reason": "not relayed within 600s: no node sends for its server"})])
        self.clock.advance(EXPIRE_EVERY - 1)
        self.claims.safety()
        self.clock.advance(1)
        self.claims.safety()
        self.assertEqual([before for before, _ in self.store.expired], [400.0, 460.0])

    def test_outcome_notified(self) -> None:
        """An outcome another node records, notified, answers the host that waits here."""
        waiting = self.outbound.send_signal("r1", "MESSAGE", "alice@example.com",
                                            "+15551234@smpp", "hello")
        self.clock.advance(0)
        self.assertNoResult(waiting)
        self.store.finish("r1", {"ok": True, "server": "", "parts": 1, "message_ids": ["M1"]})
        self.claims.received(OUTCOMES, "")
        self.assertEqual(self.successResultOf(waiting)["message_ids"], ["M1"])

    def test_given_up(self) -> None:
        """A slot given up: once what was written is durable, the queue's jobs wait for the
        next holder's outcome, and no claim is made for the server any more."""
        self.claims.took(TENURE)
        self.store.answer([ClaimedRow("r1", 1, (None,), 0.0)], 1)
        self.successResultOf(self.claims.gave_up(""))
        self.assertEqual(self.outbound.queues[""].jobs, {})
        self.claims.received(QUEUED, "")
        self.claims.safety()
        self.assertEqual(self.store.asked, [])
