"""The PostgreSQL store's SMS Dialogs bindings, and how the nodes hear of each other's.

A binding made or used through one node must route a reply that another node
receives: each node keeps the bindings in memory (`smppgw.relay.dialogs`), so
every write of a binding also sends, in its own transaction, a notification
on `BindingTables.binding_channel` naming the phone, and every other node
reads that phone's bindings again when it hears it (`smppgw.cluster.dialogsync`).
The payload is ``"<token> <phone>"``: ``token`` names the store object that
wrote, so that a node skips what it wrote itself.  The channel's name holds
a hash of the store's schema: stores in two schemas of one database (one per
cluster) do not hear each other.
"""

from __future__ import annotations

import uuid
import zlib
from functools import cached_property
from typing import Any

from psycopg import Connection
from twisted.internet.defer import Deferred

from smppgw.cluster.notifier import notify
from smppgw.relay.dialogs import Binding
from smppgw.store.postgres.database import Database

_SAVE = ("INSERT INTO binding (phone, letter, address, last_used) VALUES (%s, %s, %s, %s)"
         " ON CONFLICT (phone, letter) DO UPDATE SET address = excluded.address,"
         " last_used = excluded.last_used")


class BindingTables(Database):
    """Table ``binding`` (a `smppgw.relay.dialogs.BindingStore`), its changes notified."""

    @cached_property
    def notify_token(self) -> str:
        """What this store object's notifications start with."""
        return uuid.uuid4().hex

    @cached_property
    def binding_channel(self) -> str:
        """The channel the writes of bindings are notified on, for this store's schema."""
        ((schema,),) = self._reading("SELECT current_schema()")
        return f"smppgw_binding_{zlib.crc32(str(schema).encode('utf-8')):08x}"

    def load_bindings(self, phone: str | None = None) -> list[Binding]:
        """Return every kept dialog binding (of ``phone`` only, if given), by (phone, letter)."""
        return self._bindings("", ()) if phone is None else self.bindings_of([phone])

    def bindings_of(self, phones: list[str]) -> list[Binding]:
        """The kept bindings of ``phones`` (in one query), by (phone, letter)."""
        return self._bindings(" WHERE phone = ANY(%s)", (list(phones),))

    def _bindings(self, where: str, params: tuple[Any, ...]) -> list[Binding]:
        return [
            Binding(phone, address, letter, last_used)
            for phone, letter, address, last_used in self._reading(
                f"SELECT phone, letter, address, last_used FROM binding{where}"
                " ORDER BY phone COLLATE \"C\", letter COLLATE \"C\"", params
            )
        ]

    def save_binding(self, binding: Binding) -> Deferred[None]:
        """Keep ``binding``, replacing any binding of the same (phone, letter)."""
        return self._changed(binding.phone, _SAVE,
                             (binding.phone, binding.letter, binding.address, binding.last_used))

    def delete_binding(self, phone: str, letter: str) -> Deferred[None]:
        """Forget the binding (phone, letter), if there is one."""
        return self._changed(phone, "DELETE FROM binding WHERE phone = %s AND letter = %s",
                             (phone, letter))

    def _changed(self, phone: str, sql: str, params: tuple[Any, ...]) -> Deferred[None]:
        channel, payload = self.binding_channel, f"{self.notify_token} {phone}"

        def write(db: Connection[Any]) -> None:
            db.execute(sql, params)
            notify(db, channel, payload)

        return self._write(write)
