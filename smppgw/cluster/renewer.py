"""Keeping a lease: renew it every third of its length, and say when it is lost.

A `Renewer` keeps one `Tenure` for as long as it runs: every ``seconds / 3``
it renews the lease for ``seconds`` more.  It calls ``on_lost(tenure,
reason)`` once, and stops, when

- a renewal answers that the tenure is over (it lapsed during a pause, was
  released, or another node took the key), or
- no renewal has succeeded for ``seconds`` on the node's own clock, counted
  from when the last successful one was sent (the database is unreachable,
  or a renewal hangs): the lease has then run out on the database's clock as
  well, or will have before any write of this node could reach it, so the
  node must stop writing under it now rather than when it hears back.

A renewal that fails (:class:`StoreError`) is tried again at the next tick,
so that a database restart shorter than the lease costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.application.service import Service
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from smppgw.cluster.leases import Leases, Tenure
from smppgw.store.interfaces import StoreError

log = Logger()


class Renewer(Service):
    """Renews ``tenure`` for ``seconds`` every ``seconds / 3`` until it is lost or stopped.

    Start it just after acquiring: the first ``seconds`` are counted from then.
    """

    def __init__(self, leases: Leases, tenure: Tenure, seconds: float, clock: IReactorTime,
                 on_lost: Callable[[Tenure, str], object]) -> None:
        self.leases = leases
        self.tenure = tenure
        self.seconds = float(seconds)
        self.clock = clock
        self.on_lost = on_lost
        self.name = f"lease:{tenure.key}"
        #: False once the tenure is known or presumed lost.
        self.held = True
        self._loop = LoopingCall(self._renew)
        self._loop.clock = clock
        self._deadline: IDelayedCall | None = None

    def startService(self) -> None:
        super().startService()
        if not self.held:
            return
        self._deadline = self.clock.callLater(self.seconds, self._lapsed)
        self._loop.start(self.seconds / 3, now=False)

    def stopService(self) -> None:
        super().stopService()
        self._stop()

    def _stop(self) -> None:
        if self._loop.running:
            self._loop.stop()
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _renew(self) -> Deferred[None]:
        sent = self.clock.seconds()
        done = self.leases.renew(self.tenure, self.seconds)

        def answered(renewed: bool) -> None:
            if not self.held or not self.running:
                return
            if not renewed:
                self._lose("the lease lapsed or another node holds it")
            elif self._deadline is not None:
                self._deadline.reset(max(0.0, sent + self.seconds - self.clock.seconds()))

        def failed(failure: Failure) -> None:
            failure.trap(StoreError)
            log.warn("cannot renew {tenure}, trying again: {error}",
                     tenure=str(self.tenure), error=failure.getErrorMessage())

        return done.addCallbacks(answered, failed)

    def _lapsed(self) -> None:
        self._deadline = None
        self._lose(f"no renewal succeeded for {self.seconds:g} s")

    def _lose(self, reason: str) -> None:
        if not self.held:
            return
        self.held = False
        self._stop()
        log.warn("lost {tenure}: {reason}", tenure=str(self.tenure), reason=reason)
        self.on_lost(self.tenure, reason)
