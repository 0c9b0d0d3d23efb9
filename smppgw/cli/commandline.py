"""
The ``smppgw`` command line: its parser (a sub-parser and ``--help`` per command), running
one command, and the console script's `main` on the global reactor.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.error import ConnectionClosed
from twisted.protocols import amp
from twisted.python.failure import Failure

from smppgw.errors import SignalError

from . import local, messages, operations
from .reach import DEFAULT_CONFIG, FAILED, INTERRUPTED, CommandFailed, Output, refusal, say, text


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
        "send", messages.send, "send one MESSAGE signal as SMS and print its outcome",
        "Send one MESSAGE signal as SMS. The request_id is printed first: asking again with"
        " --request-id and the same id never sends the SMS twice, and gets the same outcome.",
        messages.send_interrupted)
    sub.add_argument("recipient",
                     help="+E164@smpp, +E164@name._smpp, +E164@telnum (a bare +E164 means @smpp)")
    sub.add_argument("body", help="the text")
    sub.add_argument("--sender", default="demo@null",
                     help="the IM sender, e.g. alice@example.com (default demo@null)")
    sub.add_argument("--request-id", default="",
                     help="the idempotency key (default: a new one, printed)")
    sub.add_argument("--gateway", default=None, help="the server for +E164@telnum")

    command("status", messages.status, "show every server's state and counters")
    command("host", messages.host, "play the IM host: print every DeliverSignal and SignalReport",
            "Log in as an IM host and print each DeliverSignal and SignalReport the gateway"
            " hands over, one line each, answering each {}. Runs until Ctrl-C.",
            messages.host_interrupted)

    sub = command(
        "demo-reply", messages.demo_reply, "demo mode: a phone sends an SMS to the gateway",
        "Demo mode only (bin/demo): the built-in SMSC simulator sends TEXT from PHONE to the"
        " gateway, to the address that last sent PHONE an SMS. Start TEXT with a dialog"
        ' prefix ("@b: hi") to answer one IM user of several.')
    sub.add_argument("phone", help="the phone's number, e.g. +15551234")
    sub.add_argument("text", help="what the phone sends")
    sub.add_argument("--server", default=None,
                     help="the server it comes through (default: the one that last sent to PHONE)")

    sub = command("check-config", local.check_config,
                  "check a configuration file without starting the gateway",
                  "Check a configuration file without starting anything: print 'ok: N servers',"
                  " or the error naming the key, and exit 1.")
    sub.add_argument("file", nargs="?", default=None, help="the file (default: the -c one)")
    command("set-admin-password", local.set_admin_password,
            "set the web admin's password in the configuration file",
            "Ask for the web admin's password twice (it is not shown) and write its argon2"
            " hash as [admin] password_hash into the -c file, atomically, comments kept and"
            " the previous file kept as FILE.bak.")
    operations.register(command)
    command("version", local.version, "print smppgw's version")
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
            say(err, failure.getErrorMessage())
        elif failure.check(SignalError):
            say(err, f"smppgw: {refusal(failure.value)}")  # type: ignore[arg-type]
        elif failure.check(amp.RemoteAmpError):
            error: Any = failure.value
            say(err, f"smppgw: the gateway answered {text(error.errorCode)}:"
                      f" {text(error.description)}")
        elif failure.check(ConnectionClosed):
            say(err, "smppgw: the connection to the gateway was lost")
        else:
            say(err, f"smppgw: unexpected error: {failure.getTraceback()}")
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
                say(sys.stderr, "interrupted")
                outcome.append(INTERRUPTED)
            else:
                outcome.append(interrupted(args, sys.stderr))

    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", shutting_down)
    reactor.run()
    return outcome[0] if outcome else FAILED

