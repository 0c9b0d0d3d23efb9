"""The SQLite store's outbound queue: requests, their parts' message ids and receipt deadlines."""

from __future__ import annotations

import gc
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from twisted.internet.defer import Deferred, fail

from smppgw.store.interfaces import (
    OK_OUTCOME,
    BadStoreInput,
    DueReceipt,
    DuplicateRequest,
    OutboundPayload,
    OutboundRow,
    StoreError,
    UnknownRow,
)
from smppgw.store.sqlite.database import OK_TEXT, Database, dump
from smppgw.store.sqlite.schema import OUTBOUND_COLUMNS, RECORD_PART, RECORD_PART_DUE
from smppgw.store.writes import Then


def _outbound_payload(stored: str | bytes) -> OutboundPayload:
    return stored if isinstance(stored, bytes) else json.loads(stored)  # type: ignore[no-any-return]


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



def end_receipt_wait(db: Any, request_id: str, index: int) -> None:
    """In the open transaction: part ``index`` of ``request_id`` awaits no receipt now."""
    db.execute(
        "UPDATE part SET receipt_due = NULL"
        " WHERE request_id = ? AND idx = ? AND receipt_due IS NOT NULL",
        (request_id, index),
    )


class OutboundTables(Database):
    """The outbound queue of a store: tables ``outbound`` and ``part``."""

    # -- outbound queue ----------------------------------------------------

    def add_outbound(
        self, request_id: str, server: str, payload: OutboundPayload, parts: int, created: float,
        then: Then | None = None,
    ) -> Deferred[int] | None:
        """Store a new request; fires with its seq (insertion order) once durable, or fails
        with :class:`DuplicateRequest` (at once) if ``request_id`` is known; given ``then``,
        says so through it (`Then`).

        A bytes payload is stored as it is (a BLOB); anything else as JSON.
        """
        if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
            raise BadStoreInput(f"parts must be a positive integer: {parts!r}")
        text = payload if isinstance(payload, bytes) else dump(payload)
        try:
            with self._writing() as db:
                cursor = db.execute(
                    "INSERT OR IGNORE INTO outbound (request_id, server, payload, parts, created)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (request_id, server, text, parts, created),
                )
                if cursor.rowcount == 0:
                    existing = self.outbound(request_id)
                    assert existing is not None
                    return self._failed(DuplicateRequest(existing), then)
                seq = cursor.lastrowid
        except StoreError as error:
            return self._failed(error, then)
        assert seq is not None
        if then is not None:
            self._waiters.append(then)
            return None
        return self._written(seq)

    def outbound(self, request_id: str) -> OutboundRow | None:
        """Return the stored request ``request_id``, finished or not, or None."""
        found = self._reading(
            f"SELECT {OUTBOUND_COLUMNS} FROM outbound WHERE request_id = ?", (request_id,)
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
        then: Then | None = None,
    ) -> Deferred[None] | None:
        """Record the SMSC's message id for part ``index`` (from 0) of ``request_id``.

        ``lookup_key`` is the id as receipts will name it (normalised by the caller).
        ``known`` is the request's (server, parts) when the caller has them: it
        saves a query on the hot path.  ``receipt_due`` is when the part's
        delivery receipt is given up on (None: no receipt is awaited); a part
        recorded again keeps the deadline it has, so that a receipt that came
        meanwhile is not awaited again.  Fires once durable (given ``then``: `Then`).
        """
        try:
            with self._writing() as db:
                if known is None:
                    found = db.execute(
                        "SELECT server, parts FROM outbound WHERE request_id = ?", (request_id,)
                    ).fetchone()
                    if found is None:
                        return self._failed(UnknownRow(f"no stored request {request_id!r}"), then)
                    known = found
                server, parts = known
                if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < parts:
                    raise BadStoreInput(
                        f"part index {index!r} is out of range for request {request_id!r}"
                        f" of {parts} parts"
                    )
                if receipt_due is None:
                    db.execute(RECORD_PART, (request_id, index, message_id, server, lookup_key))
                else:
                    db.execute(RECORD_PART_DUE,
                               (request_id, index, message_id, server, lookup_key, receipt_due))
        except StoreError as error:
            return self._failed(error, then)
        if then is not None:
            self._waiters.append(then)
            return None
        return self._written()

    def finish(self, request_id: str, outcome: dict[str, Any], then: Then | None = None
               ) -> Deferred[None] | None:
        """Record the final outcome of ``request_id`` (a second call replaces the first);
        fires once durable (given ``then``: `Then`)."""
        text = OK_TEXT if outcome is OK_OUTCOME else dump(outcome)
        try:
            with self._writing() as db:
                cursor = db.execute(
                    "UPDATE outbound SET outcome = ? WHERE request_id = ?", (text, request_id)
                )
                if cursor.rowcount == 0:
                    return self._failed(UnknownRow(f"no stored request {request_id!r}"), then)
        except StoreError as error:
            return self._failed(error, then)
        if then is not None:
            self._waiters.append(then)
            return None
        return self._written()

    def find_outbound(self, fragment: bytes, limit: int = 50) -> list[OutboundRow]:
        """The newest requests (at most ``limit``, newest first) whose payload holds ``fragment``.

        For an operator's search by phone number: a scan of the whole table,
        which no index helps, so not for the hot path.
        """
        found = self._reading(
            "SELECT request_id FROM outbound WHERE instr(payload, ?) > 0 ORDER BY seq DESC"
            " LIMIT ?", (fragment, limit)).fetchall()
        rows = [self.outbound(request_id) for (request_id,) in found]
        return [row for row in rows if row is not None]

    def receipt_deadlines(self, request_id: str) -> dict[int, float]:
        """When each accepted part of ``request_id`` still awaiting its receipt gives up, by index."""
        return {index: due for index, due in self._reading(
            "SELECT idx, receipt_due FROM part WHERE request_id = ? AND receipt_due IS NOT NULL",
            (request_id,))}

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

    def receipt_came(self, request_id: str, index: int) -> Deferred[None]:
        """Part ``index`` of ``request_id`` has its final receipt: forget its deadline; fires
        once durable."""
        try:
            with self._writing() as db:
                end_receipt_wait(db, request_id, index)
        except StoreError as error:
            return fail(error)
        return self._written()



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
