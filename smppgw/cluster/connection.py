"""One psycopg connection of a cluster component, and how its calls reach the reactor.

Each component of `smppgw.cluster` (the leases and their renewer, the
claims, the elector) does its database work through an `IConnection`: a
*work* function takes the psycopg connection (in autocommit mode: a work
function that writes more than one statement opens ``conn.transaction()``)
and the component gets a Deferred of its result.  Two kinds:

- `ThreadedConnection`, for the reactor: one connection used by one thread
  of its own.  One connection per component rather than a shared pool: each
  component's calls are few and in order (a renewal every few seconds, a
  claim per window), a single thread keeps them in that order (a renewal is
  never overtaken by the release that follows it), the elector needs a
  database session of its own anyway (its advisory lock lives in it), a
  component whose connection breaks does not stall the others, and it needs
  no pool package.
- `BlockingConnection`, the same calls in the caller's thread: its Deferreds
  have fired when ``run`` returns.  For tests driven by ``task.Clock`` and for
  callers off the reactor.

A connection that breaks fails the call that finds it broken with
:class:`StoreError`; the next call connects again.  A call that fails does not
say whether its transaction committed when the failure came during the commit.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import psycopg
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from zope.interface import Interface, implementer

from smppgw.store.interfaces import StoreError
from smppgw.store.postgres.database import (
    LOCK_TIMEOUT,
    connect,
    describe,
)

T = TypeVar("T")

#: What a component runs on its connection.
Work = Callable[[psycopg.Connection[Any]], T]


class IConnection(Interface):
    """A database connection whose calls give Deferreds."""

    where: str  # the database, without its password, for errors and log lines

    def run(work: Work[T], what: str) -> Deferred[T]:  # type: ignore[misc]
        """Run ``work(conn)``; fire with its result, or fail with :class:`StoreError`
        (``what`` says what was being done, for the error's message)."""

    def close() -> Deferred[None]:  # type: ignore[misc]
        """Close the connection once the calls already asked for are done."""


@implementer(IConnection)
class BlockingConnection:
    """Calls on one connection, made in the caller's thread; connected at the first call."""

    def __init__(self, url: str, *, lock_timeout: float = LOCK_TIMEOUT, **params: Any) -> None:
        self.url = url
        self.where = describe(url)
        self._lock_timeout = lock_timeout
        self._params = params
        self._db: psycopg.Connection[Any] | None = None
        self._closed = False

    def call(self, work: Work[T], what: str) -> T:
        """Run ``work(conn)`` now and return its result; :class:`StoreError` if the
        database fails (or ``work`` raises one)."""
        if self._closed:
            raise StoreError(f"cannot {what}: the connection to {self.where} is closed")
        if self._db is None or self._db.closed:
            self._db = connect(self.url, lock_timeout=self._lock_timeout, **self._params)
        try:
            return work(self._db)
        except psycopg.Error as error:
            raise StoreError(f"cannot {what} on {self.where}: {error}") from error

    def run(self, work: Work[T], what: str) -> Deferred[T]:
        """`call`, its outcome as a Deferred that has fired."""
        try:
            return succeed(self.call(work, what))
        except StoreError:
            return fail()

    def backend(self) -> int | None:
        """The server process of the open connection (None before the first call)."""
        return None if self._db is None or self._db.closed else self._db.info.backend_pid

    def shut(self) -> None:
        """Close the connection now; later calls fail with :class:`StoreError`."""
        self._closed = True
        if self._db is not None:
            self._db.close()

    def close(self) -> Deferred[None]:
        """`shut`, as a Deferred that has fired."""
        self.shut()
        return succeed(None)


@implementer(IConnection)
class ThreadedConnection:
    """Calls on one connection, made one at a time, in order, in a thread of their own.

    ``reactor`` gets the results; the thread stops at `close` or when the
    reactor shuts down.
    """

    def __init__(self, url: str, reactor: IReactorThreads, *, name: str = "smppgw-cluster",
                 lock_timeout: float = LOCK_TIMEOUT, **params: Any) -> None:
        self._blocking = BlockingConnection(url, lock_timeout=lock_timeout, **params)
        self.where = self._blocking.where
        self._reactor = reactor
        self._pool = ThreadPool(minthreads=1, maxthreads=1, name=name)
        self._pool.start()
        self._shutdown = reactor.addSystemEventTrigger(  # type: ignore[attr-defined]
            "during", "shutdown", self._pool.stop)

    def run(self, work: Work[T], what: str) -> Deferred[T]:
        """Run ``work(conn)`` in the connection's thread; its result on the reactor."""
        return deferToThreadPool(self._reactor, self._pool, self._blocking.call, work, what)  # type: ignore[arg-type]

    def close(self) -> Deferred[None]:
        """Close the connection after the calls asked for so far, then stop the thread."""
        done: Deferred[None] = deferToThreadPool(
            self._reactor, self._pool, self._blocking.shut)  # type: ignore[arg-type]

        def stop(result: object) -> object:
            self._reactor.removeSystemEventTrigger(self._shutdown)  # type: ignore[attr-defined]
            self._pool.stop()
            return result

        return done.addBoth(stop)
