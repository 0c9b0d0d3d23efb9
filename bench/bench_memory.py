"""
Memory and restart: N messages queued while the SMSC is down.

Prints the gateway's peak RSS with N messages queued (every SendSignal still
waiting for its answer), then SIGKILLs it, brings the SMSC up, starts the
gateway again and prints the time from process start to the first submit_sm
the SMSC receives, and to the last.

    .venv/bin/python bench/bench_memory.py [--messages 100000]
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import signal
import sys
import tempfile
import time
from typing import Any

from twisted.internet import defer, reactor, task
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol, serverFromString
from twisted.protocols import amp

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from smppgw.host.commands import SendSignal, ServerStatus  # noqa: E402
from smppgw.testing.process import GatewayProcess, gateway_config  # noqa: E402
from smppgw.testing.simulator import SMSCSimulator  # noqa: E402


def spawn(config: str) -> GatewayProcess:
    return GatewayProcess.spawn(reactor, config)


def proc_status(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])  # kB
    return 0


@defer.inlineCallbacks
def run(args: argparse.Namespace) -> Any:
    state = tempfile.mkdtemp(prefix="smppgw-bench-")
    gateways: list[GatewayProcess] = []
    try:
        simulator = SMSCSimulator({"gw": "pw"}, reactor)
        probe = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(simulator)
        port = probe.getHost().port
        yield probe.stopListening()
        config = os.path.join(state, "smppgw.toml")
        with open(config, "w") as f:
            f.write(gateway_config(state, port, module={"log_level": "problems",
                                                        "reject_if_not_relayed_in": "1d"},
                                   sender="smppgw", window=args.window))
        first = spawn(config)
        gateways.append(first)
        yield first.ready
        pid = first.transport.pid
        host = yield connectProtocol(UNIXClientEndpoint(reactor, f"{state}/amp.sock"), amp.AMP())
        started = time.monotonic()
        body = "Queued while the SMSC is down: a typical notification text of moderate length."
        sent = 0
        chunk = 2000
        while sent < args.messages:
            for i in range(sent, min(args.messages, sent + chunk)):
                host.callRemote(SendSignal, request_id=f"m{i}", method="MESSAGE",
                                sender="alice@example.com", recipient=f"+1555{i:07d}@smpp",
                                body=body).addErrback(lambda f: None)
            sent = min(args.messages, sent + chunk)
            status = yield host.callRemote(ServerStatus)
        while True:
            status = yield host.callRemote(ServerStatus)
            if status["servers"][0]["queued"] >= args.messages:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        queued_in = time.monotonic() - started
        peak = proc_status(pid, "VmHWM")
        rss = proc_status(pid, "VmRSS")
        print(f"queued {args.messages} messages over AMP in {queued_in:.1f}s "
              f"({args.messages / queued_in:.0f}/s)")
        print(f"gateway RSS with {args.messages} queued: {rss / 1024:.1f} MB, peak {peak / 1024:.1f} MB "
              f"(target < 150 MB)")
        host.transport.loseConnection()
        first.transport.signalProcess(signal.SIGKILL)
        yield first.ended

        listening = yield serverFromString(
            reactor, f"tcp:{port}:interface=127.0.0.1").listen(simulator)
        t0 = time.monotonic()
        second = spawn(config)
        gateways.append(second)
        first_submit = simulator.when_received(1, "submit_sm")
        yield first_submit
        t_first = time.monotonic() - t0
        print(f"restart with {args.messages} in the store: first submit_sm {t_first:.2f}s "
              f"after process start (target < 5 s)")
        yield simulator.when_received(args.messages, "submit_sm")
        t_all = time.monotonic() - t0
        print(f"all {args.messages} submitted {t_all:.1f}s after process start "
              f"({args.messages / t_all:.0f}/s, window {args.window}); "
              f"restarted gateway peak RSS {proc_status(second.transport.pid, 'VmHWM') / 1024:.1f} MB")
        received = {r.pdu.params["destination_addr"] for r in simulator.received
                    if r.pdu.command == "submit_sm"}
        print(f"distinct destinations received by the SMSC: {len(received)} of {args.messages}")
        second.transport.signalProcess(signal.SIGTERM)
        yield second.ended
        yield listening.stopListening()
    finally:
        for g in gateways:
            if not g.ended.called:
                g.transport.signalProcess(signal.SIGKILL)
        shutil.rmtree(state, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=50)
    args = parser.parse_args()
    import twisted

    print(f"bench_memory: python {platform.python_version()}, twisted {twisted.__version__}, "
          f"{os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d')}, messages {args.messages}")
    result: list[Any] = []

    def done(outcome: Any) -> None:
        result.append(outcome)
        reactor.stop()

    reactor.callWhenRunning(lambda: run(args).addBoth(done))
    reactor.run()
    if result and isinstance(result[0], Exception.__class__) is False and hasattr(result[0], "getTraceback"):
        print(result[0].getTraceback())
        sys.exit(1)


if __name__ == "__main__":
    main()
