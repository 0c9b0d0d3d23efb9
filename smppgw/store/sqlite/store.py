"""The gateway's persistence: one SQLite file (stdlib ``sqlite3``, WAL mode).

It holds the outbound queue (SendSignal requests, idempotent by
``request_id``), the inbox of messages and delivery reports waiting for a
host, the fragments of concatenated SMS being reassembled, and the SMS
Dialogs bindings (it is the :class:`smppgw.relay.dialogs.BindingStore`).

There is one connection and one writer, the reactor thread. Writes go into
an open transaction and return at once; the first write of a batch schedules
one commit for the next reactor turn, so a burst of writes costs a single
commit. :meth:`Store.durable` gives a Deferred that fires once everything
written so far is committed: callers wait on it before they acknowledge
anything to the outside world. ``synchronous=NORMAL`` with WAL means a
committed transaction survives the gateway process being killed (not a
power cut), which is the guarantee the gateway makes.

A store file is held by one process at a time: an exclusive ``flock`` on
``<path>.lock`` beside it, which names the holder's pid.  The kernel drops
the lock when its holder dies, however it dies, so a SIGKILL leaves nothing
that stops the next start.  The state directory is created 0700 and every
file in it (database, log, shared memory, lock) is 0600, whatever the umask.
"""

from __future__ import annotations

import fcntl
import gc
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from smppgw.relay.dialogs import Binding

#: Version 3 has version 2's tables; what changed is what a row may hold: an
#: outbound payload as a BLOB (the encoded PDUs) and a relayed request's
#: outcome as just {"ok": true}.  A gateway that knows only version 2 would
#: misread both, so it must refuse the file rather than open it.  Version 4
#: adds each part's receipt deadline.
SCHEMA_VERSION = 4

# Which parts still wait for their delivery receipt, by deadline: a partial
# index, so that it holds only those parts and costs nothing without receipts.
_RECEIPT_DUE_INDEX = """
CREATE INDEX part_receipt_due ON part (receipt_due) WHERE receipt_due IS NOT NULL;
"""

# The SMSC's message id of each accepted part: one B-tree keyed by request
# and part, and the index receipts are looked up by.  ``receipt_due`` is when
# the part's delivery receipt is given up on (NULL: none is awaited).
_PART = f"""
CREATE TABLE part (
    request_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    message_id TEXT NOT NULL,
    server TEXT NOT NULL,
    lookup_key TEXT NOT NULL,
    receipt_due REAL,
    PRIMARY KEY (request_id, idx)
) WITHOUT ROWID;
CREATE INDEX part_lookup ON part (server, lookup_key);
{_RECEIPT_DUE_INDEX}
"""

_SCHEMA = f"""
CREATE TABLE outbound (
    seq INTEGER PRIMARY KEY,
    request_id TEXT NOT NULL UNIQUE,
    server TEXT NOT NULL,
    payload TEXT NOT NULL,
    parts INTEGER NOT NULL,
    created REAL NOT NULL,
    outcome TEXT
);
-- A partial index holds only the unfinished rows, so start-up reads them
-- without walking the days of finished rows kept for idempotency.  Every
-- index costs each message a write or two, so there are no others: pruning
-- walks the rows in seq order, which is creation order.
CREATE INDEX outbound_unfinished ON outbound (seq) WHERE outcome IS NULL;
{_PART}
CREATE TABLE inbox (
    -- AUTOINCREMENT: an id is never reused, so a host's late answer about a
    -- removed row cannot touch a newer one.
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    payload TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL
);

CREATE TABLE fragment (
    key TEXT NOT NULL,
    seq INTEGER NOT NULL,
    total INTEGER NOT NULL,
    payload TEXT NOT NULL,
    received REAL NOT NULL,
    PRIMARY KEY (key, seq)
) WITHOUT ROWID;

CREATE TABLE binding (
    phone TEXT NOT NULL,
    letter TEXT NOT NULL,
    address TEXT NOT NULL,
    last_used REAL NOT NULL,
    PRIMARY KEY (phone, letter)
) WITHOUT ROWID;
"""


# Version 1 kept two more indexes on outbound and part as a rowid table.
_FROM_VERSION_1 = f"""
DROP INDEX outbound_unfinished_by_server;
DROP INDEX outbound_created;
ALTER TABLE part RENAME TO part_v1;
DROP INDEX part_lookup;
{_PART}
INSERT OR REPLACE INTO part (request_id, idx, message_id, server, lookup_key)
    SELECT request_id, idx, message_id, server, lookup_key FROM part_v1 ORDER BY rowid;
DROP TABLE part_v1;
"""

