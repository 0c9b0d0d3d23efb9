"""The soak's failing store: while a marker file exists, the gateway's commits fail as on a full disk.

The gateway's child process imports this in ``--failing-store`` runs only
(see `_soak_gateway`).  It wraps the store's SQLite connection so that
``commit()`` raises SQLite's own "database or disk is full"; the store then
rolls the transaction back, as it does when the disk is full.  The soak's
driver creates and removes the marker file; the gateway looks for it at most
every `CHECK_EVERY` seconds, so the fault costs no system call per write.
"""

from __future__ import annotations

import os
import time
from typing import Any

#: How often (seconds) the gateway looks whether the marker file exists.
CHECK_EVERY = 0.02


def install(marker: str) -> None:
    """Make every store's commits fail while the file `marker` exists."""
    from smppgw.store.sqlite import store
    from smppgw.testing.process import FullDisk

    original = store.Store._connection
    seen = {"at": 0.0, "full": False}

    def connection(self: store.Store) -> Any:
        db = original(self)
        now = time.monotonic()
        if now - seen["at"] > CHECK_EVERY:
            seen["at"], seen["full"] = now, os.path.exists(marker)
        return FullDisk(db) if seen["full"] else db

    store.Store._connection = connection  # type: ignore[method-assign]
