"""Tests for the gateway's counters: fed by the link, the queue, Outbound and Inbound, read by ServerStatus."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface.verify import verifyObject

from smppgw.errors import SmscRejected, UnknownServerError
from smppgw.host.commands import ServerStatus
from smppgw.smpp.codec import PDU
from smppgw.smpp.constants import STATUSES
from smppgw.smpp.link import BINDING, BOUND, DISCONNECTED, Link
from smppgw.stats import GatewayStats, IStats, ServerStats, status_label

from . import test_e2e, test_queue
from .test_link import FakeEndpoint, LinkCase, server_config, to_next_call


class ServerStatsTests(SynchronousTestCase):
    def test_interface(self) -> None:
        """GatewayStats provides IStats."""
        self.assertTrue(verifyObject(IStats, GatewayStats(Clock())))

    def test_rate_over_the_last_minute(self) -> None:
        """The rate is the parts accepted in the last 60 seconds over 60, on the injected clock."""
        clock = Clock()
        stats = ServerStats("s", clock)
        for _ in range(60):
            for _ in range(3):
                stats.accepted()
            clock.advance(1)
        self.assertEqual(stats.rate(), 177 / 60)  # the first second has left the window
        clock.advance(30)
        self.assertEqual(stats.rate(), 87 / 60)
        clock.advance(30)
        self.assertEqual((stats.rate(), stats.sent), (0.0, 180))

    def test_status_label(self) -> None:
        """A status goes by its SMPP name, or in hex when it has none."""
        self.assertEqual(status_label(STATUSES["ESME_RTHROTTLED"]), "ESME_RTHROTTLED")
        self.assertEqual(status_label(0x444), "0x00000444")

    def test_histogram_buckets_are_cumulative(self) -> None:
        """Each request duration counts in its bucket and every one above, and in the sum."""
        stats = GatewayStats(Clock())
        for seconds in (0.005, 0.25, 0.3, 1000.0):  # a bucket holds its bound (le)
            stats.request_finished("ok", seconds)
        buckets = dict(stats.request_seconds.cumulative())
        self.assertEqual((buckets["0.01"], buckets["0.25"], buckets["0.5"], buckets["900.0"],
                          buckets["+Inf"]), (1, 2, 3, 3, 4))
        self.assertAlmostEqual(stats.request_seconds.sum, 1000.555)
        self.assertEqual(stats.requests["ok"], 4)


class QueueStatsTests(SynchronousTestCase):
    """The queue's counters, through the outbound queue and a fake link on a Clock."""

    make = test_queue.QueueTests.make
    send = test_queue.QueueTests.send

    def test_sent_failed_throttled(self) -> None:
        """Accepted parts, refusals by status and throttling show in ServerStatus's row."""
        outbound, links, clock, store = self.make()
        link = links[""]
        for i in range(3):
            self.send(outbound, clock, rid=f"r{i}", recipient=f"+155500{i}@smpp")
        link.answer(0, message_id="A")
        link.answer(0, status=STATUSES["ESME_RINVDSTADR"])
        link.answer(0, status=STATUSES["ESME_RTHROTTLED"])
        [row] = [r for r in outbound.status() if r["name"] == ""]
        self.assertEqual((row["sent"], row["failed"], row["throttled"]), (1, 1, 1))
        self.assertEqual(row["errors"], {"ESME_RINVDSTADR": 1, "ESME_RTHROTTLED": 1})
        self.assertEqual((row["in_flight"], row["window"], row["queued"]), (0, 3, 1))

    def test_rate_in_status(self) -> None:
        """ServerStatus's per_second is the accepted parts of the last minute per second."""
        outbound, links, clock, store = self.make(extra="window = 10")
        for i in range(30):
            self.send(outbound, clock, rid=f"r{i}", recipient=f"+15550{i:03d}@smpp")
            links[""].answer(0)
            clock.advance(1)
        self.assertEqual(outbound.status()[0]["per_second"], 0.5)
        clock.advance(60)
        self.assertEqual(outbound.status()[0]["per_second"], 0.0)
        self.assertEqual(outbound.status()[0]["sent"], 30)

    def test_requests_by_outcome_and_duration(self) -> None:
        """Each request counts once by its final outcome; an accepted one is timed from its acceptance."""
        outbound, links, clock, store = self.make()
        ok = self.send(outbound, clock, rid="ok")
        rejected = self.send(outbound, clock, rid="no", recipient="+15559999@smpp")
        clock.advance(2)
        links[""].answer(0, message_id="M")
        links[""].answer(0, status=STATUSES["ESME_RINVDSTADR"])
        clock.advance(0)
        self.successResultOf(ok)
        self.failureResultOf(rejected, SmscRejected)
        self.failureResultOf(self.send(outbound, clock, rid="u", recipient="+1555@nowhere._smpp"),
                             UnknownServerError)
        self.failureResultOf(self.send(outbound, clock, rid="no"), SmscRejected)  # asked again
        stats = outbound.stats
        self.assertEqual(dict(stats.requests), {"ok": 1, "SMSC_REJECTED": 1, "UNKNOWN_SERVER": 1})
        self.assertEqual((stats.request_seconds.count, stats.request_seconds.sum), (2, 4.0))
        self.assertEqual(dict(stats.request_seconds.cumulative())["2.5"], 2)


