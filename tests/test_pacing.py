"""Tests for pacing: the rate controller alone, and a whole link against an SMSC that limits by spacing."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from smppgw.config import parse_config
from smppgw.relay.outbound import Outbound
from smppgw.smpp.link import Link
from smppgw.smpp.pacing import SETTLE_PERIODS, Pacer
from smppgw.store.sqlite import Store
from smppgw.testing.simulator import SMSCSimulator


class _Wire:
    """One side of an in-memory connection: what is written reaches the peer `latency` later."""

    def __init__(self, clock: Clock, latency: float) -> None:
        self.clock = clock
        self.latency = latency
        self.peer: _Wire | None = None
        self.protocol: Any = None
        self.closed = False

    def write(self, data: bytes) -> None:
        if not self.closed:
            self.clock.callLater(self.latency, self._arrive, data)

    def writeSequence(self, data: list[bytes]) -> None:
        self.write(b"".join(data))

    def _arrive(self, data: bytes) -> None:
        assert self.peer is not None
        if not self.peer.closed:
            self.peer.protocol.dataReceived(data)

    def loseConnection(self) -> None:
        if not self.closed:
            self.clock.callLater(self.latency, self._close)

    abortConnection = loseConnection

    def _close(self) -> None:
        assert self.peer is not None
        for side in (self, self.peer):
            if not side.closed:
                side.closed = True
                side.protocol.connectionLost(Failure(ConnectionDone("closed")))

    def getPeer(self) -> str:
        return "loopback"

    getHost = getPeer


class LoopbackEndpoint:
    """A client endpoint whose connections reach `simulator` through the clock, `latency` each way."""

    def __init__(self, simulator: SMSCSimulator, clock: Clock, latency: float = 0.002) -> None:
        self.simulator = simulator
        self.clock = clock
        self.latency = latency

    def connect(self, factory: Any) -> Deferred[Any]:
        client = factory.buildProtocol(None)
        server = self.simulator.buildProtocol(None)
        to_server, to_client = _Wire(self.clock, self.latency), _Wire(self.clock, self.latency)
        to_server.peer, to_client.peer = to_client, to_server
        to_server.protocol, to_client.protocol = client, server
        server.makeConnection(to_client)
        client.makeConnection(to_server)
        return succeed(client)


CONFIG = """
[[server]]
name = ""
mode = "send-only"
address = "127.0.0.1"
system_id = "gw"
password = "pw"
sender = "+15550100"
window = {window}
{extra}
"""


class Run:
    """A gateway's outbound side, its link and the simulator behind it, on one clock."""

    def __init__(self, test: SynchronousTestCase, max_rate: float = 0.0, extra: str = "",
                 latency: float = 0.002, window: int = 10) -> None:
        self.clock = Clock()
        self.simulator = SMSCSimulator(None, self.clock)
        self.simulator.faults.max_rate = max_rate
        self.accepted_at: list[float] = []
        accept = self.simulator._accept

        def accepted(pdu: Any) -> str:
            self.accepted_at.append(self.clock.seconds())
            return accept(pdu)

        self.simulator._accept = accepted  # type: ignore[method-assign]
        config = parse_config(CONFIG.format(extra=extra, window=window))
        server = config.servers[0]
        self.link = Link(server, LoopbackEndpoint(self.simulator, self.clock, latency), self.clock,
                         "none", jitter=lambda: 0.0)
        self.store = Store(":memory:", self.clock)
        self.outbound = Outbound(config, {"": self.link}, self.store, self.clock)
        self.link.startService()
        self.answers: list[Any] = []
        self.sent = 0
        test.addCleanup(self.outbound.stop)

    def send(self, count: int) -> None:
        for i in range(count):
            d = self.outbound.send_signal(f"r{self.sent}", "MESSAGE", "a@b.c",
                                          f"+1555{i:06d}@smpp", "hello")
            d.addBoth(self.answers.append)
            self.sent += 1

    def run(self, until: float = 3600.0) -> None:
        """Advance the clock, call by call, until every request is answered."""
        clock = self.clock
        while clock.seconds() < until:
            if len(self.answers) == self.sent:
                return
            calls = clock.getDelayedCalls()
            if not calls:
                return
            clock.advance(max(0.0, min(c.getTime() for c in calls) - clock.seconds()))

    def rate_after(self, start: float) -> float:
        """Submits accepted per second from `start` to the last acceptance."""
        times = [t for t in self.accepted_at if t >= start]
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


