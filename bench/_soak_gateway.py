"""The chaos soak's gateway: twistd in a child process that the driver SIGKILLs and restarts.

Each run of the gateway logs to its own file in the state directory
(``gateway-1.log``, ``gateway-2.log``, ...), so the restarts can be told apart
afterwards; a run counts as started once its log says "AMP endpoint listening".
The child asks the kernel to SIGKILL it when the driver dies
(``PR_SET_PDEATHSIG``), so not even a killed driver leaves a gateway behind.
"""

from __future__ import annotations

import glob
import os
import re
import signal
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.python.failure import Failure

from smppgw.testing.process import gateway_config

#: What the gateway logs once its AMP endpoint accepts hosts.
READY_MARK = "AMP endpoint listening"
_RESTORED = re.compile(r"(\d+) queued message\(s\) restored from the store")

# Linux only: prctl(PR_SET_PDEATHSIG, SIGKILL) before twistd starts.  Elsewhere
# the driver's try/finally is the only guard.
_CHILD_CODE = (
    "import ctypes, sys\n"
    "if sys.platform.startswith('linux'):\n"
    "    ctypes.CDLL(None, use_errno=True).prctl(1, 9)\n"
    "import os\n"
    "if os.environ.get('SMPPGW_SOAK_STORE_MARKER'):\n"
    "    sys.path.insert(0, os.environ['SMPPGW_SOAK_BENCH'])\n"
    "    import _soak_store\n"
    "    _soak_store.install(os.environ['SMPPGW_SOAK_STORE_MARKER'])\n"
    "from twisted.scripts.twistd import run\n"
    "run()\n"
)


def config_text(state: str, smsc_port: int, window: int, response_timeout: float) -> str:
    """The soak's gateway configuration: one send-only server on the simulator, logging problems."""
    return gateway_config(state, smsc_port, module={"log_level": "problems"}, mode="send-only",
                          system_id="soak", password="soakpw", sender="+15550100", dialogs=False,
                          registered_delivery=False, window=window,
                          response_timeout=f"{response_timeout:g}s")