class LinkStatsTests(LinkCase):
    """The link's counters: state and since, binds, reconnects, last error."""

    def test_binds_reconnects_and_state(self) -> None:
        """A bind, a loss and a reconnect show as binds, reconnects, state since and the last error."""
        link, endpoint, clock = self.make()
        stats = link.stats
        clock.advance(100)
        link.startService()
        self.bind_ok(endpoint, clock)
        self.assertEqual((stats.state, stats.since, stats.bound_since, stats.binds),
                         (BOUND, 100.0, 100.0, 1))
        clock.advance(5)
        endpoint.drop()
        self.assertEqual((stats.state, stats.since, stats.bound_since), (DISCONNECTED, 105.0, None))
        self.assertIn("closed by the SMSC", stats.last_error)
        self.assertEqual(stats.last_error_at, 105.0)
        to_next_call(clock)
        self.assertEqual((stats.state, stats.reconnects), (BINDING, 1))
        self.bind_ok(endpoint, clock)
        self.assertEqual((stats.binds, stats.reconnects, stats.last_error), (2, 1, ""))

    def test_replaced_link_adds_to_the_same_counters(self) -> None:
        """A new link given the server's counters goes on counting where the old one stopped,
        and the old one's late loss does not change the state shown."""
        clock = Clock()
        shared = GatewayStats(clock).server("p1")
        endpoints = []
        for _ in range(2):
            endpoint = FakeEndpoint()
            link = Link(server_config(), endpoint, clock, "none", jitter=lambda: 0.0, stats=shared)
            self.addCleanup(self._stop, link, clock, endpoint)
            link.startService()
            self.bind_ok(endpoint, clock)
            endpoint.answer(PDU("deliver_sm", 9, 0, {"short_message": b"hi"}))
            endpoint.sent()  # its answer
            endpoints.append(endpoint)
            clock.advance(10)
        self.assertEqual((shared.binds, shared.reconnects, shared.received), (2, 1, 2))
        endpoints[0].drop()  # the replaced link's connection goes only now
        self.assertEqual((shared.state, shared.bound_since, shared.last_error), (BOUND, 10.0, ""))


    def test_replaced_link_binding_late(self) -> None:
        """A replaced link whose bind completes after its successor's counts the bind, not its time."""
        clock = Clock()
        shared = GatewayStats(clock).server("p1")
        links = []
        for _ in range(2):
            endpoint = FakeEndpoint()
            link = Link(server_config(), endpoint, clock, "none", jitter=lambda: 0.0, stats=shared)
            self.addCleanup(self._stop, link, clock, endpoint)
            link.startService()
            links.append((link, endpoint))
        self.bind_ok(links[1][1], clock)
        clock.advance(5)  # within the bind's response_timeout
        self.bind_ok(links[0][1], clock)
        self.assertEqual((shared.binds, shared.bound_since), (2, 0.0))


class GatewayStatsTests(TestCase):
    """Counters of a whole gateway on 127.0.0.1 against the simulator, read over AMP."""

    timeout = 30
    start = test_e2e.GatewayTests.start
    _stop_gateway = test_e2e.GatewayTests._stop_gateway
    _stop_listening = test_e2e.GatewayTests._stop_listening
    send = test_e2e.GatewayTests.send

    @inlineCallbacks
    def test_received_by_kind(self) -> Any:
        """A short SMS, a long one in two parts and a receipt count by kind; ServerStatus counts PDUs."""
        host = yield self.start()
        answer = yield self.send(host, "r1")
        yield self.simulator.deliver_text("15551234", "15550100", "short")
        yield self.simulator.deliver_text("15551234", "15550100", "long " * 60)
        yield self.simulator.deliver_receipt(answer["message_ids"][0])
        yield host.when(host.reports, 1)
        kinds = self.gateway.stats.server("").received_kinds
        self.assertEqual(dict(kinds), {"message": 2, "part": 1, "receipt": 1})
        status = yield host.callRemote(ServerStatus)
        [row] = status["servers"]
        self.assertEqual((row["sent"], row["received"], row["state"]), (1, 4, "bound"))

    @inlineCallbacks
    def test_binds_survive_a_dropped_connection(self) -> Any:
        """The SMSC closing the link counts a reconnect and a second bind in the gateway's stats."""
        yield self.start()
        link = self.gateway.links[""]
        self.assertIs(link.stats, self.gateway.stats.server(""))
        lost: Deferred[None] = Deferred()
        link.observe(lambda state: state == DISCONNECTED and not lost.called and lost.callback(None))
        for connection in list(self.simulator.connections):
            connection.close()
        yield lost
        yield link.when_bound()
        stats = self.gateway.stats.server("")
        self.assertEqual((stats.binds, stats.reconnects), (2, 1))
        self.assertEqual(self.gateway.outbound.status()[0]["binds"], 2)
