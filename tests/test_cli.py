"""Tests for the ``smppgw`` command line: its commands against a real gateway on loopback, and its exit codes."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import UNIXServerEndpoint
from twisted.internet.protocol import Factory, ProcessProtocol, Protocol
from twisted.logger import capturedLogs, formatEvent
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from smppgw import __version__, cli
from smppgw.config import parse_config
from smppgw.service import build_gateway
from smppgw.tap import _Logged
from smppgw.testing.process import gateway_config
from smppgw.testing.simulator import SMSCSimulator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class Lines(io.StringIO):
    """A command's stdout or stderr: what it wrote, and a Deferred for a line to come."""

    def __init__(self) -> None:
        super().__init__()
        self._waiting: list[tuple[str, Deferred[str]]] = []

    def write(self, text: str) -> int:
        written = super().write(text)
        for entry in list(self._waiting):
            line = self._find(entry[0])
            if line is not None:
                self._waiting.remove(entry)
                entry[1].callback(line)
        return written

    def lines(self) -> list[str]:
        return self.getvalue().splitlines()

    def _find(self, text: str) -> str | None:
        return next((line for line in self.lines() if text in line), None)

    def when(self, text: str) -> Deferred[str]:
        """Fires with the first line holding ``text``, now or when it is written."""
        d: Deferred[str] = Deferred()
        self._waiting.append((text, d))
        self.write("")
        return d


def turn() -> Deferred[None]:
    d: Deferred[None] = Deferred()
    reactor.callLater(0, d.callback, None)
    return d


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def write_config(state: str, port: int, secret: str = "", folder: str = "", **server: Any) -> str:
    """A config file in ``state`` for one server on ``port``; the store and the AMP socket
    in ``folder`` (by default ``state`` too)."""
    text = gateway_config(folder or state, port, **server)
    if secret:
        text = text.replace("[amp]\n", f'[amp]\nsecret = "{secret}"\n')
    path = os.path.join(state, "smppgw.toml")
    with open(path, "w") as f:
        f.write(text)
    return path


class GatewayTestCase(TestCase):
    """Runs a gateway (its store, AMP socket and config file in a fresh folder) in the test reactor."""

    timeout = 20

    def setUp(self) -> None:
        # Unix socket paths must be short (108 bytes): not under trial's temp folder.
        self.state = tempfile.mkdtemp(prefix="smppgw-")
        self.addCleanup(shutil.rmtree, self.state, True)

    @inlineCallbacks
    def start(self, *, demo: bool = False, secret: str = "", **server: Any) -> Any:
        """Start the gateway; fires once its link is bound.  With ``demo``, its own simulator."""
        if demo:
            port = free_port()
        else:
            self.simulator = SMSCSimulator({"gw": "pw"}, reactor)
            listening = yield reactor.listenTCP(0, self.simulator, interface="127.0.0.1")
            self.addCleanup(listening.stopListening)
            port = listening.getHost().port
        # A demo's state folder is made when it starts, as the shipped example's var/ is.
        self.folder = os.path.join(self.state, "var") if demo else self.state
        self.config = write_config(self.state, port, secret, self.folder, **server)
        with open(self.config) as f:
            self.gateway = build_gateway(parse_config(f.read()), reactor, demo=demo)
        if demo:
            self.simulator = self.gateway.simulator
        for link in self.gateway.links.values():
            link.clientService._retryPolicy = lambda attempt: 0.05  # reconnect quickly in tests
        # As twistd starts a service.
        self.gateway.privilegedStartService()
        self.gateway.startService()
        self.addCleanup(self.stop)
        yield self.gateway.links[""].when_bound()

    @inlineCallbacks
    def stop(self) -> Any:
        for host in list(self.gateway.registry.hosts):
            host.transport.loseConnection()
        yield self.gateway.stopService()
        for connection in list(self.simulator.connections):
            connection.close()
        yield turn()

    def run_cli(self, *argv: str, config: str | None = None) -> Any:
        """Run ``smppgw -c CONFIG ARGV`` in this reactor: fires with (exit status, stdout, stderr)."""
        out, err = Lines(), Lines()
        args = cli.parse_args(["-c", config or self.config, *argv])
        d = cli.run(reactor, args, out, err)
        return d.addCallback(lambda status: (status, out.lines(), err.lines()))


