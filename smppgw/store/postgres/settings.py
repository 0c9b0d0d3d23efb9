"""The settings the nodes on one database share: table ``settings``.

One row holds the shared part of the configuration (``[module]`` and the
``[[server]]`` records, as TOML text: see `smppgw.shared`), its revision
(counting up from 1, one per change), which node wrote it and when (the
database server's clock).  A node publishes a change it applied (a reload of
its file, an Update in its admin); the others see the revision grow and apply
it.  Two nodes publishing at once both get a revision: the later commit is
the settings in force, everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from psycopg import Connection
from twisted.internet.defer import Deferred

from smppgw.store.interfaces import BadStoreInput
from smppgw.store.postgres.bulk import Later
from smppgw.store.postgres.database import Database, one

#: The longest settings text kept (a configuration of thousands of servers fits).
MAX_SETTINGS = 4 * 1024 * 1024


@dataclass(frozen=True)
class SharedSettings:
    """The shared settings in force: their text, revision, writer and time (seconds since 1970)."""

    revision: int
    text: str
    node: str
    written: float


class SettingsTable(Database):
    """The shared settings of the nodes on this database."""

    def settings_revision(self) -> int:
        """The revision of the shared settings, 0 when none were published."""
        rows = self._reading("SELECT revision FROM settings WHERE id = 1")
        return int(rows[0][0]) if rows else 0

    def shared_settings(self) -> SharedSettings | None:
        """The shared settings in force, or None when no node published any."""
        rows = self._reading(
            "SELECT revision, text, node, extract(epoch FROM written) FROM settings WHERE id = 1")
        if not rows:
            return None
        revision, text, node, written = rows[0]
        return SharedSettings(int(revision), text, node, float(written))

    def newer_settings(self, revision: int) -> Deferred[SharedSettings | None]:
        """The shared settings if their revision is above ``revision``, else None: read on
        the writer's thread, so that a look every few seconds never waits on the reactor's
        (a database that does not answer would stall it)."""

        def read(db: Connection[Any]) -> Later:
            cursor = db.execute(
                "SELECT revision, text, node, extract(epoch FROM written) FROM settings"
                " WHERE id = 1 AND revision > %s", (revision,))

            def found() -> SharedSettings | None:
                row = cursor.fetchone()
                if row is None:
                    return None
                return SharedSettings(int(row[0]), row[1], row[2], float(row[3]))

            return Later(found)

        return self._write(read)

    def publish_settings(self, text: str, node: str) -> Deferred[int]:
        """Make ``text`` the shared settings, written by ``node``; fires with its revision."""
        if not isinstance(text, str) or not text or len(text) > MAX_SETTINGS:
            raise BadStoreInput(f"settings must be a text of 1 to {MAX_SETTINGS} characters")
        if not isinstance(node, str) or not node:
            raise BadStoreInput("settings need the name of the node that writes them")

        def write(db: Connection[Any]) -> Later:
            written = db.execute(
                "INSERT INTO settings (id, revision, text, node, written)"
                " VALUES (1, 1, %s, %s, now())"
                " ON CONFLICT (id) DO UPDATE SET revision = settings.revision + 1,"
                " text = excluded.text, node = excluded.node, written = excluded.written"
                " RETURNING revision", (text, node))
            return Later(lambda: int(one(written.fetchone())[0]))

        return self._write(write)
