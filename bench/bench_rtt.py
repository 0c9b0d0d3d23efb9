"""Window against round-trip time: one bind through the whole gateway must sustain window / RTT.

Run: ``.venv/bin/python bench/bench_rtt.py [--window 10 --window 50]
[--delay 0.05] [--round-trips 400]`` (see bench/README.md).

The SMSC simulator answers every submit_sm `--delay` seconds after it reads
it (``python -m smppgw.testing.simulator --response-delay``), so a client that keeps
its window full can do at most window / delay messages per second, and one
that waits between submits falls short of it.  For each window, the gateway
is measured exactly as ``bench/bench_e2e.py`` does (AMP host -> smppgw under
twistd -> simulator, one transceiver bind), with `round-trips` x window
messages and the AMP host keeping at least 2 x window SendSignals
outstanding, so the gateway's queue never runs dry and only its window can
limit it.  Then the raw pre-encoded sender of ``bench/_raw_sender.py`` runs
the same messages against the same simulator: what a client with no work
between responses reaches, i.e. the share of the ideal lost to the timers
and the loopback rather than to the gateway.

It prints, per window, the rate and its fraction of window / delay (the
issue's target: at least 95%), and a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
from typing import Any

import bench_e2e
from bench_e2e import BenchError, children
from bench_peer import measure_ceiling, measure_gateway, print_table, start_simulator

#: The share of window / delay the gateway must reach.
TARGET = 0.95


def run(args: argparse.Namespace) -> list[dict[str, Any]]:
    state = tempfile.mkdtemp(prefix="smppgw-rtt-", dir="/tmp")
    results = []
    try:
        with children() as started:
            simulator, port = start_simulator(state, started, "--response-delay", str(args.delay))
            for window in args.window:
                messages = args.round_trips * window
                concurrency = args.concurrency or 2 * window
                # The ideal time is round_trips x delay; give it ample slack.
                timeout = max(120.0, 4 * args.round_trips * args.delay)
                # Each window gets a fresh gateway (and store) in its own folder.
                folder = os.path.join(state, f"window-{window}")
                os.mkdir(folder)
                result = measure_gateway(folder, started, simulator, port, messages, window,
                                         args.mix, concurrency, timeout)
                result["window"] = window
                result["concurrency"] = concurrency
                if not args.no_ceiling:
                    result["ceiling"] = measure_ceiling(simulator, port, messages, window,
                                                        args.mix, timeout)
                results.append(result)
        return results
    finally:
        if args.keep:
            print(f"kept {state}", file=sys.stderr)
        else:
            shutil.rmtree(state, ignore_errors=True)


def report(cond: dict[str, Any], results: list[dict[str, Any]], delay: float) -> None:
    print("smppgw window against round-trip time: AMP host -> gateway -> simulator answering "
          f"each submit_sm after {1000 * delay:.0f} ms, 127.0.0.1")
    for key, value in cond.items():
        print(f"  {key:<12} {value}")
    rows = []
    for result in results:
        window = result["window"]
        host = result["host"]
        cpu = host["cpu_s"]
        latency = host["latency_ms"]
        ideal = window / delay
        rate = host["messages_per_s"]
        errors = ", ".join(f"{k} {v}" for k, v in sorted(host["errors"].items())) or "none"
        other = max(0.0, cpu["machine"] - cpu["gateway"] - cpu["simulator"] - cpu["host"])
        print(f"window {window:<6} {host['messages']:,} messages, AMP concurrency {result['concurrency']}: "
              f"{host['elapsed_s']:.2f} s = {rate:,.1f} msg/s = {100 * rate / ideal:.1f}% of "
              f"window/RTT ({ideal:,.0f}/s; errors: {errors})")
        print(f"              AMP latency p50 {latency['p50']:.1f} ms, p99 {latency['p99']:.1f} ms; "
              f"gateway {cpu['gateway']:.2f} CPU s ({100 * cpu['gateway'] / host['elapsed_s']:.0f}% "
              f"of one CPU); everything else on the machine {other:.2f} CPU s")
        ceiling = result["ceiling"]
        if ceiling is not None:
            print(f"              raw sender, same window: {ceiling['submits_per_s']:,.1f} submits/s = "
                  f"{100 * ceiling['submits_per_s'] / ideal:.1f}% of window/RTT")
        rows.append([
            f"{window}", f"{1000 * delay:.0f}", f"{host['messages']}", f"{ideal:.0f}", f"{rate:.1f}",
            f"{100 * rate / ideal:.1f}%", "yes" if rate >= TARGET * ideal else "NO",
            f"{100 * ceiling['submits_per_s'] / ideal:.1f}%" if ceiling is not None else "-",
            f"{latency['p50']:.1f}", f"{1000 * cpu['gateway'] / host['messages']:.3f}",
        ])
    print_table(["window", "RTT ms", "messages", "ideal/s", "gw msg/s", "of ideal",
                 f">= {100 * TARGET:.0f}%", "raw of ideal", "p50 ms", "gw CPU s/1k"], rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--window", type=int, action="append",
                        help="an SMPP window to measure, repeatable (default 10 and 50)")
    parser.add_argument("--delay", type=float, default=0.05,
                        help="seconds the simulator waits before each submit_sm_resp")
    parser.add_argument("--round-trips", type=int, default=400,
                        help="messages per window = round trips x window")
    parser.add_argument("--concurrency", type=int, default=0,
                        help="SendSignals the AMP host keeps outstanding (default 2 x window)")
    parser.add_argument("--mix", choices=bench_e2e.MIXES, default="gsm160")
    parser.add_argument("--no-ceiling", action="store_true", help="skip the raw sender runs")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the state folder and logs")
    args = parser.parse_args()
    args.window = args.window or [10, 50]
    if min(args.window) < 1 or args.round_trips < 1 or args.delay <= 0:
        parser.error("--window and --round-trips must be at least 1, --delay above 0")
    if args.concurrency and args.concurrency < 2 * max(args.window):
        parser.error("--concurrency must be at least 2 x the largest window")

    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(128 + sig))
    cond = bench_e2e.conditions(argparse.Namespace(
        messages=f"{args.round_trips} x window", mix=args.mix,
        window=", ".join(map(str, args.window)),
        concurrency=args.concurrency or "2 x window"))
    cond["delay"] = f"{args.delay} s before each submit_sm_resp (the simulator's --response-delay)"
    try:
        results = run(args)
    except BenchError as e:
        print(f"bench_rtt: {e}", file=sys.stderr)
        return 1
    report(cond, results, args.delay)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"conditions": cond, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
