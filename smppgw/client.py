"""
A small AMP host on the command line, for trying the gateway out.

    python -m smppgw.client status
    python -m smppgw.client send +15551234@smpp "Hello from smppgw" --sender alice@example.com

It connects to the gateway's AMP endpoint (``--connect``, a Twisted client
endpoint string; by default the demo's ``unix:var/amp.sock``), logs in when
``--secret`` is given, and prints the answer as JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import clientFromString, connectProtocol
from twisted.protocols import amp

from .amp import Login, SendSignal, ServerStatus


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m smppgw.client", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connect", default="unix:var/amp.sock",
                        help="the gateway's AMP endpoint (default unix:var/amp.sock)")
    parser.add_argument("--secret", default="", help="the [amp] secret, if the gateway has one")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("status", help="show every server's state and counters")
    send = commands.add_parser("send", help="send one MESSAGE signal as SMS")
    send.add_argument("recipient", help="+E164@smpp, +E164@name._smpp or +E164@telnum")
    send.add_argument("body")
    send.add_argument("--sender", default="demo@null", help="the IM sender (default demo@null)")
    send.add_argument("--request-id", default="", help="the idempotency key (default: a new one)")
    send.add_argument("--gateway", default=None, help="server name for +E164@telnum")
    return parser.parse_args(argv)


@inlineCallbacks
def run(reactor: Any, options: argparse.Namespace) -> Any:
    """Do what `options` say; return the answer as a dict."""
    host = yield connectProtocol(clientFromString(reactor, options.connect), amp.AMP())
    try:
        if options.secret:
            yield host.callRemote(Login, secret=options.secret)
        if options.command == "status":
            answer = yield host.callRemote(ServerStatus)
        else:
            kw = {"gateway": options.gateway} if options.gateway else {}
            answer = yield host.callRemote(
                SendSignal, request_id=options.request_id or uuid.uuid4().hex, method="MESSAGE",
                sender=options.sender, recipient=options.recipient, body=options.body, **kw)
    finally:
        host.transport.loseConnection()
    return answer


def main(argv: list[str] | None = None) -> int:
    options = parse_args(sys.argv[1:] if argv is None else argv)
    from twisted.internet import reactor as global_reactor

    reactor: Any = global_reactor
    status: list[int] = []

    def done(answer: Any) -> None:
        print(json.dumps(answer, indent=2))
        status.append(0)

    def failed(failure: Any) -> None:
        error = failure.value
        code = getattr(error, "code", "") or type(error).__name__
        print(f"error: {code}: {error}", file=sys.stderr)
        status.append(1)

    def start() -> Deferred[None]:
        d = run(reactor, options)
        d.addCallbacks(done, failed)
        d.addBoth(lambda _: reactor.stop())
        return d

    reactor.callWhenRunning(start)
    reactor.run()
    return status[0] if status else 1


if __name__ == "__main__":
    sys.exit(main())