# Versions 2 and 3 had no receipt deadlines: the parts they hold await none.
_FROM_VERSION_3 = f"""
ALTER TABLE part ADD COLUMN receipt_due REAL;
{_RECEIPT_DUE_INDEX}
"""

_OUTBOUND_COLUMNS = "seq, request_id, server, payload, parts, created, outcome"

# A part accepted by the SMSC, with and without a receipt deadline: a part
# recorded again keeps the deadline it has.  (Without a deadline, the shorter
# statement: one bound value fewer is measurably cheaper per accepted part.)
_ON_PART_CONFLICT = (
    " ON CONFLICT (request_id, idx) DO UPDATE SET message_id = excluded.message_id,"
    " server = excluded.server, lookup_key = excluded.lookup_key"
)
_RECORD_PART = (
    "INSERT INTO part (request_id, idx, message_id, server, lookup_key)"
    " VALUES (?, ?, ?, ?, ?)" + _ON_PART_CONFLICT
)
_RECORD_PART_DUE = (
    "INSERT INTO part (request_id, idx, message_id, server, lookup_key, receipt_due)"
    " VALUES (?, ?, ?, ?, ?, ?)" + _ON_PART_CONFLICT
)

log = Logger()


class StoreError(Exception):
    """The database failed (a commit, a write, a closed store): the caller answers "try later"."""


class BadStoreInput(ValueError):
    """An argument the store cannot keep: a payload that is not JSON, a part index out of range."""


class UnknownRow(LookupError):
    """A request_id or inbox id that the store does not hold."""


class DelayedCall(Protocol):
    """The part of ``IDelayedCall`` the store uses."""

    def cancel(self) -> None: ...


class CommitClock(Protocol):
    """The part of ``IReactorTime`` the store uses; a reactor or ``task.Clock`` fits."""

    def callLater(self, delay: float, callable: Any, *args: Any, **kw: Any) -> DelayedCall: ...


@dataclass(frozen=True, slots=True)
class OutboundRow:
    """One accepted SendSignal request and how far it got.

    ``message_ids`` has one entry per part, None until the SMSC accepted that
    part; ``outcome`` is None while the request is unfinished.
    """

    request_id: str
    server: str
    payload: OutboundPayload
    parts: int
    message_ids: tuple[str | None, ...]
    created: float
    outcome: dict[str, Any] | None
    seq: int


@dataclass(frozen=True, slots=True)
class DueReceipt:
    """An accepted part whose delivery receipt has not come by its deadline.

    ``index`` counts from 0; ``parts`` is how many parts its request has.
    """

    request_id: str
    index: int
    message_id: str
    server: str
    parts: int
    due: float


@dataclass(frozen=True, slots=True)
class InboxRow:
    """A message or delivery report waiting to be handed to a host."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    created: float


class DuplicateRequest(Exception):
    """A request_id that is already stored; ``row`` is the stored request."""

    def __init__(self, row: OutboundRow) -> None:
        super().__init__(f"request {row.request_id!r} is already stored")
        self.row = row


#: What an outbound request keeps: bytes as given (the queue's encoded PDUs),
#: or a dict kept as JSON.
OutboundPayload = bytes | dict[str, Any]


def _outbound_payload(stored: str | bytes) -> OutboundPayload:
    return stored if isinstance(stored, bytes) else json.loads(stored)  # type: ignore[no-any-return]


#: One encoder for every write: ``json.dumps`` with options builds a new one per call.
_encode_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode
#: The outcome the queue stores for a request every part of which the SMSC
#: accepted (the rows have the server, the part count and the message ids
#: already): nearly every request's, so encoded once.
OK_OUTCOME: dict[str, Any] = {"ok": True}
_OK_TEXT = _encode_json(OK_OUTCOME)


def _dump(payload: object) -> str:
    try:
        return _encode_json(payload)
    except (TypeError, ValueError) as error:
        raise BadStoreInput(f"payload is not JSON-able: {error}") from error


@contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """Hold off the cyclic garbage collector while a bulk read builds many containers.

    Reading 100,000 queued requests at start-up makes hundreds of thousands of
    dicts and tuples, which trigger full collections over and over; they hold
    no cycles, so pausing the collector loses nothing and saves about 40% of
    the time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class _Writing:
    """The write context of a store: a class, not a generator, as it runs for every write."""

    __slots__ = ("store",)

    def __init__(self, store: Store) -> None:
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


