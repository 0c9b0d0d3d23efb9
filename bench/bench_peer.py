"""The peer yardstick: the whole gateway against smpplib sending the same messages to the same SMSC.

Run: ``.venv/bin/python bench/bench_peer.py [--messages 20000] [--window 10]
[--mix gsm160|ucs2-70|mixed]`` (see bench/README.md).

One SMSC simulator process serves three runs in turn, each with the same N
messages and the same window:

1. the gateway, exactly as ``bench/bench_e2e.py`` measures it (AMP host ->
   smppgw under twistd -> simulator, built from that script's helpers);
2. the peer: ``bench/_peer_smpplib.py`` sends the messages straight to the
   simulator with PyPI's ``smpplib``, an SMPP client written outside this
   project, keeping `window` submit_sm outstanding.  It runs in a virtualenv
   of its own, ``bench/.peer-venv``, which this script creates (``python -m
   venv`` with this interpreter, then ``pip install smpplib==...``) when it is
   missing, so the project's environment never sees smpplib;
3. the raw pre-encoded sender of ``bench/_raw_sender.py``: the simulator's
   ceiling, which both rates must stay well under to mean anything.

It prints the gateway's figures as bench_e2e does, the peer's, and a table
whose headline is the ratio gateway / peer in messages per second.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from typing import Any

import bench_e2e
from bench_e2e import BENCH, ROOT, BenchError, Child, children, free_port, run_json, wait_for

PEER_VENV = os.path.join(BENCH, ".peer-venv")
#: Pinned, so that a figure can be reproduced with the same library.
PEER_REQUIREMENT = "smpplib==2.2.4"


def ensure_peer_venv(path: str) -> str:
    """The python of the peer's virtualenv at `path`, created with smpplib in it if missing."""
    python = os.path.join(path, "bin", "python")
    if not os.path.exists(python):
        print(f"creating {os.path.relpath(path, ROOT)} for the peer client", file=sys.stderr)
        # The same interpreter as the gateway's, so both run the same Python.
        subprocess.run([sys.executable, "-m", "venv", path], check=True)
    probe = subprocess.run([python, "-c", "import smpplib"], capture_output=True)
    if probe.returncode:
        print(f"installing {PEER_REQUIREMENT} into {os.path.relpath(path, ROOT)}", file=sys.stderr)
        done = subprocess.run([python, "-m", "pip", "install", "--quiet", PEER_REQUIREMENT],
                              capture_output=True, text=True)
        if done.returncode:
            raise BenchError(f"pip could not install {PEER_REQUIREMENT}:\n{done.stderr[-2000:]}")
    return python


def start_simulator(state: str, started: list[Child], *options: str) -> tuple[Child, int]:
    """The SMSC simulator as bench_e2e starts it (plus `options`), listening; and its port."""
    port = free_port()
    simulator = Child("simulator", [sys.executable, "-m", "smppgw.testing.simulator",
                                    "--listen", f"tcp:{port}:interface=127.0.0.1",
                                    "--account", "gw:pw", *options],
                      os.path.join(state, "simulator.log"))
    started.append(simulator)
    wait_for("the simulator listening", lambda: "simulator listening" in simulator.output(), simulator)
    return simulator, port


def measure_gateway(state: str, started: list[Child], simulator: Child, smsc_port: int,
                    messages: int, window: int, mix: str, concurrency: int,
                    timeout: float) -> dict[str, Any]:
    """bench_e2e's gateway run against a running simulator; the gateway is stopped afterwards.

    The result has the keys bench_e2e.report reads, with no ceiling.
    """
    config_path = os.path.join(state, "smppgw.toml")
    with open(config_path, "w") as f:
        f.write(bench_e2e.gateway_config(state, smsc_port, window))
    gateway = Child("gateway", bench_e2e.gateway_argv(config_path, None),
                    os.path.join(state, "gateway.log"))
    started.append(gateway)
    amp_socket = os.path.join(state, "amp.sock")
    wait_for("the AMP socket", lambda: os.path.exists(amp_socket), gateway)
    host = run_json("the AMP host", [
        sys.executable, os.path.join(BENCH, "_host.py"), "--socket", amp_socket,
        "--messages", str(messages), "--concurrency", str(concurrency), "--mix", mix,
        "--watch", f"gateway:{gateway.pid}", "--watch", f"simulator:{simulator.pid}",
    ], timeout=timeout)
    peak_rss = bench_e2e.memory_kib(gateway.pid, "VmHWM")
    rss_now = bench_e2e.memory_kib(gateway.pid, "VmRSS")
    code = gateway.stop()
    if code not in (0, -signal.SIGTERM):
        raise BenchError(f"the gateway exited {code}:\n{gateway.output()}")
    return {"host": host, "gateway_peak_rss_kib": peak_rss, "gateway_rss_end_kib": rss_now,
            "ceiling": None}


