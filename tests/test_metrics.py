"""Tests for /metrics, /healthz and the Status page's figures on the admin: real traffic, the token rule, the probes."""

from __future__ import annotations

import re
import shutil
import tempfile
from html import unescape
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, UNIXClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from smppgw import __version__
from smppgw.admin import pages
from smppgw.admin.health import STALE_AFTER
from smppgw.admin.testing import FakeGateway, TestBrowser, synchronous
from smppgw.admin.web import AdminSite
from smppgw.config import parse_config
from smppgw.errors import SmscRejected, TryLater
from smppgw.service import build_gateway
from smppgw.smpp.constants import STATUSES
from smppgw.store.sqlite import Store
from smppgw.testing.process import FullDisk, gateway_config
from smppgw.testing.simulator import SMSCSimulator

from . import test_e2e
from .test_admin_auth import HASH, PASSWORD


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a scrape by (name, sorted labels), as prometheus-client's parser reads it."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def admin_config(state: str, smsc_port: int, admin: str = "") -> str:
    return gateway_config(state, smsc_port, sender="+15550100", throttle_pause="100ms").replace(
        'listen = ""', f'listen = "tcp:0:interface=127.0.0.1"\n{admin}')


def listening_port(service: Any) -> Deferred[Any]:
    """The port a started StreamServerEndpointService listens on, its own Deferred kept intact."""
    d: Deferred[Any] = Deferred()

    def seen(port: Any) -> Any:
        d.callback(port)
        return port

    service._waitingForPort.addCallback(seen)
    return d


class _HTTPClient(Protocol):
    """Collects a whole HTTP/1.0 answer; C{done} fires with it when the server closes."""

    def __init__(self) -> None:
        self.received: list[bytes] = []
        self.done: Deferred[bytes] = Deferred()

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.done.callback(b"".join(self.received))


