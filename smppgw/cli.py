"""
The ``smppgw`` command: send through, watch and check a gateway from a shell.

    smppgw send +15551234 "Hello" --sender alice@example.com
    smppgw status
    smppgw host
    smppgw demo-reply +15551234 "@a: hi"
    smppgw check-config etc/smppgw.toml
    smppgw set-admin-password -c etc/smppgw.toml
    smppgw version

Every command that talks to the gateway reads its AMP endpoint and secret from
the configuration file (``-c``, by default etc/smppgw.toml): the same
``[amp] listen`` that the gateway listens on, so a relative unix socket path
means what it means to the gateway.  A gateway that does not answer is one line
on stderr and exit status 1; so is every error the gateway answers.

Each command is a function of (reactor, arguments, stdout, stderr) that gives a
Deferred exit status, so that tests run it against a real gateway in their own
reactor; `main` runs one on the global reactor, and says what an interruption
(Ctrl-C) leaves unknown.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
import uuid
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, inlineCallbacks, maybeDeferred
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    UNIXClientEndpoint,
    connectProtocol,
)
from twisted.internet.error import ConnectError, ConnectionClosed
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.protocols import amp
from twisted.python.failure import Failure

from smppgw import __version__
from smppgw.config import Config, ConfigError, listen_arguments, load_config
from smppgw.host.commands import DeliverSignal, Login, SendSignal, ServerStatus, SignalReport
from smppgw.relay.outcomes import SignalError
from smppgw.testing.demo import DemoReply, socket_path

DEFAULT_CONFIG = "etc/smppgw.toml"
#: The exit status of a command that failed (a usage error exits 2, as argparse does).
FAILED = 1
#: The exit status of a command interrupted before its outcome was known.
INTERRUPTED = 130



class Output(Protocol):
    """Where a command writes: sys.stdout, sys.stderr, or a test's buffer."""

    def write(self, text: str, /) -> int: ...

    def flush(self) -> None: ...


class CommandFailed(Exception):
    """A command cannot go on: its text is the one line printed on stderr."""


def _say(out: Output, line: str) -> None:
    print(line, file=out, flush=True)


def _name(server: str) -> str:
    """A server's name as the gateway's log writes it: the empty name as ``""``."""
    return server or '""'


def _text(value: object) -> str:
    """A value of an AMP error as text (Twisted hands codes and reasons over as bytes)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _description(error: BaseException) -> str:
    """The reason an AMP error came with."""
    return _text(error.args[0]) if error.args else ""


def _refusal(error: SignalError) -> str:
    return f"{error.code}: {_description(error)}"


def _os_reason(error: ConnectError) -> str:
    if isinstance(error.osError, int):
        return os.strerror(error.osError)
    return _description(error) or type(error).__name__


# -- reaching the gateway -----------------------------------------------------------


def load(path: str) -> Config:
    """The configuration at ``path``; its error is the command's one line."""
    try:
        return load_config(path)
    except ConfigError as error:
        raise CommandFailed(str(error)) from None


def amp_client(reactor: Any, config: Config) -> tuple[IStreamClientEndpoint, str]:
    """An endpoint that reaches the gateway's ``[amp] listen``, and that place as the messages show it."""
    kind, arguments = listen_arguments(config.amp.listen)
    if kind == "unix":
        path = arguments["address"]
        return UNIXClientEndpoint(reactor, path), f"unix:{path}"
    if kind == "tcp":
        port = int(arguments["port"])
        host = arguments.get("interface", "")
        if host in ("", "0.0.0.0"):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            return TCP6ClientEndpoint(reactor, host, port), f"tcp:[{host}]:{port}"
        return TCP4ClientEndpoint(reactor, host, port), f"tcp:{host}:{port}"
    raise CommandFailed(f"[amp] listen is {config.amp.listen!r}: the command line reaches"
                        " unix: and tcp: endpoints only")


