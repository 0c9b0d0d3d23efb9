"""The SQLite store's connection and its group commit.

There is one connection and one writer, the reactor thread. Writes go into
an open transaction; the first write of a batch schedules one commit for the
next reactor turn, so a burst of writes costs a single commit. Each write
returns a Deferred that fires once the commit that holds it succeeded (or
errbacks with :class:`StoreError`): callers wait on it before they
acknowledge anything to the outside world, and need to know nothing of
commits. (:meth:`Database.durable` and the rest of `IGroupCommit` remain for
tests, maintenance and the store's own close.) ``synchronous=NORMAL`` with WAL means a
committed transaction survives the gateway process being killed (not a
power cut), which is the guarantee the gateway makes.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger

from smppgw.store.interfaces import OK_OUTCOME, BadStoreInput, StoreError
from smppgw.store.sqlite.files import lock, private_file, private_folder, unlock
from smppgw.store.sqlite.schema import prepare
from smppgw.store.writes import Then

log = Logger()


class DelayedCall(Protocol):
    """The part of ``IDelayedCall`` the store uses."""

    def cancel(self) -> None: ...


class CommitClock(Protocol):
    """The part of ``IReactorTime`` the store uses; a reactor or ``task.Clock`` fits."""

    def callLater(self, delay: float, callable: Any, *args: Any, **kw: Any) -> DelayedCall: ...



#: One encoder for every write: ``json.dumps`` with options builds a new one per call.
_encode_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
OK_TEXT = _encode_json(OK_OUTCOME)


def dump(payload: object) -> str:
    try:
        return _encode_json(payload)
    except (TypeError, ValueError) as error:
        raise BadStoreInput(f"payload is not JSON-able: {error}") from error



class _Writing:
    """The write context of a store: a class, not a generator, as it runs for every write."""

    __slots__ = ("store",)

    def __init__(self, store: Database) -> None:
        self.store = store

    def __enter__(self) -> sqlite3.Connection:
        store = self.store
        db = store._connection()
        try:
            if not db.in_transaction:
                db.execute("BEGIN")
        except sqlite3.Error as error:
            raise store._fail_rolled_back(error) from error
        store._dirty = True
        if store._scheduled is None:
            store._scheduled = store._clock.callLater(0, store._scheduled_commit)
        return db

    def __exit__(self, kind: Any, error: Any, tb: Any) -> None:
        if isinstance(error, sqlite3.Error):
            raise self.store._fail_rolled_back(error) from error



class Database:
    """The connection to one store file, and its group commit."""

    def __init__(self, path: str, clock: CommitClock, *, retention: float = 7 * 86400) -> None:
        if isinstance(retention, bool) or not isinstance(retention, int | float) or retention < 0:
            raise BadStoreInput(f"retention must be a number of seconds >= 0: {retention!r}")
        self.path = path
        self.retention = float(retention)
        self._clock = clock
        self._closed = False
        self._scheduled: DelayedCall | None = None
        self._writer = _Writing(self)
        self._waiters: list[tuple[Callable[[], object], Callable[[StoreError], object]]] = []
        # Whether writes since the last commit wait in the open transaction.
        self._dirty = False
        #: How many transactions were committed: a checkpointer has work only after one.
        self.commits = 0
        #: How many transactions were lost since the store was opened: a commit
        #: that failed, or a write error that made SQLite abandon the
        #: transaction; either way every write in it was rolled back.
        self.failed_commits = 0
        # Commits failed since the last one that succeeded: a failing disk is
        # logged once, not at every commit.
        self._failing = 0
        self._lock: tuple[int, int] | None = None
        try:
            if path != ":memory:":
                private_folder(os.path.dirname(os.path.abspath(path)))
                self._lock = lock(path)
                private_file(path)
            # isolation_level=None: the store opens its transactions itself,
            # so it knows exactly which writes a commit covers.
            self._db = sqlite3.connect(path, isolation_level=None)
        except (OSError, sqlite3.Error) as error:
            self._unlock()
            raise StoreError(f"cannot open the store {path!r}: {error}") from error
        except StoreError:
            self._unlock()
            raise
        try:
            self._prepare()
        except (sqlite3.Error, StoreError) as error:
            self._db.close()
            self._unlock()
            if isinstance(error, StoreError):
                raise
            raise StoreError(f"cannot open the store {path!r}: {error}") from error

    def _prepare(self) -> None:
        prepare(self._db, self.path)

    # -- transactions ------------------------------------------------------

    def _writing(self) -> _Writing:
        """A context for writes inside the open transaction (opening one and scheduling its commit)."""
        return self._writer

    def _fail_rolled_back(self, error: sqlite3.Error) -> StoreError:
        # Most errors undo only the statement; some (disk full, I/O) make
        # SQLite abandon the whole transaction, and with it the batch.
        if self._dirty and not self._in_transaction():
            self._dirty = False
            self.failed_commits += 1
            self._fail_waiters(StoreError(f"the transaction was rolled back: {error}"))
        return StoreError(f"cannot write to the store {self.path!r}: {error}")

    def _reading(self, sql: str, params: tuple[Any, ...] = ()) -> sqlite3.Cursor:
        try:
            return self._connection().execute(sql, params)
        except sqlite3.Error as error:
            raise StoreError(f"cannot read the store {self.path!r}: {error}") from error

    def _connection(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreError(f"the store {self.path!r} is closed")
        return self._db

    def _in_transaction(self) -> bool:
        try:
            return self._db.in_transaction
        except sqlite3.Error:
            return False

    def durable(self) -> Deferred[None]:
        """Return a Deferred that fires once every write made so far is committed.

        It errbacks with :class:`StoreError` if that commit fails.
        """
        if not self._dirty:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append((lambda: waiter.callback(None), waiter.errback))
        return waiter

    def _written(self, value: Any = None) -> Deferred[Any]:
        """What a write returns: a Deferred that fires with `value` once the write just
        made is committed, or errbacks with :class:`StoreError` if its commit fails."""
        written: Deferred[Any] = Deferred()
        self._waiters.append((partial(written.callback, value), written.errback))
        return written

    @staticmethod
    def _failed(error: Exception, then: Then | None) -> Deferred[Any] | None:
        """A write's error known at once, as its caller asked for it (see `Then`)."""
        if then is None:
            return fail(error)
        then[1](error)
        return None

    def when_durable(self, done: Callable[[], object], failed: Callable[[StoreError], object]) -> None:
        """Call ``done()`` once every write made so far is committed, or ``failed(error)``
        if that commit fails: :meth:`durable` without a Deferred, for the hot path.

        With nothing uncommitted, ``done`` is called at once.
        """
        if not self._dirty:
            done()
            return
        self._waiters.append((done, failed))

    def commit(self) -> None:
        """Commit the open transaction now and fire the :meth:`durable` waiters.

        On failure the transaction is rolled back, the waiters errback and
        :class:`StoreError` is raised.
        """
        if self._scheduled is not None:
            scheduled, self._scheduled = self._scheduled, None
            scheduled.cancel()
        try:
            if self._dirty:
                self._dirty = False
                self._connection().commit()
                self.commits += 1
                if self._failing:
                    log.info("store commits again after {count} failed commit(s)",
                             count=self._failing)
                    self._failing = 0
        except (sqlite3.Error, StoreError) as error:
            self.failed_commits += 1
            self._failing += 1
            try:
                self._db.rollback()
            except sqlite3.Error:
                pass  # the connection is gone; SQLite drops the transaction with it
            failure = StoreError(f"commit failed, the writes are rolled back: {error}")
            self._fail_waiters(failure)
            raise failure from error
        waiters, self._waiters = self._waiters, []
        for done, _ in waiters:
            try:
                done()
            except Exception:
                log.failure("a commit waiter failed")

    def commit_pending(self) -> None:
        """Commit now if anything is uncommitted; a failure is logged (and the waiters told), not raised."""
        if self._dirty and not self._closed:
            self._commit_or_log()

    def _scheduled_commit(self) -> None:
        self._scheduled = None
        self._commit_or_log()

    def _commit_or_log(self) -> None:
        try:
            self.commit()
        except StoreError as error:
            # The waiters have their errbacks; the reactor has no one to tell.
            # Until a commit succeeds again, the first failure says it all.
            if self._failing == 1:
                log.error("store commit failed: {error}; further failures are not logged "
                          "until a commit succeeds", error=error)

    def _fail_waiters(self, error: StoreError) -> None:
        waiters, self._waiters = self._waiters, []
        for _, failed in waiters:
            try:
                failed(error)
            except Exception:
                log.failure("a commit waiter failed")

    def close(self) -> None:
        """Commit what is pending and close the database; later calls raise :class:`StoreError`."""
        if self._closed:
            return
        try:
            self.commit()
        finally:
            self._closed = True
            self._db.close()
            self._unlock()

    def _unlock(self) -> None:
        """Let the lock go, once the database is closed: the next holder finds it whole."""
        if self._lock is not None:
            lock, self._lock = self._lock, None
            unlock(lock)