def measure_ceiling(simulator: Child, smsc_port: int, messages: int, window: int, mix: str,
                    timeout: float) -> dict[str, Any]:
    """The raw pre-encoded sender against the simulator: the most the simulator itself takes."""
    return run_json("the raw sender", [
        sys.executable, os.path.join(BENCH, "_raw_sender.py"), "--port", str(smsc_port),
        "--messages", str(messages), "--window", str(window), "--mix", mix,
        "--watch-pid", str(simulator.pid),
    ], timeout=timeout)


def run(args: argparse.Namespace, peer_python: str) -> dict[str, Any]:
    state = tempfile.mkdtemp(prefix="smppgw-peer-", dir="/tmp")
    timeout = max(120.0, args.messages / 50)
    try:
        with children() as started:
            simulator, port = start_simulator(state, started)
            result = measure_gateway(state, started, simulator, port, args.messages, args.window,
                                     args.mix, args.concurrency, timeout)
            result["peer"] = run_json("the smpplib peer", [
                peer_python, os.path.join(BENCH, "_peer_smpplib.py"), "--port", str(port),
                "--messages", str(args.messages), "--window", str(args.window), "--mix", args.mix,
                "--watch", f"simulator:{simulator.pid}", *(["--nagle"] if args.nagle else []),
            ], timeout=timeout)
            result["ceiling"] = measure_ceiling(simulator, port, args.messages, args.window,
                                                args.mix, timeout)
            return result
    finally:
        if args.keep:
            print(f"kept {state}", file=sys.stderr)
        else:
            shutil.rmtree(state, ignore_errors=True)


def print_table(columns: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    print("| " + " | ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)) + " |")
    for row in rows:
        print("| " + " | ".join(r.rjust(w) for r, w in zip(row, widths, strict=True)) + " |")


def report(cond: dict[str, Any], result: dict[str, Any]) -> None:
    print("smppgw peer yardstick: the gateway, then smpplib, then the raw sender, one simulator process")
    print()
    bench_e2e.report(cond, result, profiled=False)
    host = result["host"]
    peer = result["peer"]
    ceiling = result["ceiling"]
    messages = host["messages"]
    peer_cpu = peer["cpu_s"]
    other = max(0.0, peer_cpu["machine"] - peer_cpu["peer"] - peer_cpu["simulator"])
    print()
    print(f"peer          smpplib {peer['smpplib']} on Python {peer['python']}, one transceiver bind, "
          f"window {peer['window']}, TCP_NODELAY {'on' if peer['nodelay'] else 'off'}")
    print(f"peer rate     {peer['messages']:,} messages in {peer['elapsed_s']:.2f} s = "
          f"{peer['messages_per_s']:,.0f} msg/s ({peer['failed']} failed)")
    print(f"peer CPU      {peer_cpu['peer']:.2f} CPU s = {1000 * peer_cpu['peer'] / peer['messages']:.3f} "
          f"CPU s per 1,000 msgs ({100 * peer_cpu['peer'] / peer['elapsed_s']:.0f}% of one CPU); "
          f"simulator {peer_cpu['simulator']:.2f} CPU s; everything else on the machine {other:.2f} CPU s")
    gw_rate = host["messages_per_s"]
    peer_rate = peer["messages_per_s"]
    print()
    print(f"gateway/peer  {gw_rate / peer_rate:.2f} (target >= 1.0; the gateway includes AMP and "
          f"its durable store, the peer only encodes and sends)")
    print_table(
        ["messages", "mix", "window", "gw msg/s", "peer msg/s", "gw/peer", "gw CPU s/1k",
         "peer CPU s/1k", "sim ceiling/s"],
        [[f"{messages}", cond["mix"], f"{cond['window']}", f"{gw_rate:.0f}", f"{peer_rate:.0f}",
          f"{gw_rate / peer_rate:.2f}", f"{1000 * host['cpu_s']['gateway'] / messages:.3f}",
          f"{1000 * peer_cpu['peer'] / peer['messages']:.3f}", f"{ceiling['submits_per_s']:.0f}"]],
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="how many messages each run sends")
    parser.add_argument("--window", type=int, default=10, help="the SMPP window of both clients")
    parser.add_argument("--mix", choices=bench_e2e.MIXES, default="gsm160",
                        help="160-char GSM texts, 70-char UCS2 texts, or half of each")
    parser.add_argument("--concurrency", type=int, default=500,
                        help="SendSignals the AMP host keeps outstanding")
    parser.add_argument("--nagle", action="store_true",
                        help="leave Nagle's algorithm on in the peer (smpplib's default)")
    parser.add_argument("--peer-venv", default=PEER_VENV, help="the peer's virtualenv")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the state folder and logs")
    args = parser.parse_args()
    if args.messages < 1 or args.window < 1 or args.concurrency < 1:
        parser.error("--messages, --window and --concurrency must be at least 1")

    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(128 + sig))
    try:
        peer_python = ensure_peer_venv(os.path.abspath(args.peer_venv))
        cond = bench_e2e.conditions(args)
        result = run(args, peer_python)
    except (BenchError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        print(f"bench_peer: {e}", file=sys.stderr)
        return 1
    report(cond, result)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"conditions": cond, **result}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
