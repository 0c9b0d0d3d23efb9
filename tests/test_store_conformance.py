"""The store conformance suite (smppgw.store.conformance) run against every store."""

from __future__ import annotations

import os

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from smppgw.store.conformance import DAY, StoreConformance
from smppgw.store.memory import MemoryStore
from smppgw.store.sqlite import Store


class SQLiteConformance(StoreConformance, SynchronousTestCase):
    """The SQLite store, in a file of a temporary folder, reopened to play a restart."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))
        super().setUp()

    def make_store(self, retention: float = 7 * DAY) -> Store:
        store = Store(os.path.join(self.mktemp(), "smppgw.sqlite"), self.clock, retention=retention)
        self.addCleanup(store.close)
        return store

    def reopen(self, store: Store) -> Store:
        store.close()
        again = Store(store.path, self.clock, retention=store.retention)
        self.addCleanup(again.close)
        return again

    def turn(self) -> None:
        self.clock.advance(0)


class MemoryConformance(StoreConformance, SynchronousTestCase):
    """The memory store, which has no restart to survive."""

    def make_store(self, retention: float = 7 * DAY) -> MemoryStore:
        store = MemoryStore(retention=retention)
        self.addCleanup(store.close)
        return store
