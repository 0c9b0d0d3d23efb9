"""Leases with epochs: what a node holds for a while, on the database server's clock.

A lease is a row of table ``lease``, keyed by a `LeaseKey` (``('bind',
server, slot)`` for a server's bind slots).  What these functions guarantee:

- **One holder at a time.** `acquire` takes a key only when it is free
  (never held, or released) or its lease has run out, and gives the new
  holder the key's next epoch; the key's epochs only grow.  A `Tenure` (key,
  node, epoch) names one holding; no two holdings share one.
- **The database's clock.** A lease runs until ``clock_timestamp()`` of the
  database server passes its ``lease_until``; the nodes' clocks never count,
  so a node whose clock is wrong neither keeps a lease too long nor loses it
  early.  A node that is paused (SIGSTOP) or cut off keeps nothing: leases
  are not tied to a database session, which a paused node keeps open.
- **A lapsed tenure stays lapsed.** `renew` extends a lease only while it
  runs; once its time has passed it cannot be renewed, even if no other
  node took the key yet, so a node that sees a tenure lapsed may act on
  that (resend its parts in doubt) without the holder coming back.  Its
  holder must `acquire` again, and gets a new epoch.
- **Fencing.** `fenced` checks, inside the caller's transaction, that a tenure
  still runs, and holds the lease row (``FOR SHARE``) until that transaction
  ends: a node taking the key over waits for it, so every write that passed
  the fence is committed before the next tenure begins.

A node asking for a key it holds already gets None like any other node
(until its lease runs out): a restarted node waits out its former lease
rather than two processes with one name taking a key from each other.
`acquire_one` goes further for a set of keys (a server's bind slots): a node
that holds one of them gets none of the others.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
from psycopg.pq import TransactionStatus
from twisted.internet.defer import Deferred

from smppgw.cluster.connection import IConnection
from smppgw.store.interfaces import BadStoreInput, LeaseLost, StoreError

__all__ = ["LeaseKey", "LeaseLost", "Leases", "Tenure"]

_KEY = "kind = %s AND name = %s AND slot = %s"


@dataclass(frozen=True, order=True)
class LeaseKey:
    """What is leased: a kind (``bind``), a name (the server's) and a slot."""

    kind: str
    name: str
    slot: int = 0

    @classmethod
    def bind(cls, server: str, slot: int = 0) -> LeaseKey:
        """Bind slot ``slot`` (from 0) of server ``server``."""
        return cls("bind", server, slot)

    def __str__(self) -> str:
        return f"{self.kind} {self.name!r} slot {self.slot}"

    def params(self) -> tuple[str, str, int]:
        return (self.kind, self.name, self.slot)


@dataclass(frozen=True)
class Tenure:
    """One holding of a lease: ``node`` holds ``key`` at ``epoch``; ``lease`` is the id of
    the key's row (what claims name), 0 where not known."""

    key: LeaseKey
    node: str
    epoch: int
    lease: int = field(default=0, compare=False)

    def __str__(self) -> str:
        return f"{self.key} held by {self.node!r} at epoch {self.epoch}"


def _seconds(seconds: float) -> float:
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
        raise BadStoreInput(f"a lease's length must be a number of seconds > 0: {seconds!r}")
    return float(seconds)


def _node(node: str) -> str:
    if not isinstance(node, str) or not node:
        raise BadStoreInput(f"a node's name must be a non-empty string: {node!r}")
    return node


# -- the statements, for a caller's own connection or transaction ----------

def acquire(db: psycopg.Connection[Any], key: LeaseKey, node: str,
            seconds: float) -> Tenure | None:
    """Take ``key`` for ``node`` for ``seconds`` if it is free or its lease ran out;
    the new tenure, or None if another tenure runs."""
    length, node = _seconds(seconds), _node(node)
    # Two nodes taking one key at once: the second waits for the first's row
    # and finds it held.
    found = db.execute(
        "INSERT INTO lease (kind, name, slot, holder, epoch, lease_until)"
        " VALUES (%s, %s, %s, %s, 1, clock_timestamp() + %s * interval '1 second')"
        " ON CONFLICT (kind, name, slot) DO UPDATE SET holder = excluded.holder,"
        " epoch = lease.epoch + 1, lease_until = excluded.lease_until"
        " WHERE lease.holder IS NULL OR lease.lease_until <= clock_timestamp()"
        " RETURNING epoch, id",
        (*key.params(), node, length),
    ).fetchone()
    return None if found is None else Tenure(key, node, found[0], found[1])


def acquire_first(db: psycopg.Connection[Any], keys: Sequence[LeaseKey], node: str,
                  seconds: float) -> Tenure | None:
    """`acquire` the first of ``keys`` that is free, in order; None if none is."""
    for key in keys:
        tenure = acquire(db, key, node, seconds)
        if tenure is not None:
            return tenure
    return None


def acquire_one(db: psycopg.Connection[Any], keys: Sequence[LeaseKey], node: str,
                seconds: float) -> Tenure | None:
    """`acquire_first`, unless ``node`` holds one of ``keys`` already (then None): a node
    holds one of them at most, even one it took before a restart."""
    node = _node(node)
    keys = tuple(keys)
    (held,) = db.execute(
        "SELECT count(*) FROM lease WHERE holder = %s AND lease_until > clock_timestamp()"
        " AND (kind, name, slot) IN (SELECT * FROM unnest(%s::text[], %s::text[], %s::int[]))",
        (node, [k.kind for k in keys], [k.name for k in keys], [k.slot for k in keys]),
    ).fetchone() or (0,)
    return None if held else acquire_first(db, keys, node, seconds)


def renew(db: psycopg.Connection[Any], tenure: Tenure, seconds: float) -> bool:
    """Make ``tenure``'s lease run ``seconds`` from now; False (and nothing changed)
    if it has lapsed, was released or was taken over."""
    cursor = db.execute(
        "UPDATE lease SET lease_until = clock_timestamp() + %s * interval '1 second'"
        f" WHERE {_KEY} AND holder = %s AND epoch = %s AND lease_until > clock_timestamp()",
        (_seconds(seconds), *tenure.key.params(), tenure.node, tenure.epoch),
    )
    return cursor.rowcount == 1


def release(db: psycopg.Connection[Any], tenure: Tenure) -> bool:
    """Free ``tenure``'s key at once, for any node to take; False if the tenure
    was over already (another node's tenure is never touched)."""
    cursor = db.execute(
        f"UPDATE lease SET holder = NULL, lease_until = clock_timestamp()"
        f" WHERE {_KEY} AND holder = %s AND epoch = %s",
        (*tenure.key.params(), tenure.node, tenure.epoch),
    )
    return cursor.rowcount == 1


def fenced(db: psycopg.Connection[Any], tenure: Tenure) -> int:
    """Check, inside the caller's transaction, that ``tenure`` still runs, and hold
    its lease until the transaction ends; return the lease's id (what claims
    name).  :class:`LeaseLost`, saying who holds the key, if it does not run."""
    if db.info.transaction_status == TransactionStatus.IDLE:  # the lock would end at once
        raise StoreError(f"the fence of {tenure} must be taken inside a transaction")
    found = db.execute(
        f"SELECT id FROM lease WHERE {_KEY} AND holder = %s AND epoch = %s"
        " AND lease_until > clock_timestamp() FOR SHARE",
        (*tenure.key.params(), tenure.node, tenure.epoch),
    ).fetchone()
    if found is None:
        raise LeaseLost(f"{tenure.node!r} no longer holds {tenure.key} at epoch {tenure.epoch}:"
                        f" {_state(db, tenure.key)}")
    lease: int = found[0]
    return lease


def _state(db: psycopg.Connection[Any], key: LeaseKey) -> str:
    found = db.execute(
        f"SELECT holder, epoch, lease_until > clock_timestamp() FROM lease WHERE {_KEY}",
        key.params()).fetchone()
    if found is None:
        return "it was never held"
    holder, epoch, running = found
    if holder is None:
        return f"it was released at epoch {epoch}"
    return f"{holder!r} holds it at epoch {epoch}" + ("" if running else ", lapsed")


def holders(db: psycopg.Connection[Any], kind: str, name: str) -> list[Tenure]:
    """The tenures of ``kind`` and ``name`` that run now, by slot."""
    return [
        Tenure(LeaseKey(kind, name, slot), holder, epoch)
        for slot, holder, epoch in db.execute(
            "SELECT slot, holder, epoch FROM lease WHERE kind = %s AND name = %s"
            " AND holder IS NOT NULL AND lease_until > clock_timestamp() ORDER BY slot",
            (kind, name))
    ]


# -- the same, as Deferreds -------------------------------------------------

class Leases:
    """The leases of the database behind ``connection``, each call a Deferred."""

    def __init__(self, connection: IConnection) -> None:
        self.connection = connection

    def acquire(self, key: LeaseKey, node: str, seconds: float) -> Deferred[Tenure | None]:
        """See :func:`acquire`."""
        return self.connection.run(lambda db: acquire(db, key, node, seconds), f"acquire {key}")

    def acquire_first(self, keys: Sequence[LeaseKey], node: str,
                      seconds: float) -> Deferred[Tenure | None]:
        """See :func:`acquire_first`."""
        keys = tuple(keys)
        return self.connection.run(lambda db: acquire_first(db, keys, node, seconds),
                                   f"acquire one of {len(keys)} leases")

    def acquire_one(self, keys: Sequence[LeaseKey], node: str,
                    seconds: float) -> Deferred[Tenure | None]:
        """See :func:`acquire_one`."""
        keys = tuple(keys)
        return self.connection.run(lambda db: acquire_one(db, keys, node, seconds),
                                   f"acquire one of {len(keys)} leases")

    def renew(self, tenure: Tenure, seconds: float) -> Deferred[bool]:
        """See :func:`renew`."""
        return self.connection.run(lambda db: renew(db, tenure, seconds), f"renew {tenure}")

    def release(self, tenure: Tenure) -> Deferred[bool]:
        """See :func:`release`."""
        return self.connection.run(lambda db: release(db, tenure), f"release {tenure}")

    def holders(self, kind: str, name: str) -> Deferred[list[Tenure]]:
        """See :func:`holders`."""
        return self.connection.run(lambda db: holders(db, kind, name),
                                   f"read the leases of {kind} {name!r}")
