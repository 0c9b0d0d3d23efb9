"""The PostgreSQL store's writer: a thread of its own, committing the writes in flight together.

A write is a function of a psycopg connection, given to `Writer.submit` on the
reactor's thread; it returns a Deferred.  The writer's thread takes every
write waiting, runs them in one transaction, in the order they came, and
commits once: a burst of writes costs one commit, as the SQLite store's group
commit does.  Only once the commit succeeded are their Deferreds fired, on
the reactor's thread (``callFromThread``), in the order the writes came.

Like writes in a batch (requests added, parts accepted, requests finished)
go as one statement of many rows (see `bulk`): a batch costs a few
statements, not one per write.  A write's own error changes nothing else.  `DuplicateRequest` and
`UnknownRow` are raised by writes that changed nothing, so the transaction
goes on; a statement that fails (a lock timeout, a constraint) spoils the
transaction, which is rolled back and run again without that write, whose
Deferred fails with `StoreError`.  A failed commit, or a connection lost,
fails every write of the batch with `StoreError` (``failed_commits`` counts
them), and the next batch connects again.  A write lost with a connection
during its commit may have been committed or not: the caller learns which by
reading (``add_outbound`` again answers DuplicateRequest if it was).
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

import psycopg
from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from smppgw.store.interfaces import DuplicateRequest, StoreError, UnknownRow
from smppgw.store.postgres.bulk import Later, Write, send

# psycopg reports through the standard logging module, which (with no handler
# anywhere) prints a warning on stderr: "error ignored terminating <Pipeline>"
# when a connection breaks in the middle of a batch.  The writer reports that
# break itself, as the StoreError of every write of the batch, in the
# gateway's log; the stray line is not wanted beside it.
logging.getLogger("psycopg").addHandler(logging.NullHandler())


def _value(result: Any) -> Any:
    return result.finish() if isinstance(result, Later) else result


class Done:
    """A write's value, told apart from an error (an exception, as a bulk write gives it)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


#: The most writes one transaction holds: a longer queue is several commits.
MAX_BATCH = 1000


class _Spoiled(Exception):
    """A statement failed: the transaction must be rolled back and run again without it."""


