"""Gateways as real twistd processes: a SIGKILL with messages queued, a second gateway on the
same store, a start from another directory, and SIGHUP."""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from typing import Any

from twisted.internet import inotify, reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol, serverFromString
from twisted.protocols import amp
from twisted.python.filepath import FilePath
from twisted.trial.unittest import TestCase

import smppgw
from smppgw.host.commands import SendSignal, ServerStatus
from smppgw.testing.process import READY_LINE, GatewayProcess, gateway_config
from smppgw.testing.simulator import SMSCSimulator

N = 20


class Host(amp.AMP):
    pass


class RestartTests(TestCase):
    timeout = 60

    def spawn(self, config: str) -> GatewayProcess:
        return GatewayProcess.spawn(reactor, config)

    def stop(self, process: GatewayProcess, sig: int) -> Deferred[None]:
        return process.stop(sig)

    @inlineCallbacks
    def host(self, state: str) -> Any:
        client = yield connectProtocol(UNIXClientEndpoint(reactor, f"{state}/amp.sock"), Host())
        self.addCleanup(client.transport.loseConnection)
        return client

    def send_all(self, host: Host) -> list[Deferred[Any]]:
        return [host.callRemote(SendSignal, request_id=f"k{i}", method="MESSAGE",
                                sender="alice@example.com", recipient=f"+15550{i:03d}@smpp",
                                body=f"message {i}") for i in range(N)]

    @inlineCallbacks
    def test_sigkill_with_queue(self) -> Any:
        """Queued messages survive SIGKILL: after restart each request_id is sent once and answered."""
        state = tempfile.mkdtemp(prefix="smppgw-")
        self.addCleanup(shutil.rmtree, state, True)
        simulator = SMSCSimulator({"gw": "pw"}, reactor)
        probe = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(simulator)
        port = probe.getHost().port
        yield probe.stopListening()
        config = os.path.join(state, "smppgw.toml")
        with open(config, "w") as f:
            f.write(gateway_config(state, port, module={"log_level": "major"}, sender="smppgw"))
        first = self.spawn(config)
        self.addCleanup(self.stop, first, signal.SIGKILL)
        yield first.ready
        host = yield self.host(state)
        pending = self.send_all(host)
        for p in pending:
            p.addErrback(lambda f: None)  # the answers die with the process
        status = yield host.callRemote(ServerStatus)
        status = yield host.callRemote(ServerStatus)
        self.assertEqual(status["servers"][0]["queued"], N)
        yield self.stop(first, signal.SIGKILL)

        listening = yield serverFromString(
            reactor, f"tcp:{port}:interface=127.0.0.1").listen(simulator)
        self.addCleanup(listening.stopListening)
        second = self.spawn(config)
        self.addCleanup(self.stop, second, signal.SIGTERM)
        yield second.ready
        # The restored messages go out by themselves, before any host asks again.
        yield simulator.when_received(N, "submit_sm")
        host = yield self.host(state)
        answers = yield gatherResults(self.send_all(host))
        numbers = [p.params["destination_addr"] for p in simulator.accepted]
        self.assertEqual(sorted(numbers), [f"15550{i:03d}".encode() for i in range(N)])
        self.assertEqual(sorted(a["message_ids"][0] for a in answers), sorted(simulator.message_ids))
        yield self.stop(second, signal.SIGTERM)
        for connection in list(simulator.connections):
            connection.close()


class Twistd(GatewayProcess):
    """A gateway process started with twistd options, that tells how it ended and can wait for a line."""

    def __init__(self) -> None:
        super().__init__()
        self.exit_code: int | None = None
        #: The signal that ended it: twistd, once shut down on SIGTERM, ends by that signal.
        self.signal: int | None = None
        self._waiting: list[tuple[bytes, Deferred[None]]] = []

    @classmethod
    def start(cls, config: str, cwd: str, *options: str) -> Twistd:
        process = cls()
        args = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()",
                "--nodaemon", "--pidfile=", *options, "smppgw", "--config", config]
        reactor.spawnProcess(process, sys.executable, args, env=os.environ.copy(), path=cwd)
        return process

    def outReceived(self, data: bytes) -> None:
        super().outReceived(data)
        for waiting in list(self._waiting):
            if waiting[0] in self.output:
                self._waiting.remove(waiting)
                waiting[1].callback(None)

    def errReceived(self, data: bytes) -> None:
        self.outReceived(data)

    def when_output(self, text: str) -> Deferred[None]:
        """Fires once the process has written `text`."""
        done: Deferred[None] = Deferred()
        self._waiting.append((text.encode(), done))
        self.outReceived(b"")
        return done

    def processEnded(self, reason: Any) -> None:
        self.exit_code = reason.value.exitCode
        self.signal = reason.value.signal
        super().processEnded(reason)


