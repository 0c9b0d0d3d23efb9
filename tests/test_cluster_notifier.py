"""LISTEN/NOTIFY on the reactor: a node hears at once what another committed."""

from __future__ import annotations

from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase

from smppgw.cluster import notifier as notifier_module
from smppgw.cluster.connection import connect
from smppgw.cluster.notifier import Notifier, notify
from smppgw.smpp.log import SmppLog
from smppgw.store.interfaces import BadStoreInput

from .test_store_postgres import OnPostgres


class NotifierTests(OnPostgres, TestCase):
    timeout = 20

    def setUp(self) -> Any:
        super().setUp()
        self.heard: list[tuple[str, str]] = []
        self.waiting: list[tuple[int, Deferred[None]]] = []
        self.reconnections = 0
        self.reconnected: Deferred[None] = Deferred()

    def received(self, channel: str, payload: str) -> None:
        self.heard.append((channel, payload))
        self.settle()

    def settle(self) -> None:
        for entry in list(self.waiting):
            if len(self.heard) >= entry[0]:
                self.waiting.remove(entry)
                entry[1].callback(None)

    def heard_count(self, count: int) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        self.waiting.append((count, d))
        self.settle()
        return d

    def notifier(self, channels: tuple[str, ...] = ("smppgw_outcome",)) -> Notifier:
        def reconnected() -> None:
            self.reconnections += 1
            self.reconnected.callback(None)

        listener = Notifier(lambda: connect(self.url()), channels, reactor, self.received,
                            reconnected, SmppLog("*", "none"))
        self.addCleanup(listener.stop)
        return listener

    @inlineCallbacks
    def test_committed_notification_heard(self) -> Any:
        """A notification sent in another connection's transaction is heard once that commits,
        with its channel and payload; one in a transaction rolled back never is."""
        yield self.notifier(("smppgw_outcome", "smppgw_queued")).start()
        writer = connect(self.url())
        self.addCleanup(writer.close)
        try:
            with writer.transaction():
                notify(writer, "smppgw_queued", "lost")
                raise RuntimeError("rolled back")
        except RuntimeError:
            pass
        with writer.transaction():
            notify(writer, "smppgw_outcome", "r1")
            notify(writer, "smppgw_queued", "eu")
        yield self.heard_count(2)
        self.assertEqual(self.heard, [("smppgw_outcome", "r1"), ("smppgw_queued", "eu")])

    @inlineCallbacks
    def test_connection_cut_then_heard_again(self) -> Any:
        """With its connection ended by the server, the Notifier connects again, says so
        (``reconnected``, for the caller to read what it missed), and hears what follows."""
        self.patch(notifier_module, "RETRY_FIRST", 0.05)
        listener = self.notifier()
        yield listener.start()
        self.admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE query LIKE 'LISTEN%%' AND datname = current_database()")
        yield self.reconnected
        self.assertEqual(self.reconnections, 1)
        self.assertTrue(listener.listening)
        writer = connect(self.url())
        self.addCleanup(writer.close)
        notify(writer, "smppgw_outcome", "after")
        yield self.heard_count(1)
        self.assertEqual(self.heard, [("smppgw_outcome", "after")])

    @inlineCallbacks
    def test_stopped_leaves_nothing_watched(self) -> Any:
        """A stopped Notifier closes its connection and leaves the reactor nothing to watch."""
        listener = self.notifier()
        yield listener.start()
        listener.stop()
        self.assertFalse(listener.listening)
        self.assertNotIn(listener, reactor.getReaders())
        listener.stop()  # a second stop changes nothing

    def test_bad_input(self) -> None:
        """No channel, or a payload over NOTIFY's limit, is refused."""
        self.assertRaises(BadStoreInput, Notifier, lambda: None, (), reactor, self.received)
        writer = connect(self.url())
        self.addCleanup(writer.close)
        self.assertRaises(BadStoreInput, notify, writer, "smppgw_outcome", "x" * 8000)