class SendTests(GatewayTestCase):
    @inlineCallbacks
    def test_send_prints_request_id_and_outcome(self) -> Any:
        """send prints the request_id, then the server, parts and message id; the SMSC got the text."""
        yield self.start(sender="+15550100")
        status, out, err = yield self.run_cli(
            "send", "+15551234", "hello", "--sender", "alice@example.com", "--request-id", "r1")
        self.assertEqual((status, err), (0, []))
        [accepted] = self.simulator.accepted
        self.assertEqual(out, ["request_id r1",
                               'sent through server "" in 1 part: message id 00000001'])
        self.assertEqual((accepted.get("destination_addr"), accepted.get("short_message")),
                         (b"15551234", b"hello"))

    @inlineCallbacks
    def test_new_request_id_and_safe_retry(self) -> Any:
        """Without --request-id a new id is printed; sending again with it gets the same outcome, no second SMS."""
        yield self.start(sender="+15550100")
        status, first, _ = yield self.run_cli("send", "+15551234@smpp", "hello")
        request_id = first[0].removeprefix("request_id ")
        self.assertEqual(status, 0)
        self.assertRegex(request_id, r"^[0-9a-f]{32}$")
        status, again, _ = yield self.run_cli("send", "+15551234", "hello",
                                              "--request-id", request_id)
        self.assertEqual((status, again), (0, first))
        self.assertEqual(len(self.simulator.accepted), 1)

    @inlineCallbacks
    def test_refusal_is_one_line(self) -> Any:
        """A refused SendSignal is one line on stderr with its code, and exit status 1."""
        yield self.start(sender="+15550100")
        status, out, err = yield self.run_cli("send", "nobody@example.com", "hi",
                                              "--request-id", "bad")
        self.assertEqual((status, out), (1, ["request_id bad"]))
        [line] = err
        self.assertTrue(line.startswith("not sent: BAD_ADDRESS: "), line)
        self.assertEqual(self.simulator.accepted, [])

    @inlineCallbacks
    def test_connection_lost_names_the_request_id(self) -> Any:
        """A gateway gone before answering leaves the outcome unknown: the line says how to learn it."""
        # The gateway's stop waits up to response_timeout for the unanswered submit.
        yield self.start(sender="+15550100", response_timeout="200ms")
        self.simulator.faults.black_hole = True
        done = self.run_cli("send", "+15551234", "hi", "--request-id", "lost")
        yield self.simulator.when_received(1)
        for host in list(self.gateway.registry.hosts):
            host.transport.loseConnection()
        status, out, err = yield done
        self.assertEqual(status, 1)
        self.assertEqual(err, ["the connection to smppgw was lost: the outcome of request_id lost"
                               " is unknown; run again with --request-id lost to learn it without"
                               " sending twice"])


class ReachTests(GatewayTestCase):
    @inlineCallbacks
    def test_status(self) -> Any:
        """status prints a header and one line per server with its state and counters."""
        yield self.start(sender="+15550100")
        yield self.run_cli("send", "+15551234", "hello")
        status, out, _ = yield self.run_cli("status")
        self.assertEqual(status, 0)
        self.assertEqual([line.split() for line in out], [
            ["name", "mode", "address", "state", "queued", "sent", "received", "last", "error"],
            ['""', "send-and-receive", self.gateway.config.servers[0].address, "bound", "0", "1",
             "0"]])

    @inlineCallbacks
    def test_secret_from_config(self) -> Any:
        """With [amp] secret, the command logs in with the config's secret; a wrong one is one line."""
        yield self.start(secret="s3cret")
        status, out, _ = yield self.run_cli("status")
        self.assertEqual(status, 0)
        wrong = os.path.join(self.state, "wrong.toml")
        with open(self.config) as good, open(wrong, "w") as bad:
            bad.write(good.read().replace('secret = "s3cret"', 'secret = "guess"'))
        status, out, err = yield self.run_cli("status", config=wrong)
        self.assertEqual((status, out), (1, []))
        self.assertEqual(err, [f"smppgw refused the login (UNAUTHORIZED: wrong secret): the [amp]"
                               f" secret in {wrong} is not the gateway's"])

    @inlineCallbacks
    def test_host_prints_signals(self) -> Any:
        """host prints each DeliverSignal as one line, and exits 1 when the gateway closes the connection."""
        yield self.start(sender="+15550100")
        out, err = Lines(), Lines()
        done = cli.run(reactor, cli.parse_args(["-c", self.config, "host"]), out, err)
        yield err.when("logged in")
        yield self.simulator.deliver("15557654", "15550100", b"hi\nthere")
        line = yield out.when("DeliverSignal")
        self.assertEqual(line, 'DeliverSignal MESSAGE from +15557654@smpp to +15550100@telnum,'
                               ' server "": "hi\\nthere"')
        for host in list(self.gateway.registry.hosts):
            host.transport.loseConnection()
        status = yield done
        self.assertEqual((status, err.lines()[-1]), (1, "smppgw closed the connection"))