class PacerTests(SynchronousTestCase):
    def make(self, accepted: int = 0, **kw: Any) -> tuple[Pacer, Clock, list[int]]:
        clock = Clock()
        count = [accepted]
        return Pacer(clock, accepted=lambda: count[0], **kw), clock, count

    def spaced(self, pacer: Pacer, clock: Clock, sends: int) -> None:
        """Send `sends` submits as the queue would, each answered before the next leaves."""
        for _ in range(sends):
            clock.advance(max(0.0, pacer.next_send - clock.seconds()))
            pacer.sent(clock.seconds())

    def test_unpaced_until_throttled(self) -> None:
        """A pacer that has seen no throttle lets every submit go at once, and is not told of them."""
        pacer, clock, _ = self.make()
        self.assertEqual((pacer.paced, pacer.next_send, pacer.rate), (False, 0.0, None))

    def test_one_episode_per_pause(self) -> None:
        """The window's throttled answers that arrive during the pause count as one episode."""
        pacer, clock, _ = self.make(pause=1.0)
        clock.advance(5)
        self.assertTrue(pacer.throttled(in_flight=9))
        clock.advance(0.01)
        self.assertEqual([pacer.throttled(in_flight=n) for n in range(8, -1, -1)], [False] * 9)
        self.assertEqual((pacer.episodes, pacer.next_send), (1, 6.0))
        clock.advance(1.0)
        self.assertTrue(pacer.throttled())
        self.assertEqual(pacer.episodes, 2)

    def test_burst_throttled_starts_pacing_at_the_floor(self) -> None:
        """A window throttled all but its first submit is paced after the pause, from the floor up."""
        pacer, clock, accepted = self.make(floor=2.0)
        accepted[0] = 1
        pacer.throttled(in_flight=9)
        self.assertEqual((pacer.paced, pacer.rate, pacer.next_send), (True, 2.0, 1.0))
        self.spaced(pacer, clock, 1)
        self.assertEqual(pacer.next_send, 1.5)

    def test_start_below_the_rate_accepted_unpaced(self) -> None:
        """A busy link throttled for spacing starts at three quarters of the rate it had accepted."""
        pacer, clock, accepted = self.make()
        clock.advance(10)
        accepted[0] = 3999
        pacer.throttled(in_flight=9)
        self.assertIsNone(pacer.rate)
        clock.advance(2)
        accepted[0] = 4000
        pacer.throttled(in_flight=9)
        self.assertEqual(pacer.rate, 250.0)

    def test_throttle_after_back_to_back_acceptances_does_not_pace(self) -> None:
        """An SMSC that accepted several submits sent at once before throttling one is met by the pause alone."""
        pacer, clock, accepted = self.make()
        clock.advance(5)
        accepted[0] = 3
        self.assertTrue(pacer.throttled(in_flight=5))
        self.assertEqual((pacer.rate, pacer.paced, pacer.next_send), (None, False, 6.0))

    def test_slow_start_doubles_then_bisects(self) -> None:
        """The rate doubles each time its spacing held twice; throttled, it goes halfway back to the last that held."""
        pacer, clock, _ = self.make(floor=1.0)
        pacer.throttled(in_flight=9)
        rates = []
        for _ in range(4):
            self.spaced(pacer, clock, 3)
            rates.append(pacer.rate)
        self.assertEqual(rates, [2.0, 4.0, 8.0, 16.0])
        self.spaced(pacer, clock, 1)
        self.assertTrue(pacer.throttled())
        self.assertEqual(pacer.rate, 12.0)
        self.spaced(pacer, clock, 1)
        self.assertTrue(pacer.throttled())
        self.assertEqual(pacer.rate, 10.0)

    def test_settles_then_probes(self) -> None:
        """Near the throttled rate the pacer settles, and tries faster only after SETTLE_PERIODS quiet periods."""
        pacer, clock, _ = self.make(floor=8.0, step=1.0, period=1.0)
        pacer.throttled(in_flight=9)
        self.spaced(pacer, clock, 3)
        self.assertEqual(pacer.rate, 16.0)
        self.spaced(pacer, clock, 1)
        pacer.throttled()
        throttled_at = clock.seconds()
        rates: list[tuple[float, float]] = []
        while clock.seconds() < throttled_at + SETTLE_PERIODS + 3:
            self.spaced(pacer, clock, 1)
            assert pacer.rate is not None
            rates.append((clock.seconds() - throttled_at, pacer.rate))
        self.assertLess(max(r for t, r in rates if t < SETTLE_PERIODS), 16.0)
        self.assertGreater(max(r for t, r in rates), 16.0)

    def test_throttled_at_a_rate_that_held_slows_down(self) -> None:
        """A throttle at once at a rate that had held means the limit fell: the rate drops by a quarter."""
        pacer, clock, _ = self.make(floor=2.0, step=4.0)
        pacer.throttled(in_flight=9)
        self.spaced(pacer, clock, 6)
        self.spaced(pacer, clock, 1)
        pacer.throttled()
        self.assertEqual(pacer.rate, 4.0)  # within a step of 8: settled at the rate that held
        clock.advance(3)
        self.spaced(pacer, clock, 3)
        self.assertEqual(pacer.rate, 4.0)
        self.spaced(pacer, clock, 1)
        self.assertTrue(pacer.throttled())
        self.assertEqual(pacer.rate, 3.0)

    def test_count_limit_keeps_the_rate(self) -> None:
        """A throttle after several submits at the spacing were accepted keeps the rate and pauses."""
        pacer, clock, _ = self.make(floor=4.0, period=10.0)
        pacer.throttled(in_flight=9)
        self.spaced(pacer, clock, 3)
        self.spaced(pacer, clock, 1)
        pacer.throttled()
        self.spaced(pacer, clock, 4)
        rate = pacer.rate
        self.assertTrue(pacer.throttled())
        self.assertEqual(pacer.rate, rate)

    def test_released_when_the_link_is_slower(self) -> None:
        """When the link sends at under half the rate while slow-starting, pacing stops."""
        pacer, clock, _ = self.make(floor=10.0)
        pacer.throttled(in_flight=9)
        for _ in range(3):
            clock.advance(1.0)
            pacer.sent(clock.seconds())
        self.assertEqual((pacer.rate, pacer.paced), (None, False))

    def test_ceiling(self) -> None:
        """throughput spaces submits from the start and caps what is learned."""
        pacer, clock, _ = self.make(floor=1.0, ceiling=3.0)
        self.assertTrue(pacer.paced)
        pacer.sent(0.0)
        self.assertAlmostEqual(pacer.next_send, 1 / 3)
        pacer.throttled(in_flight=9)
        for _ in range(4):
            self.spaced(pacer, clock, 3)
        self.assertEqual(pacer.rate, 3.0)


