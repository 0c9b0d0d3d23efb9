"""
Probes of the AMP endpoint as a hostile, unauthenticated peer sees it.

    .venv/bin/python bench/probe_amp.py parse     # in-process: time per read of an unfinished box
    .venv/bin/python bench/probe_amp.py trickle   # a gateway: ServerStatus while a peer trickles
    .venv/bin/python bench/probe_amp.py idle      # a gateway: RSS with 300 connections

``parse`` feeds a GatewayAMP (no reactor, no store) an unfinished box of
6-byte pairs (2-byte key length, 1-byte key, 2-byte value length, 1-byte
value) in small reads and prints the time of the reads near the end, on a
connection that has logged in (no secret) and on one that has not; then the
time per SendSignal box for complete boxes, 50 to a read (the fast path).

``trickle`` and ``idle`` start a gateway under twistd (``[amp] secret`` set,
its server pointed at a closed port: ServerStatus needs no SMSC) on a unix
socket in a fresh folder, and speak to it with plain sockets.

``trickle``: one peer sends ``--prefill`` bytes of an unfinished box and the
header of a pair with a ``--value``-byte value, then that value a byte every
20 ms (``--login``: after logging in), while a logged-in client asks
ServerStatus every 100 ms; it prints the latencies and the gateway's CPU share.

``idle``: ``--connections`` peers connect and each sends ``--prefill`` bytes of
an unfinished box (pairs with values of up to 60,000 bytes, cheap to parse);
it prints the gateway's RSS before, with them connected and after they have
gone, and how many the gateway closed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SECRET = "probe-secret"
PAIR = b"\x00\x01k\x00\x01v"  # one 6-byte pair


def pair(key: bytes, value: bytes) -> bytes:
    return len(key).to_bytes(2, "big") + key + len(value).to_bytes(2, "big") + value


def box(**values: bytes) -> bytes:
    return b"".join(pair(k.encode(), v) for k, v in values.items()) + b"\x00\x00"


def unfinished(size: int) -> bytes:
    """``size`` bytes (rounded down to whole pairs) of a box that never ends."""
    return PAIR * (size // len(PAIR))


def unfinished_big(size: int) -> bytes:
    """``size`` bytes of a box that never ends, in pairs with values of up to 60,000 bytes
    (cheap to parse); its last pair lacks its last byte."""
    out = bytearray()
    while size - len(out) > 5:
        value = min(60_000, size - len(out) - 5)
        out += b"\x00\x01k" + value.to_bytes(2, "big") + b"v" * value
    return bytes(out[:-1])


# --- parse: in-process -------------------------------------------------------------------


class _NoQueue:
    def send_signal(self, **kw: Any) -> None:
        pass

    def status(self) -> list[dict[str, Any]]:
        return []


def _gateway(secret: str) -> Any:
    from twisted.internet.task import Clock
    from twisted.internet.testing import StringTransport

    from smppgw.host.protocol import GatewayAMPFactory
    from smppgw.host.registry import HostRegistry
    from smppgw.smpp.log import SmppLog

    factory = GatewayAMPFactory(_NoQueue(), HostRegistry(), Clock(), secret,  # type: ignore[arg-type]
                                SmppLog("amp", "none"))
    protocol = factory.buildProtocol(None)
    transport = StringTransport()
    protocol.makeConnection(transport)
    return protocol, transport


def probe_parse(args: argparse.Namespace) -> None:
    stream = unfinished(args.size)
    chunk = args.chunk
    for label, secret in (("logged in (no secret)", ""), ("before Login (secret set)", SECRET)):
        protocol, transport = _gateway(secret)
        times: list[float] = []
        fed = 0
        for offset in range(0, len(stream), chunk):
            if transport.disconnecting:
                break
            started = time.perf_counter()
            protocol.dataReceived(stream[offset:offset + chunk])
            times.append(time.perf_counter() - started)
            fed = offset + chunk
        tail = times[-20:]
        state = f"closed after {fed:,} bytes" if transport.disconnecting else "still open"
        print(f"parse, {label}: {len(times)} reads of {chunk} bytes, {state}; last 20 reads"
              f" {statistics.mean(tail) * 1e3:.3f} ms each (max {max(tail) * 1e3:.3f} ms),"
              f" all reads {sum(times) * 1e3:.1f} ms")
    one = box(_command=b"SendSignal", _ask=b"12345", request_id=b"req-000001", method=b"MESSAGE",
              sender=b"alice@example.com", recipient=b"+15551234567@smpp", body=b"x" * 160)
    stream = one * args.boxes
    for label, cut in (("50 a read", len(one) * 50), ("in 65,536-byte reads", 65536)):
        reads = [stream[i:i + cut] for i in range(0, len(stream), cut)]
        for dispatch in (True, False):
            best = float("inf")
            for _ in range(5):
                protocol, transport = _gateway("")
                if not dispatch:
                    protocol.ampBoxReceived = lambda box: None
                started = time.perf_counter()
                for read in reads:
                    protocol.dataReceived(read)
                best = min(best, time.perf_counter() - started)
            what = "parse and dispatch to a queue that does nothing" if dispatch else "parse only"
            print(f"parse, complete SendSignal boxes, {label}: {best / args.boxes * 1e6:.2f} µs"
                  f" per box ({what}, best of 5)")


# --- a gateway in a child process ---------------------------------------------------------


class Gateway:
    def __init__(self, max_connections: int | None = None) -> None:
        from smppgw.testing.process import READY_LINE, gateway_config

        self.state = tempfile.mkdtemp(prefix="smppgw-probe-")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed_port = s.getsockname()[1]
        text = gateway_config(self.state, closed_port, module={"log_level": "low-level"})
        text = text.replace("[amp]\n", f'[amp]\nsecret = "{SECRET}"\n'
                            + (f"max_connections = {max_connections}\n"
                               if max_connections else ""))
        config = os.path.join(self.state, "smppgw.toml")
        with open(config, "w") as f:
            f.write(text)
        self.log_path = os.path.join(self.state, "gateway.log")
        self.log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
             "--nodaemon", "--pidfile=", "smppgw", "--config", config],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.path = os.path.join(self.state, "amp.sock")
        deadline = time.monotonic() + 30
        while READY_LINE not in self.output().encode():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"the gateway did not start:\n{self.output()[-2000:]}")
            time.sleep(0.05)

    def output(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.path)
        return sock

    def rss_kib(self) -> int:
        with open(f"/proc/{self.process.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def cpu_seconds(self) -> float:
        with open(f"/proc/{self.process.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()
        shutil.rmtree(self.state, ignore_errors=True)


def read_box(sock: socket.socket, buffered: bytearray) -> dict[bytes, bytes]:
    """The next box from ``sock``."""
    while True:
        pos, values = 0, {}
        while pos + 2 <= len(buffered):
            n = int.from_bytes(buffered[pos:pos + 2], "big")
            if n == 0:
                del buffered[:pos + 2]
                return values
            if pos + 4 + n > len(buffered):
                break
            key = bytes(buffered[pos + 2:pos + 2 + n])
            m = int.from_bytes(buffered[pos + 2 + n:pos + 4 + n], "big")
            if pos + 4 + n + m > len(buffered):
                break
            values[key] = bytes(buffered[pos + 4 + n:pos + 4 + n + m])
            pos += 4 + n + m
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the gateway closed the connection")
        buffered += data


def logged_in(gateway: Gateway) -> tuple[socket.socket, bytearray]:
    sock = gateway.connect()
    buffered = bytearray()
    sock.sendall(box(_command=b"Login", _ask=b"1", secret=SECRET.encode()))
    answer = read_box(sock, buffered)
    if b"_answer" not in answer:
        raise SystemExit(f"Login failed: {answer}")
    return sock, buffered


def send_until_closed(sock: socket.socket, data: bytes) -> int:
    """Send ``data``; how much went before the gateway closed the connection."""
    sent = 0
    try:
        while sent < len(data):
            sent += sock.send(data[sent:sent + 65536])
    except OSError:
        pass
    return sent


def probe_trickle(args: argparse.Namespace) -> None:
    gateway = Gateway()
    try:
        status, buffered = logged_in(gateway)

        def ask() -> float:
            started = time.perf_counter()
            status.sendall(box(_command=b"ServerStatus", _ask=b"2"))
            read_box(status, buffered)
            return time.perf_counter() - started

        quiet = [ask() for _ in range(20)]
        attacker = logged_in(gateway)[0] if args.login else gateway.connect()
        attacker.settimeout(5)
        # Then a pair whose value comes one byte at a time: the box never ends.
        prefilled = send_until_closed(
            attacker, unfinished(args.prefill) + b"\x00\x01k" + args.value.to_bytes(2, "big"))
        done = threading.Event()
        trickled = [0]

        def trickle() -> None:
            while not done.is_set():
                try:
                    attacker.send(b"v")
                except OSError:
                    return
                trickled[0] += 1
                time.sleep(0.02)

        thread = threading.Thread(target=trickle, daemon=True)
        cpu_before, wall_before = gateway.cpu_seconds(), time.monotonic()
        thread.start()
        loaded = []
        while time.monotonic() - wall_before < args.seconds:
            loaded.append(ask())
            time.sleep(0.1)
        cpu = (gateway.cpu_seconds() - cpu_before) / (time.monotonic() - wall_before)
        done.set()
        thread.join()
        print(f"trickle: ServerStatus alone median {statistics.median(quiet) * 1e3:.2f} ms;"
              f" while a peer trickles ({prefilled:,} bytes prefilled, then {trickled[0]} single"
              f" bytes every 20 ms): median {statistics.median(loaded) * 1e3:.2f} ms,"
              f" max {max(loaded) * 1e3:.2f} ms; gateway CPU {cpu * 100:.0f} %")
        print(f"trickle: gateway log lines about the peer: {_log_lines(gateway)}")
    finally:
        gateway.stop()


def _log_lines(gateway: Gateway) -> str:
    lines = [line for line in gateway.output().splitlines() if "AMP" in line
             and "listening" not in line]
    return f"{len(lines)}" + "".join(f"\n    {line[:160]}" for line in lines[:6])


def _closed_by_gateway(sock: socket.socket) -> bool:
    sock.setblocking(False)
    try:
        return sock.recv(65536) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def probe_idle(args: argparse.Namespace) -> None:
    gateway = Gateway()
    try:
        time.sleep(1)
        before = gateway.rss_kib()
        sockets = []
        data = unfinished_big(args.prefill)
        for _ in range(args.connections):
            sock = gateway.connect()
            sock.settimeout(5)
            send_until_closed(sock, data)
            sockets.append(sock)
        time.sleep(1)
        with_them = gateway.rss_kib()
        closed = sum(_closed_by_gateway(sock) for sock in sockets)
        for sock in sockets:
            sock.close()
        time.sleep(2)
        after = gateway.rss_kib()
        print(f"idle: {args.connections} connections, each sending {len(data):,} bytes of an"
              f" unfinished box; {closed} closed by the gateway: RSS {before / 1024:.1f} MiB"
              f" before, {with_them / 1024:.1f} MiB with them (+{(with_them - before) / 1024:.1f}"
              f" MiB), {after / 1024:.1f} MiB after they closed")
        print(f"idle: gateway log lines about AMP peers: {_log_lines(gateway)}")
    finally:
        gateway.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("probe", choices=("parse", "trickle", "idle"))
    parser.add_argument("--size", type=int, default=1_000_000, help="parse: unfinished box bytes")
    parser.add_argument("--chunk", type=int, default=6000, help="parse: bytes per read")
    parser.add_argument("--boxes", type=int, default=20_000, help="parse: complete boxes")
    parser.add_argument("--prefill", type=int, default=1_000_000,
                        help="trickle, idle: bytes of an unfinished box each peer sends first")
    parser.add_argument("--seconds", type=float, default=8.0, help="trickle: how long")
    parser.add_argument("--login", action="store_true",
                        help="trickle: the trickling peer logs in first")
    parser.add_argument("--value", type=int, default=65535,
                        help="trickle: the length of the value then sent a byte at a time")
    parser.add_argument("--connections", type=int, default=300, help="idle: how many")
    args = parser.parse_args()
    {"parse": probe_parse, "trickle": probe_trickle, "idle": probe_idle}[args.probe](args)


if __name__ == "__main__":
    main()
