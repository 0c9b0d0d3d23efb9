"""
The gateway's configuration: a TOML file parsed once into frozen, validated dataclasses.

Everything that can be wrong with a value is found here, at start-up, and reported as a
L{ConfigError} whose message names the key (C{server[2].mode}, C{module.dialog_timeout}),
shows the bad value and says what is allowed.  The rest of the gateway can then trust
these objects without checking them again.

Relative file paths (the store, a C{unix:} AMP socket, TLS files) are taken
relative to the folder of the config file that L{load_config} reads, never to
the working directory, so the gateway finds the same files wherever it starts.

Passwords and the AMP secret are kept out of C{repr()} and out of every error message:
config objects end up in logs and tracebacks.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, cast

__all__ = [
    "BIND_TYPES",
    "DEFAULT_SYSTEM_TYPE",
    "LOG_LEVELS",
    "MODES",
    "AmpConfig",
    "Config",
    "ConfigError",
    "ModuleConfig",
    "ServerConfig",
    "StoreConfig",
    "load_config",
    "parse_config",
    "parse_duration",
]


#: The numbering plan indicators SMPP 3.4 defines (section 5.2.6).
SMPP_NPI_VALUES = (0, 1, 3, 4, 6, 8, 9, 10, 14, 18)


def _npi(table: Any) -> int | None:
    return table.optional_choice_integer("source_npi", SMPP_NPI_VALUES)


class ConfigError(Exception):
    """
    The configuration is unusable; the message names the key, the bad value and what is
    allowed.
    """


LOG_LEVELS = ("none", "major", "problems", "low-level", "all")
MODES = ("off", "send-only", "receive-only", "send-and-receive")
BIND_TYPES = {
    "send-only": "transmitter",
    "receive-only": "receiver",
    "send-and-receive": "transceiver",
}
DEFAULT_SYSTEM_TYPE = "smppgw"

ENCODINGS = ("gsm", "latin-1", "ascii", "ucs2")
#: What data_coding 0 means on a link ("SMSC default alphabet"), both directions.
DEFAULT_ALPHABETS = ("gsm", "ascii", "latin-1")
LONG_MESSAGE_METHODS = ("udh", "sar", "payload")
RECEIPT_ID_FORMATS = ("auto", "hex", "decimal", "string")
DEFAULT_SMPP_PORT = 2775

# SMPP 3.4 section 4.1.1 (bind): system_id is a C-Octet String of at most 16 octets,
# password 9 and system_type 13, each including the terminating NUL.
_MAX_SYSTEM_ID = 15
_MAX_PASSWORD = 8
_MAX_SYSTEM_TYPE = 12
# source_addr is a C-Octet String of at most 21 octets.
_MAX_SENDER = 20
_MAX_NAME = 64

# Keys whose values must never be echoed, even when they have the wrong type.
_SECRET_KEYS = frozenset({"password", "secret"})


# --- the configuration objects ---------------------------------------------------------


@dataclass(frozen=True)
class ModuleConfig:
    """Settings for the whole gateway (the C{[module]} table)."""

    log_level: str = "problems"
    reject_if_not_relayed_in: float = 600.0
    dialog_timeout: float = 7200.0
    source_address: str = ""
    default_gateway: str = ""
    system_type: str = DEFAULT_SYSTEM_TYPE
    reassembly_timeout: float = 1800.0


@dataclass(frozen=True)
class AmpConfig:
    """Where hosts reach the gateway over AMP (the C{[amp]} table)."""

    listen: str
    secret: str = field(default="", repr=False)
    max_connections: int = 100


@dataclass(frozen=True)
class StoreConfig:
    """Where the gateway keeps its state (the C{[store]} table)."""

    path: str = "var/smppgw.sqlite"


@dataclass(frozen=True)
class ServerConfig:
    """
    One SMSC the gateway binds to (one C{[[server]]} table).

    C{host} is bare (an IPv6 address has no brackets); L{address} is the display form.
    """

    name: str
    mode: str
    host: str
    port: int
    tls: bool
    system_id: str
    system_type: str
    password: str = field(repr=False)
    sender: str = ""
    dialogs: bool = False
    recipient: str = ""
    encoding: str = "gsm"
    default_alphabet: str = "gsm"
    keep_alive: float = 30.0
    window: int = 10
    throughput: float = 0.0
    throttle_pause: float = 1.0
    min_rate: float = 1.0
    rate_step: float = 0.5
    rate_period: float = 1.0
    registered_delivery: bool = False
    response_timeout: float = 10.0
    max_parts: int = 10
    long_messages: str = "udh"
    ca_file: str = ""
    client_cert: str = ""
    verify: bool = True
    source_ton: int | None = None
    source_npi: int | None = None
    receipt_id_format: str = "auto"
    country_code: str = ""
    national_prefix: str = "0"
    receipt_timeout: float = 48 * 3600.0

    @property
    def bind_type(self) -> str:
        """
        The SMPP bind this mode asks for: transmitter, receiver or transceiver.

        @raise ValueError: the server is off, so it never binds.
        """
        try:
            return BIND_TYPES[self.mode]
        except KeyError:
            raise ValueError(f"server {self.name!r} is {self.mode!r}: it does not bind") from None

    @property
    def can_send(self) -> bool:
        """Whether messages may be submitted through this server."""
        return self.mode in ("send-only", "send-and-receive")

    @property
    def can_receive(self) -> bool:
        """Whether this server delivers messages to the gateway."""
        return self.mode in ("receive-only", "send-and-receive")

    @property
    def enabled(self) -> bool:
        """Whether the gateway connects to this server at all."""
        return self.mode != "off"

    @property
    def address(self) -> str:
        """The SMSC address as an operator writes it: C{[tls:]host:port}."""
        if not self.host:
            return ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'tls:' if self.tls else ''}{host}:{self.port}"


@dataclass(frozen=True)
class Config:
    """The whole configuration."""

    module: ModuleConfig
    amp: AmpConfig
    store: StoreConfig
    servers: tuple[ServerConfig, ...]

    def server(self, name: str) -> ServerConfig:
        """
        The server called C{name}.

        @raise KeyError: no server has that name.
        """
        for server in self.servers:
            if server.name == name:
                return server
        raise KeyError(name)


# --- entry points ----------------------------------------------------------------------


def load_config(path: str) -> Config:
    """
    Read and parse the TOML file at C{path}; relative paths in it resolve against its folder.

    @raise ConfigError: the file cannot be read, is not TOML, or holds a bad value; the
        message starts with the path.
    """
    try:
        with open(path, "rb") as config_file:
            text = config_file.read()
    except OSError as error:
        reason = error.strerror or str(error)
        raise ConfigError(f"{path}: cannot read the configuration file: {reason}") from None
    return parse_config(text, source=path, base=os.path.dirname(os.path.abspath(path)))


def parse_config(text: str | bytes, source: str = "<config>", base: str | None = None) -> Config:
    """
    Parse TOML configuration text.

    @param source: where the text came from; it starts every error message.
    @param base: the folder relative file paths resolve against; None leaves them as written.
    @raise ConfigError: the text is not TOML or holds a bad value.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as error:
            raise ConfigError(
                f"{source}: not valid TOML: the file is not UTF-8 (byte {error.start})"
            ) from None
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{source}: not valid TOML: {error}") from None
    try:
        return _build_config(document, base)
    except ConfigError as error:
        raise ConfigError(f"{source}: {error}") from None