class SpacingTests(SynchronousTestCase):
    """A whole link, on a clock, against the simulator's --max-rate: one submit per 1/N s."""

    def check(self, n: float, count: int) -> Run:
        run = Run(self, max_rate=n)
        run.send(count)
        run.run()
        self.assertEqual([type(a) for a in run.answers], [dict] * count)
        self.assertGreaterEqual(run.rate_after(5.0), 0.8 * n)
        self.assertLessEqual(run.simulator.throttled, 0.05 * count)
        # FIFO: the SMSC accepted the messages in the order they were sent.
        self.assertEqual([p.params["destination_addr"] for p in run.simulator.accepted],
                         [f"1555{i:06d}".encode() for i in range(count)])
        return run

    def test_five_per_second(self) -> None:
        """Against 5 submits/s, the link sends at 80 % of it or more and under 5 % are throttled."""
        run = self.check(5, 500)
        self.assertLessEqual(run.outbound.queues[""].pacer.rate or 0, 5.5)

    def test_fifty_per_second(self) -> None:
        """Against 50 submits/s, the link sends at 80 % of it or more and under 5 % are throttled."""
        self.check(50, 2000)

    def test_learned_rate_in_status(self) -> None:
        """ServerStatus's row shows the learned rate once the SMSC throttled."""
        run = Run(self, max_rate=5)
        self.assertIsNone(run.outbound.status()[0]["rate"])
        run.send(50)
        run.run()
        rate = run.outbound.status()[0]["rate"]
        self.assertTrue(2.5 <= rate <= 5.5, rate)

    def test_plain_smsc_full_speed(self) -> None:
        """Against an SMSC with no limit the link never paces: the window and the round trip set the speed."""
        run = Run(self, latency=0.002)
        run.send(2000)
        run.run()
        pacer = run.outbound.queues[""].pacer
        self.assertEqual((pacer.paced, pacer.rate, pacer.episodes), (False, None, 0))
        # Window 10 over a 4 ms round trip: 2500 submits/s.
        self.assertGreater(run.rate_after(0.0), 2400)

    def test_rate_independent_throttling_not_paced(self) -> None:
        """Every 4th submit throttled whatever the rate: the link pauses but does not pace itself."""
        run = Run(self)
        run.simulator.faults.throttle_every = 4
        run.send(30)
        run.run()
        self.assertEqual([type(a) for a in run.answers], [dict] * 30)
        pacer = run.outbound.queues[""].pacer
        self.assertEqual((pacer.rate, pacer.paced), (None, False))
        self.assertLess(run.clock.seconds(), 5)
