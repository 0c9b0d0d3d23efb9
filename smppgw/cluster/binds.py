"""A server's bind slots: which nodes bind it, ``max_binds`` of them at most across the cluster.

Slot ``n`` of server ``s`` is the lease ``LeaseKey.bind(s, n)``; each node runs one
`BindSlots` per enabled server, and holds one of its slots at most:

- **Standing by**, it tries to take one of slots 0 .. ``max_binds - 1``, the first
  free one (`Leases.acquire_one`), at start and then every third of the lease.
- **Holding** one, it keeps it with a `Renewer` and calls ``start(tenure)``: the
  node binds.
- **A slot lost** (the Renewer's ``on_lost``: the lease lapsed, another node took
  it, or no renewal succeeded for a lease's length) calls ``stop(tenure)`` at once:
  the node unbinds, and stands by again once ``stop``'s Deferred has fired.
- **Stopped**, it calls ``stop(tenure)`` and frees the slot once that has fired,
  so that another node takes it at its next try rather than after the lease.

`resize` applies a new ``max_binds``: a node holding a slot beyond it gives that
slot up and tries again among the slots left.  The database calls go through
the `Leases`' connection (a thread of its own): the reactor never waits for one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from smppgw.cluster.leases import LeaseKey, Leases, Tenure
from smppgw.cluster.renewer import Renewer
from smppgw.smpp.log import SmppLog

__all__ = ["BindSlots"]

#: What ``start`` and ``stop`` are called with; ``stop``'s Deferred fires once unbound.
Start = Callable[[Tenure], object]
Stop = Callable[[Tenure], object]


class BindSlots(Service):
    """Holds one of ``server``'s first ``max_binds`` bind slots for ``node`` whenever one is
    free, calling ``start`` when it takes one and ``stop`` when it gives it up or loses it."""

    def __init__(self, leases: Leases, server: str, node: str, seconds: float,
                 clock: IReactorTime, start: Start, stop: Stop, *, max_binds: int = 1,
                 log: SmppLog | None = None) -> None:
        self.leases = leases
        self.server = server
        self.node = node
        self.seconds = float(seconds)
        self.clock = clock
        self.start = start
        self.stop = stop
        self.max_binds = max_binds
        self.log = log if log is not None else SmppLog(server)
        self.name = f"binds:{server}"
        #: The slot this node holds, None while it stands by.
        self.tenure: Tenure | None = None
        self._renewer: Renewer | None = None
        self._retry: IDelayedCall | None = None
        # The acquire, or the stop after a loss, under way: what stopService waits for.
        self._busy: Deferred[Any] | None = None
        #: Whether its last try found every slot held (a line says so once, not every try).
        self.standing_by = False

    def keys(self) -> list[LeaseKey]:
        """The slots this node may take."""
        return [LeaseKey.bind(self.server, slot) for slot in range(self.max_binds)]

    def startService(self) -> None:
        super().startService()
        self._try()

    def stopService(self) -> Deferred[None]:
        """Stop trying; if a slot is held, call ``stop`` and then free the slot.  Fires once
        freed (or once the acquire or stop under way has ended), never with an error."""
        super().stopService()
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        if self.tenure is not None:
            return self._give_up(self.tenure, release=True)
        return self._idle()

    def resize(self, max_binds: int) -> None:
        """From now on take one of the first ``max_binds`` slots; give up one beyond them."""
        self.max_binds = max_binds
        tenure = self.tenure
        if tenure is not None and tenure.key.slot >= max_binds and self.running:
            self.log.major("node {node} gives up bind slot {slot}: max_binds is now {count};"
                           " unbinding", node=self.node, slot=tenure.key.slot, count=max_binds)
            self._busy = self._give_up(tenure, release=True)
            self._busy.addCallback(self._stood_by)

    # -- standing by -----------------------------------------------------------------

    def _try(self) -> None:
        self._retry = None
        if not self.running:
            return
        # Set before the callbacks, which may run at once and clear it.
        self._busy = self.leases.acquire_one(self.keys(), self.node, self.seconds)
        self._busy.addCallbacks(self._acquired, self._failed)

    def _later(self) -> None:
        if self.running and self._retry is None:
            self._retry = self.clock.callLater(self.seconds / 3, self._try)

    def _failed(self, failure: Failure) -> None:
        self._busy = None
        self.log.problem("node {node} cannot take a bind slot: {error}; trying again",
                         node=self.node, error=failure.getErrorMessage())
        self._later()

    def _acquired(self, tenure: Tenure | None) -> Deferred[None] | None:
        self._busy = None
        if tenure is not None and not self.running:  # stopped meanwhile: never bound
            return self._release(tenure)
        if tenure is None:
            if not self.standing_by:
                self.standing_by = True
                self.log.major("node {node} stands by: other nodes hold the {count} bind"
                               " slot(s)", node=self.node, count=self.max_binds)
            self._later()
            return None
        self.standing_by = False
        self.tenure = tenure
        self._renewer = Renewer(self.leases, tenure, self.seconds, self.clock, self._lost)
        self._renewer.startService()
        self.log.major("node {node} holds bind slot {slot} (epoch {epoch}): binding",
                       node=self.node, slot=tenure.key.slot, epoch=tenure.epoch)
        self.start(tenure)
        return None

    # -- holding ---------------------------------------------------------------------

    def _lost(self, tenure: Tenure, reason: str) -> None:
        if tenure != self.tenure:
            return
        self.log.problem("node {node} lost bind slot {slot}: {reason}; unbinding",
                         node=self.node, slot=tenure.key.slot, reason=reason)
        self._busy = self._give_up(tenure, release=False)
        self._busy.addCallback(self._stood_by)

    def fenced(self, lease: int, epoch: int, reason: str) -> None:
        """A write under tenure (``lease``, ``epoch``) was refused: its lease ran out while
        this node was paused or cut off.  Give that slot up now (unbind, stand by) rather
        than at the next renewal; a refusal of an older tenure changes nothing."""
        tenure = self.tenure
        if tenure is not None and tenure.lease == lease and tenure.epoch == epoch:
            self._lost(tenure, reason)

    def _stood_by(self, _: object) -> None:
        self._busy = None
        self._later()

    def _give_up(self, tenure: Tenure, *, release: bool) -> Deferred[None]:
        """``stop(tenure)``, then (with ``release``) free its slot; fires once done."""
        self.tenure = None
        if self._renewer is not None:
            self._renewer.stopService()
            self._renewer = None
        done: Deferred[Any] = maybeDeferred(self.stop, tenure)
        done.addErrback(self._report, "unbind")
        if release:
            done.addCallback(lambda _: self._release(tenure))
        return done.addCallback(lambda _: None)

    def _release(self, tenure: Tenure) -> Deferred[None]:
        done: Deferred[None] = self.leases.release(tenure).addCallback(lambda _: None)
        return done.addErrback(self._report, "free its bind slot")

    def _report(self, failure: Failure, what: str) -> None:
        self.log.problem("node {node} cannot {what}: {error}", node=self.node, what=what,
                         error=failure.getErrorMessage())

    def _idle(self) -> Deferred[None]:
        """A Deferred that fires once the acquire or stop under way has ended."""
        if self._busy is None:
            return succeed(None)
        idle: Deferred[None] = Deferred()

        def done(result: object) -> object:
            idle.callback(None)
            return result

        self._busy.addBoth(done)
        return idle
