"""
The commands that send and receive through the gateway: send, status, host, demo-reply.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError, ConnectionClosed
from twisted.protocols import amp
from twisted.python.failure import Failure

from smppgw.errors import SignalError
from smppgw.host.commands import DeliverSignal, SendSignal, ServerStatus, SignalReport
from smppgw.testing.demo import DemoReply, socket_path

from .reach import (
    INTERRUPTED,
    CommandFailed,
    Output,
    connect,
    load,
    os_reason,
    refusal,
    say,
    server_name,
)


def _retry_hint(request_id: str) -> str:
    return (f"the outcome of request_id {request_id} is unknown; run again with --request-id"
            f" {request_id} to learn it without sending twice")


@inlineCallbacks
def send(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> Any:
    """Send one MESSAGE signal; print the request_id first, then the outcome."""
    recipient = args.recipient if "@" in args.recipient else f"{args.recipient}@smpp"
    host = yield connect(reactor, args.config)
    say(out, f"request_id {args.request_id}")
    options = {"gateway": args.gateway} if args.gateway else {}
    try:
        answer = yield host.callRemote(
            SendSignal, request_id=args.request_id, method="MESSAGE", sender=args.sender,
            recipient=recipient, body=args.body, **options)
    except SignalError as error:
        retry = (f"; run again with --request-id {args.request_id}"
                 if error.code == "TRY_LATER" else "")
        raise CommandFailed(f"not sent: {refusal(error)}{retry}") from None
    except ConnectionClosed:
        raise CommandFailed(f"the connection to smppgw was lost: {_retry_hint(args.request_id)}"
                            ) from None
    finally:
        host.transport.loseConnection()
    ids = ", ".join(answer["message_ids"])
    parts = answer["parts"]
    say(out, f"sent through server {server_name(answer['server'])} in {parts}"
              f" part{'s' if parts != 1 else ''}: message id{'s' if parts != 1 else ''} {ids}")
    return 0


def send_interrupted(args: argparse.Namespace, err: Output) -> int:
    say(err, f"interrupted: {_retry_hint(args.request_id)}")
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
        row[0] = server_name(row[0])
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    for row in rows:
        say(out, "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
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
        say(self.out, f"DeliverSignal {method} from {sender} to {recipient},"
                       f" server {server_name(server)}: {shown}")
        return {}

    @SignalReport.responder
    def signal_report(self, request_id: str, message_id: str, state: str, error: str,
                      server: str, part: int | None = None,
                      parts: int | None = None) -> dict[str, Any]:
        which = f" part {part}/{parts}" if part is not None else ""
        because = f" (error {error})" if error else ""
        say(self.out, f"SignalReport {request_id}{which}: {state}{because},"
                       f" message {message_id}, server {server_name(server)}")
        return {}

    def connectionLost(self, reason: Failure | None = None) -> None:
        super().connectionLost(reason)
        self.lost.callback(None)


@inlineCallbacks
def host(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> Any:
    """Play the IM host until the gateway closes the connection (or Ctrl-C)."""
    printing = PrintingHost(out)
    yield connect(reactor, args.config, printing)
    say(err, "logged in: each DeliverSignal and SignalReport shows here (Ctrl-C stops)")
    yield printing.lost
    raise CommandFailed("smppgw closed the connection")


def host_interrupted(args: argparse.Namespace, err: Output) -> int:
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
                            f" unix:{path} ({os_reason(error)}); start it with bin/demo"
                            " (twistd smppgw --demo)") from None
    options = {"server": args.server} if args.server is not None else {}
    try:
        answer = yield phones.callRemote(DemoReply, phone=args.phone, body=args.text, **options)
    except SignalError as error:
        raise CommandFailed(f"not sent: {refusal(error)}") from None
    finally:
        phones.transport.loseConnection()
    say(out, f"{answer['source']} sent it to {answer['destination'] or '(no address)'}"
              f" through server {server_name(answer['server'])}; the gateway took it")
    return 0
