"""The PostgreSQL store's writes as its writer runs them: alone, or many like ones in a statement.

A write is a function of the writer's connection, run in a batch's
transaction.  Its value, when it needs its statements' answers, is a `Later`:
the statements are sent, the batch's pipeline answered, then ``finish()``
reads the answers.  A `Bulk` write can also go with others in one statement of
many rows (``INSERT ... SELECT FROM unnest(...)``): `send` gathers the bulk
writes that come together in a batch, so that a batch of a hundred requests
accepted and finished costs a few statements, not two hundred.

Writes are gathered only where that cannot change what they do: within a
stretch of bulk writes of which no two touch the same row (their ``key``
names the table and the row), each kind goes in one statement, in the order
the writes came; writes of different rows commute in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import Any

import psycopg

#: A write: what it does on the writer's connection, inside the batch's transaction; its
#: value, or a `Later` giving it once the statements sent are answered.
Write = Callable[[psycopg.Connection[Any]], Any]


class Later:
    """What a write gives when its value needs its statements' answers: ``finish()`` reads
    them (and raises the write's own error, DuplicateRequest or UnknownRow)."""

    __slots__ = ("finish",)

    def __init__(self, finish: Callable[[], Any]) -> None:
        self.finish = finish


#: Several like writes in one statement: given the connection and each write's row, a
#: `Later` whose ``finish()`` gives each write's value (an exception: that write's error).
Many = Callable[[psycopg.Connection[Any], list[Any]], Later]


class Bulk:
    """A write that can go in one statement with like writes of the same batch.

    ``single`` is the write alone; ``many`` (a module-level function, the same for
    every write of its kind) writes the ``row`` of each of several; ``key``
    (the table and the row's key) tells which writes touch the same row.
    """

    __slots__ = ("key", "many", "row", "single")

    def __init__(self, single: Write, many: Many, key: Hashable, row: Any) -> None:
        self.single = single
        self.many = many
        self.key = key
        self.row = row

    def __call__(self, db: psycopg.Connection[Any]) -> Any:
        return self.single(db)


def send(db: psycopg.Connection[Any], writes: list[Write]) -> list[tuple[list[int], Any]]:
    """Run ``writes`` on ``db``, the bulk ones gathered: each statement's writes (their
    indices in ``writes``) and its result (for several, a `Later` of their values)."""
    sent: list[tuple[list[int], Any]] = []
    index = 0
    while index < len(writes):
        write = writes[index]
        if not isinstance(write, Bulk):
            sent.append(([index], write(db)))
            index += 1
            continue
        # A stretch of bulk writes, no two on one row, its writes by kind in order.
        keys: set[Hashable] = set()
        kinds: dict[Many, list[int]] = {}
        while index < len(writes):
            other = writes[index]
            if not isinstance(other, Bulk) or other.key in keys:
                break
            keys.add(other.key)
            kinds.setdefault(other.many, []).append(index)
            index += 1
        for many, indices in kinds.items():
            if len(indices) == 1:
                sent.append((indices, writes[indices[0]](db)))
            else:
                rows = [bulk.row for bulk in (writes[i] for i in indices) if isinstance(bulk, Bulk)]
                sent.append((indices, many(db, rows)))
    return sent
