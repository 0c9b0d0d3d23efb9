"""
The kinds of the C{[store]} and C{[node]} keys: which store the gateway opens, its
password, the state folder, and the node's name.

C{[store] url} (a libpq URL, C{postgresql://user@host/db}) selects the PostgreSQL
store; without it, C{[store] path} names the SQLite file.  The two together are an
error naming both.  The password comes from the URL, from the file C{password_file}
names (read when the configuration is, so a missing file is found at start-up), or
from libpq's environment (C{PGPASSWORD}, C{.pgpass}).  No message shows a password
nor a URL that holds one: the database is named without it.

The state folder (the default AMP socket's) is the SQLite file's folder; for the
PostgreSQL store, C{var/} beside the configuration file, where the default SQLite
file would be.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from typing import Any

from . import values
from .kinds import Table
from .values import ConfigError

__all__ = ["MAX_NODE_NAME", "MIN_LEASE", "NodeName", "PasswordFile", "StorePath", "StoreUrl",
           "describe_url"]

#: The longest node name: it is written in rows and log lines.
MAX_NODE_NAME = 64
#: The shortest lease: a node renews it well before it lapses, across a slow round trip.
MIN_LEASE = 3.0
#: The state folder of the PostgreSQL store, relative to the configuration file's folder.
POSTGRES_STATE_DIR = "var"

_SCHEMES = ("postgresql://", "postgres://")


def describe_url(url: str) -> str:
    """The database C{url} names, without its password (the store's own rendering)."""
    from smppgw.store.postgres.database import describe

    return describe(url)


def _url_fields(url: str) -> dict[str, Any] | None:
    """The libpq parameters of C{url}, or None if libpq cannot read it."""
    import psycopg
    from psycopg import conninfo

    try:
        return conninfo.conninfo_to_dict(url)
    except psycopg.Error:
        return None


@dataclass(frozen=True)
class StoreUrl:
    """A PostgreSQL URL, or C{""} for the SQLite store; never shown with its password."""

    def read(self, table: Table, name: str, default: Any) -> Any:
        url = table.typed(name, default, str, "a string")
        if not url:
            return url
        if not url.startswith(_SCHEMES):
            raise ConfigError(
                f"{table.key(name)}: not a PostgreSQL URL; use"
                ' "postgresql://user@host[:port]/database" (the value is not shown)')
        fields = _url_fields(url)
        if fields is None:
            raise ConfigError(
                f"{table.key(name)}: libpq cannot read this URL; use"
                ' "postgresql://user@host[:port]/database" (the value is not shown)')
        if not fields.get("dbname"):
            raise ConfigError(
                f"{table.key(name)}: {describe_url(url)} names no database; use"
                ' "postgresql://user@host[:port]/database"')
        return url


@dataclass(frozen=True)
class PasswordFile:
    """The file holding the database's password, giving (the path, the password read)."""

    def read(self, table: Table, name: str, default: Any) -> Any:
        path = values.resolve(table.typed(name, "", str, "a string"), table.base)
        if not path:
            return "", ""
        url = table.read.get("url", "")
        if not url:
            raise ConfigError(
                f"{table.key(name)}: only the PostgreSQL store has a password; set"
                f" {table.key('url')} too, or leave {table.key(name)} out")
        if (_url_fields(url) or {}).get("password"):
            raise ConfigError(
                f"{table.key(name)}: {table.key('url')} holds a password already;"
                " give it in one place only")
        try:
            with open(path, encoding="utf-8") as holder:
                password = holder.read().rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise ConfigError(f"{table.key(name)}: cannot read {path!r}: {reason}") from None
        if not password or "\n" in password:
            raise ConfigError(
                f"{table.key(name)}: {path!r} must hold the password on its one line"
                " (the value is not shown)")
        return path, password


@dataclass(frozen=True)
class StorePath:
    """The SQLite file, giving (the path, the state folder); none with C{url}."""

    def read(self, table: Table, name: str, default: Any) -> Any:
        url = table.read.get("url", "")
        given = table.typed(name, "", str, "a string")
        if url:
            if given:
                raise ConfigError(
                    f"{table.key(name)}, {table.key('url')}: give one of them: {table.key(name)}"
                    f" for the SQLite store, {table.key('url')} for the PostgreSQL one")
            return "", values.resolve(POSTGRES_STATE_DIR, table.base)
        path = values.resolve(given if table.has(name) else default, table.base)
        values.check_store_path(path, table.key(name))
        return path, os.path.dirname(path)


@dataclass(frozen=True)
class NodeName:
    """This gateway node's name: by default the host name; printable, at most 64 characters."""

    def read(self, table: Table, name: str, default: Any) -> Any:
        if table.has(name):
            node = table.typed(name, "", str, "a string")
            _check_node_name(node, table.key(name), "")
            return node
        node = socket.gethostname()
        store = table.config.get("store")
        if store is not None and store.url:
            _check_node_name(node, table.key(name), f"the host name {node!r} cannot be the"
                             " node's name; set it: ")
        return node


def _check_node_name(node: str, key: str, lead: str) -> None:
    if not node:
        raise ConfigError(f"{key}: {lead}'' is empty; name the node (by default, the host name)")
    if not node.isprintable() or node != node.strip():
        raise ConfigError(f"{key}: {lead}{node!r} is not allowed; use printable characters,"
                          " with no space at either end")
    if len(node) > MAX_NODE_NAME:
        raise ConfigError(f"{key}: {lead}{node!r} is too long ({len(node)} characters);"
                          f" use at most {MAX_NODE_NAME}")


@dataclass(frozen=True)
class Lease:
    """A node's lease: a duration of at least L{MIN_LEASE} seconds."""

    def read(self, table: Table, name: str, default: Any) -> Any:
        if not table.has(name):
            return default
        seconds = values.parse_duration(table.raw(name), table.key(name))
        if seconds < MIN_LEASE:
            raise ConfigError(f"{table.key(name)}: {table.raw(name)!r} is too short; use at"
                              f' least "{MIN_LEASE:g}s"')
        return seconds