_DURATION = re.compile(r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)")
# Each unit as a fraction of seconds, so that "250ms" is exactly 0.25.
_DURATION_UNITS = {"ms": (1, 1000), "s": (1, 1), "m": (60, 1), "h": (3600, 1), "d": (86400, 1)}
_DURATION_HELP = (
    'use a number of seconds or a string with a unit: "250ms", "30s", "10m", "2h", "1d"'
)


def parse_duration(value: object, key: str) -> float:
    """
    Turn a config duration into seconds.

    A duration is a non-negative TOML integer or float of seconds, or a string of a
    number and a unit: C{"250ms"}, C{"30s"}, C{"10m"}, C{"2h"}, C{"1d"}.

    @param key: the key being parsed, for the error message.
    @raise ConfigError: C{value} is not such a duration.
    """
    if isinstance(value, str):
        match = _DURATION.fullmatch(value)
        if match is None:
            raise ConfigError(f"{key}: {value!r} is not a duration; {_DURATION_HELP}")
        multiplier, divisor = _DURATION_UNITS[match[2]]
        seconds = float(match[1]) * multiplier / divisor
        if not math.isfinite(seconds):  # hundreds of digits overflow to inf
            raise ConfigError(f"{key}: {value!r} is too long a duration; {_DURATION_HELP}")
        return seconds
    # bool is an int subclass, but "true seconds" is certainly a mistake.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"{key}: {value!r} ({_toml_type(value)}) is not a duration; {_DURATION_HELP}"
        )
    if not _finite(value) or value < 0:
        raise ConfigError(f"{key}: {value!r} is not a duration; it must be 0 or more seconds")
    return float(value)


