"""
Reaching the gateway from the command line: its AMP endpoint and secret from the
configuration file, the one-line errors, and the little helpers every command shares.
"""

from __future__ import annotations

import os
from typing import Any, Protocol

from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    UNIXClientEndpoint,
    connectProtocol,
)
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.protocols import amp

from smppgw.config import Config, ConfigError, listen_arguments, load_config
from smppgw.errors import SignalError
from smppgw.host.commands import Login

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


def say(out: Output, line: str) -> None:
    """Write one line and flush it (a pipe reader sees it at once)."""
    print(line, file=out, flush=True)


def server_name(server: str) -> str:
    """A server's name as the gateway's log writes it: the empty name as ``""``."""
    return server or '""'


def text(value: object) -> str:
    """A value of an AMP error as text (Twisted hands codes and reasons over as bytes)."""
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def description(error: BaseException) -> str:
    """The reason an AMP error came with."""
    return text(error.args[0]) if error.args else ""


def refusal(error: SignalError) -> str:
    return f"{error.code}: {description(error)}"


def os_reason(error: ConnectError) -> str:
    if isinstance(error.osError, int):
        return os.strerror(error.osError)
    return description(error) or type(error).__name__


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
                            f" ({os_reason(error)})") from None
    if config.amp.secret:
        try:
            yield client.callRemote(Login, secret=config.amp.secret)
        except SignalError as error:
            client.transport.loseConnection()
            raise CommandFailed(f"smppgw refused the login ({refusal(error)}): the [amp]"
                                f" secret in {config_path} is not the gateway's") from None
    return client

