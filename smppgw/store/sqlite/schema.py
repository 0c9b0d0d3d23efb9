"""The SQLite store's tables, its schema version, and the statements used on the hot path.

A file of another schema version is refused, older or newer: 0.1.0 is the
first version to ship, so there is nothing older to upgrade.
"""

from __future__ import annotations

import sqlite3

from smppgw.store.interfaces import StoreError

#: The version this gateway writes and reads (SQLite's ``user_version``).
#: Version 4 is the first shipped: outbound payloads are the encoded PDUs
#: (a BLOB), a relayed request's outcome may be just {"ok": true}, and each
#: accepted part has its receipt deadline.
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

SCHEMA = f"""
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


OUTBOUND_COLUMNS = "seq, request_id, server, payload, parts, created, outcome"

# A part accepted by the SMSC, with and without a receipt deadline: a part
# recorded again keeps the deadline it has.  (Without a deadline, the shorter
# statement: one bound value fewer is measurably cheaper per accepted part.)
_ON_PART_CONFLICT = (
    " ON CONFLICT (request_id, idx) DO UPDATE SET message_id = excluded.message_id,"
    " server = excluded.server, lookup_key = excluded.lookup_key"
)
RECORD_PART = (
    "INSERT INTO part (request_id, idx, message_id, server, lookup_key)"
    " VALUES (?, ?, ?, ?, ?)" + _ON_PART_CONFLICT
)
RECORD_PART_DUE = (
    "INSERT INTO part (request_id, idx, message_id, server, lookup_key, receipt_due)"
    " VALUES (?, ?, ?, ?, ?, ?)" + _ON_PART_CONFLICT
)


def prepare(db: sqlite3.Connection, path: str) -> None:
    """Set ``db`` up for the store ``path``: WAL, ``synchronous=NORMAL``, the tables of a new file.

    :raise StoreError: the file cannot use WAL, or holds another schema version.
    """
    if path != ":memory:":
        (mode,) = db.execute("PRAGMA journal_mode=WAL").fetchone()
        if mode.lower() != "wal":
            raise StoreError(f"the store {path!r} cannot use WAL mode (journal_mode is {mode!r})")
    db.execute("PRAGMA synchronous=NORMAL")
    (version,) = db.execute("PRAGMA user_version").fetchone()
    if version == 0:
        db.executescript(f"BEGIN; {SCHEMA}; PRAGMA user_version={SCHEMA_VERSION}; COMMIT;")
    elif version < SCHEMA_VERSION:
        raise StoreError(
            f"the store {path!r} has schema version {version}, older than this gateway's"
            f" {SCHEMA_VERSION} (a development build's, before 0.1.0): move it away to start"
            f" with an empty store")
    elif version > SCHEMA_VERSION:
        raise StoreError(
            f"the store {path!r} has schema version {version}; this gateway knows version"
            f" {SCHEMA_VERSION} (the file was written by a newer gateway)")