def _finite(value: int | float) -> bool:
    """Whether ``value`` is a finite float, or an integer that becomes one (TOML integers
    may have any number of digits, and math.isfinite() overflows on them)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


# --- reading TOML tables ---------------------------------------------------------------


def _toml_type(value: object) -> str:
    """Name a parsed TOML value's type the way the TOML spec does."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a float"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return "a date or time"


def _english_list(items: Iterable[str]) -> str:
    """C{a, b or c}."""
    words = list(items)
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _one_of(choices: Iterable[str]) -> str:
    """C{"a", "b" or "c"}, for messages listing allowed strings."""
    return _english_list(f'"{choice}"' for choice in choices)


def _unknown_key_hint(name: str, known: Iterable[str]) -> str:
    """Suggest the known key a typo was probably meant to be."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


_T = TypeVar("_T")


class _Table:
    """
    One TOML table being read: every read checks the value's type and names the key.

    Unknown keys are refused up front, so that a typo never silently leaves a default
    in force.
    """

    def __init__(self, values: Mapping[str, Any], prefix: str, known: Sequence[str],
                 base: str | None = None) -> None:
        self._values = values
        self._prefix = prefix
        self._base = base
        for name in values:
            if name not in known:
                raise ConfigError(
                    f"{self.key(name)}: unknown key{_unknown_key_hint(name, known)}"
                    f" (known keys: {', '.join(known)})"
                )

    def key(self, name: str) -> str:
        """The full key for error messages: C{server[0].mode}."""
        return f"{self._prefix}.{name}"

    def has(self, name: str) -> bool:
        """Whether the table sets C{name}."""
        return name in self._values

    def _typed(self, name: str, default: _T, kind: type | tuple[type, ...], what: str) -> _T:
        if name not in self._values:
            return default
        value = self._values[name]
        # bool is an int subclass; TOML keeps them apart and so do we.
        wrong_bool = isinstance(value, bool) and bool not in (
            kind if isinstance(kind, tuple) else (kind,)
        )
        if wrong_bool or not isinstance(value, kind):
            shown = "a value" if name in _SECRET_KEYS else repr(value)
            raise ConfigError(
                f"{self.key(name)}: expected {what}, got {shown} ({_toml_type(value)})"
            )
        return cast(_T, value)

    def string(self, name: str, default: str = "") -> str:
        return self._typed(name, default, str, "a string")

    def path(self, name: str, default: str = "") -> str:
        """A file path: a relative one is joined to the table's base folder, if it has one."""
        return _resolve(self.string(name, default), self._base)

    def boolean(self, name: str, default: bool) -> bool:
        return self._typed(name, default, bool, "a boolean (true or false)")

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        value = self._typed(name, default, int, f"an integer from {low} to {high}")
        if not low <= value <= high:
            raise ConfigError(
                f"{self.key(name)}: {value!r} is out of range; use an integer from {low} to {high}"
            )
        return value

    def optional_choice_integer(self, name: str, allowed: Sequence[int]) -> int | None:
        if not self.has(name):
            return None
        value = self.integer(name, 0, min(allowed), max(allowed))
        if value not in allowed:
            raise ConfigError(f"{self.key(name)}: {value!r} is not an SMPP 3.4 value; use one of "
                              + ", ".join(str(a) for a in allowed))
        return value

    def optional_integer(self, name: str, low: int, high: int) -> int | None:
        if not self.has(name):
            return None
        return self.integer(name, 0, low, high)

    def number(self, name: str, default: float, low: float, positive: bool = False) -> float:
        what = f"a number above {low}" if positive else f"a number of at least {low}"
        value = self._typed(name, default, (int, float), what)
        if not _finite(value) or value < low or (positive and value == low):
            bound = f"> {low}" if positive else f">= {low}"
            raise ConfigError(f"{self.key(name)}: {value!r} is out of range; use a number {bound}")
        return float(value)

    def choice(self, name: str, default: str, choices: Sequence[str]) -> str:
        value = self._typed(name, default, str, f"a string, one of {_one_of(choices)}")
        if value not in choices:
            raise ConfigError(f"{self.key(name)}: {value!r} is not allowed; use {_one_of(choices)}")
        return value

    def duration(self, name: str, default: float, positive: bool = False) -> float:
        if not self.has(name):
            return default
        seconds = parse_duration(self._values[name], self.key(name))
        if positive and seconds == 0:
            raise ConfigError(
                f"{self.key(name)}: {self._values[name]!r} is too short;"
                ' use a duration longer than 0, such as "30s"'
            )
        return seconds

    def duration_or_never(self, name: str, default: float) -> float:
        """A duration, or 0 (also written C{"0"}) for never."""
        if self._values.get(name) == "0":
            return 0.0
        try:
            return self.duration(name, default)
        except ConfigError as error:
            raise ConfigError(f'{error}; or "0" for never') from None


