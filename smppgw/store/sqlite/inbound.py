"""The SQLite store's inbox, reassembly fragments and dialog bindings."""

from __future__ import annotations

import json
from typing import Any

from twisted.internet.defer import Deferred, fail

from smppgw.relay.dialogs import Binding
from smppgw.store.interfaces import InboxClaim, InboxRow, StoreError, UnknownRow
from smppgw.store.sqlite.database import Database, dump
from smppgw.store.sqlite.outbound import end_receipt_wait
from smppgw.store.unshared import UnsharedInbox


class InboundTables(UnsharedInbox, Database):
    """What a store keeps for inbound traffic: tables ``inbox``, ``fragment`` and ``binding``."""

    # -- inbox -------------------------------------------------------------

    def add_inbox(self, kind: str, payload: dict[str, Any], created: float, *,
                  receipt: tuple[str, int] | None = None,
                  drop_fragments: str | None = None,
                  if_awaited: bool = False) -> Deferred[int | None]:
        """Store a message or report for the host; fires with its id once durable.

        In the same transaction: ``receipt`` (request_id, part index) ends that
        part's wait for its receipt, ``drop_fragments`` forgets the stored parts
        the message was joined from; neither is kept without the row.  With
        ``if_awaited``, nothing is kept (it fires with None) unless that part
        still awaited its receipt.
        """
        text = dump(payload)
        if if_awaited and receipt is not None:
            return self._add_if_awaited(kind, text, created, receipt, drop_fragments)
        try:
            with self._writing() as db:
                cursor = db.execute(
                    "INSERT INTO inbox (kind, payload, created) VALUES (?, ?, ?)",
                    (kind, text, created),
                )
                row_id = cursor.lastrowid
                if receipt is not None:
                    end_receipt_wait(db, *receipt)
                if drop_fragments is not None:
                    db.execute("DELETE FROM fragment WHERE key = ?", (drop_fragments,))
        except StoreError as error:
            return fail(error)
        assert row_id is not None
        # Listed by inbox() once its fate is known: committed (or rolled back, and gone).
        self._inbox_pending.add(row_id)
        return self._written(row_id).addBoth(self._inbox_settled, row_id)

    def _add_if_awaited(self, kind: str, text: str, created: float, receipt: tuple[str, int],
                        drop_fragments: str | None) -> Deferred[int | None]:
        try:
            with self._writing() as db:
                ended = db.execute(
                    "UPDATE part SET receipt_due = NULL"
                    " WHERE request_id = ? AND idx = ? AND receipt_due IS NOT NULL", receipt)
                row_id = None
                if ended.rowcount:
                    row_id = db.execute(
                        "INSERT INTO inbox (kind, payload, created) VALUES (?, ?, ?)",
                        (kind, text, created)).lastrowid
                    if drop_fragments is not None:
                        db.execute("DELETE FROM fragment WHERE key = ?", (drop_fragments,))
        except StoreError as error:
            return fail(error)
        if row_id is None:
            return self._written(None)
        self._inbox_pending.add(row_id)
        return self._written(row_id).addBoth(self._inbox_settled, row_id)

    @property
    def _inbox_pending(self) -> set[int]:
        """The ids of inbox rows written in the open transaction."""
        pending: set[int] | None = getattr(self, "_pending_inbox", None)
        if pending is None:
            pending = set()
            self._pending_inbox: set[int] = pending
        return pending

    def _inbox_settled(self, result: Any, row_id: int) -> Any:
        self._inbox_pending.discard(row_id)
        return result

    def inbox(self, limit: int = 1000, after_id: int = 0) -> list[InboxRow]:
        """Return up to ``limit`` durable inbox rows with an id above ``after_id``, oldest first.

        A row written but not committed yet is not listed: it may still be rolled back.
        """
        pending = self._inbox_pending
        return [
            InboxRow(row_id, kind, json.loads(payload), attempts, created)
            for row_id, kind, payload, attempts, created in self._reading(
                "SELECT id, kind, payload, attempts, created FROM inbox"
                " WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit),
            )
            if row_id not in pending
        ]

    def bump_inbox(self, id: int, claim: InboxClaim | None = None, retry_in: float = 0.0
                   ) -> Deferred[int]:
        """Count one more delivery attempt of inbox row ``id``; fires with the new count once
        durable (fails with UnknownRow if the row is gone).  Its claim always holds."""
        try:
            with self._writing() as db:
                found = db.execute(
                    "UPDATE inbox SET attempts = attempts + 1 WHERE id = ? RETURNING attempts",
                    (id,),
                ).fetchone()
        except StoreError as error:
            return fail(error)
        if found is None:
            return fail(UnknownRow(f"no inbox row {id!r}"))
        return self._written(int(found[0]))

    def remove_inbox(self, id: int, claim: InboxClaim | None = None) -> Deferred[None]:
        """Remove inbox row ``id`` (nothing happens if it is already gone); fires once durable.
        Its claim always holds."""
        try:
            with self._writing() as db:
                db.execute("DELETE FROM inbox WHERE id = ?", (id,))
        except StoreError as error:
            return fail(error)
        return self._written()

    # -- reassembly fragments ----------------------------------------------

    def add_fragment(
        self, key: str, seq: int, total: int, payload: dict[str, Any], received: float
    ) -> Deferred[int]:
        """Store part ``seq`` of message ``key``; fires, once durable, with how many distinct
        parts of it were stored then.

        A repeated part replaces the stored one but keeps its first arrival
        time, so a resending SMSC cannot postpone :meth:`stale_fragments`.
        """
        text = dump(payload)
        try:
            with self._writing() as db:
                db.execute(
                    "INSERT INTO fragment (key, seq, total, payload, received)"
                    " VALUES (?, ?, ?, ?, ?) ON CONFLICT (key, seq) DO UPDATE SET"
                    " total = excluded.total, payload = excluded.payload,"
                    " received = MIN(received, excluded.received)",
                    (key, seq, total, text, received),
                )
                (count,) = db.execute(
                    "SELECT COUNT(*) FROM fragment WHERE key = ?", (key,)).fetchone()
        except StoreError as error:
            return fail(error)
        return self._written(int(count))

    def fragments(self, key: str) -> list[tuple[int, dict[str, Any]]]:
        """Return the stored parts of ``key`` as (seq, payload), sorted by seq."""
        return [
            (seq, json.loads(payload))
            for seq, payload in self._reading(
                "SELECT seq, payload FROM fragment WHERE key = ? ORDER BY seq", (key,)
            )
        ]

    def drop_fragments(self, key: str) -> Deferred[None]:
        """Forget every stored part of ``key``; fires once durable."""
        try:
            with self._writing() as db:
                db.execute("DELETE FROM fragment WHERE key = ?", (key,))
        except StoreError as error:
            return fail(error)
        return self._written()

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

    def load_bindings(self, phone: str | None = None) -> list[Binding]:
        """Return every stored dialog binding (of ``phone`` only, if given)."""
        where, params = ("", ()) if phone is None else (" WHERE phone = ?", (phone,))
        return [
            Binding(phone, address, letter, last_used)
            for phone, letter, address, last_used in self._reading(
                f"SELECT phone, letter, address, last_used FROM binding{where}"
                " ORDER BY phone, letter", params
            )
        ]

    def save_binding(self, binding: Binding) -> Deferred[None]:
        """Insert ``binding``, replacing any binding with the same (phone, letter); fires once durable."""
        try:
            with self._writing() as db:
                db.execute(
                    "INSERT OR REPLACE INTO binding (phone, letter, address, last_used)"
                    " VALUES (?, ?, ?, ?)",
                    (binding.phone, binding.letter, binding.address, binding.last_used),
                )
        except StoreError as error:
            return fail(error)
        return self._written()

    def delete_binding(self, phone: str, letter: str) -> Deferred[None]:
        """Forget the binding (phone, letter), if there is one; fires once durable."""
        try:
            with self._writing() as db:
                db.execute("DELETE FROM binding WHERE phone = ? AND letter = ?", (phone, letter))
        except StoreError as error:
            return fail(error)
        return self._written()