class ProcessTests(TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.root = os.path.realpath(tempfile.mkdtemp(prefix="smppgw-"))
        self.addCleanup(shutil.rmtree, self.root, True)
        # The config names its store and socket relative to its own folder.
        self.folder = os.path.join(self.root, "gw")
        os.makedirs(self.folder)
        self.config = os.path.join(self.folder, "smppgw.toml")
        with open(self.config, "w") as f:
            f.write(gateway_config("var", 9, module={"log_level": "major"}))
        self.store = os.path.join(self.folder, "var", "smppgw.sqlite")
        self.socket = os.path.join(self.folder, "var", "amp.sock")

    def directory(self, name: str) -> str:
        path = os.path.join(self.root, name)
        os.makedirs(path, exist_ok=True)
        return path

    def start(self, config: str, cwd: str, *options: str) -> Twistd:
        process = Twistd.start(config, cwd, *options)
        self.addCleanup(process.stop, signal.SIGKILL)
        return process

    @inlineCallbacks
    def stopped(self, gateway: Twistd) -> Any:
        """SIGTERM `gateway` and check that it shut down cleanly, its socket removed."""
        yield gateway.stop(signal.SIGTERM)
        self.assertEqual(gateway.signal, signal.SIGTERM)
        self.assertFalse(os.path.exists(self.socket))

    @inlineCallbacks
    def host(self) -> Any:
        client = yield connectProtocol(UNIXClientEndpoint(reactor, self.socket), Host())
        self.addCleanup(client.transport.loseConnection)
        return client

    @inlineCallbacks
    def queued(self) -> Any:
        host = yield self.host()
        status = yield host.callRemote(ServerStatus)
        return status["servers"][0]["queued"]

    @inlineCallbacks
    def test_second_gateway_refused_and_sigkill_leaves_no_lock(self) -> Any:
        """A second gateway on the same store exits 1 with one line naming it and the first's pid;
        after a SIGKILL of the first, one started from another directory finds the same queue."""
        first = self.start(self.config, self.directory("a"))
        yield first.ready
        self.assertIn(f"using the store {self.store}".encode(), first.output)
        host = yield self.host()
        for d in [host.callRemote(SendSignal, request_id=f"q{i}", method="MESSAGE",
                                  sender="alice@example.com", recipient="+15550100@smpp",
                                  body="held") for i in range(3)]:
            d.addErrback(lambda f: None)  # the SMSC is down: these wait, then die with the process
        yield host.callRemote(ServerStatus)
        self.assertEqual((yield self.queued()), 3)

        # From the parent folder, naming the config relatively: the same store.
        second = self.start(os.path.join("gw", "smppgw.toml"), self.root)
        yield self.assertFailure(second.ready, RuntimeError)
        yield second.ended
        self.assertEqual(second.exit_code, 1)
        # Under twistd's own start-up lines, that one line alone.
        lines = [line.split(" ", 1)[1] for line in second.output.decode().splitlines()
                 if "_twistd_unix.UnixAppLogger" not in line
                 and f"[smppgw#info] smppgw {smppgw.__version__} starting" not in line]
        self.assertEqual(lines, [
            f"[stderr#error] smppgw cannot start: the store {self.store!r} is in use by another"
            f" gateway (pid {first.pid}); stop it, or give this one its own [store] path"])
        self.assertFalse(first.ended.called)

        yield first.stop(signal.SIGKILL)
        third = self.start(self.config, self.directory("b"))
        yield third.ready
        self.assertIn(f"using the store {self.store}".encode(), third.output)
        self.assertEqual((yield self.queued()), 3)
        self.assertEqual(os.listdir(os.path.join(self.root, "b")), [])
        yield self.stopped(third)

    @inlineCallbacks
    def test_sighup_keeps_the_gateway_running(self) -> Any:
        """SIGHUP to a gateway logging to stdout is logged, and the gateway keeps answering."""
        gateway = self.start(self.config, self.directory("a"))
        yield gateway.ready
        for _ in range(2):
            os.kill(gateway.pid, signal.SIGHUP)
        yield gateway.when_output("SIGHUP: no log file to reopen")
        self.assertEqual((yield self.queued()), 0)
        self.assertFalse(gateway.ended.called)
        yield self.stopped(gateway)

    @inlineCallbacks
    def test_sighup_reloads_the_config_file(self) -> Any:
        """SIGHUP makes twistd's gateway read its file again: a server added there binds;
        a file made invalid afterwards is refused with the key named, and the gateway runs on."""
        simulator = SMSCSimulator({"gw": "pw"}, reactor)
        smsc = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(simulator)
        self.addCleanup(smsc.stopListening)
        text = gateway_config("var", 9, module={"log_level": "problems"})
        with open(self.config, "w") as f:
            f.write(text)
        gateway = self.start(self.config, self.directory("a"))
        yield gateway.ready
        with open(self.config, "a") as f:
            f.write(f'[[server]]\nname = "live"\naddress = "127.0.0.1:{smsc.getHost().port}"\n'
                    f'system_id = "gw"\npassword = "pw"\n')
        bound = simulator.when_bound("gw")
        os.kill(gateway.pid, signal.SIGHUP)
        yield bound
        with open(self.config, "w") as f:
            f.write(text.replace('log_level = "problems"', 'log_level = "loud"'))
        os.kill(gateway.pid, signal.SIGHUP)
        yield gateway.when_output("reload refused, nothing changed")
        self.assertIn(b"log_level", gateway.output.split(b"reload refused")[1].split(b"\n")[0])
        host = yield self.host()
        status = yield host.callRemote(ServerStatus)
        self.assertEqual([(s["name"], s["state"]) for s in status["servers"]][1], ("live", "bound"))
        self.assertFalse(gateway.ended.called)
        yield self.stopped(gateway)

    def when_in_file(self, path: str, text: str) -> Deferred[str]:
        """Fires with the content of the file at `path` once it holds `text`, watching its folder."""
        notifier = inotify.INotify(reactor)
        notifier.startReading()
        self.addCleanup(notifier.connectionLost, None)
        found: Deferred[str] = Deferred()

        def check(*_: Any) -> None:
            try:
                with open(path) as log:
                    content = log.read()
            except FileNotFoundError:
                return
            if text in content and not found.called:
                found.callback(content)

        notifier.watch(FilePath(os.path.dirname(path)), callbacks=[check],
                       mask=inotify.IN_MODIFY | inotify.IN_CREATE | inotify.IN_MOVED_TO)
        check()
        return found

    @inlineCallbacks
    def test_sighup_reopens_the_log_file(self) -> Any:
        """After a rotation tool moved twistd's --logfile away, SIGHUP makes new lines go to a new file at the path."""
        log = os.path.join(self.directory("log"), "smppgw.log")
        gateway = self.start(self.config, self.directory("a"), f"--logfile={log}")
        gateway.ready.addErrback(lambda _: None)  # it writes nothing to stdout: its lines go to the file
        yield self.when_in_file(log, READY_LINE.decode())
        os.rename(log, log + ".1")
        os.kill(gateway.pid, signal.SIGHUP)
        content = yield self.when_in_file(log, f"SIGHUP: reopened the log file {log}")
        self.assertNotIn(READY_LINE.decode(), content)
        with open(log + ".1") as moved:
            self.assertNotIn("SIGHUP", moved.read())
        self.assertEqual((yield self.queued()), 0)
        yield self.stopped(gateway)