# --- the sections ----------------------------------------------------------------------

_SECTIONS = ("module", "amp", "store", "server")
_MODULE_KEYS = (
    "log_level",
    "reject_if_not_relayed_in",
    "dialog_timeout",
    "source_address",
    "default_gateway",
    "system_type",
    "reassembly_timeout",
)
_AMP_KEYS = ("listen", "secret", "max_connections")
_STORE_KEYS = ("path",)
_SERVER_KEYS = (
    "name",
    "mode",
    "address",
    "system_id",
    "password",
    "sender",
    "dialogs",
    "recipient",
    "encoding",
    "default_alphabet",
    "keep_alive",
    "window",
    "throughput",
    "throttle_pause",
    "min_rate",
    "rate_step",
    "rate_period",
    "registered_delivery",
    "response_timeout",
    "max_parts",
    "long_messages",
    "ca_file",
    "client_cert",
    "verify",
    "source_ton",
    "source_npi",
    "receipt_id_format",
    "country_code",
    "national_prefix",
    "receipt_timeout",
)

_SECTION_KEYS = {
    "[module]": _MODULE_KEYS,
    "[amp]": _AMP_KEYS,
    "[store]": _STORE_KEYS,
    "[[server]]": _SERVER_KEYS,
}


def _resolve(path: str, base: str | None) -> str:
    """C{path} joined to C{base} when it is relative (and not empty nor SQLite's C{:memory:})."""
    if base is None or not path or path == ":memory:" or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base, path))


def _build_config(document: Mapping[str, Any], base: str | None = None) -> Config:
    for name in document:
        if name not in _SECTIONS:
            raise ConfigError(
                f"[{name}]: unknown section or key{_top_level_hint(name)}"
                " (known sections: [module], [amp], [store], [[server]])"
            )
    store = _parse_store(_section(document, "store"), base)
    module = _parse_module(_section(document, "module"))
    servers = _parse_servers(document.get("server", []), module, base)
    if module.default_gateway and all(s.name != module.default_gateway for s in servers):
        names = _english_list(repr(s.name) for s in servers) if servers else "none"
        raise ConfigError(
            f"module.default_gateway: {module.default_gateway!r} is not the name of a"
            f" configured server (configured: {names})"
        )
    amp = _parse_amp(_section(document, "amp"), store, base)
    return Config(module=module, amp=amp, store=store, servers=servers)


