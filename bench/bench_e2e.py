"""Benchmark the whole gateway: an IM host over AMP -> smppgw -> the SMSC simulator.

Run: ``.venv/bin/python bench/bench_e2e.py [--messages 20000] [--window 10]
[--mix gsm160|ucs2-70|mixed]`` (see bench/README.md).

Three processes, so that none steals the others' interpreter, all on
127.0.0.1: the SMSC simulator (``python -m smppgw.testing.simulator``), the gateway
under twistd (``log_level = "none"``, its store in a fresh temporary state
directory, one transceiver bind with the given window) and the AMP load
generator ``bench/_host.py`` (up to ``--concurrency`` SendSignals
outstanding).  Then ``bench/_raw_sender.py`` drives the same simulator
process with bare pre-encoded submit_sm PDUs and the same window: the rate
the simulator itself can take, the ceiling of the end-to-end figure.

It prints the conditions (versions, CPUs, date), then messages/s from the
first send to the last answer, AMP answer latency p50/p95/p99, the gateway's
CPU seconds per 1,000 messages (utime + stime from /proc over exactly the
run), the gateway's peak RSS (VmHWM), the simulator's ceiling, and a one-line
table.  Every child process is stopped on the way out, errors included.

``--cprofile FILE`` runs the gateway under cProfile (stats written to FILE when
it stops) and ``--py-spy FILE`` samples it with py-spy (collapsed stacks in
FILE); both slow the gateway, so take the figures from a run without them.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import datetime
import hashlib
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from importlib import metadata
from typing import IO, Any

BENCH = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH)
sys.path.insert(0, ROOT)

from smppgw.testing import process as testing  # noqa: E402

MIXES = ("gsm160", "ucs2-70", "mixed")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_PDEATHSIG = 1


class BenchError(Exception):
    """A process of the benchmark failed to start or to finish; the message says which and why."""


def _die_with_parent() -> None:
    # Children get SIGTERM if this script dies without reaching its cleanup
    # (SIGKILL), so no simulator or gateway is left running.
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Child:
    """A child process with its output in a log file, stopped by its own pid."""

    def __init__(self, name: str, argv: list[str], log_path: str, cwd: str = ROOT,
                 stdin: Any = subprocess.DEVNULL) -> None:
        self.name = name
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "wb")
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
        self.process = subprocess.Popen(argv, stdin=stdin, stdout=self._log,
                                        stderr=subprocess.STDOUT, cwd=cwd, env=env,
                                        preexec_fn=_die_with_parent)
        self.pid = self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def output(self, limit: int = 3000) -> str:
        self._log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")[-limit:]

    def finish(self, timeout: float) -> int | None:
        """Wait for the process to end by itself; stop it if it has not within `timeout`."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout)
        return self.stop()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int | None:
        """Signal the process and wait for it; kill it if it outlives `timeout`."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process `pid`, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def memory_kib(pid: int, field: str) -> int:
    """A ``VmXxx`` line of /proc/<pid>/status, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise BenchError(f"no {field} in /proc/{pid}/status")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(what: str, ready: Any, child: Child, timeout: float = 30.0) -> None:
    """Poll `ready()` until true; fail with the child's output if it dies or time runs out."""
    deadline = time.monotonic() + timeout
    while not ready():
        if not child.alive():
            raise BenchError(f"{child.name} exited ({child.process.returncode}) before {what}:\n"
                             f"{child.output()}")
        if time.monotonic() > deadline:
            raise BenchError(f"no {what} after {timeout} s; {child.name} said:\n{child.output()}")
        time.sleep(0.05)


