"""LISTEN/NOTIFY on the reactor: what one node writes, the others hear of at once.

A `Notifier` keeps a connection of its own to the database in autocommit
mode, LISTENs on its channels, and has the reactor watch that connection's
socket (`IReadDescriptor`): a notification is read when it arrives, without a
thread and without polling, and handed to ``received(channel, payload)`` on
the reactor's thread.  A writer sends one with `notify` inside its own
transaction, so that PostgreSQL delivers it when, and only if, that
transaction commits.

What it guarantees, and what not: a notification sent while the Notifier is
connected and listening reaches ``received`` once.  One sent while its
connection was down (the server restarted, the network cut) is lost: so on
every reconnection (after the first connection) it calls ``reconnected()``,
and the caller reads again whatever it may have missed.  A broken
connection is connected again after `RETRY_FIRST` seconds, doubling up to
`RETRY_MAX`; connecting runs on a thread, so a database that does not
answer never blocks the reactor.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import sql
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReadDescriptor
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from zope.interface import implementer

from smppgw.smpp.log import SmppLog
from smppgw.store.interfaces import BadStoreInput

#: Seconds before the first attempt to connect again, doubling up to RETRY_MAX.
RETRY_FIRST = 0.5
RETRY_MAX = 10.0
#: The longest payload PostgreSQL's NOTIFY carries (bytes, less its terminating NUL).
MAX_PAYLOAD = 7999


def notify(db: psycopg.Connection[Any], channel: str, payload: str) -> None:
    """Send ``payload`` on ``channel`` from ``db``'s current transaction (delivered at
    its commit, or never if it rolls back)."""
    if len(payload.encode("utf-8")) > MAX_PAYLOAD:
        raise BadStoreInput(f"a notification carries at most {MAX_PAYLOAD} bytes")
    db.execute("SELECT pg_notify(%s, %s)", (channel, payload))


@implementer(IReadDescriptor)
class Notifier:
    """Hears ``channels`` on the database of ``connect()`` (a function giving a new
    psycopg connection in autocommit mode); see the module docstring."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], channels: Sequence[str],
                 reactor: Any, received: Callable[[str, str], object],
                 reconnected: Callable[[], object] = lambda: None,
                 log: SmppLog | None = None) -> None:
        if not channels or not all(isinstance(c, str) and c for c in channels):
            raise BadStoreInput("a Notifier needs the names of the channels it listens on")
        self._connect = connect
        self.channels = tuple(channels)
        self.reactor = reactor
        self.received = received
        self.reconnected = reconnected
        self.log = log or SmppLog("*")
        self._db: psycopg.Connection[Any] | None = None
        self._fileno = -1
        self._running = False
        self._connected_once = False
        self._retry: Any = None
        self._delay = RETRY_FIRST
        #: Fires each time the Notifier is (again) listening: for tests and start-up.
        self._listening: list[Deferred[None]] = []

    # -- life ------------------------------------------------------------------

    def start(self) -> Deferred[None]:
        """Connect and listen; the Deferred fires once listening (or keeps waiting
        while the database cannot be reached: the Notifier tries again meanwhile)."""
        self._running = True
        waiting = self.when_listening()
        self._attempt()
        return waiting

    def stop(self) -> None:
        """Stop listening and close the connection; nothing more is received."""
        self._running = False
        if self._retry is not None and self._retry.active():
            self._retry.cancel()
        self._retry = None
        self._drop()

    def when_listening(self) -> Deferred[None]:
        """A Deferred that fires when the Notifier is (next) listening."""
        d: Deferred[None] = Deferred()
        if self._db is not None:
            d.callback(None)
        else:
            self._listening.append(d)
        return d

    @property
    def listening(self) -> bool:
        return self._db is not None

    def _attempt(self) -> None:
        self._retry = None
        pool = self.reactor.getThreadPool()
        deferToThreadPool(self.reactor, pool, self._open).addCallbacks(
            self._opened, self._not_opened)

    def _open(self) -> psycopg.Connection[Any]:
        db = self._connect()
        try:
            for channel in self.channels:
                db.execute(sql.SQL("LISTEN {}").format(sql.Identifier(channel)))
        except BaseException:
            db.close()
            raise
        return db

    def _opened(self, db: psycopg.Connection[Any]) -> None:
        if not self._running:
            db.close()
            return
        # The reactor watches a copy of the socket's descriptor: libpq closes its own
        # when it finds the connection broken, which would leave the reactor a
        # descriptor that is gone (or, worse, given to another file).
        self._db, self._fileno, self._delay = db, os.dup(db.pgconn.socket), RETRY_FIRST
        self.reactor.addReader(self)
        again, self._connected_once = self._connected_once, True
        if again:
            self.log.major("listening again on {channels}", channels=", ".join(self.channels))
        waiting, self._listening = self._listening, []
        for d in waiting:
            d.callback(None)
        if again:
            self.reconnected()
        self.doRead()  # anything that came in with LISTEN's answer

    def _not_opened(self, failure: Failure) -> None:
        if not self._running:
            return
        self.log.problem("cannot listen for other nodes' news: {error}; trying again in"
                         " {delay:g}s", error=failure.getErrorMessage(), delay=self._delay)
        self._again()

    def _again(self) -> None:
        self._retry = self.reactor.callLater(self._delay, self._attempt)
        self._delay = min(RETRY_MAX, self._delay * 2)

    def _drop(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            self.reactor.removeReader(self)
            os.close(self._fileno)
            self._fileno = -1
            db.close()

    # -- IReadDescriptor -----------------------------------------------------------

    def fileno(self) -> int:
        return self._fileno

    def logPrefix(self) -> str:
        return "smppgw-notifier"

    def doRead(self) -> None:
        db = self._db
        if db is None:
            return
        pgconn = db.pgconn
        try:
            pgconn.consume_input()
        except psycopg.Error as error:
            self._broken(str(error))
            return
        while True:
            found = pgconn.notifies()
            if found is None:
                break
            channel = found.relname.decode("utf-8", "replace")
            payload = found.extra.decode("utf-8", "replace")
            try:
                self.received(channel, payload)
            except Exception:
                self.log.problem("a notification on {channel} could not be handled: {error}",
                                 channel=channel, error=Failure().getErrorMessage())
        if pgconn.status != psycopg.pq.ConnStatus.OK:
            self._broken("the connection is lost")

    def connectionLost(self, reason: Failure) -> None:
        self._broken(reason.getErrorMessage())

    def _broken(self, why: str) -> None:
        if self._db is None:
            return
        self._drop()
        if self._running:
            self.log.problem("stopped hearing other nodes' news: {why}; listening again in"
                             " {delay:g}s", why=why, delay=self._delay)
            self._again()
