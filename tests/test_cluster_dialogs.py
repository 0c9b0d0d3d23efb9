"""SMS Dialogs across two gateway nodes on one PostgreSQL database (smppgw.cluster.dialogsync).

Each node is a `DialogTable` on a `PostgresStore` of its own, both on one
schema; node B listens with a `DialogSync`.  The real reactor carries the
writes' commits and the notifications.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.trial.unittest import TestCase

from smppgw.cluster import notifier as notifier_module
from smppgw.cluster.connection import connect
from smppgw.cluster.dialogsync import DialogSync
from smppgw.relay.dialogs import DialogTable
from smppgw.smpp.log import SmppLog
from smppgw.store.postgres import PostgresStore

from .test_store_postgres import OnPostgres

PHONE = "+15550100"


class Clock:
    """Seconds that move only when a test says so (the tables' dialog timeout)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def seconds(self) -> float:
        return self.now


class DialogSyncTests(OnPostgres, TestCase):
    timeout = 20

    def setUp(self) -> Any:
        super().setUp()
        self.clock = Clock()
        self.a = DialogTable(self.clock, 3600, self.store())
        self.b_store = self.store()
        self.b = DialogTable(self.clock, 3600, self.b_store)
        self.refreshes: list[tuple[str, Deferred[None]]] = []
        real_refresh = self.b.refresh

        def refresh(phone: str, bindings: list[Any]) -> None:
            real_refresh(phone, bindings)
            for entry in list(self.refreshes):
                if entry[0] == phone:
                    self.refreshes.remove(entry)
                    entry[1].callback(None)

        self.b.refresh = refresh  # type: ignore[method-assign]
        self.sync = DialogSync(self.b_store, self.b, lambda: connect(self.url()), reactor,
                               SmppLog("*", "none"))
        self.sync.startService()
        self.addCleanup(self.sync.stopService)
        return self.sync.when_listening()

    def store(self) -> PostgresStore:
        store = PostgresStore(self.url(), reactor)
        self.addCleanup(store.close)
        return store

    def refreshed(self, phone: str = PHONE) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.refreshes.append((phone, d))
        return d

    @inlineCallbacks
    def test_binding_made_on_one_node_routes_a_reply_on_the_other(self) -> Any:
        """Node A sends alice's SMS to a phone (binding @a) and bob's (@b); the phone's
        replies, received by node B, go to alice and to bob."""
        heard = self.refreshed()
        self.assertEqual(self.a.outgoing_prefix(PHONE, "alice@example.com"), "@a=alice@example.com ")
        yield heard
        heard = self.refreshed()
        self.assertEqual(self.a.outgoing_prefix(PHONE, "bob@example.com"), "@b=bob@example.com ")
        yield heard
        self.assertEqual(self.b.resolve_incoming(PHONE, "@a: see you").address, "alice@example.com")
        self.assertEqual(self.b.resolve_incoming(PHONE, "@B ok").address, "bob@example.com")
        # Node B binds the next IM user of that phone to the next free letter, not a taken one.
        self.assertEqual(self.b.outgoing_prefix(PHONE, "carol@example.com"),
                         "@c=carol@example.com ")

    @inlineCallbacks
    def test_several_phones_changed_at_once(self) -> Any:
        """Node A sends to two phones in one go: node B reads both again and routes each
        phone's reply to its own IM user."""
        heard = [self.refreshed(PHONE), self.refreshed("+15550111")]
        self.a.outgoing_prefix(PHONE, "alice@example.com")
        self.a.outgoing_prefix("+15550111", "bob@example.com")
        yield gatherResults(heard)
        self.assertEqual((self.b.resolve_incoming(PHONE, "@a: hi").address,
                          self.b.resolve_incoming("+15550111", "@a: hi").address),
                         ("alice@example.com", "bob@example.com"))

    @inlineCallbacks
    def test_retired_on_one_node_gone_on_the_other(self) -> Any:
        """An operator retires a binding through node A: node B no longer routes its letter."""
        heard = self.refreshed()
        self.a.outgoing_prefix(PHONE, "alice@example.com")
        yield heard
        heard = self.refreshed()
        self.a.retire(PHONE, "a")
        yield heard
        self.assertEqual(self.b.resolve_incoming(PHONE, "@a: hello").kind, "unknown-letter")

    @inlineCallbacks
    def test_own_writes_not_read_again(self) -> Any:
        """What node B writes itself is not read back: the only phone it reads again is
        the one node A changed after it."""
        self.b.outgoing_prefix("+15550111", "dave@example.com")
        heard = self.refreshed()
        self.a.outgoing_prefix(PHONE, "alice@example.com")
        yield heard
        self.assertEqual(self.sync.refreshed, 1)

    @inlineCallbacks
    def test_missed_while_disconnected_read_on_reconnection(self) -> Any:
        """Node B's listening connection is cut; node A binds meanwhile (that notification
        is lost); once B listens again it reads every phone and routes the reply."""
        self.patch(notifier_module, "RETRY_FIRST", 0.05)
        reloaded = self.sync.reloads
        self.admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query ILIKE 'LISTEN%%' AND pid <> pg_backend_pid()")
        self.a.outgoing_prefix(PHONE, "alice@example.com")
        yield self.a._store.durable()  # type: ignore[attr-defined]
        yield self.sync.when_listening()
        while self.sync.reloads == reloaded:
            d: Deferred[None] = Deferred()
            reactor.callLater(0.01, d.callback, None)
            yield d
        self.assertEqual(self.b.resolve_incoming(PHONE, "@a: hi").address, "alice@example.com")