def private_folder(folder: str) -> None:
    """Make ``folder`` (and its parents) if missing, the folder itself the user's only (0700).

    A folder that exists keeps its mode: it may be shared (``/tmp``, say);
    the files the gateway puts in it are private anyway.
    """
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # the umask may have taken more than group and other bits


def _private_file(path: str) -> None:
    """Create ``path`` if missing and make it the user's only (0600), before SQLite opens it.

    SQLite gives the files it makes beside a database (the log, the shared
    memory) the database's own mode; made by SQLite, the database would be
    0644 under the usual umask.  An earlier version's files are tightened too.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        try:
            os.chmod(path + suffix, 0o600)
        except FileNotFoundError:
            pass


#: The lock files this process holds, by (device, inode): [descriptor, stores open].
#: A store opened twice in one process (a second look in a test) shares the one
#: lock, which a second ``flock`` on a new descriptor would refuse.
_held: dict[tuple[int, int], list[int]] = {}


def _lock(path: str) -> tuple[int, int]:
    """Hold the lock file beside the store ``path``; its key for :func:`_unlock`.

    :raise StoreError: another process holds it (the message names the store
        and, when the lock file tells it, the holder's pid).
    """
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        info = os.fstat(fd)
        key = (info.st_dev, info.st_ino)
        if key in _held:
            _held[key][1] += 1
            os.close(fd)
            return key
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            holder = f"pid {pid}" if pid.isdecimal() else "its pid unknown"
            raise StoreError(
                f"the store {os.path.abspath(path)!r} is in use by another gateway ({holder});"
                " stop it, or give this one its own [store] path") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    _held[key] = [fd, 1]
    return key


def _unlock(key: tuple[int, int]) -> None:
    held = _held[key]
    held[1] -= 1
    if held[1] == 0:
        del _held[key]
        os.close(held[0])  # the lock goes with the last descriptor


class Store:
    """The SQLite store: outbound queue, inbox, fragments and dialog bindings."""

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
                self._lock = _lock(path)
                _private_file(path)
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
        db = self._db
        if self.path != ":memory:":
            (mode,) = db.execute("PRAGMA journal_mode=WAL").fetchone()
            if mode.lower() != "wal":
                raise StoreError(
                    f"the store {self.path!r} cannot use WAL mode (journal_mode is {mode!r})"
                )
        db.execute("PRAGMA synchronous=NORMAL")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version == 0:
            db.executescript(f"BEGIN; {_SCHEMA}; PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
        elif version in (1, 2, 3):
            # Rows of each stay as they are: this version reads them too.
            upgrade = _FROM_VERSION_1 if version == 1 else _FROM_VERSION_3
            try:
                db.executescript(
                    f"BEGIN; {upgrade}; PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
            except sqlite3.Error:
                if db.in_transaction:
                    db.rollback()
                raise
            log.info("store {path} upgraded from schema version {old} to {version}",
                     path=self.path, old=version, version=SCHEMA_VERSION)
        elif version != SCHEMA_VERSION:
            raise StoreError(
                f"the store {self.path!r} has schema version {version}; "
                f"this gateway knows version {SCHEMA_VERSION}"
            )

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
            _unlock(lock)

    # -- outbound queue ----------------------------------------------------

    def add_outbound(
        self, request_id: str, server: str, payload: OutboundPayload, parts: int, created: float
    ) -> int:
        """Store a new request and return its seq (insertion order); raise
        :class:`DuplicateRequest` if ``request_id`` is known.

        A bytes payload is stored as it is (a BLOB); anything else as JSON.
        """
        if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
            raise BadStoreInput(f"parts must be a positive integer: {parts!r}")
        text = payload if isinstance(payload, bytes) else _dump(payload)
        with self._writing() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO outbound (request_id, server, payload, parts, created)"
                " VALUES (?, ?, ?, ?, ?)",
                (request_id, server, text, parts, created),
            )
            if cursor.rowcount == 0:
                existing = self.outbound(request_id)
                assert existing is not None
                raise DuplicateRequest(existing)
            seq = cursor.lastrowid
        assert seq is not None
        return seq

    def outbound(self, request_id: str) -> OutboundRow | None:
        """Return the stored request ``request_id``, finished or not, or None."""
        found = self._reading(
            f"SELECT {_OUTBOUND_COLUMNS} FROM outbound WHERE request_id = ?", (request_id,)
        ).fetchone()
        if found is None:
            return None
        message_ids: list[str | None] = [None] * found[4]
        for index, message_id in self._reading(
            "SELECT idx, message_id FROM part WHERE request_id = ?", (request_id,)
        ):
            message_ids[index] = message_id
        return self._outbound_row(found, tuple(message_ids))

    @staticmethod
    def _outbound_row(found: tuple[Any, ...], message_ids: tuple[str | None, ...]) -> OutboundRow:
        seq, request_id, server, payload, parts, created, outcome = found
        return OutboundRow(
            request_id,
            server,
            _outbound_payload(payload),
            parts,
            message_ids,
            created,
            None if outcome is None else json.loads(outcome),
            seq,
        )

    def _unfinished_groups(
        self, columns: str, parts_at: int, server: str | None, streamed: bool
    ) -> Iterator[tuple[tuple[Any, ...], tuple[str | None, ...]]]:
        """Each unfinished request's ``columns`` (after its seq) and its message ids, in order.

        One join, already in (seq, idx) order through the partial index and
        part's unique index: no sort.  ``parts_at`` is the index of o.parts in
        ``columns``; ``streamed`` reads the cursor as it goes rather than
        fetching every row first (which a caller that writes meanwhile needs).
        """
        where = "o.outcome IS NULL"
        params: tuple[str, ...] = ()
        if server is not None:
            where += " AND o.server = ?"
            params = (server,)
        cursor: Any = self._reading(
            f"SELECT o.seq, {columns}, p.idx, p.message_id"
            f" FROM outbound AS o LEFT JOIN part AS p ON p.request_id = o.request_id"
            f" WHERE {where} ORDER BY o.seq, p.idx",
            params,
        )
        if not streamed:
            cursor = cursor.fetchall()
        current: tuple[Any, ...] | None = None
        message_ids: list[str | None] = []
        for found in cursor:
            if current is None or found[0] != current[0]:
                if current is not None:
                    yield current, tuple(message_ids)
                current = found[:-2]
                message_ids = [None] * found[1 + parts_at]
            if found[-2] is not None:
                message_ids[found[-2]] = found[-1]
        if current is not None:
            yield current, tuple(message_ids)

    def unfinished(self, server: str | None = None) -> list[OutboundRow]:
        """Return the unfinished requests (of ``server``, or all) in insertion order."""
        with _cyclic_gc_paused():
            return [
                self._outbound_row(found, message_ids)
                for found, message_ids in self._unfinished_groups(
                    "o.request_id, o.server, o.payload, o.parts, o.created, o.outcome", 3, server,
                    streamed=True,
                )
            ]

    def unfinished_brief(
        self, server: str | None = None
    ) -> Iterator[tuple[str, str, int, tuple[str | None, ...], float]]:
        """Yield (request_id, server, parts, message_ids, created) of each unfinished request,
        in insertion order, without loading payloads: a large queue restores in little memory."""
        for (_seq, request_id, name, parts, created), message_ids in self._unfinished_groups(
            "o.request_id, o.server, o.parts, o.created", 2, server, streamed=False
        ):
            yield request_id, name, parts, message_ids, created

    def payloads(self, request_ids: list[str]) -> dict[str, OutboundPayload]:
        """The payloads of the given requests (those that exist), by request_id."""
        found: dict[str, OutboundPayload] = {}
        for start in range(0, len(request_ids), 500):
            chunk = request_ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for request_id, payload in self._reading(
                f"SELECT request_id, payload FROM outbound WHERE request_id IN ({marks})", tuple(chunk)
            ):
                found[request_id] = _outbound_payload(payload)
        return found

    def set_message_id(
        self,
        request_id: str,
        index: int,
        message_id: str,
        lookup_key: str,
        known: tuple[str, int] | None = None,
        receipt_due: float | None = None,
    ) -> None:
        """Record the SMSC's message id for part ``index`` (from 0) of ``request_id``.

        ``lookup_key`` is the id as receipts will name it (normalised by the caller).
        ``known`` is the request's (server, parts) when the caller has them: it
        saves a query on the hot path.  ``receipt_due`` is when the part's
        delivery receipt is given up on (None: no receipt is awaited); a part
        recorded again keeps the deadline it has, so that a receipt that came
        meanwhile is not awaited again.
        """
        with self._writing() as db:
            if known is None:
                found = db.execute(
                    "SELECT server, parts FROM outbound WHERE request_id = ?", (request_id,)
                ).fetchone()
                if found is None:
                    raise UnknownRow(f"no stored request {request_id!r}")
                known = found
            server, parts = known
            if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < parts:
                raise BadStoreInput(
                    f"part index {index!r} is out of range for request {request_id!r}"
                    f" of {parts} parts"
                )
            if receipt_due is None:
                db.execute(_RECORD_PART, (request_id, index, message_id, server, lookup_key))
            else:
                db.execute(_RECORD_PART_DUE,
                           (request_id, index, message_id, server, lookup_key, receipt_due))

    def finish(self, request_id: str, outcome: dict[str, Any]) -> None:
        """Record the final outcome of ``request_id`` (a second call replaces the first)."""
        text = _OK_TEXT if outcome is OK_OUTCOME else _dump(outcome)
        with self._writing() as db:
            cursor = db.execute(
                "UPDATE outbound SET outcome = ? WHERE request_id = ?", (text, request_id)
            )
            if cursor.rowcount == 0:
                raise UnknownRow(f"no stored request {request_id!r}")

    def lookup_message(self, server: str, lookup_key: str) -> tuple[str, int] | None:
        """Return (request_id, part index) of the part ``server`` accepted as ``lookup_key``.

        Should an SMSC reuse an id, the part of the newest request wins.
        """
        found = self._reading(
            "SELECT p.request_id, p.idx FROM part AS p"
            " JOIN outbound AS o ON o.request_id = p.request_id"
            " WHERE p.server = ? AND p.lookup_key = ? ORDER BY o.seq DESC, p.idx DESC LIMIT 1",
            (server, lookup_key),
        ).fetchone()
        return None if found is None else (found[0], found[1])

    # -- receipt deadlines -------------------------------------------------

    def receipt_came(self, request_id: str, index: int) -> None:
        """Part ``index`` of ``request_id`` has its final receipt: forget its deadline."""
        with self._writing() as db:
            db.execute(
                "UPDATE part SET receipt_due = NULL"
                " WHERE request_id = ? AND idx = ? AND receipt_due IS NOT NULL",
                (request_id, index),
            )

    def next_receipt_due(self) -> float | None:
        """The earliest deadline of a part still awaiting its receipt, or None."""
        (due,) = self._reading(
            "SELECT MIN(receipt_due) FROM part WHERE receipt_due IS NOT NULL"
        ).fetchone()
        return None if due is None else float(due)

    def due_receipts(self, now: float, limit: int = 500) -> list[DueReceipt]:
        """Up to ``limit`` parts whose receipt deadline is ``now`` or earlier, earliest first."""
        return [
            DueReceipt(request_id, index, message_id, server, parts, due)
            for request_id, index, message_id, server, parts, due in self._reading(
                "SELECT p.request_id, p.idx, p.message_id, p.server, o.parts, p.receipt_due"
                " FROM part AS p JOIN outbound AS o ON o.request_id = p.request_id"
                " WHERE p.receipt_due IS NOT NULL AND p.receipt_due <= ?"
                " ORDER BY p.receipt_due LIMIT ?",
                (now, limit),
            )
        ]

    def prune(self, now: float) -> int:
        """Delete finished requests created more than ``retention`` before ``now``; return how many.

        Rows are walked in seq (creation) order up to the first one created
        within the retention, so the cost is that of the rows deleted; should
        the clock have been set back, rows after that one wait for a later prune.
        """
        before = now - self.retention
        first_kept = self._reading(
            "SELECT seq FROM outbound WHERE created >= ? ORDER BY seq LIMIT 1", (before,)
        ).fetchone()
        if first_kept is None:
            first_kept = self._reading("SELECT COALESCE(MAX(seq), 0) + 1 FROM outbound").fetchone()
        (limit,) = first_kept
        with self._writing() as db:
            db.execute(
                "DELETE FROM part WHERE request_id IN (SELECT request_id FROM outbound"
                " WHERE seq < ? AND outcome IS NOT NULL)",
                (limit,),
            )
            cursor = db.execute(
                "DELETE FROM outbound WHERE seq < ? AND outcome IS NOT NULL", (limit,)
            )
            return cursor.rowcount

    def counts(self) -> dict[str, int]:
        """Return how many unfinished requests, inbox rows, fragments and bindings are stored."""
        queries = {
            "unfinished": "SELECT COUNT(*) FROM outbound WHERE outcome IS NULL",
            "inbox": "SELECT COUNT(*) FROM inbox",
            "fragments": "SELECT COUNT(*) FROM fragment",
            "bindings": "SELECT COUNT(*) FROM binding",
        }
        return {name: self._reading(sql).fetchone()[0] for name, sql in queries.items()}

    # -- inbox -------------------------------------------------------------

    def add_inbox(self, kind: str, payload: dict[str, Any], created: float) -> int:
        """Store a message or report for the host; return its id."""
        text = _dump(payload)
        with self._writing() as db:
            cursor = db.execute(
                "INSERT INTO inbox (kind, payload, created) VALUES (?, ?, ?)",
                (kind, text, created),
            )
            row_id = cursor.lastrowid
        assert row_id is not None
        return row_id

    def inbox(self, limit: int = 1000, after_id: int = 0) -> list[InboxRow]:
        """Return up to ``limit`` inbox rows with an id above ``after_id``, oldest first."""
        return [
            InboxRow(row_id, kind, json.loads(payload), attempts, created)
            for row_id, kind, payload, attempts, created in self._reading(
                "SELECT id, kind, payload, attempts, created FROM inbox"
                " WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            )
        ]

    def bump_inbox(self, id: int) -> int:
        """Count one more delivery attempt of inbox row ``id``; return the new count."""
        with self._writing() as db:
            found = db.execute(
                "UPDATE inbox SET attempts = attempts + 1 WHERE id = ? RETURNING attempts", (id,)
            ).fetchone()
        if found is None:
            raise UnknownRow(f"no inbox row {id!r}")
        attempts: int = found[0]
        return attempts

    def remove_inbox(self, id: int) -> None:
        """Remove inbox row ``id`` (nothing happens if it is already gone)."""
        with self._writing() as db:
            db.execute("DELETE FROM inbox WHERE id = ?", (id,))

    # -- reassembly fragments ----------------------------------------------

    def add_fragment(
        self, key: str, seq: int, total: int, payload: dict[str, Any], received: float
    ) -> int:
        """Store part ``seq`` of message ``key``; return how many distinct parts of it are stored.

        A repeated part replaces the stored one but keeps its first arrival
        time, so a resending SMSC cannot postpone :meth:`stale_fragments`.
        """
        text = _dump(payload)
        with self._writing() as db:
            db.execute(
                "INSERT INTO fragment (key, seq, total, payload, received) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (key, seq) DO UPDATE SET total = excluded.total,"
                " payload = excluded.payload, received = MIN(received, excluded.received)",
                (key, seq, total, text, received),
            )
            (count,) = db.execute("SELECT COUNT(*) FROM fragment WHERE key = ?", (key,)).fetchone()
        stored: int = count
        return stored

    def fragments(self, key: str) -> list[tuple[int, dict[str, Any]]]:
        """Return the stored parts of ``key`` as (seq, payload), sorted by seq."""
        return [
            (seq, json.loads(payload))
            for seq, payload in self._reading(
                "SELECT seq, payload FROM fragment WHERE key = ? ORDER BY seq", (key,)
            )
        ]

    def drop_fragments(self, key: str) -> None:
        """Forget every stored part of ``key``."""
        with self._writing() as db:
            db.execute("DELETE FROM fragment WHERE key = ?", (key,))

    def stale_fragments(self, before: float) -> list[str]:
        """Return the keys whose first stored part arrived before ``before``."""
        return [
            key
            for (key,) in self._reading(
                "SELECT key FROM fragment GROUP BY key HAVING MIN(received) < ? ORDER BY key",
                (before,),
            )
        ]

    # -- dialog bindings (smppgw.relay.dialogs.BindingStore) ---------------------

    def load_bindings(self) -> list[Binding]:
        """Return every stored dialog binding."""
        return [
            Binding(phone, address, letter, last_used)
            for phone, letter, address, last_used in self._reading(
                "SELECT phone, letter, address, last_used FROM binding ORDER BY phone, letter"
            )
        ]

    def save_binding(self, binding: Binding) -> None:
        """Insert ``binding``, replacing any binding with the same (phone, letter)."""
        with self._writing() as db:
            db.execute(
                "INSERT OR REPLACE INTO binding (phone, letter, address, last_used)"
                " VALUES (?, ?, ?, ?)",
                (binding.phone, binding.letter, binding.address, binding.last_used),
            )

    def delete_binding(self, phone: str, letter: str) -> None:
        """Forget the binding (phone, letter), if there is one."""
        with self._writing() as db:
            db.execute("DELETE FROM binding WHERE phone = ? AND letter = ?", (phone, letter))


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
