"""The requests of the servers this node binds, claimed for their queues; news from other nodes.

On a shared (PostgreSQL) store, `OutboundClaims` ties a server's bind slot to
its queue:

- **A slot taken** (`took`): the server's queue sends under the slot's lease
  (`Outbound.take`), and the server's claimable requests (unclaimed, or
  claimed under a lease no longer held) are claimed, in seq order, and queued
  (`Outbound.adopt`); a request this node accepts for it from then on is
  stored claimed already.
- **A slot given up or lost** (`gave_up`, once the link has unbound and what
  it wrote is committed): the queue's jobs are dropped unanswered; their
  waiters wait for the outcome the next holder records (`Outbound.give_up`).
- **What no node sends** (its server off or removed everywhere): the node
  that maintains finishes it as NOT_RELAYED once past
  ``reject_if_not_relayed_in``, at a safety round (below) once every
  `EXPIRE_EVERY` seconds, as a queue expires its own.
- **News**, by LISTEN/NOTIFY (a `Notifier`): a request stored unclaimed for a
  server this node binds (channel ``QUEUED``) is claimed at once; an outcome
  recorded by any node (channel ``OUTCOMES``) answers the hosts that wait
  here for it (`Outbound.elsewhere`).  A notified claim is quick: it looks
  only at the requests stored since the last claim (by seq).  No polling but
  a slow safety round, a third of the lease, and one each time the Notifier
  connects again: it claims again, looking at every unfinished request of the
  server (one whose insert committed after a claim that saw a later seq, or
  whose notification was missed), and reads the outcomes waited for.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from smppgw.cluster.leases import Tenure
from smppgw.cluster.notifier import Notifier
from smppgw.errors import NotRelayed, failed
from smppgw.relay.outbound import Outbound
from smppgw.smpp.log import SmppLog
from smppgw.store.claiming import Claim, ClaimBatch
from smppgw.store.interfaces import LeaseLost, StoreError
from smppgw.store.postgres.claims import OUTCOMES, QUEUED
from smppgw.store.postgres.database import connect

if TYPE_CHECKING:
    from smppgw.config import Config

__all__ = ["OutboundClaims"]

#: The most requests one claim takes; a full batch is followed by another at once.
BATCH = 5000
#: Seconds between two expiries of what no node sends (each walks the unfinished requests).
EXPIRE_EVERY = 60.0


class OutboundClaims:
    """Claims for ``outbound``'s queues on ``store`` (an `IOutboundClaims`), hearing the
    other nodes through connections from ``connect()``; a safety round every ``every`` s."""

    def __init__(self, outbound: Outbound, store: Any,
                 connect: Callable[[], psycopg.Connection[Any]], reactor: Any, every: float,
                 log: SmppLog | None = None,
                 maintains: Callable[[], bool] = lambda: False) -> None:
        self.outbound = outbound
        self.maintains = maintains
        self.store = store
        self.reactor = reactor
        self.log = log or SmppLog("*")
        #: The claim of each server whose bind slot this node holds.
        self.held: dict[str, Claim] = {}
        self._claiming: set[str] = set()
        # The servers to claim for again once the claim under way ends: True for a whole
        # claim, False for a quick one (requests stored since the last claim).
        self._again: dict[str, bool] = {}
        # The highest seq each server's last claim looked at: where a quick claim starts.
        self._seen: dict[str, int] = {}
        self.notifier = Notifier(connect, [QUEUED, OUTCOMES], reactor, self.received,
                                 self.safety, self.log)
        self._expired_at: float | None = None
        self._safety = LoopingCall(self.safety)
        self._safety.clock = reactor
        self.every = every

    def start(self) -> Deferred[None]:
        """Listen for the other nodes' news; fires once listening, after a safety round for
        what was stored before (a claim made before the Notifier listened may miss it)."""
        self._safety.start(self.every, now=False)
        listening = self.notifier.start()
        return listening.addCallback(lambda _: self.safety())

    def stop(self) -> None:
        if self._safety.running:
            self._safety.stop()
        self.notifier.stop()

    # -- bind slots --------------------------------------------------------------------

    def took(self, tenure: Tenure) -> None:
        """This node holds ``tenure``, a bind slot of its server: claim the server's requests."""
        claim = Claim(tenure.key.name, tenure.lease, tenure.node, tenure.epoch)
        self.held[claim.server] = claim
        self._seen[claim.server] = 0
        self.outbound.take(claim.server, self.store.under(claim))
        self.claim(claim.server)

    def gave_up(self, server: str) -> Deferred[None]:
        """This node no longer holds a bind slot of ``server``: once what its queue wrote is
        committed, its jobs go (unanswered) to the next holder.  Fires once done."""
        self.held.pop(server, None)
        self._again.pop(server, None)
        done: Deferred[Any] = self.store.durable()

        def give_up(_: object) -> None:
            if server not in self.held:  # not taken again meanwhile
                self.outbound.give_up(server)

        return done.addBoth(give_up)

    # -- claiming ----------------------------------------------------------------------

    def claim(self, server: str, *, quick: bool = False) -> None:
        """Claim ``server``'s claimable requests for its queue, if this node holds its slot
        (once more after the claim under way, if one is).  A ``quick`` claim looks only at
        the requests stored since the last claim: what a notification tells of."""
        claim = self.held.get(server)
        if claim is None:
            return
        if server in self._claiming:
            self._again[server] = self._again.get(server, False) or not quick
            return
        self._claim(claim, self._seen.get(server, 0) if quick else 0)

    def _claim(self, claim: Claim, after: int) -> None:
        self._claiming.add(claim.server)
        self.store.claim_outbound(claim, BATCH, after).addCallbacks(
            self._claimed, self._not_claimed, callbackArgs=(claim, after),
            errbackArgs=(claim,))

    def _claimed(self, batch: ClaimBatch, claim: Claim, after: int) -> None:
        server = claim.server
        self._claiming.discard(server)
        if self.held.get(server) == claim:
            self._seen[server] = max(self._seen.get(server, 0), batch.seen)
        count = self.outbound.adopt(claim, batch.rows)
        if count:
            self.log.major("{count} queued message(s) of server {server!r} claimed for this node",
                           count=count, server=server)
        if len(batch.rows) >= BATCH and self.held.get(server) == claim:
            self._claim(claim, batch.seen)  # the rest, where this batch ended
        elif server in self._again:
            self.claim(server, quick=not self._again.pop(server))

    def _not_claimed(self, failure: Failure, claim: Claim) -> None:
        self._claiming.discard(claim.server)
        self._again.pop(claim.server, None)
        failure.trap(StoreError)
        if isinstance(failure.value, LeaseLost):
            return  # the slot is lost: its Renewer tells the bind slots
        self.log.problem("cannot claim the queued messages of server {server}: {error}; trying"
                         " again later", server=claim.server, error=failure.getErrorMessage())

    # -- the other nodes' news ---------------------------------------------------------

    def received(self, channel: str, payload: str) -> None:
        """A notification: a request stored unclaimed, or an outcome, of server ``payload``."""
        if channel == QUEUED:
            self.claim(payload, quick=True)
        elif channel == OUTCOMES and len(self.outbound.elsewhere):
            self.outbound.elsewhere.check([payload])

    def safety(self) -> None:
        """Claim again for every server held, and read every outcome waited for; on the node
        that maintains, expire what no node will send."""
        for server in list(self.held):
            self.claim(server)
        if len(self.outbound.elsewhere):
            self.outbound.elsewhere.check()
        now = self.reactor.seconds()
        if self.maintains() and (self._expired_at is None
                                 or now - self._expired_at >= EXPIRE_EVERY):
            self._expired_at = now
            self.expire()

    def expire(self) -> Deferred[int]:
        """Finish as NOT_RELAYED the requests past ``reject_if_not_relayed_in`` that no node
        holds (their server is off or removed on every node, or no node could bind it)."""
        after = self.outbound.config.module.reject_if_not_relayed_in
        outcome = failed(NotRelayed(f"not relayed within {after:g}s: no node sends for its"
                                    " server"))

        def expired(count: int) -> int:
            if count:
                self.log.major("{count} queued message(s) that no node sends expired",
                               count=count)
            return count

        def not_expired(failure: Failure) -> int:
            failure.trap(StoreError)
            self.log.problem("cannot expire the messages no node sends: {error}",
                             error=failure.getErrorMessage())
            return 0

        done: Deferred[int] = self.store.expire_unclaimed(self.reactor.seconds() - after, outcome)
        return done.addCallbacks(expired, not_expired)


def claims_for(config: Config, outbound: Outbound, store: Any, reactor: Any, log: SmppLog,
               maintains: Callable[[], bool]) -> OutboundClaims:
    """The started claims of a gateway on the PostgreSQL store of ``config``."""
    password = config.store.password
    params: dict[str, Any] = {"password": password} if password else {}
    url = config.store.url
    claims = OutboundClaims(outbound, store, lambda: connect(url, **params), reactor,
                            config.node.lease / 3, log, maintains)
    claims.start()
    return claims