class NotRunningTests(TestCase):
    def setUp(self) -> None:
        self.state = tempfile.mkdtemp(prefix="smppgw-")
        self.addCleanup(shutil.rmtree, self.state, True)

    @inlineCallbacks
    def test_unix_socket_missing(self) -> Any:
        """No gateway on the config's unix socket: one line naming it and why, exit status 1."""
        config = write_config(self.state, 9)
        out, err = Lines(), Lines()
        status = yield cli.run(reactor, cli.parse_args(["-c", config, "status"]), out, err)
        self.assertEqual((status, out.lines()), (1, []))
        self.assertEqual(err.lines(), [f"smppgw is not running: cannot connect to"
                                       f" unix:{self.state}/amp.sock (No such file or directory)"])

    @inlineCallbacks
    def test_tcp_refused(self) -> Any:
        """An [amp] listen on TCP is reached on its interface; nothing there is one line too."""
        port = free_port()
        config = write_config(self.state, 9)
        with open(config) as f:
            text = f.read()
        with open(config, "w") as f:
            f.write(re.sub(r'listen = ".*"', f'listen = "tcp:{port}:interface=127.0.0.1"', text))
        out, err = Lines(), Lines()
        status = yield cli.run(reactor, cli.parse_args(["-c", config, "send", "+1555", "x"]),
                               out, err)
        self.assertEqual(status, 1)
        self.assertEqual(err.lines(), [f"smppgw is not running: cannot connect to"
                                       f" tcp:127.0.0.1:{port} (Connection refused)"])