def _top_level_hint(name: str) -> str:
    """Point a key written above every table at the table it belongs in."""
    for section, keys in _SECTION_KEYS.items():
        if name in keys:
            return f"; {name} belongs in {section}"
    return _unknown_key_hint(name, _SECTIONS)


def _section(document: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = document.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: expected a table [{name}], got {_toml_type(value)}")
    return value


def _parse_store(values: Mapping[str, Any], base: str | None) -> StoreConfig:
    table = _Table(values, "store", _STORE_KEYS, base)
    path = table.path("path", StoreConfig.path)
    if not path:
        raise ConfigError("store.path: '' is empty; give the SQLite file's path")
    return StoreConfig(path=path)


def _parse_module(values: Mapping[str, Any]) -> ModuleConfig:
    table = _Table(values, "module", _MODULE_KEYS)
    defaults = ModuleConfig()
    source_address = table.string("source_address")
    if source_address:
        try:
            ipaddress.ip_address(source_address)
        except ValueError:
            raise ConfigError(
                f"module.source_address: {source_address!r} is not an IP address;"
                ' use an IPv4 or IPv6 address of this host, or "" to let the OS choose'
            ) from None
    system_type = table.string("system_type", DEFAULT_SYSTEM_TYPE)
    _check_c_octets(system_type, "module.system_type", _MAX_SYSTEM_TYPE, "the system type")
    return ModuleConfig(
        log_level=table.choice("log_level", defaults.log_level, LOG_LEVELS),
        reject_if_not_relayed_in=table.duration(
            "reject_if_not_relayed_in", defaults.reject_if_not_relayed_in
        ),
        dialog_timeout=table.duration("dialog_timeout", defaults.dialog_timeout),
        source_address=source_address,
        default_gateway=table.string("default_gateway"),
        system_type=system_type,
        reassembly_timeout=table.duration("reassembly_timeout", defaults.reassembly_timeout),
    )


def _parse_servers(value: object, module: ModuleConfig,
                   base: str | None) -> tuple[ServerConfig, ...]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ConfigError(
            f"server: expected an array of tables written [[server]], got {_toml_type(value)}"
        )
    servers: list[ServerConfig] = []
    for index, values in enumerate(value):
        server = _parse_server(values, f"server[{index}]", module, base)
        for earlier, other in enumerate(servers):
            if other.name == server.name:
                raise ConfigError(
                    f"server[{index}].name: {server.name!r} is already the name of"
                    f" server[{earlier}]; names must be unique"
                )
        servers.append(server)
    return tuple(servers)


_NAME = re.compile(r"[A-Za-z0-9._-]*")


def _parse_server(values: Mapping[str, Any], prefix: str, module: ModuleConfig,
                  base: str | None) -> ServerConfig:
    table = _Table(values, prefix, _SERVER_KEYS, base)
    defaults = _SERVER_DEFAULTS

    name = table.string("name")
    if not _NAME.fullmatch(name) or len(name) > _MAX_NAME:
        raise ConfigError(
            f"{table.key('name')}: {name!r} is not allowed; use up to {_MAX_NAME} letters,"
            " digits, '-', '_' or '.' (or \"\" for the default server)"
        )
    mode = table.choice("mode", "send-and-receive", MODES)

    if table.has("address"):
        tls, host, port = _parse_smsc_address(table.string("address"), table.key("address"))
    elif mode != "off":
        raise ConfigError(
            f"{table.key('address')}: missing; a server in mode {mode!r} needs an address"
            ' like "smsc.example.net:2775" (or set mode = "off")'
        )
    else:
        tls, host, port = False, "", DEFAULT_SMPP_PORT

    if table.has("system_id"):
        system_id, system_type = _parse_system_id(
            table.string("system_id"), table.key("system_id"), module.system_type
        )
    elif mode != "off":
        raise ConfigError(
            f"{table.key('system_id')}: missing; a server in mode {mode!r} needs the"
            ' system_id it binds with ("id" or "id@SystemType")'
        )
    else:
        system_id, system_type = "", module.system_type

    password = table.string("password")
    _check_password(password, table.key("password"))

    sender = table.string("sender")
    if "*" not in sender and len(sender.removeprefix("+")) > _MAX_SENDER:
        raise ConfigError(
            f"{table.key('sender')}: {sender!r} is too long; SMPP allows at most"
            f" {_MAX_SENDER} characters (not counting a leading '+'), or use '*'"
        )
    recipient = table.string("recipient")
    if recipient and "@" not in recipient:
        raise ConfigError(
            f'{table.key("recipient")}: {recipient!r} is not an address; use "" or an'
            " address with '@' such as \"sms@example.com\""
        )

    return ServerConfig(
        name=name,
        mode=mode,
        host=host,
        port=port,
        tls=tls,
        system_id=system_id,
        system_type=system_type,
        password=password,
        sender=sender,
        dialogs=table.boolean("dialogs", defaults.dialogs),
        recipient=recipient,
        encoding=table.choice("encoding", defaults.encoding, ENCODINGS),
        default_alphabet=table.choice(
            "default_alphabet", defaults.default_alphabet, DEFAULT_ALPHABETS
        ),
        keep_alive=table.duration("keep_alive", defaults.keep_alive, positive=True),
        window=table.integer("window", defaults.window, 1, 1000),
        throughput=table.number("throughput", defaults.throughput, 0),
        throttle_pause=table.duration("throttle_pause", defaults.throttle_pause, positive=True),
        min_rate=table.number("min_rate", defaults.min_rate, 0, positive=True),
        rate_step=table.number("rate_step", defaults.rate_step, 0, positive=True),
        rate_period=table.duration("rate_period", defaults.rate_period, positive=True),
        registered_delivery=table.boolean("registered_delivery", defaults.registered_delivery),
        response_timeout=table.duration(
            "response_timeout", defaults.response_timeout, positive=True
        ),
        max_parts=table.integer("max_parts", defaults.max_parts, 1, 255),
        long_messages=table.choice("long_messages", defaults.long_messages, LONG_MESSAGE_METHODS),
        ca_file=_existing_file(table, "ca_file"),
        client_cert=_existing_file(table, "client_cert"),
        verify=table.boolean("verify", defaults.verify),
        # SMPP 3.4 section 5.2.5 and 5.2.6: the defined TON and NPI values.
        source_ton=table.optional_integer("source_ton", 0, 6),
        source_npi=_npi(table),
        receipt_id_format=table.choice(
            "receipt_id_format", defaults.receipt_id_format, RECEIPT_ID_FORMATS
        ),
        country_code=_digits(table, "country_code", _COUNTRY_CODE, "1 to 3 digits, not led by 0"),
        national_prefix=_digits(
            table, "national_prefix", _NATIONAL_PREFIX, "up to 4 digits", defaults.national_prefix
        ),
        receipt_timeout=table.duration_or_never("receipt_timeout", defaults.receipt_timeout),
    )


# The per-server defaults, read from the dataclass so that they are written once.
_SERVER_DEFAULTS = ServerConfig(
    name="",
    mode="off",
    host="",
    port=DEFAULT_SMPP_PORT,
    tls=False,
    system_id="",
    system_type=DEFAULT_SYSTEM_TYPE,
    password="",
)


# An ITU-T E.164 country calling code, and a trunk prefix such as "0", "8" or "06".
_COUNTRY_CODE = re.compile(r"[1-9][0-9]{0,2}")
_NATIONAL_PREFIX = re.compile(r"[0-9]{1,4}")


def _digits(table: _Table, name: str, pattern: re.Pattern[str], what: str,
            default: str = "") -> str:
    value = table.string(name, default)
    if value and not pattern.fullmatch(value):
        raise ConfigError(f'{table.key(name)}: {value!r} is not allowed; use {what}, or "" for none')
    return value


def _existing_file(table: _Table, name: str) -> str:
    path = table.path(name)
    if path and not os.path.isfile(path):
        raise ConfigError(
            f"{table.key(name)}: {path!r} does not exist or is not a file;"
            ' give the path of a PEM file, or "" for none'
        )
    return path


def _is_printable_ascii(text: str) -> bool:
    return all(" " <= character <= "~" for character in text)


def _check_c_octets(value: str, key: str, limit: int, what: str) -> None:
    if not _is_printable_ascii(value):
        raise ConfigError(f"{key}: {value!r} is not allowed; {what} must be printable ASCII")
    if len(value) > limit:
        raise ConfigError(
            f"{key}: {value!r} is too long ({len(value)} characters); SMPP allows at most"
            f" {limit} for {what}"
        )


def _parse_system_id(value: str, key: str, module_system_type: str) -> tuple[str, str]:
    """Split C{id[@SystemType]}; the system type starts after the first C{@}."""
    system_id, at, system_type = value.partition("@")
    if not system_id:
        raise ConfigError(
            f'{key}: {value!r} has an empty id; use "id" or "id@SystemType"'
            f" with an id of 1 to {_MAX_SYSTEM_ID} characters"
        )
    _check_c_octets(system_id, key, _MAX_SYSTEM_ID, "the id before '@'")
    if not at:
        return system_id, module_system_type
    # "id@" deliberately gives an empty system type: some SMSCs insist on one.
    _check_c_octets(system_type, key, _MAX_SYSTEM_TYPE, "the system type after '@'")
    return system_id, system_type


def _check_password(password: str, key: str) -> None:
    # Say what is wrong with a password without ever showing it.
    if not _is_printable_ascii(password):
        raise ConfigError(f"{key}: must be printable ASCII (the value is not shown)")
    if len(password) > _MAX_PASSWORD:
        raise ConfigError(
            f"{key}: too long ({len(password)} characters); SMPP allows at most"
            f" {_MAX_PASSWORD} (the value is not shown)"
        )


# --- SMSC addresses --------------------------------------------------------------------

_DNS_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_ADDRESS_HELP = (
    "use [tls:]host[:port] where host is a DNS name, an IPv4 address or an IPv6 address"
    " in brackets, and port is 1-65535 (2775 when left out)"
)


def _parse_smsc_address(value: str, key: str) -> tuple[bool, str, int]:
    """Split C{[tls:]host[:port]} into (tls, host, port), the host without brackets."""

    def bad(reason: str) -> ConfigError:
        return ConfigError(f"{key}: {value!r} {reason}; {_ADDRESS_HELP}")

    tls = value.startswith("tls:")
    rest = value[4:] if tls else value
    if rest.startswith("["):
        host, bracket, after = rest[1:].partition("]")
        if not bracket:
            raise bad("has no closing ']'")
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise bad(f"has {host!r} in brackets, which is not an IPv6 address") from None
        if after and not after.startswith(":"):
            raise bad(f"has {after!r} after the ']'")
        has_port, port_text = bool(after), after[1:]
    else:
        host, colon, port_text = rest.partition(":")
        has_port = bool(colon)
        if ":" in port_text:
            raise bad("has too many ':' (write an IPv6 address in brackets)")
        if not host:
            raise bad("has no host")
        if re.fullmatch(r"[0-9.]+", host):
            try:
                ipaddress.IPv4Address(host)
            except ValueError:
                raise bad(f"has {host!r}, which is not an IPv4 address") from None
        elif not _is_dns_name(host):
            raise bad(f"has {host!r}, which is not a DNS name")
    if not has_port:
        return tls, host, DEFAULT_SMPP_PORT
    if not port_text.isdecimal() or not port_text.isascii() or not 1 <= int(port_text) <= 65535:
        raise bad(f"has port {port_text!r}")
    return tls, host, int(port_text)


def _is_dns_name(host: str) -> bool:
    name = host.removesuffix(".")
    return 0 < len(name) <= 253 and all(_DNS_LABEL.fullmatch(label) for label in name.split("."))


# --- the AMP endpoint ------------------------------------------------------------------

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
_LISTEN_HELP = (
    "use unix:PATH:mode=600, tcp:PORT:interface=ADDRESS or ssl:PORT:privateKey=FILE"
    "[:interface=ADDRESS]"
)
# Who may connect to the socket is decided by its mode: owner only.
_PRIVATE_SOCKET_MODES = (0o600, 0o700)


def _split_endpoint(description: str) -> tuple[list[str], dict[str, str]]:
    """
    Split a Twisted endpoint description as C{serverFromString} does: fields are
    separated by C{:}, C{key=value} fields are options, and C{\\} escapes the next
    character.
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


def _endpoint_arguments(listen: str, key: str) -> tuple[str, dict[str, str]]:
    """Name every argument of an endpoint description, as Twisted will bind them."""

    def bad(reason: str) -> ConfigError:
        return ConfigError(f"{key}: {listen!r} {reason}; {_LISTEN_HELP}")

    try:
        positional, options = _split_endpoint(listen)
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
    return _endpoint_arguments(listen, "listen")


def unix_socket_path(listen: str) -> str | None:
    """The socket file a checked ``unix:`` listen description names; None for other kinds."""
    kind, arguments = _endpoint_arguments(listen, "listen")
    return arguments["address"] if kind == "unix" else None


def _check_listen(listen: str, secret: str, key: str) -> None:
    kind, arguments = _endpoint_arguments(listen, key)
    if kind == "unix":
        _check_unix_mode(listen, arguments.get("mode"), key)
        if arguments.get("lockfile", "0") not in ("0", "1"):
            raise ConfigError(f"{key}: {listen!r} has lockfile= other than 0 or 1")
        return
    port = arguments["port"]
    if not port.isdecimal() or not port.isascii() or int(port) > 65535:
        raise ConfigError(f"{key}: {listen!r} has port {port!r}; use 0-65535; {_LISTEN_HELP}")
    if not secret and not _is_loopback(arguments.get("interface", "")):
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


def _is_loopback(interface: str) -> bool:
    if interface == "localhost":
        return True
    try:
        return ipaddress.ip_address(interface).is_loopback
    except ValueError:
        # "" means every interface; a host name may resolve to anything.
        return False


def _escape_endpoint(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:").replace("=", "\\=")


# The endpoint arguments that name files, by endpoint kind.
_ENDPOINT_FILES = {
    "unix": ("address",),
    "ssl": ("privateKey", "certKey", "extraCertChain", "dhParameters"),
}


def _resolve_listen(listen: str, base: str | None) -> str:
    """The endpoint description with its relative file paths joined to C{base}."""
    positional, options = _split_endpoint(listen)
    kind = positional[0]
    files = _ENDPOINT_FILES.get(kind, ())

    def field(name: str, value: str) -> str:
        return _escape_endpoint(_resolve(value, base) if name in files else value)

    fields = [kind, *(field(name, value) for name, value
                      in zip(_ENDPOINT_PARAMETERS[kind], positional[1:], strict=False))]
    fields += [f"{name}={field(name, value)}" for name, value in options.items()]
    resolved = ":".join(fields)
    # Written back only when a path changed: the description otherwise stays as given.
    return resolved if _split_endpoint(resolved) != (positional, options) else listen


def _parse_amp(values: Mapping[str, Any], store: StoreConfig, base: str | None) -> AmpConfig:
    table = _Table(values, "amp", _AMP_KEYS)
    secret = table.string("secret")
    if table.has("listen"):
        listen = table.string("listen")
        _endpoint_arguments(listen, table.key("listen"))  # a bad one is named as written
    else:
        state_dir = os.path.dirname(store.path) or "."
        listen = f"unix:{_escape_endpoint(state_dir)}/amp.sock:mode=600"
    listen = _resolve_listen(listen, base)
    _check_listen(listen, secret, table.key("listen"))
    max_connections = table.integer("max_connections", AmpConfig.max_connections, 1, 100_000)
    return AmpConfig(listen=listen, secret=secret, max_connections=max_connections)
