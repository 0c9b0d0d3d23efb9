"""
The AMP listener's description: a Twisted server endpoint string (C{unix:}, C{tcp:} or
C{ssl:}), checked by argument name, its relative file paths resolved.

Twisted's C{serverFromString} is the authority on these strings, and it is the last
check a C{tcp:} or C{unix:} description passes (on a C{MemoryReactor}, so nothing
listens).  It says little about what is wrong, though, so each argument is first named
as Twisted will bind it and checked with a message naming the key; that needs the
description split into fields, which Twisted offers no public function for, so
L{split_endpoint} follows its grammar (C{:} between fields, C{key=value} options,
C{\\} escaping the next character; the tests hold it to Twisted's own tokenizer).
An C{ssl:} description is not built here: building one reads its key files, which
the listener does at start.
"""

from __future__ import annotations

import ipaddress

from twisted.internet.endpoints import quoteStringArgument, serverFromString
from twisted.internet.testing import MemoryReactor

from .values import ConfigError, resolve

__all__ = [
    "default_listen", "is_loopback", "listen_arguments", "parse_listen", "split_endpoint",
    "unix_socket_path",
]

# The parameters Twisted's server endpoint parsers take, in positional order.
_ENDPOINT_PARAMETERS = {
    "tcp": ("port", "interface", "backlog"),
    "ssl": (
        "port",
        "privateKey",
        "certKey",
        "sslmethod",
        "interface",
        "backlog",
        "extraCertChain",
        "dhParameters",
    ),
    "unix": ("address", "mode", "backlog", "lockfile"),
}
# The endpoint arguments that name files, by endpoint kind.
_ENDPOINT_FILES = {
    "unix": ("address",),
    "ssl": ("privateKey", "certKey", "extraCertChain", "dhParameters"),
}
_LISTEN_HELP = (
    "use unix:PATH:mode=600, tcp:PORT:interface=ADDRESS or ssl:PORT:privateKey=FILE"
    "[:interface=ADDRESS]"
)
# Who may connect to the socket is decided by its mode: owner only.
_PRIVATE_SOCKET_MODES = (0o600, 0o700)


def split_endpoint(description: str) -> tuple[list[str], dict[str, str]]:
    """
    Split an endpoint description into its positional fields and its options, as
    C{serverFromString} does.

    @raise ValueError: the description ends with a lone C{\\} or gives one option twice
        (Twisted would fail on the first and silently keep the last of the second).
    """
    fields: list[list[str]] = [[""]]
    characters = iter(description)
    for character in characters:
        if character == "\\":
            escaped = next(characters, None)
            if escaped is None:
                raise ValueError("ends with a lone '\\'")
            fields[-1][-1] += escaped
        elif character == ":":
            fields.append([""])
        elif character == "=" and len(fields[-1]) == 1:
            fields[-1].append("")
        else:
            fields[-1][-1] += character
    positional = [f[0] for f in fields if len(f) == 1]
    options: dict[str, str] = {}
    for f in fields:
        if len(f) == 2:
            if f[0] in options:
                raise ValueError(f"gives {f[0]}= twice")
            options[f[0]] = f[1]
    return positional, options


def _quote(text: str) -> str:
    # Twisted's quoting, and '=' too: in a positional field it would start an option.
    return quoteStringArgument(text).replace("=", "\\=")


def _arguments(listen: str, key: str) -> tuple[str, dict[str, str]]:
    """Name every argument of an endpoint description, as Twisted will bind them."""

    def bad(reason: str) -> ConfigError:
        return ConfigError(f"{key}: {listen!r} {reason}; {_LISTEN_HELP}")

    try:
        positional, options = split_endpoint(listen)
    except ValueError as error:
        raise bad(str(error)) from None
    kind = positional[0] if positional else ""
    parameters = _ENDPOINT_PARAMETERS.get(kind)
    if parameters is None:
        raise bad(f"is a {kind!r} endpoint, which the AMP listener does not support")
    values = positional[1:]
    if len(values) > len(parameters):
        raise bad("has too many ':'-separated fields")
    arguments = dict(zip(parameters, values, strict=False))
    for name, value in options.items():
        if name not in parameters:
            raise bad(f"has an unknown option {name}=")
        if name in arguments:
            raise bad(f"gives {name} twice")
        arguments[name] = value
    if parameters[0] not in arguments or not arguments[parameters[0]]:
        raise bad(f"has no {parameters[0]}")
    if "backlog" in arguments and not arguments["backlog"].isdecimal():
        raise bad(f"has backlog {arguments['backlog']!r}, which is not a number")
    return kind, arguments