class Writer:
    """The thread that runs the writes on its own connection (from ``connect()``)."""

    def __init__(self, connect: Callable[[], psycopg.Connection[Any]], where: str,
                 call_from_thread: Callable[..., Any], *,
                 name: str = "smppgw-postgres-writer") -> None:
        self._connect = connect
        self._where = where
        self._call_from_thread = call_from_thread
        self._db: psycopg.Connection[Any] | None = None
        self._lock = threading.Condition()
        self._waiting: deque[tuple[Write, Deferred[Any]]] = deque()
        # The writes given and the writes done (committed or failed), under _lock.
        self._given = 0
        self._done = 0
        self._stopping = False
        # Outcomes not yet handed to their Deferreds, filled by the thread.
        self._outcomes: deque[tuple[Deferred[Any], bool, Any]] = deque()
        self._delivery = threading.Lock()
        #: Whether a batch's statements are sent together (see `_commit`).
        self.pipelined = True
        #: Transactions committed, and batches of writes lost (rolled back), since the start.
        self.commits = 0
        self.failed_commits = 0
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    # -- the reactor's side ------------------------------------------------

    def submit(self, write: Write) -> Deferred[Any]:
        """Run ``write`` in the next transaction; fires with its value once committed."""
        done: Deferred[Any] = Deferred()
        with self._lock:
            if self._stopping:
                raise StoreError(f"the store {self._where} is closed")
            self._waiting.append((write, done))
            self._given += 1
            self._lock.notify()
        return done

    @property
    def idle(self) -> bool:
        """Whether every write given so far is done and its Deferred fired."""
        return self._done == self._given and not self._outcomes

    def wait(self) -> None:
        """Block until every write given so far is committed (or failed)."""
        with self._lock:
            target = self._given
            while self._done < target:
                self._lock.wait()

    def deliver(self) -> None:
        """Fire the Deferreds of the writes done, in the order the writes came."""
        with self._delivery:
            while self._outcomes:
                done, ok, value = self._outcomes.popleft()
                if ok:
                    done.callback(value)
                else:
                    done.errback(Failure(value))

    def stop(self) -> None:
        """Wait for every write given, fire their Deferreds, end the thread, close its connection."""
        with self._lock:
            self._stopping = True
            self._lock.notify()
        self._thread.join()
        self.deliver()

    # -- the writer's thread -----------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._stopping:
                    self._lock.wait()
                if not self._waiting:
                    break
                batch = [self._waiting.popleft()
                         for _ in range(min(len(self._waiting), MAX_BATCH))]
            for done, ok, value in self._commit(batch):
                self._outcomes.append((done, ok, value))
            with self._lock:
                self._done += len(batch)
                self._lock.notify_all()
            self._call_from_thread(self.deliver)
        if self._db is not None:
            self._db.close()

    def _connection(self) -> psycopg.Connection[Any]:
        if self._db is None or self._db.closed:
            self._db = self._connect()
        return self._db

    def _commit(self, batch: list[tuple[Write, Deferred[Any]]]
                ) -> list[tuple[Deferred[Any], bool, Any]]:
        """Run ``batch`` in one transaction; each write's (Deferred, ok, value or error).

        Its statements are pipelined: sent together, then answered together, so that
        a batch costs a few round trips, not one per statement.  Should one of them
        fail, the transaction is rolled back and the batch run again a statement at
        a time (`_commit_each`), which tells the write that failed from the others.
        """
        if not self.pipelined or len(batch) == 1:  # one write: nothing to send together
            return self._commit_each(batch)
        outcomes: list[tuple[Deferred[Any], bool, Any]] = []
        try:
            db = self._connection()
            with db.pipeline() as pipeline, db.transaction():
                sent = send(db, [write for write, _ in batch])
                pipeline.sync()
                values: dict[int, Any] = {}
                for indices, result in sent:
                    try:
                        value = _value(result)
                    except (DuplicateRequest, UnknownRow, StoreError) as error:
                        values[indices[0]] = error
                        continue
                    if len(indices) == 1:
                        values[indices[0]] = Done(value)
                    else:
                        values.update(zip(indices, map(Done, value), strict=True))
                for index, (_, done) in enumerate(batch):
                    value = values[index]
                    if isinstance(value, Done):
                        value = value.value
                    ok = not isinstance(value, BaseException)
                    outcomes.append((done, ok, value))
        except (DuplicateRequest, UnknownRow, StoreError, psycopg.Error, Exception) as error:
            if self._db is None or self._db.closed or self._db.broken:
                return self._lost(batch, self._error(error))
            return self._commit_each(batch)
        self.commits += 1
        return outcomes

    def _commit_each(self, batch: list[tuple[Write, Deferred[Any]]]
                     ) -> list[tuple[Deferred[Any], bool, Any]]:
        """`_commit`, a statement at a time: a statement that fails fails its own write."""
        refused: dict[int, BaseException] = {}
        while True:
            outcomes: list[tuple[Deferred[Any], bool, Any]] = []
            spoiler: int | None = None
            try:
                db = self._connection()
                with db.transaction():
                    for index, (write, done) in enumerate(batch):
                        if index in refused:
                            outcomes.append((done, False, refused[index]))
                            continue
                        try:
                            outcomes.append((done, True, _value(write(db))))
                        except (DuplicateRequest, UnknownRow, StoreError) as error:
                            outcomes.append((done, False, error))
                        except Exception as error:  # noqa: BLE001 - it fails its own write only
                            spoiler = index
                            refused[index] = self._error(error)
                            raise _Spoiled from error
            except _Spoiled:
                if self._db is not None and self._db.closed:
                    return self._lost(batch, refused[spoiler] if spoiler is not None else None)
                continue  # rolled back: again, without the write that failed
            except (psycopg.Error, StoreError) as error:  # the connection, BEGIN or COMMIT
                return self._lost(batch, self._error(error))
            self.commits += 1
            return outcomes

    def _lost(self, batch: list[tuple[Write, Deferred[Any]]], error: BaseException | None
              ) -> list[tuple[Deferred[Any], bool, Any]]:
        self.failed_commits += 1
        lost = error if error is not None else StoreError(f"cannot write to the store {self._where}")
        if self._db is not None and not self._db.closed and self._db.broken:
            self._db.close()
        return [(done, False, lost) for _, done in batch]

    def _error(self, error: BaseException) -> BaseException:
        if isinstance(error, StoreError):
            return error
        if isinstance(error, psycopg.Error):
            return StoreError(f"cannot write to the store {self._where}: {error}")
        return error
