"""The SQLite store's inbox, reassembly fragments and dialog bindings."""

from __future__ import annotations

import json
from typing import Any

from smppgw.relay.dialogs import Binding
from smppgw.store.interfaces import InboxRow, UnknownRow
from smppgw.store.sqlite.database import Database, dump


class InboundTables(Database):
    """What a store keeps for inbound traffic: tables ``inbox``, ``fragment`` and ``binding``."""

    # -- inbox -------------------------------------------------------------

    def add_inbox(self, kind: str, payload: dict[str, Any], created: float) -> int:
        """Store a message or report for the host; return its id."""
        text = dump(payload)
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
        text = dump(payload)
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

