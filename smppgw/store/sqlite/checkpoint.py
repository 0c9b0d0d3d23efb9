"""A background checkpoint of the SQLite store's write-ahead log, in a worker thread."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from smppgw.store.interfaces import StoreError

if TYPE_CHECKING:
    from smppgw.store.sqlite.store import Store

log = Logger()

#: The writer's own automatic checkpoint, in pages of log, while a
#: :class:`Checkpointer` runs beside it (SQLite's default is 1,000).
WRITER_CHECKPOINT_PAGES = 8192


class Checkpointer:
    """Copies the store's write-ahead log into the database file from a worker thread.

    SQLite checkpoints on its own inside a commit once the log passes 1,000
    pages, on the reactor's thread, and with ``synchronous=NORMAL`` that
    checkpoint syncs the log and the database file: a stall of a millisecond
    or more every hundred commits or so under load.  Here a connection of
    its own runs a PASSIVE checkpoint (which never blocks the writer or waits
    for it) in a worker thread every ``every`` seconds after new commits.
    The writer's own checkpoint stays, at :data:`WRITER_CHECKPOINT_PAGES`,
    as the bound on the log's size: SQLite starts the log over only once a
    checkpoint has copied all of it, which a writer that never pauses may
    not let a background checkpoint do.  Durability is the same either way:
    a transaction is durable once committed to the log.

    ``run_in_thread(f)`` returns a Deferred of ``f()`` run in a thread (the
    reactor's pool when None).
    """

    def __init__(self, store: Store, reactor: Any, every: float = 1.0,
                 run_in_thread: Callable[[Callable[[], Any]], Deferred[Any]] | None = None) -> None:
        self.store = store
        self.every = every
        self._reactor = reactor
        if run_in_thread is None:
            from twisted.internet.threads import deferToThreadPool

            def run_in_thread(f: Callable[[], Any]) -> Deferred[Any]:
                return deferToThreadPool(reactor, reactor.getThreadPool(), f)

        self._run_in_thread = run_in_thread
        self._db: sqlite3.Connection | None = None
        self._running: Deferred[Any] | None = None
        self._seen = store.commits
        self._loop: Any = None
        #: Checkpoints run so far, and the last result: (busy, log pages, pages copied).
        self.runs = 0
        self.last: tuple[int, int, int] | None = None

    def start(self) -> None:
        """Move the writer's checkpoint to its bound and start checkpointing every ``every`` s."""
        from twisted.internet.task import LoopingCall

        try:
            self.store._connection().execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}")
        except sqlite3.Error as error:
            raise StoreError(f"cannot configure the store {self.store.path!r}: {error}") from error
        self._loop = LoopingCall(self.tick)
        self._loop.clock = self._reactor
        self._loop.start(self.every, now=False)

    def tick(self) -> None:
        """Start a checkpoint in a thread, unless one is running or nothing was committed since."""
        if self._running is not None or self.store.commits == self._seen:
            return
        self._seen = self.store.commits
        running = self._run_in_thread(self._checkpoint)
        self._running = running
        running.addCallbacks(self._done, self._failed)

    def _checkpoint(self) -> tuple[int, int, int]:
        # In the worker thread: this connection is only ever used by one
        # thread at a time (never two checkpoints at once), not always the same.
        if self._db is None:
            self._db = sqlite3.connect(self.store.path, isolation_level=None,
                                       check_same_thread=False)
        busy, pages, copied = self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        return busy, pages, copied

    def _done(self, result: tuple[int, int, int]) -> None:
        self._running = None
        self.runs += 1
        self.last = result

    def _failed(self, failure: Any) -> None:
        self._running = None
        # The writer's own checkpoint still bounds the log: worth a line, not more.
        log.warn("background checkpoint failed: {error}", error=failure.getErrorMessage())

    def stop(self) -> Deferred[None]:
        """Stop checkpointing; fires once a running checkpoint is over and the connection closed.

        Stop it before closing the store: SQLite removes the log when its
        last connection closes.
        """
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        running = self._running
        done: Deferred[None] = Deferred()

        def close(_: Any) -> None:
            db, self._db = self._db, None
            if db is not None:
                db.close()
            done.callback(None)

        if running is None:
            close(None)
        else:
            running.addBoth(close)
        return done
