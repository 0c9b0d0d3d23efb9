"""The benchmark's IM host: an AMP load generator for a running gateway.

It connects to the gateway's AMP endpoint, waits until the gateway reports its
first server bound, then sends `--messages` SendSignal requests keeping up to
`--concurrency` outstanding, and prints one JSON object: the rate from the
first send to the last answer, the latency of each request from its send to
its answer, the errors by AMP code, and the CPU seconds the processes named
with `--watch` used over exactly that interval.

Run by ``bench/bench_e2e.py``; alone: ``python bench/_host.py --socket PATH``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from typing import Any

from _messages import MIXES, body, number
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError, ConnectionClosed
from twisted.internet.task import deferLater
from twisted.protocols import amp
from twisted.python.failure import Failure

from smppgw.amp import SendSignal, ServerStatus

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process `pid`, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces and parentheses: split after the last ")".
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of stat(5) (utime, stime); fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine spent busy since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(n) for n in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal...: all but idle and iowait.
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


class LoadRun:
    """Sends the requests, refilling the window of outstanding ones as answers come back."""

    def __init__(self, host: amp.AMP, messages: int, concurrency: int, mix: str, prefix: str,
                 watch: dict[str, int]) -> None:
        self.host = host
        self.messages = messages
        self.concurrency = concurrency
        self.mix = mix
        self.prefix = prefix
        self.watch = watch
        self.sent = 0
        self.answered = 0
        self.parts = 0
        self.errors: dict[str, int] = {}
        self.lost = False
        self.latencies: list[float] = []
        self.done: Deferred[None] = Deferred()

    def start(self) -> Deferred[None]:
        self.cpu_before = {name: process_cpu_seconds(pid) for name, pid in self.watch.items()}
        self.own_before = own_cpu_seconds()
        self.machine_before = machine_busy_seconds()
        self.started = time.perf_counter()
        for _ in range(min(self.concurrency, self.messages)):
            self._send_next()
        return self.done

    def _send_next(self) -> None:
        i = self.sent
        self.sent += 1
        sent_at = time.perf_counter()
        d = self.host.callRemote(SendSignal, request_id=f"{self.prefix}{i}", method="MESSAGE",
                                 sender="alice@example.com", recipient=f"+{number(i)}@smpp",
                                 body=body(i, self.mix))
        d.addCallbacks(self._answered, self._failed, callbackArgs=(sent_at,), errbackArgs=(sent_at,))

    def _answered(self, answer: dict[str, Any], sent_at: float) -> None:
        self.parts += answer["parts"]
        self._settle(sent_at)

    def _failed(self, failure: Failure, sent_at: float) -> None:
        if failure.check(ConnectionClosed):
            # The gateway went away: sending the rest would only fail too.
            self.lost = True
        code = failure.value.__class__.__name__
        self.errors[code] = self.errors.get(code, 0) + 1
        self._settle(sent_at)

    def _settle(self, sent_at: float) -> None:
        now = time.perf_counter()
        self.latencies.append(now - sent_at)
        self.answered += 1
        if self.lost:
            if self.answered == self.sent and not self.done.called:
                self.done.errback(ConnectionError(
                    f"the AMP connection was lost after {self.answered} answers: {self.errors}"))
        elif self.sent < self.messages:
            self._send_next()
        elif self.answered == self.messages:
            self.finished = now
            self.cpu_after = {name: process_cpu_seconds(pid) for name, pid in self.watch.items()}
            self.own_after = own_cpu_seconds()
            self.machine_after = machine_busy_seconds()
            self.done.callback(None)

    def result(self) -> dict[str, Any]:
        elapsed = self.finished - self.started
        ordered = sorted(self.latencies)
        cpu = {name: self.cpu_after[name] - self.cpu_before[name] for name in self.watch}
        cpu["host"] = self.own_after - self.own_before
        # Whatever else ran on the machine meanwhile (another job would skew the figures).
        cpu["machine"] = self.machine_after - self.machine_before
        return {
            "messages": self.messages,
            "ok": self.messages - sum(self.errors.values()),
            "errors": self.errors,
            "parts": self.parts,
            "elapsed_s": elapsed,
            "messages_per_s": self.messages / elapsed,
            "latency_ms": {
                "p50": 1000 * percentile(ordered, 0.50),
                "p95": 1000 * percentile(ordered, 0.95),
                "p99": 1000 * percentile(ordered, 0.99),
                "max": 1000 * ordered[-1],
                "mean": 1000 * sum(ordered) / len(ordered),
            },
            "cpu_s": cpu,
        }


@inlineCallbacks
def connect(reactor: Any, path: str, timeout: float) -> Any:
    """An AMP connection to the unix socket at `path`, retried until it exists and accepts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            host = yield connectProtocol(UNIXClientEndpoint(reactor, path), amp.AMP())
            return host
        except ConnectError:
            if time.monotonic() > deadline:
                raise
            yield deferLater(reactor, 0.05, lambda: None)


@inlineCallbacks
def wait_bound(reactor: Any, host: amp.AMP, timeout: float) -> Any:
    """Poll ServerStatus until the first server is bound, so no message waits for the bind."""
    deadline = time.monotonic() + timeout
    while True:
        status = yield host.callRemote(ServerStatus)
        state = status["servers"][0]["state"]
        if state == "bound":
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the gateway's server is still {state!r} after {timeout} s")
        yield deferLater(reactor, 0.05, lambda: None)


def watched(text: str) -> tuple[str, int]:
    name, colon, pid = text.partition(":")
    if not colon:
        raise argparse.ArgumentTypeError(f"expected NAME:PID, got {text!r}")
    return name, int(pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True, help="the gateway's AMP unix socket")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--mix", choices=MIXES, default="gsm160")
    parser.add_argument("--prefix", default="bench-", help="request_id prefix")
    parser.add_argument("--watch", type=watched, action="append", default=[], metavar="NAME:PID",
                        help="a process whose CPU seconds to measure over the run, repeatable")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for the socket and the bind")
    args = parser.parse_args()

    from twisted.internet import reactor as global_reactor

    reactor: Any = global_reactor
    outcome: dict[str, Any] = {}

    @inlineCallbacks
    def run() -> Any:
        try:
            host = yield connect(reactor, args.socket, args.timeout)
            yield wait_bound(reactor, host, args.timeout)
            load = LoadRun(host, args.messages, args.concurrency, args.mix, args.prefix,
                           dict(args.watch))
            yield load.start()
            outcome.update(load.result())
            host.transport.loseConnection()
        except Exception as e:
            outcome["failure"] = f"{e.__class__.__name__}: {e}"
        finally:
            reactor.stop()

    reactor.callWhenRunning(run)
    reactor.run()
    print(json.dumps(outcome), flush=True)
    return 1 if "failure" in outcome else 0


if __name__ == "__main__":
    sys.exit(main())