@inlineCallbacks
def connect(reactor: Any, config_path: str, protocol: amp.AMP | None = None) -> Any:
    """Connect ``protocol`` (a plain AMP client by default) to the gateway and log in; fires with it."""
    config = load(config_path)
    endpoint, shown = amp_client(reactor, config)
    try:
        client = yield connectProtocol(endpoint, protocol or amp.AMP())
    except ConnectError as error:
        raise CommandFailed(f"smppgw is not running: cannot connect to {shown}"
                            f" ({_os_reason(error)})") from None
    if config.amp.secret:
        try:
            yield client.callRemote(Login, secret=config.amp.secret)
        except SignalError as error:
            client.transport.loseConnection()
            raise CommandFailed(f"smppgw refused the login ({_refusal(error)}): the [amp]"
                                f" secret in {config_path} is not the gateway's") from None
    return client


# -- the commands ---------------------------------------------------------------------


def _retry_hint(request_id: str) -> str:
    return (f"the outcome of request_id {request_id} is unknown; run again with --request-id"
            f" {request_id} to learn it without sending twice")


@inlineCallbacks
def send(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> Any:
    """Send one MESSAGE signal; print the request_id first, then the outcome."""
    recipient = args.recipient if "@" in args.recipient else f"{args.recipient}@smpp"
    host = yield connect(reactor, args.config)
    _say(out, f"request_id {args.request_id}")
    options = {"gateway": args.gateway} if args.gateway else {}
    try:
        answer = yield host.callRemote(
            SendSignal, request_id=args.request_id, method="MESSAGE", sender=args.sender,
            recipient=recipient, body=args.body, **options)
    except SignalError as error:
        retry = (f"; run again with --request-id {args.request_id}"
                 if error.code == "TRY_LATER" else "")
        raise CommandFailed(f"not sent: {_refusal(error)}{retry}") from None
    except ConnectionClosed:
        raise CommandFailed(f"the connection to smppgw was lost: {_retry_hint(args.request_id)}"
                            ) from None
    finally:
        host.transport.loseConnection()
    ids = ", ".join(answer["message_ids"])
    parts = answer["parts"]
    _say(out, f"sent through server {_name(answer['server'])} in {parts}"
              f" part{'s' if parts != 1 else ''}: message id{'s' if parts != 1 else ''} {ids}")
    return 0


def _send_interrupted(args: argparse.Namespace, err: Output) -> int:
    _say(err, f"interrupted: {_retry_hint(args.request_id)}")
    return INTERRUPTED


_COLUMNS = ("name", "mode", "address", "state", "queued", "sent", "received", "last_error")


@inlineCallbacks
def status(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> Any:
    """Print every server's state and counters, one line each."""
    host = yield connect(reactor, args.config)
    try:
        answer = yield host.callRemote(ServerStatus)
    finally:
        host.transport.loseConnection()
    rows = [[column.replace("_", " ") for column in _COLUMNS]]
    for server in answer["servers"]:
        row = [str(server.get(column, "")) for column in _COLUMNS]
        row[0] = _name(row[0])
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    for row in rows:
        _say(out, "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
             .rstrip())
    return 0


class PrintingHost(amp.AMP):
    """A host that prints each DeliverSignal and SignalReport as one line, and answers ``{}``."""

    def __init__(self, out: Output) -> None:
        super().__init__()
        self.out = out
        self.lost: Deferred[None] = Deferred()

    @DeliverSignal.responder
    def deliver_signal(self, method: str, sender: str, recipient: str, body: str,
                       server: str) -> dict[str, Any]:
        shown = json.dumps(body, ensure_ascii=False)
        _say(self.out, f"DeliverSignal {method} from {sender} to {recipient},"
                       f" server {_name(server)}: {shown}")
        return {}

    @SignalReport.responder
    def signal_report(self, request_id: str, message_id: str, state: str, error: str,
                      server: str, part: int | None = None,
                      parts: int | None = None) -> dict[str, Any]:
        which = f" part {part}/{parts}" if part is not None else ""
        because = f" (error {error})" if error else ""
        _say(self.out, f"SignalReport {request_id}{which}: {state}{because},"
                       f" message {message_id}, server {_name(server)}")
        return {}

    def connectionLost(self, reason: Failure | None = None) -> None:
        super().connectionLost(reason)
        self.lost.callback(None)


@inlineCallbacks
def host(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> Any:
    """Play the IM host until the gateway closes the connection (or Ctrl-C)."""
    printing = PrintingHost(out)
    yield connect(reactor, args.config, printing)
    _say(err, "logged in: each DeliverSignal and SignalReport shows here (Ctrl-C stops)")
    yield printing.lost
    raise CommandFailed("smppgw closed the connection")


def _host_interrupted(args: argparse.Namespace, err: Output) -> int:
    return 0


@inlineCallbacks
def demo_reply(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> Any:
    """Have the demo's simulator send an SMS from a phone to the gateway."""
    config = load(args.config)
    path = socket_path(config)
    try:
        phones = yield connectProtocol(UNIXClientEndpoint(reactor, path), amp.AMP())
    except ConnectError as error:
        # Whether the gateway runs at all decides which of two things to say.
        gateway = yield connect(reactor, args.config)
        gateway.transport.loseConnection()
        raise CommandFailed(f"smppgw is not running in demo mode: cannot connect to"
                            f" unix:{path} ({_os_reason(error)}); start it with bin/demo"
                            " (twistd smppgw --demo)") from None
    options = {"server": args.server} if args.server is not None else {}
    try:
        answer = yield phones.callRemote(DemoReply, phone=args.phone, body=args.text, **options)
    except SignalError as error:
        raise CommandFailed(f"not sent: {_refusal(error)}") from None
    finally:
        phones.transport.loseConnection()
    _say(out, f"{answer['source']} sent it to {answer['destination'] or '(no address)'}"
              f" through server {_name(answer['server'])}; the gateway took it")
    return 0


def check_config(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> int:
    """Load and check a configuration file without starting anything."""
    config = load(args.file or args.config)
    count = len(config.servers)
    _say(out, f"ok: {count} server{'s' if count != 1 else ''}")
    return 0


#: How a password is asked for: without echo (a test replaces it).
ask_password = getpass.getpass


def set_admin_password(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> int:
    """Ask for the web admin's password twice and write its argon2 hash into the config file."""
    from smppgw.admin.auth import hash_password
    from smppgw.admin.configfile import set_admin_password as write_hash

    path = args.config
    load(path)
    first = ask_password("New admin password: ")
    if not first:
        raise CommandFailed("no password given; nothing changed")
    if ask_password("The same again: ") != first:
        raise CommandFailed("the two passwords differ; nothing changed")
    try:
        write_hash(path, hash_password(first))
    except ConfigError as error:
        raise CommandFailed(str(error)) from None
    except OSError as error:
        raise CommandFailed(f"{path}: cannot write the configuration file:"
                            f" {error.strerror or error}; nothing changed") from None
    _say(out, f"the admin password is set in {path} (the previous file is {path}.bak);"
              " reload the gateway (SIGHUP) or restart it to use it")
    return 0


def version(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> int:
    _say(out, f"smppgw {__version__}")
    return 0


# -- the command line -----------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    """The ``smppgw`` argument parser, with a sub-parser (and ``--help``) per command."""
    config_help = f"the gateway's configuration file (default {DEFAULT_CONFIG})"
    top = argparse.ArgumentParser(
        prog="smppgw", description="Talk to a running smppgw gateway, or check its configuration.")
    top.add_argument("-c", "--config", default=DEFAULT_CONFIG, help=config_help)
    # -c after the command works too; SUPPRESS keeps one given before it.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-c", "--config", default=argparse.SUPPRESS, help=config_help)
    commands = top.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, run: Callable[..., Any], summary: str, description: str = "",
                interrupted: Callable[[argparse.Namespace, Output], int] | None = None
                ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, parents=[common], help=summary,
                                  description=description or summary)
        sub.set_defaults(run=run, interrupted=interrupted)
        return sub

    sub = command(
        "send", send, "send one MESSAGE signal as SMS and print its outcome",
        "Send one MESSAGE signal as SMS. The request_id is printed first: asking again with"
        " --request-id and the same id never sends the SMS twice, and gets the same outcome.",
        _send_interrupted)
    sub.add_argument("recipient",
                     help="+E164@smpp, +E164@name._smpp, +E164@telnum (a bare +E164 means @smpp)")
    sub.add_argument("body", help="the text")
    sub.add_argument("--sender", default="demo@null",
                     help="the IM sender, e.g. alice@example.com (default demo@null)")
    sub.add_argument("--request-id", default="",
                     help="the idempotency key (default: a new one, printed)")
    sub.add_argument("--gateway", default=None, help="the server for +E164@telnum")

    command("status", status, "show every server's state and counters")
    command("host", host, "play the IM host: print every DeliverSignal and SignalReport",
            "Log in as an IM host and print each DeliverSignal and SignalReport the gateway"
            " hands over, one line each, answering each {}. Runs until Ctrl-C.",
            _host_interrupted)

    sub = command(
        "demo-reply", demo_reply, "demo mode: a phone sends an SMS to the gateway",
        "Demo mode only (bin/demo): the built-in SMSC simulator sends TEXT from PHONE to the"
        " gateway, to the address that last sent PHONE an SMS. Start TEXT with a dialog"
        ' prefix ("@b: hi") to answer one IM user of several.')
    sub.add_argument("phone", help="the phone's number, e.g. +15551234")
    sub.add_argument("text", help="what the phone sends")
    sub.add_argument("--server", default=None,
                     help="the server it comes through (default: the one that last sent to PHONE)")

    sub = command("check-config", check_config,
                  "check a configuration file without starting the gateway",
                  "Check a configuration file without starting anything: print 'ok: N servers',"
                  " or the error naming the key, and exit 1.")
    sub.add_argument("file", nargs="?", default=None, help="the file (default: the -c one)")
    command("set-admin-password", set_admin_password,
            "set the web admin's password in the configuration file",
            "Ask for the web admin's password twice (it is not shown) and write its argon2"
            " hash as [admin] password_hash into the -c file, atomically, comments kept and"
            " the previous file kept as FILE.bak.")
    command("version", version, "print smppgw's version")
    return top


def parse_args(argv: list[str]) -> argparse.Namespace:
    """The arguments of ``smppgw`` (without the program name); exits 2 on a usage error."""
    args = parser().parse_args(argv)
    if args.command == "send" and not args.request_id:
        args.request_id = uuid.uuid4().hex
    return args


def run(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> Deferred[int]:
    """Run the parsed command; fires with its exit status, having printed any error on ``err``."""
    def failed(failure: Failure) -> int:
        if failure.check(CommandFailed):
            _say(err, failure.getErrorMessage())
        elif failure.check(SignalError):
            _say(err, f"smppgw: {_refusal(failure.value)}")  # type: ignore[arg-type]
        elif failure.check(amp.RemoteAmpError):
            error: Any = failure.value
            _say(err, f"smppgw: the gateway answered {_text(error.errorCode)}:"
                      f" {_text(error.description)}")
        elif failure.check(ConnectionClosed):
            _say(err, "smppgw: the connection to the gateway was lost")
        else:
            _say(err, f"smppgw: unexpected error: {failure.getTraceback()}")
        return FAILED

    return maybeDeferred(args.run, reactor, args, out, err).addErrback(failed)


class _Gate:
    """A stream that passes writes on to ``stream`` while ``open``."""

    def __init__(self, stream: Output) -> None:
        self.stream = stream
        self.open = True

    def write(self, text: str) -> int:
        return self.stream.write(text) if self.open else len(text)

    def flush(self) -> None:
        self.stream.flush()


def main(argv: list[str] | None = None) -> int:
    """The console script: run one command on the global reactor; its exit status."""
    args = parse_args(sys.argv[1:] if argv is None else argv)
    from twisted.internet import reactor as global_reactor

    reactor: Any = global_reactor
    outcome: list[int] = []
    # Once interrupted, the command's own end (its connection closing) says nothing more.
    out, err = _Gate(sys.stdout), _Gate(sys.stderr)

    def start() -> None:
        d = run(reactor, args, out, err)
        d.addCallback(outcome.append)
        d.addBoth(lambda _: reactor.stop())

    def shutting_down() -> None:
        # Before the command's outcome: Ctrl-C, or a signal.
        if not outcome:
            out.open = err.open = False
            interrupted = args.interrupted
            if interrupted is None:
                _say(sys.stderr, "interrupted")
                outcome.append(INTERRUPTED)
            else:
                outcome.append(interrupted(args, sys.stderr))

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", shutting_down)
    reactor.run()
    return outcome[0] if outcome else FAILED


if __name__ == "__main__":
    sys.exit(main())
