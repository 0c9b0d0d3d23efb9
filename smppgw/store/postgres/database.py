"""The PostgreSQL store's connection: one write, one transaction, committed before it returns.

Each write of the store is a transaction of its own, committed before the
method returns (several statements in one ``BEGIN``/``COMMIT`` where a write
needs them): what a call wrote is durable, and seen by every other node on
the database, once it returns.  So `IGroupCommit` has nothing to wait for:
`durable` has fired already, ``commit`` and ``commit_pending`` do nothing, and
``failed_commits`` stays 0 (a write that fails raises :class:`StoreError` to
its caller, and nothing else written is lost with it).  This is the
conformance suite's contract, and the one that suits several nodes: no
transaction stays open across a reactor turn, so a node that is paused or
slow holds no row lock another node would wait on.  It costs a commit per
write; batching many writes in one round trip is for the step that makes the
writes return Deferreds.

The calls block the reactor's thread while the database answers, like the
SQLite store's; a statement that waits for a row another connection holds
gives up after ``lock_timeout`` seconds.  A connection that breaks (the
server restarted, the network cut) fails the call that finds it broken with
:class:`StoreError`; the next call connects again.  A write whose connection
broke during its commit may have been committed or not: the caller learns
which by reading (``add_outbound`` again answers DuplicateRequest if it was).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import conninfo
from twisted.internet.defer import Deferred, succeed

from smppgw.store.interfaces import BadStoreInput, StoreError
from smppgw.store.postgres.schema import prepare

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


def one(row: tuple[Any, ...] | None) -> tuple[Any, ...]:
    """The row of a statement that always gives one (an aggregate, ``RETURNING``)."""
    assert row is not None
    return row


class Database:
    """The connection to one PostgreSQL database, and the store's transactions on it."""

    def __init__(self, url: str, *, retention: float = 7 * 86400,
                 lock_timeout: float = LOCK_TIMEOUT) -> None:
        for name, value in (("retention", retention), ("lock_timeout", lock_timeout)):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise BadStoreInput(f"{name} must be a number of seconds >= 0: {value!r}")
        self.url = url
        #: Seconds a statement waits for a row another connection holds, then fails.
        self.lock_timeout = float(lock_timeout)
        #: The database, without a password: what log lines and errors name.
        self.path = describe(url)
        self.retention = float(retention)
        #: Never grows: each write is committed (or fails, raising) before it returns.
        self.failed_commits = 0
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

    def _connect(self) -> psycopg.Connection[Any]:
        try:
            given = conninfo.conninfo_to_dict(self.url)
            timeout: dict[str, Any] = (
                {} if "connect_timeout" in given else {"connect_timeout": CONNECT_TIMEOUT})
            db = psycopg.connect(self.url, autocommit=True, **timeout)
            try:
                db.execute(
                    "SELECT set_config('lock_timeout', %s, false),"
                    " set_config('idle_in_transaction_session_timeout', %s, false)",
                    (f"{round(self.lock_timeout * 1000)}ms", f"{IDLE_IN_TRANSACTION * 1000}ms"))
            except psycopg.Error:
                db.close()
                raise
            return db
        except psycopg.Error as error:
            raise StoreError(f"cannot connect to the store {self.path}: {error}") from error

    def _connection(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise StoreError(f"the store {self.path} is closed")
        if self._db.closed:  # broken by an earlier call: connect again
            self._db = self._connect()
        return self._db

    # -- statements ----------------------------------------------------------

    def _reading(self, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows ``sql`` selects."""
        try:
            return self._connection().execute(sql, params).fetchall()
        except psycopg.Error as error:
            raise StoreError(f"cannot read the store {self.path}: {error}") from error

    def _writing(self, sql: str, params: tuple[Any, ...] = ()) -> psycopg.Cursor[Any]:
        """Run the one statement of a write, committed before this returns; its cursor."""
        try:
            return self._connection().execute(sql, params)
        except psycopg.Error as error:
            raise StoreError(f"cannot write to the store {self.path}: {error}") from error

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """A write of several statements: committed at the end of the block, or not at all."""
        db = self._connection()
        try:
            with db.transaction():
                yield db
        except psycopg.Error as error:
            raise StoreError(f"cannot write to the store {self.path}: {error}") from error

    # -- IGroupCommit: every write is durable once it returns ----------------

    def durable(self) -> Deferred[None]:
        """Fired already: every write was committed before it returned."""
        return succeed(None)

    def when_durable(self, done: Callable[[], object], failed: Callable[[StoreError], object]) -> None:
        """Call ``done()`` at once: nothing is pending."""
        done()

    def commit(self) -> None:
        """Nothing is pending."""

    def commit_pending(self) -> None:
        """Nothing is pending."""

    def close(self) -> None:
        """Close the connection; later calls raise :class:`StoreError`."""
        if self._closed:
            return
        self._closed = True
        self._db.close()