class LoopbackTests(TestCase):
    """A gateway on 127.0.0.1 bound to the simulator, its admin on a port of its own."""

    timeout = 30

    @inlineCallbacks
    def setUp(self) -> Any:
        self.state = tempfile.mkdtemp(prefix="smppgw-")  # short: it holds the AMP socket
        self.addCleanup(shutil.rmtree, self.state, True)
        self.simulator = SMSCSimulator({"gw": "pw"}, reactor)
        listening = yield reactor.listenTCP(0, self.simulator, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        config = parse_config(admin_config(self.state, listening.getHost().port,
                                           f'password_hash = "{HASH}"'))
        self.gateway = build_gateway(config, reactor)
        self.gateway.privilegedStartService()
        self.gateway.startService()
        self.addCleanup(self.gateway.stopService)
        port = yield listening_port(self.gateway.getServiceNamed("admin"))
        self.port = port.getHost().port
        yield self.gateway.links[""].when_bound()
        self.host = yield connectProtocol(
            UNIXClientEndpoint(reactor, f"{self.state}/amp.sock"), test_e2e.Host())
        self.addCleanup(self.host.transport.loseConnection)

    @inlineCallbacks
    def get(self, path: str) -> Any:
        """The status, headers and body of GET C{path}, over a real connection."""
        client = yield connectProtocol(
            TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), _HTTPClient())
        client.transport.write(f"GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode())
        raw = yield client.done
        head, _, body = raw.partition(b"\r\n\r\n")
        status, *lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines)
        return int(status.split()[1]), headers, body.decode("utf-8")

    def send(self, rid: str, number: str = "+15551234") -> Deferred[Any]:
        return test_e2e.GatewayTests.send(self, self.host, rid, number)  # type: ignore[arg-type]

    @inlineCallbacks
    def test_metrics_after_traffic(self) -> Any:
        """After accepted, refused and throttled submits and an SMS from a phone, /metrics counts each."""
        yield gatherResults([self.send(f"ok{i}", f"+1555000{i}") for i in range(3)])
        self.simulator.faults.submit_status = STATUSES["ESME_RINVDSTADR"]
        yield self.assertFailure(self.send("bad"), SmscRejected)
        self.simulator.faults.submit_status = 0
        self.simulator.faults.throttle_every = 5  # the next submit is the 5th
        yield self.send("slow")
        yield self.simulator.deliver_text("15559876", "15550100", "hi there")
        yield self.host.when(self.host.delivered, 1)
        code, headers, text = yield self.get("/metrics")
        self.assertEqual(code, 200)
        self.assertEqual(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8")
        got = samples(text)
        server = (("server", ""),)
        expected = {
            ("smppgw_submitted_parts_total", server): 4,
            ("smppgw_submit_errors_total", (("server", ""), ("status", "ESME_RINVDSTADR"))): 1,
            ("smppgw_submit_errors_total", (("server", ""), ("status", "ESME_RTHROTTLED"))): 1,
            ("smppgw_throttled_total", server): 1,
            ("smppgw_requests_total", (("outcome", "ok"),)): 4,
            ("smppgw_requests_total", (("outcome", "SMSC_REJECTED"),)): 1,
            ("smppgw_requests_total", (("outcome", "NOT_RELAYED"),)): 0,
            ("smppgw_received_total", (("kind", "message"), ("server", ""))): 1,
            ("smppgw_received_total", (("kind", "receipt"), ("server", ""))): 0,
            ("smppgw_queued", server): 0,
            ("smppgw_in_flight", server): 0,
            ("smppgw_link_up", server): 1,
            ("smppgw_binds_total", server): 1,
            ("smppgw_request_seconds_count", ()): 5,
            ("smppgw_dialog_bindings", ()): 0,
            ("smppgw_build_info", (("version", __version__),)): 1,
        }
        self.assertEqual({key: got.get(key) for key in expected}, expected)
        self.assertIn(("smppgw_inbox", ()), got)
        self.assertIn(("smppgw_request_seconds_bucket", (("le", "+Inf"),)), got)

    @inlineCallbacks
    def test_status_page_figures(self) -> Any:
        """The Status page shows the server's state since when, bind type, window in use and counters."""
        yield gatherResults([self.send(f"ok{i}", f"+1555000{i}") for i in range(3)])
        self.simulator.faults.submit_status = STATUSES["ESME_RINVDSTADR"]
        yield self.assertFailure(self.send("bad"), SmscRejected)
        self.simulator.faults.submit_status = 0
        self.simulator.faults.throttle_every = 5
        yield self.send("slow")
        yield self.simulator.deliver("15559876", "15550100", b"hi")
        browser = TestBrowser(AdminSite(self.gateway, reactor, synchronous))
        browser.log_in(PASSWORD)
        page = browser.get("/status")
        row = re.search(r'<tr id="status-0">(.*?)</tr>', page.body, re.S)
        assert row is not None
        cells = {name: unescape(value)
                 for name, value in re.findall(r'<td class="(\w+)">([^<]*)</td>', row[1])}
        cells.pop("rate")  # the pace learned from the throttling, if any: tested in test_queue
        self.assertRegex(cells.pop("since"), r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC, \d+s ago$")
        self.assertEqual(cells, {
            "name": '""', "mode": "send-and-receive", "address": self.gateway.config.servers[0].address,
            "bind_type": "transceiver", "state": "bound", "queued": "0", "window": "0 / 10",
            "sent": "4", "received": "1", "failed": "1", "throttled": "1",
            "per_second": f"{4 / 60:.2f}", "last_error": ""})

    @inlineCallbacks
    def test_metrics_follow_the_link(self) -> Any:
        """smppgw_link_up goes to 0 while the SMSC is gone, and the queue's depth shows."""
        lost: Deferred[None] = Deferred()
        link = self.gateway.links[""]
        link.observe(lambda state: state == "disconnected" and not lost.called
                     and lost.callback(None))
        self.simulator.faults.bind_status = STATUSES["ESME_RBINDFAIL"]
        for connection in list(self.simulator.connections):
            connection.close()
        yield lost
        waiting = self.send("later")
        _, _, text = yield self.get("/metrics")
        got = samples(text)
        self.assertEqual((got[("smppgw_link_up", (("server", ""),))],
                          got[("smppgw_queued", (("server", ""),))]), (0, 1))
        self.simulator.faults.bind_status = 0
        yield waiting

    @inlineCallbacks
    def test_healthz(self) -> Any:
        """/healthz says ok; while commits fail it answers 503 naming the store; then ok again."""
        code, _, text = yield self.get("/healthz")
        self.assertEqual((code, text), (200, "ok\n"))
        store = self.gateway.store
        assert store is not None
        real = store._db
        store._db = FullDisk(real)  # type: ignore[assignment]
        yield self.assertFailure(self.send("r1"), TryLater)
        code, _, text = yield self.get("/healthz")
        self.assertEqual((code, text),
                         (503, "store not writable: its last commit failed\n"))
        store._db = real
        yield self.send("r2")
        code, _, text = yield self.get("/healthz")
        self.assertEqual((code, text), (200, "ok\n"))

    @inlineCallbacks
    def test_healthz_while_a_link_is_paused(self) -> Any:
        """While the store cannot record what the SMSC accepted, /healthz answers 503 naming the
        paused server; once it writes again, ok."""
        self.simulator.faults.response_delay = 0.2
        answer = self.send("r1").addErrback(lambda f: f.trap(TryLater))
        yield self.simulator.when_received(1)  # its row is committed by now
        store = self.gateway.store
        assert store is not None
        real = store._db
        store._db = FullDisk(real)  # type: ignore[assignment]
        queue = self.gateway.outbound.queues[""]
        while not queue.paused:
            yield test_e2e.turn()
        code, _, text = yield self.get("/healthz")
        self.assertEqual(code, 503)
        self.assertIn("server '' paused: store not writable (commit failed", text)
        store._db = real
        while queue.paused:
            yield test_e2e.turn()
        yield answer
        code, _, text = yield self.get("/healthz")
        self.assertEqual((code, text), (200, "ok\n"))


class SiteTests(SynchronousTestCase):
    """The admin site on a Clock, with the fake gateway of smppgw.admin.testing."""

    def make(self, admin: str = "") -> tuple[TestBrowser, FakeGateway, Clock, AdminSite]:
        config = parse_config(f'[admin]\nlisten = ""\n{admin}\n[[server]]\nname = "a"\n'
                              'address = "127.0.0.1"\nsystem_id = "x"\npassword = "p"\n')
        clock = Clock()
        gateway = FakeGateway(config)
        site = AdminSite(gateway, clock, synchronous)
        site.doStart()
        self.addCleanup(site.doStop)
        return TestBrowser(site), gateway, clock, site

    def test_token_required_when_set(self) -> None:
        """With metrics_token set, /metrics answers 401 without it or with another, 200 with it."""
        browser, gateway, clock, site = self.make('metrics_token = "s3cret"')
        answers = [browser.get("/metrics", headers=headers).code for headers in (
            {}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic s3cret"},
            {"Authorization": "Bearer s3cret"})]
        self.assertEqual(answers, [401, 401, 401, 200])
        self.assertEqual(browser.get("/metrics").header("www-authenticate"),
                         'Bearer realm="smppgw metrics"')

    def test_no_token_no_login(self) -> None:
        """Without a token /metrics needs no login and lists every configured server."""
        browser, gateway, clock, site = self.make()
        gateway.stats.server("a").accepted()
        response = browser.get("/metrics")
        self.assertEqual(response.code, 200)
        got = samples(response.body)
        self.assertEqual((got[("smppgw_submitted_parts_total", (("server", "a"),))],
                          got[("smppgw_link_up", (("server", "a"),))]), (1, 1))

    def test_not_started(self) -> None:
        """A gateway without a store yet is not healthy."""
        browser, gateway, clock, site = self.make()
        response = browser.get("/healthz")
        self.assertEqual((response.code, response.body), (503, "the gateway is not started\n"))

    def test_stalled_heartbeat(self) -> None:
        """A heartbeat older than STALE_AFTER seconds (the reactor did not turn) makes /healthz 503."""
        browser, gateway, clock, site = self.make()
        gateway.store = Store(":memory:", clock)
        self.addCleanup(gateway.store.close)
        clock.advance(30)  # the heartbeat beats on
        self.assertEqual(browser.get("/healthz").code, 200)
        clock.rightNow += STALE_AFTER + 1  # time passes, no call runs
        response = browser.get("/healthz")
        self.assertEqual((response.code, response.body),
                         (503, f"reactor stalled: the last heartbeat was {STALE_AFTER + 1:.1f}s"
                               " ago\n"))
        clock.advance(0)
        self.assertEqual(browser.get("/healthz").code, 200)

    def test_status_page_times(self) -> None:
        """The Status page says since when a state holds and when the last error came, in UTC and how long ago."""
        row = {"name": "a", "state": "disconnected", "since": 100.0, "window": 10, "in_flight": 0,
               "last_error": "cannot connect: connection refused", "last_error_at": 3700.0}
        page = pages.status_page([row], "problems", ["problems"], "csrf", now=3800.0)
        cells = dict(re.findall(r'<td class="(\w+)">([^<]*)</td>', page))
        self.assertEqual((cells["since"], unescape(cells["last_error"]), cells["window"]), (
            "1970-01-01 00:01:40 UTC, 1h 1m ago",
            "cannot connect: connection refused (1970-01-01 01:01:40 UTC, 1m 40s ago)", "0 / 10"))