def rss_kib(pid: int) -> int:
    """VmRSS of process `pid` in KiB, from /proc/<pid>/status."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for process {pid}")


@dataclass
class GatewayRun:
    """One gateway process: its number, pid, log file and what happened to it."""

    number: int
    pid: int
    log_path: str
    spawned_at: float
    ready_at: float = 0.0
    restored: int = 0
    killed: bool = False
    exit_status: str = ""
    rss_samples: list[tuple[str, int]] = field(default_factory=list)


class _GatewayProtocol(ProcessProtocol):
    """Collects what the child writes outside its log (tracebacks before logging starts)."""

    def __init__(self) -> None:
        # Fires with None: a Failure as a result would run down the errbacks.
        self.ended: Deferred[None] = Deferred()
        self.reason: Failure | None = None
        self.output = b""

    def outReceived(self, data: bytes) -> None:
        self.output = (self.output + data)[-65536:]

    errReceived = outReceived

    def processEnded(self, reason: Failure) -> None:
        self.reason = reason
        self.ended.callback(None)


class GatewayProcess:
    """Starts the gateway, SIGKILLs it, starts it again; `runs` records each process."""

    def __init__(self, reactor: Any, state: str, config_path: str, start_timeout: float = 30.0,
                 store_marker: str = "") -> None:
        self.reactor = reactor
        #: With a path, the gateway's store commits fail while that file exists (_soak_store).
        self.store_marker = store_marker
        self.state = state
        self.config_path = config_path
        self.start_timeout = start_timeout
        self.runs: list[GatewayRun] = []
        #: Runs that ended without the driver killing or stopping them.
        self.unexpected_exits: list[GatewayRun] = []
        self._protocol: _GatewayProtocol | None = None
        self._on_unexpected: list[Any] = []

    @property
    def current(self) -> GatewayRun:
        return self.runs[-1]

    @property
    def alive(self) -> bool:
        return self._protocol is not None and not self._protocol.ended.called

    def on_unexpected_exit(self, observer: Any) -> None:
        """Call ``observer(run)`` when a gateway process ends that nobody killed or stopped."""
        self._on_unexpected.append(observer)

    @inlineCallbacks
    def start(self) -> Any:
        """Spawn a gateway and wait until its AMP endpoint listens; fails with its output if it dies first."""
        number = len(self.runs) + 1
        log_path = os.path.join(self.state, f"gateway-{number}.log")
        args = [sys.executable, "-c", _CHILD_CODE, "--nodaemon", "--pidfile=",
                f"--logfile={log_path}", "smppgw", "--config", self.config_path]
        protocol = _GatewayProtocol()
        env = os.environ.copy()
        if self.store_marker:
            env["SMPPGW_SOAK_STORE_MARKER"] = self.store_marker
            env["SMPPGW_SOAK_BENCH"] = os.path.dirname(os.path.abspath(__file__))
        transport = self.reactor.spawnProcess(protocol, sys.executable, args, env=env,
                                              path=self.state)
        run = GatewayRun(number, transport.pid, log_path, time.monotonic())
        self.runs.append(run)
        self._protocol = protocol
        protocol.ended.addCallback(self._ended, run, protocol)
        deadline = time.monotonic() + self.start_timeout
        while True:
            text = _read(log_path)
            if READY_MARK in text:
                break
            if protocol.ended.called:
                raise RuntimeError(f"gateway {number} exited before listening:\n"
                                   + _tail(text + protocol.output.decode(errors="replace")))
            if time.monotonic() > deadline:
                raise RuntimeError(f"gateway {number} not listening after {self.start_timeout:g}s:\n"
                                   + _tail(text))
            yield deferLater(self.reactor, 0.05, lambda: None)
        run.ready_at = time.monotonic()
        found = _RESTORED.search(text)
        run.restored = int(found.group(1)) if found else 0
        return run

    def _ended(self, _: None, run: GatewayRun, protocol: _GatewayProtocol) -> None:
        run.exit_status = protocol.reason.getErrorMessage() if protocol.reason else "ended"
        if not run.killed:
            self.unexpected_exits.append(run)
            for observer in list(self._on_unexpected):
                observer(run)

    @inlineCallbacks
    def kill(self) -> Any:
        """SIGKILL the running gateway and wait until it has gone."""
        yield self._signal(signal.SIGKILL)

    @inlineCallbacks
    def stop(self, grace: float = 15.0) -> Any:
        """SIGTERM the running gateway (it unbinds and closes its store); SIGKILL it after `grace`."""
        if not self.alive:
            return
        protocol = self._protocol
        assert protocol is not None
        late = self.reactor.callLater(grace, self._kill_if_alive, protocol)
        yield self._signal(signal.SIGTERM)
        if late.active():
            late.cancel()

    def _kill_if_alive(self, protocol: _GatewayProtocol) -> None:
        if not protocol.ended.called:
            os.kill(self.current.pid, signal.SIGKILL)

    @inlineCallbacks
    def _signal(self, signum: int) -> Any:
        protocol = self._protocol
        if protocol is None or protocol.ended.called:
            return
        self.current.killed = True
        os.kill(self.current.pid, signum)
        yield _when(protocol.ended)

    def sample_rss(self, label: str) -> int:
        """Record and return the running gateway's VmRSS in KiB."""
        value = rss_kib(self.current.pid)
        self.current.rss_samples.append((label, value))
        return value

    def kill_now(self) -> None:
        """Last-resort cleanup without the reactor: SIGKILL a gateway that is still alive and reap it."""
        if not self.runs or (self._protocol is not None and self._protocol.ended.called):
            return
        pid = self.current.pid
        self.current.killed = True
        try:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass

    def log_lines(self) -> list[tuple[int, str]]:
        """Every log line of every run, as (run number, line), oldest rotated file first."""
        lines: list[tuple[int, str]] = []
        for run in self.runs:
            rotated = sorted(glob.glob(run.log_path + ".*"),
                             key=lambda p: -int(p.rsplit(".", 1)[1]) if p.rsplit(".", 1)[1].isdigit() else 0)
            for path in [*rotated, run.log_path]:
                lines.extend((run.number, line) for line in _read(path).splitlines())
        return lines


def _when(d: Deferred[None]) -> Deferred[None]:
    """A fresh Deferred firing when `d` has fired, leaving `d`'s own chain alone."""
    fresh: Deferred[None] = Deferred()

    def fired(result: Any) -> Any:
        fresh.callback(None)
        return result

    d.addBoth(fired)
    return fresh


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.splitlines()[-lines:])
