"""
C{GET /healthz}: 200 C{ok} while the store writes and the reactor turns; 503 and why otherwise.

For systemd watchdogs, load balancers and Kubernetes-style probes: no login, a
one-line body.  Two things make the gateway unhealthy:

- The store cannot write.  A link pauses while the store cannot record what
  the SMSC accepted (C{LinkQueue.paused}); and a commit that failed with none
  succeeding since (the store's C{commits} and C{failed_commits}, sampled at
  every heartbeat) means nothing new can be kept, whatever the links do.  A
  store with a C{probe} (the PostgreSQL one, whose database may go away while
  nothing is written) is asked at each beat to commit an empty transaction
  when idle, so that its counters move even then.
- The reactor does not turn.  A L{Heartbeat} beats every second on the
  reactor; a beat older than L{STALE_AFTER} seconds means the reactor was held
  up (a blocking call, a busy loop) for that long.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import LoopingCall
from twisted.web.resource import Resource
from twisted.web.server import Request

__all__ = ["BEAT_EVERY", "STALE_AFTER", "Health", "Heartbeat", "StoreWatch"]

#: Seconds between two beats.
BEAT_EVERY = 1.0
#: A beat older than this says the reactor stalled.
STALE_AFTER = 5.0


class StoreWatch:
    """Whether the store's last commit failed, from its public counters of commits."""

    def __init__(self) -> None:
        self._seen: tuple[int, int] | None = None
        self.failing = False

    def sample(self, store: Any) -> bool:
        """Look at C{store}'s counters again; True while commits fail and none succeeded since."""
        commits, failed = getattr(store, "commits", None), getattr(store, "failed_commits", None)
        if not isinstance(commits, int) or not isinstance(failed, int):
            return False  # a store that keeps no such counters says so by its links pausing
        if self._seen is None:
            self.failing = failed > 0 and commits == 0
        elif commits > self._seen[0]:
            self.failing = False
        elif failed > self._seen[1]:
            self.failing = True
        self._seen = (commits, failed)
        return self.failing


class Heartbeat:
    """A beat every L{BEAT_EVERY} seconds on C{clock}; it samples the store as it goes."""

    def __init__(self, clock: Any, gateway: Any, watch: StoreWatch) -> None:
        self.clock = clock
        self.gateway = gateway
        self.watch = watch
        self.last: float | None = None
        self._loop = LoopingCall(self.beat)
        self._loop.clock = clock

    def beat(self) -> None:
        self.last = self.clock.seconds()
        store = getattr(self.gateway, "store", None)
        if store is not None:
            self.watch.sample(store)
            probe = getattr(store, "probe", None)
            if probe is not None:
                probe()

    def start(self) -> None:
        if not self._loop.running:
            self._loop.start(BEAT_EVERY, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def age(self) -> float | None:
        """Seconds since the last beat; None before the first."""
        return None if self.last is None else self.clock.seconds() - self.last


class Health(Resource):
    """C{/healthz} of C{gateway} (its C{store} and C{outbound}), its reactor watched by C{heartbeat}."""

    isLeaf = True

    def __init__(self, gateway: Any, heartbeat: Heartbeat) -> None:
        super().__init__()
        self.gateway = gateway
        self.heartbeat = heartbeat

    def problems(self) -> list[str]:
        """What is wrong now, one line each; empty when healthy."""
        gateway = self.gateway
        store = getattr(gateway, "store", None)
        outbound = getattr(gateway, "outbound", None)
        if store is None or outbound is None:
            return ["the gateway is not started"]
        problems = []
        if self.heartbeat.watch.sample(store):
            problems.append("store not writable: its last commit failed")
        for row in outbound.status():
            if row.get("paused"):
                problems.append(f"server {row['name']!r} {row['paused']}")
        age = self.heartbeat.age()
        if age is None:
            problems.append("reactor: no heartbeat yet")
        elif age > STALE_AFTER:
            problems.append(f"reactor stalled: the last heartbeat was {age:.1f}s ago")
        return problems

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        problems = self.problems()
        if problems:
            request.setResponseCode(503)
            return ("\n".join(problems) + "\n").encode("utf-8")
        return b"ok\n"
