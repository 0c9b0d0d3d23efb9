"""The gateway's maintenance jobs run on the node that maintains the store, at their next tick."""

from __future__ import annotations

import shutil
import tempfile

from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from smppgw.cluster.election import Sole
from smppgw.config import parse_config
from smppgw.service import PRUNE_EVERY, build_gateway
from smppgw.testing.process import gateway_config

DAY = 86400.0


class PruningTests(SynchronousTestCase):
    """The hourly pruning of finished requests past the store's retention."""

    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        # Unix socket paths must be short (108 bytes): not under trial's temp folder.
        state = tempfile.mkdtemp(prefix="smppgw-")
        self.addCleanup(shutil.rmtree, state, True)
        text = gateway_config(state, 2775).replace(f'path = "{state}/smppgw.sqlite"',
                                                  'path = ":memory:"')
        self.gateway = build_gateway(parse_config(text), self.reactor)
        self.maintaining = False
        self.patch(self.gateway.maintenance, "maintains", lambda: self.maintaining)
        self.gateway.startService()
        self.addCleanup(self.gateway.stopService)

    def test_pruned_by_the_maintainer(self) -> None:
        """A finished request past retention stays while this node does not maintain,
        and is forgotten at the first hourly tick once it does."""
        self.assertIsInstance(self.gateway.maintenance, Sole)
        store = self.gateway.store
        store.add_outbound("old", "", {}, 1, 0.0)
        store.finish("old", {"ok": True})
        self.reactor.advance(7 * DAY + PRUNE_EVERY)
        self.assertIsNotNone(store.outbound("old"))
        self.maintaining = True
        self.reactor.advance(PRUNE_EVERY - 1)
        self.assertIsNotNone(store.outbound("old"))
        self.reactor.advance(1)
        self.assertIsNone(store.outbound("old"))
