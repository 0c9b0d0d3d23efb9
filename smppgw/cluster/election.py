"""Which node does the maintenance: one at a time, elected by a PostgreSQL advisory lock.

Some periodic jobs work on rows that every node on a database shares: the
pruning of finished requests past the store's retention, the expiry of the
parts of long SMS that never complete, the reports of delivery receipts that
never came.  Their loops tick on every node, and each tick does its work only
while `IMaintenance.maintains` says so: a node that becomes the maintainer
does the work at its next tick.

- `Maintenance`, on PostgreSQL, holds a session advisory lock on a
  connection of its own (an `IConnection`).  Every ``every`` seconds (a third
  of ``[node] lease``) one call checks that its session holds the lock or, if
  not, tries to take it (``pg_try_advisory_lock``, which never waits).  The
  lock lives as long as the session: the server drops it when the connection
  is cut (a restart, ``pg_terminate_backend``, the network), and another node
  may then take it.  So a check that fails, or that has not answered by the
  next one, ends this node's maintaining at once; the next calls connect
  again, `RETRY_FIRST` seconds later, doubling up to `RETRY_MAX` while they
  fail, and take the lock back if no other node did meanwhile.  Stopping the
  service releases the lock and closes the connection.
- `Sole`, for SQLite and the memory store: a store with one node, which
  always maintains.

The lock's key is the pair (`MAINTENANCE`, the hash of the store's schema): gateways whose stores are different
schemas of one database elect their maintainers apart.  A cut that the
holder's check has not found yet can leave two nodes maintaining for up to
``every`` seconds: the lock elects, it does not fence the jobs' writes.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import psycopg
from twisted.application.service import Service
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import Interface, implementer

from smppgw.cluster.connection import IConnection, ThreadedConnection
from smppgw.store.interfaces import StoreError

if TYPE_CHECKING:
    from smppgw.config import Config

log = Logger()

#: The first half of the lock's key, derived from its purpose; the second is the schema's hash.
MAINTENANCE = int.from_bytes(hashlib.sha256(b"smppgw maintenance").digest()[:4], "big") & 0x7FFFFFFF
#: Seconds before the first call after one that failed, doubling up to RETRY_MAX.
RETRY_FIRST = 0.5
RETRY_MAX = 10.0
#: What the elector's connection calls itself, before the node's name.
APPLICATION = "smppgw maintenance "

_HELD = ("SELECT EXISTS (SELECT FROM pg_locks WHERE locktype = 'advisory' AND granted"
         " AND pid = pg_backend_pid() AND classid = %s"
         " AND objid = hashtext(current_schema())::oid AND objsubid = 2)")


class IMaintenance(Interface):
    """Whether this node runs the maintenance jobs now."""

    def maintains() -> bool:  # type: ignore[misc]
        """True while this node is the one that maintains the shared store."""


def claim(db: psycopg.Connection[Any]) -> bool:
    """Whether ``db``'s session holds the maintenance lock, taking it if it is free."""
    held = _one(db, _HELD)
    return held or _one(db, "SELECT pg_try_advisory_lock(%s, hashtext(current_schema()))")


def release(db: psycopg.Connection[Any]) -> None:
    """Let the maintenance lock go, if ``db``'s session holds it."""
    if _one(db, _HELD):
        db.execute("SELECT pg_advisory_unlock(%s, hashtext(current_schema()))", (MAINTENANCE,))


def _one(db: psycopg.Connection[Any], query: str) -> bool:
    row = db.execute(query, (MAINTENANCE,)).fetchone()
    return bool(row and row[0])


@implementer(IMaintenance)
class Sole(Service):
    """The elector of a store with one node: it always maintains."""

    name = "maintenance"

    def maintains(self) -> bool:
        return True


@implementer(IMaintenance)
class Maintenance(Service):
    """Holds the maintenance lock through ``open_connection()`` (called at start) when it
    can, checking or trying every ``every`` seconds; see the module docstring.
    ``node`` names this node in log lines."""

    name = "maintenance"

    def __init__(self, open_connection: Callable[[], IConnection], clock: IReactorTime,
                 every: float, node: str = "") -> None:
        if isinstance(every, bool) or not isinstance(every, int | float) or not every > 0:
            raise ValueError(f"the maintenance lock's check needs a period > 0 s: {every!r}")
        self.open_connection = open_connection
        self.clock = clock
        self.every = float(every)
        self.node = node
        #: The database, for log lines (known once started).
        self.where = ""
        self.connection: IConnection | None = None
        self._held = False
        self._asking = False  # a call is on its way
        self._timer: IDelayedCall | None = None
        self._delay = RETRY_FIRST

    def maintains(self) -> bool:
        return self._held

    def startService(self) -> None:
        super().startService()
        self.connection = self.open_connection()
        self.where = self.connection.where
        self._check()

    def stopService(self) -> Deferred[None]:
        super().stopService()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        # A call on its way may yet take the lock: release after it (calls run in order).
        holding = self._held or self._asking
        self._lose("this node stops", warn=False)
        connection, self.connection = self.connection, None
        if connection is None:
            return succeed(None)
        released = connection.run(release, "release the maintenance lock") if holding \
            else succeed(None)
        # A broken connection has lost the lock already; closing it says the rest.
        released.addErrback(lambda failure: failure.trap(StoreError))
        return released.addCallback(lambda _: connection.close())

    def _check(self) -> None:
        self._timer = None
        if self._asking:
            # The server may have dropped the lock meanwhile, unheard: another node may hold it.
            self._lose(f"the database has not answered for {self.every:g} s")
            self._next(self.every)
            return
        assert self.connection is not None
        self._asking = True
        self._next(self.every)  # the next check, and the deadline of this one
        self.connection.run(claim, "take the maintenance lock").addCallbacks(
            self._answered, self._failed)

    def _answered(self, held: bool) -> None:
        self._asking = False
        if not self.running:
            return
        self._delay = RETRY_FIRST
        if held and not self._held:
            self._held = True
            log.info("node {node} maintains the store {where}: it prunes and expires for"
                     " every node", node=self.node, where=self.where)
        elif not held:
            self._lose("another node holds the maintenance lock")

    def _failed(self, failure: Failure) -> None:
        self._asking = False
        failure.trap(StoreError)
        if not self.running:
            return
        self._lose(failure.getErrorMessage())
        log.warn("cannot take the maintenance lock of {where}: {error}; trying again in"
                 " {delay:g}s", where=self.where, error=failure.getErrorMessage(),
                 delay=self._delay)
        self._next(self._delay)
        self._delay = min(RETRY_MAX, self._delay * 2)

    def _next(self, delay: float) -> None:
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = self.clock.callLater(delay, self._check) if self.running else None

    def _lose(self, reason: str, *, warn: bool = True) -> None:
        if not self._held:
            return
        self._held = False
        (log.warn if warn else log.info)(
            "node {node} no longer maintains the store {where}: {reason}",
            node=self.node, where=self.where, reason=reason)


def maintenance_for(config: Config, reactor: Any) -> Sole | Maintenance:
    """The elector of the store ``config`` names: `Maintenance` on PostgreSQL, with a
    check every third of ``[node] lease``; `Sole` on SQLite or in memory."""
    if not config.store.postgres:
        return Sole()
    node = config.node.name
    extra: dict[str, Any] = {"password": config.store.password} if config.store.password else {}

    def open_connection() -> IConnection:
        return ThreadedConnection(config.store.url, reactor, name="smppgw-maintenance",
                                  application_name=(APPLICATION + node)[:63], **extra)

    return Maintenance(open_connection, reactor, config.node.lease / 3, node)