def listen_arguments(listen: str) -> tuple[str, dict[str, str]]:
    """The kind (``unix``, ``tcp`` or ``ssl``) of a checked listen description, and its
    arguments by name (``address``, ``port``, ``interface``, ...)."""
    return _arguments(listen, "listen")


def unix_socket_path(listen: str) -> str | None:
    """The socket file a checked ``unix:`` listen description names; None for other kinds."""
    kind, arguments = _arguments(listen, "listen")
    return arguments["address"] if kind == "unix" else None


def default_listen(state_dir: str) -> str:
    """The listener used when none is configured: a private socket in the state folder."""
    return f"unix:{_quote(state_dir or '.')}/amp.sock:mode=600"


def parse_listen(listen: str, key: str, base: str | None) -> str:
    """
    Check C{listen} and resolve its relative file paths against C{base}.

    A description that cannot be split or named is reported as written; the rest of the
    checks see the resolved paths, so that the message shows the file looked for.
    """
    _arguments(listen, key)
    listen = _resolve_listen(listen, base)
    kind, arguments = _arguments(listen, key)
    if kind == "unix":
        _check_unix_mode(listen, arguments.get("mode"), key)
        if arguments.get("lockfile", "0") not in ("0", "1"):
            raise ConfigError(f"{key}: {listen!r} has lockfile= other than 0 or 1")
    else:
        port = arguments["port"]
        if not port.isdecimal() or not port.isascii() or int(port) > 65535:
            raise ConfigError(f"{key}: {listen!r} has port {port!r}; use 0-65535; {_LISTEN_HELP}")
    if kind != "ssl":
        try:
            serverFromString(MemoryReactor(), listen)
        except (ValueError, TypeError) as error:
            raise ConfigError(f"{key}: {listen!r} is refused by Twisted: {error}") from None
    return listen


def check_listen_secret(listen: str, secret: str, key: str) -> None:
    """A TCP or TLS listener reachable from the network needs a secret."""
    kind, arguments = _arguments(listen, key)
    if kind != "unix" and not secret and not is_loopback(arguments.get("interface", "")):
        raise ConfigError(
            f"{key}: {listen!r} accepts connections from the network, and a TCP AMP"
            " endpoint on a non-loopback interface needs [amp] secret;"
            " set secret, or listen on interface=127.0.0.1 or a unix: socket"
        )


def _check_unix_mode(listen: str, mode: str | None, key: str) -> None:
    if mode is None:
        return
    try:
        bits = int(mode, 8)
    except ValueError:
        bits = -1
    if bits not in _PRIVATE_SOCKET_MODES:
        raise ConfigError(
            f"{key}: {listen!r} has mode={mode}, which is not allowed; use mode=600 or"
            " mode=700 so that only the gateway's user can connect"
        )


def is_loopback(interface: str) -> bool:
    """Whether a listener on C{interface} is reachable from this host only."""
    if interface == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        # "" means every interface; a host name may resolve to anything.
        return False


def _resolve_listen(listen: str, base: str | None) -> str:
    """The endpoint description with its relative file paths joined to C{base}."""
    positional, options = split_endpoint(listen)
    kind = positional[0]
    files = _ENDPOINT_FILES.get(kind, ())

    def field(name: str, value: str) -> str:
        return resolve(value, base) if name in files else value

    fields = [kind, *(_quote(field(name, value)) for name, value
                      in zip(_ENDPOINT_PARAMETERS[kind], positional[1:], strict=False))]
    fields += [f"{name}={_quote(field(name, value))}"
               for name, value in options.items()]
    resolved = ":".join(fields)
    # Written back only when a path changed: the description otherwise stays as given.
    return resolved if split_endpoint(resolved) != (positional, options) else listen
