"""
The kinds of value a configuration key takes, and the TOML table they are read from.

A kind reads one key of a L{Table}: it checks the TOML type, then the value (a range, a
list of choices, a duration, an address...), and returns what goes into the config
object, or its default when the key is absent.  Kinds are plain frozen values, so that
L{smppgw.config.schema} can declare every key as data.  A kind that sets several fields
at once (C{address} gives tls, host and port) returns a tuple of them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from . import values
from .endpoints import default_listen, parse_listen
from .values import ConfigError, did_you_mean, finite, one_of, toml_type

__all__ = ["Kind", "Table"]


class Table:
    """
    One TOML table being read: every read checks the value's type and names the key.

    Unknown keys are refused up front, so that a typo never silently leaves a default
    in force.  A kind may look at the values read before its own (C{read}) and at the
    sections parsed before this one (C{config}).
    """

    def __init__(self, entries: Mapping[str, Any], prefix: str, known: Sequence[str],
                 base: str | None, secrets: Collection[str] = (),
                 config: Mapping[str, Any] | None = None) -> None:
        self._values = entries
        self._prefix = prefix
        self._secrets = secrets
        self.base = base
        self.config: Mapping[str, Any] = config or {}
        self.read: dict[str, Any] = {}
        for name in entries:
            if name not in known:
                raise ConfigError(
                    f"{self.key(name)}: unknown key{did_you_mean(name, known)}"
                    f" (known keys: {', '.join(known)})"
                )

    def key(self, name: str) -> str:
        """The full key for error messages: C{server[0].mode}."""
        return f"{self._prefix}.{name}"

    def has(self, name: str) -> bool:
        """Whether the table sets C{name}."""
        return name in self._values

    def raw(self, name: str) -> Any:
        """The value as TOML gave it."""
        return self._values[name]

    def typed(self, name: str, default: Any, kind: type | tuple[type, ...], what: str) -> Any:
        """The value if it has the TOML type C{kind}, C{default} if absent."""
        if name not in self._values:
            return default
        value = self._values[name]
        # bool is an int subclass; TOML keeps them apart and so do we.
        wrong_bool = isinstance(value, bool) and bool not in (
            kind if isinstance(kind, tuple) else (kind,)
        )
        if wrong_bool or not isinstance(value, kind):
            shown = "a value" if name in self._secrets else repr(value)
            raise ConfigError(
                f"{self.key(name)}: expected {what}, got {shown} ({toml_type(value)})"
            )
        return value


class Kind(Protocol):
    """How one key is read."""

    def read(self, table: Table, name: str, default: Any) -> Any:
        """The checked value of key C{name}, or C{default} when the table lacks it."""


@dataclass(frozen=True)
class Text:
    """A string, optionally checked by C{check(value, key)} (one of L{values}' checkers)."""

    check: Callable[[str, str], None] | None = None

    def read(self, table: Table, name: str, default: Any) -> Any:
        value = table.typed(name, default, str, "a string")
        if self.check is not None:
            self.check(value, table.key(name))
        return value


@dataclass(frozen=True)
class Path(Text):
    """A file path: a relative one is joined to the folder of the config file."""

    def read(self, table: Table, name: str, default: Any) -> Any:
        path = values.resolve(table.typed(name, default, str, "a string"), table.base)
        if self.check is not None:
            self.check(path, table.key(name))
        return path


@dataclass(frozen=True)
class Boolean:
    def read(self, table: Table, name: str, default: Any) -> Any:
        return table.typed(name, default, bool, "a boolean (true or false)")


@dataclass(frozen=True)
class Integer:
    """An integer from C{low} to C{high}; with C{optional}, None when absent."""

    low: int
    high: int
    optional: bool = False

    def read(self, table: Table, name: str, default: Any) -> Any:
        if self.optional and not table.has(name):
            return None
        value = table.typed(name, default, int, f"an integer from {self.low} to {self.high}")
        if not self.low <= value <= self.high:
            raise ConfigError(
                f"{table.key(name)}: {value!r} is out of range;"
                f" use an integer from {self.low} to {self.high}"
            )
        return value


@dataclass(frozen=True)
class SmppValue:
    """One of the integers SMPP 3.4 defines for a field, or None when absent."""

    allowed: tuple[int, ...]

    def read(self, table: Table, name: str, default: Any) -> Any:
        value = Integer(min(self.allowed), max(self.allowed), optional=True).read(
            table, name, default)
        if value is not None and value not in self.allowed:
            raise ConfigError(f"{table.key(name)}: {value!r} is not an SMPP 3.4 value; use one of "
                              + ", ".join(str(a) for a in self.allowed))
        return value


@dataclass(frozen=True)
class Number:
    """A number of at least C{low} (above it, when C{positive})."""

    low: float
    positive: bool = False

    def read(self, table: Table, name: str, default: Any) -> Any:
        low = self.low
        what = f"a number above {low}" if self.positive else f"a number of at least {low}"
        value = table.typed(name, default, (int, float), what)
        if not finite(value) or value < low or (self.positive and value == low):
            bound = f"> {low}" if self.positive else f">= {low}"
            raise ConfigError(f"{table.key(name)}: {value!r} is out of range; use a number {bound}")
        return float(value)


@dataclass(frozen=True)
class Choice:
    """One of a few strings."""

    choices: tuple[str, ...]

    def read(self, table: Table, name: str, default: Any) -> Any:
        value = table.typed(name, default, str, f"a string, one of {one_of(self.choices)}")
        if value not in self.choices:
            raise ConfigError(
                f"{table.key(name)}: {value!r} is not allowed; use {one_of(self.choices)}")
        return value


@dataclass(frozen=True)
class Duration:
    """A duration (L{values.parse_duration}); longer than 0 when C{positive}; with
    C{never}, 0 (also written C{"0"}) means never."""

    positive: bool = False
    never: bool = False

    def read(self, table: Table, name: str, default: Any) -> Any:
        if not table.has(name):
            return default
        value = table.raw(name)
        if self.never and value == "0":
            return 0.0
        try:
            seconds = values.parse_duration(value, table.key(name))
        except ConfigError as error:
            if self.never:
                raise ConfigError(f'{error}; or "0" for never') from None
            raise
        if self.positive and seconds == 0:
            raise ConfigError(
                f"{table.key(name)}: {value!r} is too short;"
                ' use a duration longer than 0, such as "30s"'
            )
        return seconds


def _off(table: Table) -> bool:
    return bool(table.read.get("mode") == "off")


@dataclass(frozen=True)
class SmscAddress:
    """C{[tls:]host[:port]}, giving (tls, host, port); only a server that is off may lack it."""

    def read(self, table: Table, name: str, default: Any) -> Any:
        if table.has(name):
            text = table.typed(name, "", str, "a string")
            return values.parse_smsc_address(text, table.key(name))
        if not _off(table):
            raise ConfigError(
                f"{table.key(name)}: missing; a server in mode {table.read['mode']!r} needs an"
                ' address like "smsc.example.net:2775" (or set mode = "off")'
            )
        return default


@dataclass(frozen=True)
class SystemId:
    """C{id[@SystemType]}, giving (system_id, system_type); the type is [module]'s unless
    given; only a server that is off may lack it."""

    def read(self, table: Table, name: str, default: Any) -> Any:
        module_type = table.config["module"].system_type
        if table.has(name):
            text = table.typed(name, "", str, "a string")
            return values.parse_system_id(text, table.key(name), module_type)
        if not _off(table):
            raise ConfigError(
                f"{table.key(name)}: missing; a server in mode {table.read['mode']!r} needs the"
                ' system_id it binds with ("id" or "id@SystemType")'
            )
        return "", module_type


@dataclass(frozen=True)
class Listen:
    """A Twisted server endpoint description; by default a socket beside the store."""

    def read(self, table: Table, name: str, default: Any) -> Any:
        if table.has(name):
            listen = table.typed(name, "", str, "a string")
        else:
            listen = default_listen(table.config["store"].state_dir)
        return parse_listen(listen, table.key(name), table.base)
