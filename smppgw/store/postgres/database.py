"""The PostgreSQL store's connections: writes committed off the reactor's thread, reads on it.

Writes go to the store's `Writer` (see `writer`): a thread with a connection
of its own that commits the writes in flight together, one transaction per
round of them, and fires each write's Deferred once its transaction is
committed (or fails it with :class:`StoreError`, changing nothing else).  So
`IGroupCommit` is the writer's: ``durable`` fires once every write made so
far is committed; ``commits`` and ``failed_commits`` count its transactions.
No transaction stays open across a round, so a node that is paused or slow
holds no row lock another node would wait on long.

Reads run on the reactor's thread, on a second connection, and see every
write made before them: a read first waits for the writes in flight to be
committed (blocking, as a read of the SQLite store does).  (The claims of a
node's queues run on a third connection and writer of their own: see
`claims`.)  A statement that
waits for a row another connection holds gives up after ``lock_timeout``
seconds.  A connection that breaks (the server restarted, the network cut)
fails the call that finds it broken with :class:`StoreError`; the next call
connects again.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import conninfo
from twisted.internet.defer import Deferred, fail, succeed
from twisted.python.failure import Failure

from smppgw.store.interfaces import BadStoreInput, StoreError
from smppgw.store.postgres.bulk import Write
from smppgw.store.postgres.schema import prepare
from smppgw.store.postgres.writer import Writer

#: One encoder for every write: ``json.dumps`` with options builds a new one per call.
_encode_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

#: Seconds to wait for the server when connecting, unless the URL says otherwise.
CONNECT_TIMEOUT = 10

#: Seconds a statement waits for a row that another node holds before it fails
#: (a StoreError, "try later"): a node blocked on a lock blocks its reactor.
LOCK_TIMEOUT = 5.0

#: Seconds after which the server ends this node's session if it stops in the
#: middle of a transaction (paused, its machine frozen), so that the rows it
#: holds do not stop the other nodes for longer.
IDLE_IN_TRANSACTION = 30


def dump(value: object) -> str:
    """``value`` as compact JSON text; :class:`BadStoreInput` if it has no JSON form."""
    try:
        return _encode_json(value)
    except (TypeError, ValueError) as error:
        raise BadStoreInput(f"payload is not JSON-able: {error}") from error


def describe(url: str) -> str:
    """The database ``url`` names, without its password, for log lines and errors."""
    try:
        params = conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return "(an unreadable PostgreSQL URL)"
    user = params.get("user")
    host = params.get("host") or "localhost"
    port = params.get("port")
    where = f"{host}:{port}" if port else str(host)
    return f"postgresql://{f'{user}@' if user else ''}{where}/{params.get('dbname') or ''}"


def statement(sql: str, params: tuple[Any, ...]) -> Write:
    """A write of one statement, with no value."""

    def write(db: psycopg.Connection[Any]) -> None:
        db.execute(sql, params)

    return write


def connect(url: str, *, lock_timeout: float = LOCK_TIMEOUT,
            **params: Any) -> psycopg.Connection[Any]:
    """A new autocommit connection to ``url`` with the store's session settings (a
    statement waits ``lock_timeout`` seconds for a row, a transaction left idle
    is ended); ``params`` add libpq parameters.  :class:`StoreError` if it fails."""
    try:
        if "connect_timeout" not in conninfo.conninfo_to_dict(url):
            params.setdefault("connect_timeout", CONNECT_TIMEOUT)
        db = psycopg.connect(url, autocommit=True, **params)
        try:
            db.execute(
                "SELECT set_config('lock_timeout', %s, false),"
                " set_config('idle_in_transaction_session_timeout', %s, false)",
                (f"{round(lock_timeout * 1000)}ms", f"{IDLE_IN_TRANSACTION * 1000}ms"))
        except psycopg.Error:
            db.close()
            raise
        return db
    except psycopg.Error as error:
        raise StoreError(f"cannot connect to the store {describe(url)}: {error}") from error


def one(row: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """The row of a statement that always gives one (an aggregate, ``RETURNING``)."""
    assert row is not None
    return row


class Database:
    """The connections to one PostgreSQL database, and the store's transactions on them.

    ``password`` is the database's, when neither the URL nor libpq's environment
    gives it.  Several nodes may open one database at once; ``node`` names this one
    (what its notifications carry).  ``reactor`` (by default
    Twisted's) fires the writes' Deferreds
    through its ``callFromThread``; `settle` fires them without it.
    """

    def __init__(self, url: str, reactor: Any = None, *, password: str | None = None,
                 retention: float = 7 * 86400, lock_timeout: float = LOCK_TIMEOUT,
                 node: str | None = None) -> None:
        for name, value in (("retention", retention), ("lock_timeout", lock_timeout)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise BadStoreInput(f"{name} must be a number of seconds >= 0: {value!r}")
        self.url = url
        self.password = password
        #: Seconds a statement waits for a row another connection holds, then fails.
        self.lock_timeout = float(lock_timeout)
        #: The database, without a password: what log lines and errors name.
        self.path = describe(url)
        self.retention = float(retention)
        #: This node's name ('' if not given): what its notifications carry.
        self.node = node or ""
        self._closed = False
        self._db = self._connect()
        try:
            prepare(self._db, self.path)
        except psycopg.Error as error:
            self._db.close()
            raise StoreError(f"cannot open the store {self.path}: {error}") from error
        except StoreError:
            self._db.close()
            raise
        if reactor is None:
            from twisted.internet import reactor
        self._call_from_thread = reactor.callFromThread
        self._writer = Writer(self._connect, self.path, self._call_from_thread)

    def _connect(self) -> psycopg.Connection[Any]:
        extra = {"password": self.password} if self.password else {}
        return connect(self.url, lock_timeout=self.lock_timeout, **extra)

    def _connection(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise StoreError(f"the store {self.path} is closed")
        if self._db.closed:  # broken by an earlier call: connect again
            self._db = self._connect()
        return self._db

    # -- statements ----------------------------------------------------------

    def _reading(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows ``sql`` selects, once every write made before is committed."""
        db = self._connection()
        self._writer.wait()
        try:
            return db.execute(sql, params).fetchall()
        except psycopg.Error as error:
            raise StoreError(f"cannot read the store {self.path}: {error}") from error

    def _write(self, write: Write) -> Deferred[Any]:
        """Run ``write`` (a function of the writer's connection) in the writer's next
        transaction; a Deferred of its value, fired once that is committed."""
        if self._closed:
            return fail(StoreError(f"the store {self.path} is closed"))
        return self._writer.submit(write)

    def _write_now(self, write: Write) -> Any:
        """`_write`, waited for: its value, or its error raised (maintenance, not the hot path)."""
        done = self._write(write)
        self._writer.wait()
        self._writer.deliver()
        outcome: list[Any] = []
        done.addBoth(outcome.append)
        [value] = outcome
        if isinstance(value, Failure):
            value.raiseException()
        return value

    # -- IGroupCommit: the writer's transactions -----------------------------

    @property
    def commits(self) -> int:
        """How many of the writer's transactions were committed since the store was opened."""
        return self._writer.commits

    @property
    def failed_commits(self) -> int:
        """How many batches of writes were lost (rolled back) since the store was opened."""
        return self._writer.failed_commits

    def settle(self) -> None:
        """Wait until every write made so far is committed (or failed), and fire their
        Deferreds now, on this thread."""
        self._writer.wait()
        self._writer.deliver()

    def durable(self) -> Deferred[None]:
        """A Deferred that fires once every write made so far is committed."""
        if self._closed or self._writer.idle:
            return succeed(None)
        return self._writer.submit(lambda db: None)

    def when_durable(self, done: Callable[[], object], failed: Callable[[StoreError], object]) -> None:
        """Call ``done()`` once every write made so far is committed, ``failed(error)`` if lost."""
        self.durable().addCallbacks(lambda _: done(), lambda f: failed(f.value))

    def commit(self) -> None:
        """Wait until every write made so far is committed (`settle`)."""
        self.settle()

    def commit_pending(self) -> None:
        """Nothing to do: the writer commits as soon as it can."""

    def probe(self) -> None:
        """Have the writer commit an empty transaction if it has nothing else to do: what a
        health check calls, so that `commits` and `failed_commits` say whether the store
        can write even while nothing is written."""
        if not self._closed and self._writer.idle:
            self._writer.submit(statement("SELECT 1", ())).addErrback(lambda _: None)

    def close(self) -> None:
        """Wait for the writes in flight, fire their Deferreds and close the connections;
        later calls raise :class:`StoreError`."""
        if self._closed:
            return
        self._closed = True
        self._writer.stop()
        self._db.close()
