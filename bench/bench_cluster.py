"""Scale-out as a user runs it: one node on SQLite, one on PostgreSQL, two on PostgreSQL, a failover.

Run: ``.venv/bin/python bench/bench_cluster.py [--messages 20000] [--runs 1]
[--lease 10]`` (see bench/README.md).

The SMSC is node-smpp (``bench/_node_smsc.js``, as in bench_user.py); the
hosts are ``bench/_amp_host.py``, the ordinary Twisted host, each with
``--concurrency`` SendSignals outstanding; every gateway logs at the default
level; PostgreSQL is a throwaway cluster (``.ci/postgres``, fsync on), each
run in a schema of its own.  Each run prints messages per second and the CPU
of the gateways, hosts and SMSC per message (PostgreSQL's own CPU is not
counted: it shares the machine's two cores with everything else).

1. one node, SQLite store (the embedded default), one host;
2. one node, PostgreSQL store, one host;
3. two nodes on one PostgreSQL database, ``max_binds = 2``: each binds once
   and has a host of its own, half of the messages each;
4. failover: two nodes, ``max_binds = 1``, ``[node] lease = --lease``; the
   host sends through the node that stands by (the one that binds sends its
   messages); the binding node is SIGKILLed after a third of the run.  The
   figure is the longest wait between two answers at the host (the takeover:
   lease expiry, the other node's bind and claim), the messages the SMSC got
   twice (the dead node's window at most), and any request left unanswered.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from typing import Any

import bench_e2e
from bench_e2e import BENCH, ROOT, BenchError, Child, children, state_folder, wait_for
from bench_user import Cluster, bench_e2e_table, bound, per_message_us, start_smsc

from smppgw.testing import process as testing

HOST = os.path.join(BENCH, "_amp_host.py")


def node_config(folder: str, port: int, window: int, store_url: str | None, name: str,
                max_binds: int, lease: float) -> str:
    os.makedirs(folder)
    text = testing.gateway_config(folder, port, module={"log_level": "problems"},
                                  mode="send-and-receive", sender="+15550100", dialogs=False,
                                  window=window, max_binds=max_binds)
    if store_url is not None:
        text = text.replace(f'[store]\npath = "{folder}/smppgw.sqlite"',
                            f'[store]\nurl = "{store_url}"')
        text += f'[node]\nname = "{name}"\nlease = "{lease:g}s"\n'
    path = os.path.join(folder, "smppgw.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


def start_node(state: str, started: list[Child], port: int, args: argparse.Namespace,
               run: str, name: str, store_url: str | None, max_binds: int = 1,
               standby: bool = False) -> tuple[Child, str]:
    """A gateway under twistd; returns it and its AMP socket, once it listens (and binds,
    unless it is to stand by)."""
    folder = os.path.join(state, f"{run}-{name}")
    config = node_config(folder, port, args.window, store_url, name, max_binds, args.lease)
    gateway = Child(f"gateway {name} ({run})", bench_e2e.gateway_argv(config, None),
                    os.path.join(folder, "gateway.log"))
    started.append(gateway)
    amp = os.path.join(folder, "amp.sock")
    wait_for("the AMP socket", lambda: os.path.exists(amp), gateway)
    if not standby:
        wait_for("the bind", lambda: bound(config), gateway)
    return gateway, amp


def host(amp: str, messages: int, args: argparse.Namespace, prefix: str,
         watch: dict[str, int]) -> subprocess.Popen[str]:
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    argv = [sys.executable, HOST, "--connect", f"unix:{amp}", "--messages", str(messages),
            "--concurrency", str(args.concurrency), "--prefix", prefix]
    for name, pid in watch.items():
        argv += ["--watch", f"{name}:{pid}"]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env=env)


def result_of(popen: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    out, err = popen.communicate(timeout=timeout)
    try:
        found: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    except (IndexError, ValueError):
        raise BenchError(f"a host exited {popen.returncode} without a result:\n{err[-2000:]}") from None
    return found


def smsc_submits(smsc: Child) -> int:
    """How many submit_sm the SMSC has answered so far (its "stats" line)."""
    assert smsc.process.stdin is not None
    before = smsc.output(100_000).count('{"submits"')
    smsc.process.stdin.write(b"stats\n")
    smsc.process.stdin.flush()
    wait_for("the SMSC's stats", lambda: smsc.output(100_000).count('{"submits"') > before, smsc)
    line = [x for x in smsc.output(100_000).splitlines() if x.startswith('{"submits"')][-1]
    return int(json.loads(line)["submits"])


def one_node(state: str, started: list[Child], smsc: Child, port: int, args: argparse.Namespace,
             run: str, store_url: str | None) -> dict[str, Any]:
    gateway, amp = start_node(state, started, port, args, run, "gw-1", store_url)
    result = result_of(host(amp, args.messages, args, f"{run}-",
                            {"gateway": gateway.pid, "smsc": smsc.pid}), args.timeout)
    gateway.stop()
    started.remove(gateway)
    return {"rate": result["rate"], "errors": result["errors"],
            "gateway_us": per_message_us(result["cpu_seconds"]["gateway"], args.messages),
            "host_us": per_message_us(result["cpu_seconds"]["host"], args.messages),
            "smsc_us": per_message_us(result["cpu_seconds"]["smsc"], args.messages)}


def two_nodes(state: str, started: list[Child], smsc: Child, port: int, args: argparse.Namespace,
              run: str, store_url: str) -> dict[str, Any]:
    a, amp_a = start_node(state, started, port, args, run, "gw-a", store_url, max_binds=2)
    b, amp_b = start_node(state, started, port, args, run, "gw-b", store_url, max_binds=2)
    half = args.messages // 2
    started_at = time.monotonic()
    hosts = [host(amp_a, half, args, f"{run}-a-", {"gateway": a.pid, "smsc": smsc.pid}),
             host(amp_b, half, args, f"{run}-b-", {"gateway": b.pid})]
    results = [result_of(h, args.timeout) for h in hosts]
    elapsed = time.monotonic() - started_at
    for gateway in (a, b):
        gateway.stop()
        started.remove(gateway)
    gateways = results[0]["cpu_seconds"]["gateway"] + results[1]["cpu_seconds"]["gateway"]
    return {"rate": 2 * half / elapsed, "errors": {**results[0]["errors"], **results[1]["errors"]},
            "gateway_us": per_message_us(gateways, 2 * half),
            "host_us": per_message_us(results[0]["cpu_seconds"]["host"]
                                      + results[1]["cpu_seconds"]["host"], 2 * half),
            "smsc_us": per_message_us(results[0]["cpu_seconds"]["smsc"], 2 * half)}


def failover(state: str, started: list[Child], smsc: Child, port: int, args: argparse.Namespace,
             run: str, store_url: str) -> dict[str, Any]:
    a, _ = start_node(state, started, port, args, run, "gw-a", store_url)
    b, amp_b = start_node(state, started, port, args, run, "gw-b", store_url, standby=True)
    submits = smsc_submits(smsc)
    started_at = time.monotonic()
    sending = host(amp_b, args.messages, args, f"{run}-", {"gateway": b.pid})
    # A third of the run at the rate one node on PostgreSQL had: then the binding node dies.
    time.sleep(args.kill_after)
    os.kill(a.pid, signal.SIGKILL)
    a.process.wait()
    started.remove(a)
    result = result_of(sending, args.timeout)
    elapsed = time.monotonic() - started_at
    twice = smsc_submits(smsc) - submits - args.messages
    b.stop()
    started.remove(b)
    return {"rate": args.messages / elapsed, "errors": result["errors"],
            "max_gap_s": result["max_gap_ms"] / 1000, "twice": twice}


def run_once(args: argparse.Namespace, cluster: Cluster, run: int) -> dict[str, Any]:
    with state_folder("smppgw-cluster-", args.keep) as state:
        with children() as started:
            smsc, port = start_smsc(state, started, False)
            # The SMSC's JIT and the machine's caches warm up on a run not counted.
            one_node(state, started, smsc, port, args, f"warm{run}", None)
            result = {
                "sqlite": one_node(state, started, smsc, port, args, f"sqlite{run}", None),
                "postgres": one_node(state, started, smsc, port, args, f"pg{run}",
                                     cluster.schema(3 * run)),
                "two": two_nodes(state, started, smsc, port, args, f"two{run}",
                                 cluster.schema(3 * run + 1)),
            }
            result["failover"] = failover(state, started, smsc, port, args, f"fail{run}",
                                          cluster.schema(3 * run + 2))
            return result


def report(cond: dict[str, Any], runs: list[dict[str, Any]], args: argparse.Namespace,
           postgres: str) -> None:
    print("smppgw nodes on one PostgreSQL database: node-smpp SMSC, ordinary AMP hosts,"
          " the default log level")
    for key, value in cond.items():
        print(f"  {key:<12} {value}")
    print(f"  PostgreSQL   {postgres}")
    print(f"  lease        {args.lease:g} s (failover run)")
    print()
    columns = ["run", "msg/s", "gateways µs/msg", "hosts µs/msg", "SMSC µs/msg"]
    for index, result in enumerate(runs, 1):
        print(f"run {index}: {args.messages:,} messages, window {args.window}, "
              f"{args.concurrency} SendSignals outstanding per host")
        rows = [[label, f"{result[key]['rate']:,.0f}", f"{result[key]['gateway_us']:.0f}",
                 f"{result[key]['host_us']:.0f}", f"{result[key]['smsc_us']:.0f}"]
                for key, label in (("sqlite", "one node, SQLite"), ("postgres", "one node, PostgreSQL"),
                                   ("two", "two nodes, PostgreSQL, max_binds 2"))]
        bench_e2e_table(columns, rows)
        fail = result["failover"]
        errors = {k: v for r in result.values() for k, v in r["errors"].items()}
        print(f"  two nodes on PostgreSQL: {result['two']['rate'] / result['postgres']['rate']:.2f}"
              f" of one node's throughput; failover (SIGKILL of the binding node, lease"
              f" {args.lease:g} s): longest wait between two answers {fail['max_gap_s']:.1f} s,"
              f" {fail['twice']} message(s) sent twice, {fail['rate']:,.0f} msg/s over that run"
              + (f"; ERRORS {errors}" if errors else ""))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20000, help="messages per run")
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=100, help="SendSignals outstanding per host")
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--lease", type=float, default=10.0, help="[node] lease of the nodes, seconds")
    parser.add_argument("--kill-after", type=float, default=2.0,
                        help="seconds into the failover run at which the binding node is killed")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    args.mix = "gsm160"
    if min(args.messages, args.window, args.concurrency, args.runs) < 1 or args.lease < 3:
        parser.error("--messages, --window, --concurrency, --runs must be >= 1 and --lease >= 3")
    cluster = Cluster("on")
    try:
        cond = bench_e2e.conditions(args)
        runs = [run_once(args, cluster, run) for run in range(args.runs)]
        report(cond, runs, args, cluster.describe())
    finally:
        cluster.stop()


if __name__ == "__main__":
    try:
        main()
    except BenchError as error:
        print(f"bench_cluster: {error}", file=sys.stderr)
        sys.exit(1)