class LocalCommandTests(SynchronousTestCase):
    def run_cli(self, *argv: str) -> tuple[int, list[str], list[str]]:
        out, err = Lines(), Lines()
        status = self.successResultOf(cli.run(reactor, cli.parse_args(list(argv)), out, err))
        return status, out.lines(), err.lines()

    def test_check_config_ok(self) -> None:
        """check-config on the shipped example says how many servers it has."""
        self.assertEqual(self.run_cli("check-config", os.path.join(ROOT, "etc/smppgw.toml")),
                         (0, ["ok: 2 servers"], []))

    def test_check_config_error(self) -> None:
        """check-config on a bad file prints the one-line error naming the key, and exits 1."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write('[[server]]\nname = "a"\naddress = "127.0.0.1"\nsystem_id = "x"\n'
                    'password = "y"\nwindow = 0\n')
        status, out, err = self.run_cli("-c", "/elsewhere.toml", "check-config", path)
        self.assertEqual((status, out), (1, []))
        [line] = err
        self.assertTrue(line.startswith(f"{path}: server[0].window: 0 "), line)

    def test_check_config_store_errors(self) -> None:
        """check-config reports a [store] error like any other key's: path and url together,
        a password file that cannot be read (never showing the URL's password)."""
        path = os.path.abspath(self.mktemp())
        for table, start in [
                ('url = "postgresql://gw:s3cret@db/gw"\npath = "gw.sqlite"\n',
                 f"{path}: store.path, store.url: give one of them"),
                ('url = "postgresql://gw@db/gw"\npassword_file = "none"\n',
                 f"{path}: store.password_file: cannot read ")]:
            with open(path, "w") as f:
                f.write("[store]\n" + table)
            status, out, err = self.run_cli("check-config", path)
            [line] = err
            self.assertEqual((status, out), (1, []))
            self.assertTrue(line.startswith(start), line)
            self.assertNotIn("s3cret", line)

    def test_version(self) -> None:
        """version prints the package's version."""
        self.assertEqual(self.run_cli("version"), (0, [f"smppgw {__version__}"], []))

    def test_help_of_each_command(self) -> None:
        """Every command has its own --help, which exits 0."""
        for command in ("send", "status", "host", "demo-reply", "check-config", "version"):
            shown = io.StringIO()
            with contextlib.redirect_stdout(shown), self.assertRaises(SystemExit) as exited:
                cli.parse_args([command, "--help"])
            self.assertEqual(exited.exception.code, 0)
            self.assertIn(f"usage: smppgw {command}", shown.getvalue())

    def test_config_after_the_command(self) -> None:
        """-c may come after the command too."""
        args = cli.parse_args(["status", "-c", "other.toml"])
        self.assertEqual(args.config, "other.toml")
        self.assertEqual(cli.parse_args(["-c", "x.toml", "status"]).config, "x.toml")
        self.assertEqual(cli.parse_args(["status"]).config, "etc/smppgw.toml")

    def test_ssl_endpoint_refused(self) -> None:
        """An ssl: AMP endpoint, which the command line cannot reach, is one line naming it."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write('[amp]\nlisten = "ssl:7000:privateKey=k.pem:interface=127.0.0.1"\n'
                    '[[server]]\nname = ""\naddress = "127.0.0.1"\nsystem_id = "x"\n'
                    'password = "y"\n')
        status, out, err = self.run_cli("-c", path, "status")
        key = os.path.join(os.path.dirname(path), "k.pem")  # relative to the config's folder
        self.assertEqual(err, [f"[amp] listen is 'ssl:7000:privateKey={key}:interface=127.0.0.1':"
                               " the command line reaches unix: and tcp: endpoints only"])
        self.assertEqual(status, 1)

    def test_gateway_logs_its_version(self) -> None:
        """The service twistd runs logs smppgw's version when it starts."""
        with capturedLogs() as events:
            _Logged(MultiService(), None, reactor).startService()
        self.assertIn(f"smppgw {__version__} starting", [formatEvent(e) for e in events])


def smppgw(*args: str) -> subprocess.CompletedProcess[str]:
    """Run the command line in a child process from the project folder."""
    return subprocess.run([sys.executable, "-m", "smppgw.cli", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT)


class ProcessTests(SynchronousTestCase):
    """The command as a shell runs it: argument errors, exit statuses, the not-running line."""

    def test_no_command(self) -> None:
        """Without a command: usage on stderr, exit status 2."""
        result = smppgw()
        self.assertEqual(result.returncode, 2)
        self.assertIn("usage: smppgw", result.stderr)

    def test_help(self) -> None:
        """send --help describes the command and its safe retry, exit status 0."""
        result = smppgw("send", "--help")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn("usage: smppgw send", result.stdout)
        self.assertIn("never sends the SMS twice", " ".join(result.stdout.split()))

    def test_not_running(self) -> None:
        """status with no gateway: exactly one line on stderr, exit status 1."""
        state = tempfile.mkdtemp(prefix="smppgw-")
        self.addCleanup(shutil.rmtree, state, True)
        result = smppgw("-c", write_config(state, 9), "status")
        self.assertEqual((result.returncode, result.stdout), (1, ""))
        self.assertEqual(result.stderr, f"smppgw is not running: cannot connect to"
                                        f" unix:{state}/amp.sock (No such file or directory)\n")

    def test_check_config_exit_statuses(self) -> None:
        """check-config exits 0 on the shipped example (the default -c) and 1 on a missing file."""
        good = smppgw("check-config")
        self.assertEqual((good.returncode, good.stdout), (0, "ok: 2 servers\n"))
        bad = smppgw("check-config", "/nonexistent.toml")
        self.assertEqual(bad.returncode, 1)
        self.assertEqual(bad.stderr, "/nonexistent.toml: cannot read the configuration file:"
                                     " No such file or directory\n")

    def test_console_scripts(self) -> None:
        """The installed ``smppgw`` script, and ``python -m smppgw.host.client``, are the same command."""
        script = os.path.join(os.path.dirname(sys.executable), "smppgw")
        result = subprocess.run([script, "version"], capture_output=True, text=True, timeout=60)
        self.assertEqual(result.stdout, f"smppgw {__version__}\n")
        alias = subprocess.run([sys.executable, "-m", "smppgw.host.client", "version"],
                               capture_output=True, text=True, timeout=60)
        self.assertEqual(alias.stdout, f"smppgw {__version__}\n")


class _Silent(Protocol):
    """A gateway that reads and never answers; tells when the first bytes arrive."""

    def __init__(self, got: Deferred[None]) -> None:
        self.got = got

    def dataReceived(self, data: bytes) -> None:
        if b"SendSignal" in data and not self.got.called:
            self.got.callback(None)


class _Child(ProcessProtocol):
    def __init__(self) -> None:
        self.err = b""
        self.ended: Deferred[int] = Deferred()

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(reason.value.exitCode)


class InterruptTests(TestCase):
    timeout = 30

    @inlineCallbacks
    def test_ctrl_c_during_send(self) -> Any:
        """Ctrl-C while a send waits: a line saying how to learn the outcome safely, exit status 130."""
        state = tempfile.mkdtemp(prefix="smppgw-")
        self.addCleanup(shutil.rmtree, state, True)
        got: Deferred[None] = Deferred()
        port = yield UNIXServerEndpoint(reactor, f"{state}/amp.sock").listen(
            Factory.forProtocol(lambda: _Silent(got)))
        self.addCleanup(port.stopListening)
        child = _Child()
        args = [sys.executable, "-m", "smppgw.cli", "-c", write_config(state, 9), "send",
                "+15551234", "hi", "--request-id", "r-42"]
        process = reactor.spawnProcess(child, sys.executable, args, env=os.environ.copy(),
                                       path=ROOT)
        yield got
        process.signalProcess(signal.SIGINT)
        status = yield child.ended
        self.assertEqual(status, 130)
        self.assertEqual(child.err.decode(), "interrupted: the outcome of request_id r-42 is"
                                             " unknown; run again with --request-id r-42 to learn"
                                             " it without sending twice\n")
