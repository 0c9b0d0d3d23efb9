"""The PostgreSQL store's tables and its schema version, created on first open.

The tables live in the connection's ``search_path`` (by default the
database's ``public`` schema): a URL with ``options=-csearch_path%3Dname``
puts a store in a schema of its own.  Table ``meta`` holds the version; a
database of a newer version than this gateway's is refused, and one of an
older version is brought up to date by the steps in :data:`UPGRADES`, each in
the transaction that records its new version.  Version 1 is the first.

The schema is shaped for several gateway nodes on one database (the
scale-out of several nodes): ``request_id`` is unique across them, ids and
seqs come from the database's own sequences, and the tables of
`smppgw.cluster` are here too.  Table ``lease`` holds the nodes' leases (a
server's bind slots), their expiry on the database server's clock; an
outbound request carries the claim of the lease it was claimed under
(``claimed_by``, the node; ``claim_lease``, the lease's id; ``epoch``, its
tenure), so that renewing a lease rewrites one row, not every row claimed
under it.  Table ``submitting`` marks the parts whose submit_sm was sent, or
about to be, under a lease: where such a part has no message id and its
lease lapsed, the SMSC may or may not have it (a part in doubt); see
`smppgw.store.postgres.claims`.  An inbox row carries the claim of the node
that hands it to a host (``claimed_by``, ``epoch``) and, in ``lease_until``
(seconds on the database server's clock), when that claim lapses, or when a
row released for a retry may be claimed again (see
`smppgw.store.postgres.inbound`).
"""

from __future__ import annotations

from typing import Any

from smppgw.store.interfaces import StoreError

#: The version this gateway reads and writes.
SCHEMA_VERSION = 1

#: What turns a database of version N into version N + 1, by N (none yet).
UPGRADES: dict[int, str] = {}

# Every statement that creates the tables of a new database, in order.
SCHEMA = """
CREATE TABLE meta (
    name text PRIMARY KEY,
    value text NOT NULL
);

-- Accepted SendSignal requests.  A payload is either the encoded PDUs (wire)
-- or a JSON text (json), exactly one of them; the outcome is JSON text, NULL
-- while the request is unfinished.  The claim (see the module's docstring)
-- is NULL until a node claims the request.
CREATE TABLE outbound (
    seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    request_id text NOT NULL UNIQUE,
    server text NOT NULL,
    wire bytea,
    json text,
    parts integer NOT NULL CHECK (parts >= 1),
    created double precision NOT NULL,
    outcome text,
    claimed_by text,
    claim_lease bigint,
    epoch bigint NOT NULL DEFAULT 0,
    CHECK ((wire IS NULL) <> (json IS NULL))
);
-- Only the unfinished rows, so that a start reads them without walking the
-- days of finished rows kept for idempotency.
CREATE INDEX outbound_unfinished ON outbound (seq) WHERE outcome IS NULL;
-- A node claims a server's unfinished requests in seq order.
CREATE INDEX outbound_claimable ON outbound (server, seq) WHERE outcome IS NULL;

-- The SMSC's message id of each accepted part.  No foreign key: as in the
-- other stores, a part may be recorded for a request given as known.
-- receipt_due is when its delivery receipt is given up on (NULL: none awaited).
CREATE TABLE part (
    request_id text NOT NULL,
    idx integer NOT NULL,
    message_id text NOT NULL,
    server text NOT NULL,
    lookup_key text NOT NULL,
    receipt_due double precision,
    PRIMARY KEY (request_id, idx)
);
CREATE INDEX part_lookup ON part (server, lookup_key);
CREATE INDEX part_receipt_due ON part (receipt_due) WHERE receipt_due IS NOT NULL;

-- What nodes lease, keyed by (kind, name, slot): ('bind', server, n) is bind
-- slot n of a server.  A row is never deleted, so its epoch only grows: each
-- new holder gets the next one.  holder is NULL once released; lease_until is
-- on the database server's clock.
CREATE TABLE lease (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL,
    name text NOT NULL,
    slot integer NOT NULL,
    holder text,
    epoch bigint NOT NULL,
    lease_until timestamptz NOT NULL,
    UNIQUE (kind, name, slot)
);

-- The parts whose submit_sm was sent, or about to be, by the holder of lease
-- (lease, epoch).  Gone once the part's message id or its request's outcome is
-- recorded, or with their request when it is pruned.
CREATE TABLE submitting (
    request_id text NOT NULL REFERENCES outbound (request_id) ON DELETE CASCADE,
    idx integer NOT NULL,
    node text NOT NULL,
    lease bigint NOT NULL,
    epoch bigint NOT NULL,
    since timestamptz NOT NULL,
    PRIMARY KEY (request_id, idx)
);

-- Messages and reports for the hosts.  An identity is never given again,
-- so a host's late answer about a removed row cannot touch a newer one.
CREATE TABLE inbox (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind text NOT NULL,
    payload text NOT NULL,
    attempts integer NOT NULL DEFAULT 0,
    created double precision NOT NULL,
    claimed_by text,
    lease_until double precision,
    epoch bigint NOT NULL DEFAULT 0
);

CREATE TABLE fragment (
    key text NOT NULL,
    seq integer NOT NULL,
    total integer NOT NULL,
    payload text NOT NULL,
    received double precision NOT NULL,
    PRIMARY KEY (key, seq)
);

CREATE TABLE binding (
    phone text NOT NULL,
    letter text NOT NULL,
    address text NOT NULL,
    last_used double precision NOT NULL,
    PRIMARY KEY (phone, letter)
);

-- The settings the nodes share (see smppgw.store.postgres.settings): one row,
-- its revision counting the changes, the node that wrote it, when (the
-- database server's clock).
CREATE TABLE settings (
    id integer PRIMARY KEY CHECK (id = 1),
    revision bigint NOT NULL CHECK (revision >= 1),
    text text NOT NULL,
    node text NOT NULL,
    written timestamptz NOT NULL
);
"""

# Taken for the length of the transaction that creates or upgrades the tables:
# two nodes opening a new database at once create them once.
_SCHEMA_LOCK = 0x736D7070  # "smpp"


def prepare(db: Any, where: str) -> None:
    """Create the tables in a new database, or upgrade an older one, through ``db``
    (a psycopg connection in autocommit mode); ``where`` names the store in errors.

    :raise StoreError: the database's schema is newer than this gateway's, or
        older with no way up.
    """
    with db.transaction():
        db.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
        (found,) = db.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
        if not found:
            db.execute(SCHEMA)
            db.execute("INSERT INTO meta (name, value) VALUES ('schema_version', %s)",
                       (str(SCHEMA_VERSION),))
            return
        version = _version(db, where)
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the store {where} has schema version {version}; this gateway knows version"
                f" {SCHEMA_VERSION} (the database was written by a newer gateway)")
        while version < SCHEMA_VERSION:
            step = UPGRADES.get(version)
            if step is None:
                raise StoreError(
                    f"the store {where} has schema version {version}, older than this"
                    f" gateway's {SCHEMA_VERSION}, and no upgrade from it is known")
            db.execute(step)
            version += 1
            db.execute("UPDATE meta SET value = %s WHERE name = 'schema_version'", (str(version),))


def _version(db: Any, where: str) -> int:
    found = db.execute("SELECT value FROM meta WHERE name = 'schema_version'").fetchone()
    try:
        return int(found[0])
    except (TypeError, ValueError):
        raise StoreError(
            f"the store {where} has a meta table without a schema version:"
            f" not a database this gateway made") from None
