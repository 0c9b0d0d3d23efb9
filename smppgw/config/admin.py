"""
The checks of the C{[admin]} table: where the web admin listens and what guards it.

The listener is a Twisted server endpoint string like C{[amp] listen}, or C{""} for no
admin at all.  A browser's password crosses it, so one reachable from the network must
be TLS (C{ssl:}); plain C{tcp:} is allowed on a loopback interface only (behind an
SSH tunnel or a TLS proxy on the same host).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .endpoints import is_loopback, listen_arguments, parse_listen
from .kinds import Table
from .values import ConfigError

__all__ = ["DEFAULT_ADMIN_LISTEN", "AdminListen", "check_password_hash"]

DEFAULT_ADMIN_LISTEN = "tcp:8780:interface=127.0.0.1"
# The argon2 variants argon2-cffi verifies; a hash is "$argon2id$v=19$m=...,t=...,p=...$salt$hash".
_ARGON2_PREFIXES = ("$argon2id$", "$argon2i$", "$argon2d$")


@dataclass(frozen=True)
class AdminListen:
    """The admin's endpoint: C{""} for none, C{tcp:} on loopback, C{ssl:} or C{unix:}."""

    def read(self, table: Table, name: str, default: Any) -> Any:
        listen = table.typed(name, default, str, "a string")
        if not listen:
            return ""
        key = table.key(name)
        listen = parse_listen(listen, key, table.base)
        kind, arguments = listen_arguments(listen)
        if kind == "tcp" and not is_loopback(arguments.get("interface", "")):
            raise ConfigError(
                f"{key}: {listen!r} accepts connections from the network without TLS, and the"
                " admin's password would cross it in clear; use ssl:PORT:privateKey=FILE, or"
                " tcp:PORT:interface=127.0.0.1 behind a TLS proxy, or \"\" for no admin"
            )
        return listen


def check_password_hash(value: str, key: str) -> None:
    """An argon2 hash as C{smppgw set-admin-password} writes it, or C{""} for none yet."""
    if value and not value.startswith(_ARGON2_PREFIXES):
        raise ConfigError(
            f"{key}: not an argon2 hash (it starts with neither $argon2id$ nor $argon2i$);"
            " set it with: smppgw set-admin-password -c FILE"
        )
