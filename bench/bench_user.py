"""The gateway as a user meets it: node-smpp as the SMSC, an ordinary Twisted host, the default log level.

Run: ``.venv/bin/python bench/bench_user.py [--messages 5000] [--window 50]
[--concurrency 100] [--runs 3]`` (see bench/README.md).

One node-smpp SMSC process (``bench/_node_smsc.js``: node-smpp 0.5.1, the
npm package that ``.ci/interop-setup`` installs) serves every run in turn,
each with the same messages and window:

1. the gateway under twistd at ``log_level = "problems"`` (the default; its
   log written to a file, every relay line kept), fed by ``bench/_amp_host.py``:
   a host written as README "The host's side" shows, ``amp.AMP().callRemote(
   SendSignal, ...)`` with smppgw's command classes, ``--concurrency``
   SendSignals outstanding;
2. the same at ``log_level = "none"``: what the default level costs;
3. the Twisted peer: smpp.twisted3's client (``bench/_peer_smpptwisted.py``)
   sending the same messages straight to the same SMSC with the same window;
4. smpplib, pipelined (``bench/_peer_smpplib.py``), beside it.

The peers run in ``bench/.peer-venv`` (created on first use, with the pinned
requirements below), so that the project's environment never sees them.
Each run prints messages per second and the CPU of every process per message
(gateway, host, SMSC, peer), since they all share the machine's cores.

With ``--store postgres`` a fifth run is the first one on the PostgreSQL
store: a throwaway cluster started with ``.ci/postgres`` (``--pg-fsync on``,
PostgreSQL's default, unless told otherwise), each run in a schema of its own.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from statistics import mean
from typing import Any

import bench_e2e
from _cpustat import process_cpu_seconds as process_cpu
from bench_e2e import BENCH, ROOT, BenchError, Child, children, run_json, state_folder, wait_for

from smppgw.testing import process as testing

PEER_VENV = os.path.join(BENCH, ".peer-venv")
#: Pinned, so that a figure can be reproduced with the same libraries.
PEER_REQUIREMENTS = ("smpplib==2.2.4", "smpp.twisted3==0.8", "pyopenssl", "service-identity")
NODE_SMSC = os.path.join(BENCH, "_node_smsc.js")
#: Messages a gateway sends to each new SMSC before anything is measured on it.
WARM_UP = 10_000
NODE_SMPP = os.path.join(ROOT, "tests", "interop", "node_modules", "smpp", "package.json")


def ensure_peer_venv(path: str) -> str:
    """The python of the peers' virtualenv at `path`, created with the peers in it if missing."""
    python = os.path.join(path, "bin", "python")
    if not os.path.exists(python):
        print(f"creating {os.path.relpath(path, ROOT)} for the peer clients", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", path], check=True)
    probe = subprocess.run([python, "-c", "import smpplib, smpp.twisted.client, service_identity"],
                           capture_output=True)
    if probe.returncode:
        print(f"installing {' '.join(PEER_REQUIREMENTS)} into {os.path.relpath(path, ROOT)}",
              file=sys.stderr)
        done = subprocess.run([python, "-m", "pip", "install", "--quiet", *PEER_REQUIREMENTS],
                              capture_output=True, text=True)
        if done.returncode:
            raise BenchError(f"pip could not install the peers:\n{done.stderr[-2000:]}")
    return python


def start_smsc(state: str, started: list[Child], log_pdus: bool) -> tuple[Child, int]:
    if not os.path.exists(NODE_SMPP):
        raise BenchError("node-smpp is not installed: run .ci/interop-setup (needs node and npm)")
    smsc = Child("node-smpp SMSC", ["node", NODE_SMSC, *(["--log-pdus"] if log_pdus else [])],
                 os.path.join(state, "smsc.log"), stdin=subprocess.PIPE)
    started.append(smsc)
    wait_for("the SMSC listening", lambda: "LISTENING" in smsc.output(200), smsc)
    with open(smsc.log_path) as f:
        port = int(f.readline().split()[1])
    return smsc, port


class Scraper(threading.Thread):
    """GET /metrics (and /healthz) on the admin listener every second, as Prometheus would."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.done = threading.Event()
        self.scrapes = 0
        self.last = ""
        self.errors: list[str] = []

    def scrape(self) -> None:
        for path in ("/metrics", "/healthz"):
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=5) as answer:
                body = answer.read().decode()
            if path == "/metrics":
                self.last = body

    def run(self) -> None:
        while not self.done.is_set():
            try:
                self.scrape()
                self.scrapes += 1
            except OSError as error:
                self.errors.append(str(error))
            self.done.wait(1.0)

    def cpu_per_scrape(self, pid: int, count: int = 200) -> float:
        """The gateway's CPU seconds per scrape (both pages), over `count` scrapes in a row:
        a figure of CPU time, which other load on the machine does not change."""
        before = process_cpu(pid)
        for _ in range(count):
            self.scrape()
        return (process_cpu(pid) - before) / count


class Cluster:
    """A throwaway PostgreSQL cluster (``.ci/postgres``) with ``fsync`` on or off."""

    SCRIPT = os.path.join(ROOT, ".ci", "postgres")

    def __init__(self, fsync: str) -> None:
        self.fsync = fsync
        done = subprocess.run([self.SCRIPT, "start"], capture_output=True, text=True,
                              env={**os.environ, "PG_FSYNC": fsync}, timeout=120)
        if done.returncode:
            raise BenchError(f"cannot start PostgreSQL: {done.stderr.strip()}")
        found = dict(line.removeprefix("export ").split("=", 1)
                     for line in done.stdout.splitlines() if line.startswith("export "))
        self.url, self.folder = found["SMPPGW_TEST_POSTGRES"], found["SMPPGW_TEST_POSTGRES_DIR"]

    def schema(self, run: int) -> str:
        """The URL of a new, empty schema for run ``run``."""
        import psycopg

        name = f"bench_{run}"
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f"DROP SCHEMA IF EXISTS {name} CASCADE")
            db.execute(f"CREATE SCHEMA {name}")
        return f"{self.url}?options=-csearch_path%3D{name}"

    def describe(self) -> str:
        import psycopg

        with psycopg.connect(self.url) as db:
            version = db.execute("SHOW server_version").fetchone()
        return (f"{version[0] if version else '?'} on 127.0.0.1 (TCP), fsync={self.fsync},"
                " synchronous_commit=on")

    def stop(self) -> None:
        subprocess.run([self.SCRIPT, "stop", self.folder], capture_output=True, timeout=120)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def measure_gateway(state: str, started: list[Child], smsc: Child, port: int, level: str,
                    args: argparse.Namespace, run: int, admin: bool = False,
                    store_url: str | None = None, warm_up: bool = False) -> dict[str, Any]:
    name = (f"{level}-admin" if admin else f"{level}-postgres" if store_url else
            f"{level}-warm-up" if warm_up else level)
    messages = WARM_UP if warm_up else args.messages
    config_path = os.path.join(state, f"gateway-{name}-{run}.toml")
    folder = os.path.join(state, f"gw-{name}-{run}")
    os.makedirs(folder)
    text = testing.gateway_config(folder, port, module={"log_level": level},
                                  mode="send-and-receive", sender="+15550100",
                                  dialogs=False, window=args.window)
    if store_url is not None:
        text = text.replace(f'[store]\npath = "{folder}/smppgw.sqlite"',
                            f'[store]\nurl = "{store_url}"')
    admin_port = free_port() if admin else 0
    if admin:
        # The web admin on, scraped every second: what an operator's set-up adds.
        text = text.replace('[admin]\nlisten = ""', f'[admin]\nlisten = "tcp:{admin_port}:interface=127.0.0.1"')
    with open(config_path, "w") as f:
        f.write(text)
    first = level == args.cprofile_level and run == 0 and not warm_up
    profile = args.cprofile if first else None
    gateway = Child(f"gateway ({level})", bench_e2e.gateway_argv(config_path, profile),
                    os.path.join(folder, "gateway.log"))
    started.append(gateway)
    amp_socket = os.path.join(folder, "amp.sock")
    wait_for("the AMP socket", lambda: os.path.exists(amp_socket), gateway)
    wait_for("the bind", lambda: os.path.exists(amp_socket) and bound(config_path), gateway)
    spy = None
    if args.strace and first:
        spy = Child("strace", ["strace", "-c", "-f", "-p", str(gateway.pid), "-o",
                               os.path.abspath(args.strace)], os.path.join(folder, "strace.log"))
        started.append(spy)
        time.sleep(1.0)
    if args.py_spy and first:
        spy = Child("py-spy", [os.path.join(os.path.dirname(sys.executable), "py-spy"), "record",
                               "--pid", str(gateway.pid), "--rate", "1000", "--nonblocking",
                               "--format", "raw", "--output", os.path.abspath(args.py_spy)],
                    os.path.join(folder, "py-spy.log"))
        started.append(spy)
        time.sleep(1.0)  # let py-spy attach before the load starts
    scraper = Scraper(admin_port) if admin else None
    if scraper is not None:
        scraper.start()
    host = run_json("the AMP host", [
        os.path.join(ROOT, ".venv", "bin", "python"), os.path.join(BENCH, "_amp_host.py"),
        "--connect", f"unix:{amp_socket}", "--messages", str(messages),
        "--concurrency", str(args.concurrency), "--prefix", f"{name}{run}-",
        "--watch", f"gateway:{gateway.pid}", "--watch", f"smsc:{smsc.pid}",
    ], timeout=args.timeout)
    if scraper is not None:
        scraper.done.set()
        scraper.join(10)
        host["scrapes"] = scraper.scrapes
        host["scrape_cpu_s"] = scraper.cpu_per_scrape(gateway.pid)
        if scraper.errors or "smppgw_submitted_parts_total" not in scraper.last:
            raise BenchError(f"the /metrics scrapes failed: {scraper.errors[:3]}")
    code = gateway.stop()
    if code not in (0, -signal.SIGTERM):
        raise BenchError(f"the gateway exited {code}:\n{gateway.output()}")
    if spy is not None:
        spy.finish(timeout=60.0)  # py-spy writes its file once the gateway has gone
        started.remove(spy)
    with open(gateway.log_path, errors="replace") as f:
        host["log_lines"] = sum(1 for line in f if "relayed in" in line)
    started.remove(gateway)
    return host


def bound(config_path: str) -> bool:
    done = subprocess.run([os.path.join(ROOT, ".venv", "bin", "python"), "-m", "smppgw.cli",
                           "-c", config_path, "status"],
                          capture_output=True, text=True, timeout=30)
    return done.returncode == 0 and " bound " in f" {done.stdout} "


def per_message_us(cpu: float, messages: int) -> float:
    return 1e6 * cpu / messages


def run_once(args: argparse.Namespace, peer_python: str, run: int) -> dict[str, Any]:
    with state_folder("smppgw-user-", args.keep) as state:
        with children() as started:
            smsc, port = start_smsc(state, started, args.smsc_log)
            result: dict[str, Any] = {}
            # A new SMSC process (node's JIT, its heap) and the machine's caches
            # make whatever runs first slower: a gateway run of WARM_UP messages,
            # not counted, goes before the runs measured.
            measure_gateway(state, started, smsc, port, "problems", args, run, warm_up=True)
            # Whichever gateway run comes first after the warm-up pays a little more
            # of the SMSC's own warming: the two levels take turns at going first.
            order = ("problems", "none") if run % 2 == 0 else ("none", "problems")
            for level in order:
                result[level] = measure_gateway(state, started, smsc, port, level, args, run)
            result["first"] = order[0]
            if args.admin:
                result["admin"] = measure_gateway(state, started, smsc, port, "problems", args,
                                                  run, admin=True)
            if args.postgres is not None:
                result["postgres"] = measure_gateway(state, started, smsc, port, "problems", args,
                                                     run, store_url=args.postgres.schema(run))
            result["smpp.twisted3"] = run_json("the smpp.twisted3 peer", [
                peer_python, os.path.join(BENCH, "_peer_smpptwisted.py"), "--port", str(port),
                "--messages", str(args.messages), "--window", str(args.window),
                "--watch", f"smsc:{smsc.pid}",
            ], timeout=args.timeout)
            result["smpplib"] = run_json("the smpplib peer", [
                peer_python, os.path.join(BENCH, "_peer_smpplib.py"), "--port", str(port),
                "--messages", str(args.messages), "--window", str(args.window),
                "--watch", f"smsc:{smsc.pid}",
            ], timeout=args.timeout)
            return result


def row(name: str, result: dict[str, Any], messages: int) -> list[str]:
    """A table row: rate and each process's CPU per message, for any of the four runs."""
    if "messages_per_s" in result:  # smpplib's report
        rate, cpu = result["messages_per_s"], result["cpu_s"]
        own, smsc = cpu["peer"], cpu.get("smsc", 0.0)
        return [name, f"{rate:,.0f}", "", "", f"{per_message_us(own, messages):.0f}",
                f"{per_message_us(smsc, messages):.0f}"]
    cpu = result["cpu_seconds"]
    gateway = cpu.get("gateway")
    host = cpu.get("host")
    peer = cpu.get("peer")
    return [name, f"{result['rate']:,.0f}",
            f"{per_message_us(gateway, messages):.0f}" if gateway is not None else "",
            f"{per_message_us(host, messages):.0f}" if host is not None else "",
            f"{per_message_us(peer, messages):.0f}" if peer is not None else "",
            f"{per_message_us(cpu['smsc'], messages):.0f}"]


def report(cond: dict[str, Any], runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print("smppgw as a user runs it: node-smpp SMSC, an ordinary AMP host, the default log level")
    for key, value in cond.items():
        print(f"  {key:<12} {value}")
    print(f"  SMSC         node-smpp {node_smpp_version()} (bench/_node_smsc.js), "
          f"{'logging every PDU' if args.smsc_log else 'not logging PDUs'}, warmed up with"
          f" {WARM_UP:,} messages from a gateway before each run")
    print()
    columns = ["run", "msg/s", "gateway µs/msg", "host µs/msg", "peer µs/msg", "SMSC µs/msg"]
    names = (("problems", "gateway, log_level problems"), ("none", "gateway, log_level none"),
             ("smpp.twisted3", "smpp.twisted3 client"), ("smpplib", "smpplib, pipelined"))
    for index, result in enumerate(runs, 1):
        print(f"run {index}: {args.messages:,} messages, window {args.window}, "
              f"{args.concurrency} SendSignals outstanding")
        shown = names + ((("admin", "gateway, problems, admin on, /metrics every 1 s"),)
                         if "admin" in result else ()) + (
                         (("postgres", "gateway, problems, PostgreSQL store"),)
                         if "postgres" in result else ())
        rows = [row(label, result[key], args.messages) for key, label in shown]
        bench_e2e_table(columns, rows)
        gw, none, peer = (result[k]["rate"] for k in ("problems", "none", "smpp.twisted3"))
        errors = {k: result[k]["errors"] for k in ("problems", "none") if result[k]["errors"]}
        print(f"  gateway/smpp.twisted3 {gw / peer:.2f}; default level costs "
              f"{100 * (1 - gw / none):.1f}% of throughput vs none ({result['first']} ran"
              f" first); relay lines logged "
              f"{result['problems']['log_lines']:,}" + (f"; ERRORS {errors}" if errors else ""))
        if "postgres" in result:
            print(f"  one node on PostgreSQL: {result['postgres']['rate'] / gw:.2f} of the"
                  " throughput on SQLite")
        if "admin" in result:
            admin = result["admin"]
            busy = per_message_us(admin["cpu_seconds"]["gateway"], args.messages) * admin["rate"]
            scrape = 1e6 * admin["scrape_cpu_s"]
            print(f"  the admin and its scrapes ({admin['scrapes']}): "
                  f"{100 * (1 - admin['rate'] / gw):.1f}% of throughput against the run without it;"
                  f" a scrape of /metrics and /healthz costs the gateway {scrape:,.0f} µs of CPU:"
                  f" once a second, {100 * scrape / busy:.2f}% of its CPU at this load")
        print()
    if len(runs) > 1 and "admin" in runs[0]:
        costs = [100 * (1 - r["admin"]["rate"] / r["problems"]["rate"]) for r in runs]
        scrapes = [1e6 * r["admin"]["scrape_cpu_s"] for r in runs]
        print(f"over {len(runs)} runs: with the admin on and /metrics scraped every second, "
              f"throughput {min(costs):.1f} to {max(costs):.1f}% below the run without it "
              f"(mean {mean(costs):.1f}%); a scrape costs {min(scrapes):,.0f} to "
              f"{max(scrapes):,.0f} µs of gateway CPU")
    if len(runs) > 1 and "postgres" in runs[0]:
        sqlite = [r["problems"]["rate"] for r in runs]
        postgres = [r["postgres"]["rate"] for r in runs]
        cpu = [per_message_us(r["postgres"]["cpu_seconds"]["gateway"], args.messages) for r in runs]
        print(f"over {len(runs)} runs: one node on SQLite {min(sqlite):,.0f} to {max(sqlite):,.0f}"
              f" msg/s, on PostgreSQL {min(postgres):,.0f} to {max(postgres):,.0f} msg/s"
              f" (gateway CPU {min(cpu):.0f} to {max(cpu):.0f} µs/msg)")
    if len(runs) > 1:
        ratios = [r["problems"]["rate"] / r["smpp.twisted3"]["rate"] for r in runs]
        cpu = [per_message_us(r["problems"]["cpu_seconds"]["gateway"], args.messages) for r in runs]
        cost = [100 * (1 - r["problems"]["rate"] / r["none"]["rate"]) for r in runs]
        print(f"over {len(runs)} runs: gateway/smpp.twisted3 {min(ratios):.2f} to {max(ratios):.2f} "
              f"(mean {mean(ratios):.2f}); gateway CPU at the default level {min(cpu):.0f} to "
              f"{max(cpu):.0f} µs/msg; cost of the default level {min(cost):.1f} to {max(cost):.1f}%")


def bench_e2e_table(columns: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(columns)]
    print("| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                            for i, (c, w) in enumerate(zip(columns, widths, strict=True))) + " |")
    for r in rows:
        print("| " + " | ".join(v.ljust(w) if i == 0 else v.rjust(w)
                                for i, (v, w) in enumerate(zip(r, widths, strict=True))) + " |")


def node_smpp_version() -> str:
    try:
        with open(NODE_SMPP) as f:
            return str(json.load(f)["version"])
    except (OSError, ValueError, KeyError):
        return "unknown"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000, help="how many messages each run sends")
    parser.add_argument("--window", type=int, default=50, help="the SMPP window of every client")
    parser.add_argument("--concurrency", type=int, default=100,
                        help="SendSignals the host keeps outstanding")
    parser.add_argument("--runs", type=int, default=1, help="how many times to run the four")
    parser.add_argument("--smsc-log", action="store_true",
                        help="the SMSC logs every PDU, as a test SMSC does")
    parser.add_argument("--admin", action="store_true",
                        help="add a run with the web admin on and /metrics scraped every second")
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite",
                        help="postgres: add a run of the gateway on the PostgreSQL store")
    parser.add_argument("--pg-fsync", choices=("on", "off"), default="on",
                        help="the throwaway PostgreSQL cluster's fsync (on: as a user runs it)")
    parser.add_argument("--peer-venv", default=PEER_VENV, help="the peers' virtualenv")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the state folders and logs")
    parser.add_argument("--cprofile", metavar="FILE",
                        help="profile the first gateway run at --cprofile-level (slows it: not for figures)")
    parser.add_argument("--py-spy", metavar="FILE",
                        help="sample that run with py-spy (collapsed stacks in FILE)")
    parser.add_argument("--strace", metavar="FILE",
                        help="count that run's system calls with strace -c (slows it)")
    parser.add_argument("--cprofile-level", default="problems", choices=("problems", "none"))
    args = parser.parse_args()
    if min(args.messages, args.window, args.concurrency, args.runs) < 1:
        parser.error("--messages, --window, --concurrency and --runs must be at least 1")
    args.timeout = max(120.0, args.messages / 20)

    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(128 + sig))
    args.postgres = None
    try:
        peer_python = ensure_peer_venv(os.path.abspath(args.peer_venv))
        args.mix = "gsm160"
        cond = bench_e2e.conditions(args)
        if args.store == "postgres":
            args.postgres = Cluster(args.pg_fsync)
            cond["PostgreSQL"] = args.postgres.describe()
        runs = []
        for run in range(args.runs):
            runs.append(run_once(args, peer_python, run))
            time.sleep(1)  # let the machine settle between runs
    except (BenchError, subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
        print(f"bench_user: {e}", file=sys.stderr)
        return 1
    finally:
        if args.postgres is not None:
            args.postgres.stop()
    report(cond, runs, args)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"conditions": cond, "runs": runs}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
