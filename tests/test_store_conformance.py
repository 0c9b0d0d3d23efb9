"""The store conformance suite (smppgw.store.conformance) run against every store, and the
memory store under the queue and the inbound side."""

from __future__ import annotations

import os

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from smppgw.config import parse_config
from smppgw.host.registry import HostRegistry
from smppgw.relay.inbound import Inbound
from smppgw.relay.outbound import Outbound
from smppgw.smpp.codec import PDU
from smppgw.smpp.constants import ESME_ROK
from smppgw.store.conformance import DAY, StoreConformance
from smppgw.store.memory import MemoryStore
from smppgw.store.sqlite import Store

from .test_inbound import FakeHost, make_config
from .test_queue import CONFIG, FakeLink


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


class MemoryStoreInUseTests(SynchronousTestCase):
    """The memory store stands in for the SQLite one under the queue and the inbound side."""

    def outbound(self, store: MemoryStore, clock: Clock, bound: bool = True) -> tuple[Outbound, FakeLink]:
        config = parse_config(CONFIG.format(extra='sender = "*"\nwindow = 3'))
        links = {s.name: FakeLink(s) for s in config.servers if s.enabled}
        outbound = Outbound(config, links, store, clock)  # type: ignore[arg-type]
        self.addCleanup(outbound.stop)
        outbound.restore()
        if bound:
            for link in links.values():
                link.set_state("bound")
        clock.advance(0)
        return outbound, links[""]

    def test_relays_and_answers_a_retry_from_the_store(self) -> None:
        """A message relayed through a queue on a memory store is answered, and so is its retry,
        from the stored row, with no second submit_sm."""
        clock, store = Clock(), MemoryStore()
        outbound, link = self.outbound(store, clock)
        answer = outbound.send_signal("r1", "MESSAGE", "alice@example.com", "+15551234@smpp", "hello")
        clock.advance(0)
        link.answer(message_id="M1")
        clock.advance(0)
        relayed = {"server": "", "parts": 1, "message_ids": ["M1"]}
        self.assertEqual(self.successResultOf(answer), relayed)
        again = outbound.send_signal("r1", "MESSAGE", "alice@example.com", "+15551234@smpp", "hello")
        clock.advance(0)
        self.assertEqual((self.successResultOf(again), link.submits), (relayed, []))
        self.assertEqual(store.outbound("r1").outcome, {"ok": True})  # type: ignore[union-attr]

    def test_restores_what_was_queued(self) -> None:
        """A request queued by one queue on a memory store goes out from the next one started on it."""
        clock, store = Clock(), MemoryStore()
        first, _ = self.outbound(store, clock, bound=False)
        waiting = first.send_signal("r1", "MESSAGE", "alice@example.com", "+15551234@smpp", "hello")
        clock.advance(0)
        first.stop()
        _, link = self.outbound(store, clock)
        [(pdu, _)] = link.submits
        self.assertEqual(pdu.params["destination_addr"], b"15551234")
        link.answer(message_id="M2")
        clock.advance(0)
        self.assertEqual(store.outbound("r1").message_ids, ("M2",))  # type: ignore[union-attr]
        self.assertNoResult(waiting)  # its host asks again after a restart

    def test_inbound_hands_a_message_to_a_host(self) -> None:
        """A deliver_sm kept in a memory store's inbox reaches a host, and its row goes once answered."""
        clock, store, registry = Clock(), MemoryStore(), HostRegistry()
        config = make_config(recipient="sms@example.com")
        inbound = Inbound(config, store, registry, clock, None)  # type: ignore[arg-type]
        inbound.start()
        self.addCleanup(inbound.stop)
        host = FakeHost(auto=True)
        registry.add(host)  # type: ignore[arg-type]
        params = {"source_addr": b"79161234567", "source_addr_ton": 1, "source_addr_npi": 1,
                  "destination_addr": b"15550100", "dest_addr_ton": 1, "dest_addr_npi": 1,
                  "esm_class": 0, "data_coding": 0, "short_message": b"hello"}
        status = inbound.handler(config.servers[0])(PDU("deliver_sm", 1, 0, params))
        clock.advance(0)
        self.assertEqual(self.successResultOf(status) if isinstance(status, Deferred) else status,
                         ESME_ROK)
        self.assertEqual(host.signals(), [{"method": "MESSAGE", "sender": "+79161234567@sim._smpp",
                                           "recipient": "sms@example.com", "body": "hello",
                                           "server": "sim"}])
        self.assertEqual(store.inbox(), [])