def run_json(name: str, argv: list[str], timeout: float) -> dict[str, Any]:
    """Run a helper to its end and parse the JSON object it prints last."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])))
    # subprocess.run kills the helper on a timeout or any exception here.
    done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env=env, preexec_fn=_die_with_parent)
    lines = done.stdout.strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(lines[-1])
    except (IndexError, ValueError):
        raise BenchError(f"{name} exited {done.returncode} without a result:\n"
                         f"{done.stdout[-2000:]}{done.stderr[-2000:]}") from None
    if done.returncode or "failure" in result:
        raise BenchError(f"{name} failed: {result.get('failure', done.stderr[-2000:])}")
    return result


def gateway_config(state: str, smsc_port: int, window: int, ca_file: str | None = None) -> str:
    # No "@a" prefix (dialogs off): each body stays exactly one SMS part.
    tls = {} if ca_file is None else {"address": f"tls:localhost:{smsc_port}", "ca_file": ca_file}
    return testing.gateway_config(state, smsc_port, mode="send-and-receive", sender="+15550100",
                                  dialogs=False, registered_delivery=True, window=window, **tls)


def gateway_argv(config_path: str, cprofile: str | None) -> list[str]:
    twistd = ["--nodaemon", "--pidfile=", "smppgw", "--config", config_path]
    if cprofile is None:
        return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", *twistd]
    # twistd ends a signalled run by killing itself with that signal, which
    # would lose the profile: let run() return instead, then write the stats.
    code = (
        "import cProfile\n"
        "import twisted.application.app as app\n"
        "app._exitWithSignal = lambda sig: None\n"
        "from twisted.scripts.twistd import run\n"
        "profile = cProfile.Profile()\n"
        "profile.enable()\n"
        "try:\n"
        "    run()\n"
        "finally:\n"
        "    profile.disable()\n"
        f"    profile.dump_stats({os.path.abspath(cprofile)!r})\n"
    )
    return [sys.executable, "-c", code, *twistd]


def version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def git_commit() -> str:
    # rev-parse only reads; it never touches the index.
    with contextlib.suppress(Exception):
        done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                              capture_output=True, text=True, timeout=5)
        if done.returncode == 0:
            return done.stdout.strip()
    return "unknown"


def sources_digest() -> str:
    """A digest of smppgw/*.py: which code ran, even when the tree differs from its commit."""
    digest = hashlib.sha256()
    folder = os.path.join(ROOT, "smppgw")
    for name in sorted(os.listdir(folder)):
        if name.endswith(".py"):
            with open(os.path.join(folder, name), "rb") as f:
                digest.update(name.encode() + b"\0" + f.read())
    return digest.hexdigest()[:12]


def cpu_model() -> str:
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def conditions(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC"),
        "python": f"{platform.python_version()} ({platform.python_implementation()})",
        "twisted": version("twisted"),
        "smppgw": f"{version('smppgw')} (git {git_commit()}, sources sha256 {sources_digest()})",
        "smpp.pdu3": version("smpp.pdu3"),
        "cpus": f"{os.cpu_count()} online, {len(os.sched_getaffinity(0))} usable; {cpu_model()}",
        "kernel": platform.release(),
        "load": " ".join(open("/proc/loadavg").read().split()[:3]) + " (1, 5, 15 min, before the run)",
        "messages": args.messages,
        "mix": args.mix,
        "window": args.window,
        "concurrency": args.concurrency,
        # bench_peer and bench_rtt pass their own arguments, without --tls.
        "link": "TLS (ECDSA P-256 certificate, verified)" if getattr(args, "tls", False)
        else "plain TCP",
    }


@contextlib.contextmanager
def state_folder(prefix: str, keep: bool) -> Iterator[str]:
    """A new folder under /tmp for a run's files (unix socket paths must be short: 108
    bytes), removed on the way out unless ``keep``, when its path is printed instead."""
    state = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    try:
        yield state
    finally:
        if keep:
            print(f"kept {state}", file=sys.stderr)
        else:
            shutil.rmtree(state, ignore_errors=True)


@contextlib.contextmanager
def children() -> Iterator[list[Child]]:
    """A list to put started children in; each is stopped, in reverse order, on the way out."""
    started: list[Child] = []
    try:
        yield started
    finally:
        for child in reversed(started):
            child.stop()


def run(args: argparse.Namespace) -> dict[str, Any]:
    with state_folder("smppgw-bench-", args.keep) as state, children() as started:
        return _run(args, state, started)


def _run(args: argparse.Namespace, state: str, started: list[Child]) -> dict[str, Any]:
    smsc_port = free_port()
    listen = f"tcp:{smsc_port}:interface=127.0.0.1"
    ca_file = None
    if args.tls:
        ca_file, key_and_cert = testing.make_certificate(state)
        listen = f"ssl:{smsc_port}:privateKey={key_and_cert}:interface=127.0.0.1"
    simulator = Child("simulator", [sys.executable, "-m", "smppgw.testing.simulator",
                                    "--listen", listen, "--account", "gw:pw"],
                      os.path.join(state, "simulator.log"))
    started.append(simulator)
    wait_for("the simulator listening", lambda: "simulator listening" in simulator.output(), simulator)

    config_path = os.path.join(state, "smppgw.toml")
    with open(config_path, "w") as f:
        f.write(gateway_config(state, smsc_port, args.window, ca_file))
    gateway = Child("gateway", gateway_argv(config_path, args.cprofile),
                    os.path.join(state, "gateway.log"))
    started.append(gateway)
    amp_socket = os.path.join(state, "amp.sock")
    wait_for("the AMP socket", lambda: os.path.exists(amp_socket), gateway)

    spy = None
    if args.py_spy:
        spy = Child("py-spy", [os.path.join(os.path.dirname(sys.executable), "py-spy"), "record",
                               "--pid", str(gateway.pid), "--rate", "1000", "--nonblocking",
                               "--function", "--format", "raw",
                               "--output", os.path.abspath(args.py_spy)],
                    os.path.join(state, "py-spy.log"))
        started.append(spy)
        time.sleep(1.0)  # let py-spy attach before the load starts
        if not spy.alive():
            raise BenchError(f"py-spy could not attach:\n{spy.output()}")

    host = run_json("the AMP host", [
        sys.executable, os.path.join(BENCH, "_host.py"), "--socket", amp_socket,
        "--messages", str(args.messages), "--concurrency", str(args.concurrency),
        "--mix", args.mix, "--watch", f"gateway:{gateway.pid}",
        "--watch", f"simulator:{simulator.pid}",
    ], timeout=max(120.0, args.messages / 50))
    peak_rss = memory_kib(gateway.pid, "VmHWM")
    rss_now = memory_kib(gateway.pid, "VmRSS")
    code = gateway.stop()
    if code not in (0, -signal.SIGTERM):
        raise BenchError(f"the gateway exited {code}:\n{gateway.output()}")
    if spy is not None:
        # py-spy writes its file once the gateway has gone: let it finish.
        spy.finish(timeout=60.0)

    ceiling = None
    if not args.no_ceiling:
        ceiling = run_json("the raw sender", [
            sys.executable, os.path.join(BENCH, "_raw_sender.py"), "--port", str(smsc_port),
            "--messages", str(args.messages), "--window", str(args.window), "--mix", args.mix,
            "--watch-pid", str(simulator.pid), *(["--tls", ca_file] if ca_file else []),
        ], timeout=max(120.0, args.messages / 50))
    return {"host": host, "gateway_peak_rss_kib": peak_rss, "gateway_rss_end_kib": rss_now,
            "ceiling": ceiling}


def report(cond: dict[str, Any], result: dict[str, Any], profiled: bool) -> None:
    host = result["host"]
    cpu = host["cpu_s"]
    latency = host["latency_ms"]
    messages = host["messages"]
    print("smppgw end-to-end benchmark: AMP host -> gateway -> SMSC simulator, 127.0.0.1")
    for key, value in cond.items():
        print(f"  {key:<12} {value}")
    if profiled:
        print("  NOTE         the gateway ran under a profiler: its rate and CPU are inflated")
    errors = ", ".join(f"{k} {v}" for k, v in sorted(host["errors"].items())) or "none"
    print(f"end to end    {messages:,} messages in {host['elapsed_s']:.2f} s = "
          f"{host['messages_per_s']:,.0f} msg/s ({host['ok']:,} accepted, "
          f"{host['parts']:,} parts; errors: {errors})")
    print(f"AMP latency   p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms, "
          f"p99 {latency['p99']:.1f} ms, max {latency['max']:.1f} ms, mean {latency['mean']:.1f} ms")
    print(f"gateway       {cpu['gateway']:.2f} CPU s = {1000 * cpu['gateway'] / messages:.3f} CPU s "
          f"per 1,000 msgs ({100 * cpu['gateway'] / host['elapsed_s']:.0f}% of one CPU); "
          f"peak RSS {result['gateway_peak_rss_kib'] / 1024:.1f} MiB "
          f"(at the end {result['gateway_rss_end_kib'] / 1024:.1f} MiB)")
    other = max(0.0, cpu["machine"] - cpu["gateway"] - cpu["simulator"] - cpu["host"])
    print(f"others        simulator {cpu['simulator']:.2f} CPU s "
          f"({100 * cpu['simulator'] / host['elapsed_s']:.0f}%), AMP host {cpu['host']:.2f} CPU s "
          f"({100 * cpu['host'] / host['elapsed_s']:.0f}%) over the same interval; "
          f"everything else on the machine {other:.2f} CPU s")
    ceiling = result["ceiling"]
    if ceiling is not None:
        print(f"sim ceiling   raw pipelined sender, window {ceiling['window']}: "
              f"{ceiling['submits_per_s']:,.0f} submits/s ({ceiling['failed']} failed; simulator "
              f"{ceiling['cpu_s']['simulator']:.2f} CPU s, sender {ceiling['cpu_s']['sender']:.2f} CPU s)")
    columns = ["messages", "mix", "window", "msg/s", "p50 ms", "p95 ms", "p99 ms",
               "gw CPU s/1k", "gw RSS MiB", "sim ceiling/s"]
    row = [f"{messages}", cond["mix"], f"{cond['window']}", f"{host['messages_per_s']:.0f}",
           f"{latency['p50']:.1f}", f"{latency['p95']:.1f}", f"{latency['p99']:.1f}",
           f"{1000 * cpu['gateway'] / messages:.3f}",
           f"{result['gateway_peak_rss_kib'] / 1024:.1f}",
           f"{ceiling['submits_per_s']:.0f}" if ceiling is not None else "-"]
    widths = [max(len(c), len(r)) for c, r in zip(columns, row, strict=True)]
    print("| " + " | ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True)) + " |")
    print("| " + " | ".join(r.rjust(w) for r, w in zip(row, widths, strict=True)) + " |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=20_000, help="how many SendSignals")
    parser.add_argument("--window", type=int, default=10, help="the server's SMPP window")
    parser.add_argument("--mix", choices=MIXES, default="gsm160",
                        help="160-char GSM texts, 70-char UCS2 texts, or half of each")
    parser.add_argument("--concurrency", type=int, default=500,
                        help="SendSignals the AMP host keeps outstanding")
    parser.add_argument("--tls", action="store_true",
                        help="the link over TLS (a self-signed certificate the gateway trusts)")
    parser.add_argument("--no-ceiling", action="store_true",
                        help="skip the raw sender run against the simulator")
    parser.add_argument("--cprofile", metavar="FILE", help="run the gateway under cProfile")
    parser.add_argument("--py-spy", metavar="FILE", help="sample the gateway with py-spy")
    parser.add_argument("--json", metavar="FILE", help="also write every figure as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the state folder and logs")
    args = parser.parse_args()
    if args.messages < 1 or args.window < 1 or args.concurrency < 1:
        parser.error("--messages, --window and --concurrency must be at least 1")

    # A SIGTERM becomes SystemExit, so the children are stopped as on Ctrl-C.
    signal.signal(signal.SIGTERM, lambda sig, frame: sys.exit(128 + sig))
    cond = conditions(args)
    try:
        result = run(args)
    except BenchError as e:
        print(f"bench_e2e: {e}", file=sys.stderr)
        return 1
    report(cond, result, profiled=bool(args.cprofile or args.py_spy))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"conditions": cond, **result}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
