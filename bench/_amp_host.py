"""The benchmark's host, written the way README "The host's side" tells a user to write one.

Plain Twisted: ``connectProtocol(endpoint, amp.AMP())``, then
``callRemote(SendSignal, ...)`` with smppgw's own command classes, keeping
``--concurrency`` SendSignals outstanding (one more each time an answer
arrives).  No hand-written boxes, no batching of its own.  It answers the
gateway's DeliverSignal and SignalReport with ``{}``.

It prints one JSON object: messages per second from the first SendSignal to
the last answer, answer latency percentiles, errors, its own CPU seconds, and
those of the processes named with ``--watch NAME:PID`` over the same interval.

Run by ``bench/bench_user.py``; alone:
``.venv/bin/python bench/_amp_host.py --connect unix:var/amp.sock --messages 5000``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

from twisted.internet import defer, task
from twisted.internet.endpoints import clientFromString, connectProtocol
from twisted.protocols import amp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from _cpustat import Interval, watched  # noqa: E402
from _messages import MIXES, body, number  # noqa: E402

from smppgw.host.commands import DeliverSignal, Login, SendSignal, SignalReport  # noqa: E402


class Host(amp.AMP):
    """An IM host: it takes what the gateway hands it and says thank you."""

    @DeliverSignal.responder
    def deliver(self, **kw: Any) -> dict[str, Any]:
        return {}

    @SignalReport.responder
    def report(self, **kw: Any) -> dict[str, Any]:
        return {}


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))] if ordered else 0.0


async def run(reactor: Any, options: argparse.Namespace) -> dict[str, Any]:
    host = await connectProtocol(clientFromString(reactor, options.connect), Host())
    if options.secret:
        await host.callRemote(Login, secret=options.secret)
    latencies: list[float] = []
    errors: dict[str, int] = {}
    done = defer.Deferred()
    state: dict[str, Any] = {"next": 0, "answered": 0, "gap": 0.0, "last": time.perf_counter()}
    total = options.messages

    def send_next() -> None:
        i = state["next"]
        state["next"] += 1
        started = time.perf_counter()
        d = host.callRemote(SendSignal, request_id=f"{options.prefix}{i}", method="MESSAGE",
                            sender="bench@example.com", recipient=f"+{number(i)}@smpp",
                            body=body(i, options.mix))

        def answered(result: Any) -> None:
            now = time.perf_counter()
            latencies.append(now - started)
            # The longest wait between two answers: a failover, as the host sees it.
            state["gap"] = max(state["gap"], now - state["last"])
            state["last"] = now
            state["answered"] += 1
            if state["next"] < total:
                send_next()
            elif state["answered"] == total:
                done.callback(None)

        def failed(failure: Any) -> None:
            code = getattr(failure.value, "errorCode", None) or failure.type.__name__
            key = code.decode() if isinstance(code, bytes) else str(code)
            errors[key] = errors.get(key, 0) + 1
            answered(None)

        d.addCallbacks(answered, failed)

    interval = Interval(options.watch, "host")
    for _ in range(min(options.concurrency, total)):
        send_next()
    await done
    elapsed, cpu, busy = interval.end()
    host.transport.loseConnection()
    return {
        "messages": total,
        "seconds": elapsed,
        "rate": total / elapsed,
        "latency_ms": {name: 1000 * percentile(latencies, p)
                       for name, p in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))},
        "max_gap_ms": 1000 * state["gap"],
        "errors": errors,
        "cpu_seconds": cpu,
        "machine_busy_seconds": busy,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--connect", required=True, help="the gateway's AMP endpoint")
    parser.add_argument("--secret", default="")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--mix", choices=MIXES, default="gsm160")
    parser.add_argument("--prefix", default="u", help="request_id prefix")
    parser.add_argument("--watch", type=watched, action="append", default=[],
                        metavar="NAME:PID", help="also report this process's CPU seconds")
    options = parser.parse_args()

    def go(reactor: Any) -> Any:
        d = defer.Deferred.fromCoroutine(run(reactor, options))
        d.addCallback(lambda result: print(json.dumps(result), flush=True))
        return d

    task.react(go)


if __name__ == "__main__":
    main()
