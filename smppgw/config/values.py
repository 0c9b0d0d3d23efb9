"""
The checkers of single configuration values: durations, SMSC addresses, C{id@SystemType},
passwords, digit strings, IP addresses, file paths.

Each takes the value and the full key it came from (C{server[0].address}) and either
returns the checked value or raises L{ConfigError} with a message that starts with the
key, shows the value (a password never) and says what is allowed.  None of them knows
which section or key uses it: that is L{smppgw.config.schema}'s business.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
from collections.abc import Iterable

__all__ = [
    "DEFAULT_SMPP_PORT",
    "SMPP_NPI_VALUES",
    "ConfigError",
    "parse_duration",
]


class ConfigError(Exception):
    """
    The configuration is unusable; the message names the key, the bad value and what is
    allowed.
    """


#: The numbering plan indicators SMPP 3.4 defines (section 5.2.6).
SMPP_NPI_VALUES = (0, 1, 3, 4, 6, 8, 9, 10, 14, 18)
DEFAULT_SMPP_PORT = 2775

# SMPP 3.4 section 4.1.1 (bind): system_id is a C-Octet String of at most 16 octets,
# password 9 and system_type 13, each including the terminating NUL.
MAX_SYSTEM_ID = 15
MAX_PASSWORD = 8
MAX_SYSTEM_TYPE = 12
# source_addr is a C-Octet String of at most 21 octets.
MAX_SENDER = 20
MAX_NAME = 64


# --- words for messages ----------------------------------------------------------------


def toml_type(value: object) -> str:
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


def english_list(items: Iterable[str]) -> str:
    """C{a, b or c}."""
    words = list(items)
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def one_of(choices: Iterable[str]) -> str:
    """C{"a", "b" or "c"}, for messages listing allowed strings."""
    return english_list(f'"{choice}"' for choice in choices)


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """Suggest the known name a typo was probably meant to be."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


# --- numbers and durations -------------------------------------------------------------


def finite(value: int | float) -> bool:
    """Whether ``value`` is a finite float, or an integer that becomes one (TOML integers
    may have any number of digits, and math.isfinite() overflows on them)."""
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


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
            f"{key}: {value!r} ({toml_type(value)}) is not a duration; {_DURATION_HELP}"
        )
    if not finite(value) or value < 0:
        raise ConfigError(f"{key}: {value!r} is not a duration; it must be 0 or more seconds")
    return float(value)


# --- strings ---------------------------------------------------------------------------


def is_printable_ascii(text: str) -> bool:
    return all(" " <= character <= "~" for character in text)


def check_c_octets(value: str, key: str, limit: int, what: str) -> None:
    """C{value} fits an SMPP C-Octet String of C{limit} characters: printable ASCII."""
    if not is_printable_ascii(value):
        raise ConfigError(f"{key}: {value!r} is not allowed; {what} must be printable ASCII")
    if len(value) > limit:
        raise ConfigError(
            f"{key}: {value!r} is too long ({len(value)} characters); SMPP allows at most"
            f" {limit} for {what}"
        )


def parse_system_id(value: str, key: str, default_system_type: str) -> tuple[str, str]:
    """Split C{id[@SystemType]}; the system type starts after the first C{@}."""
    system_id, at, system_type = value.partition("@")
    if not system_id:
        raise ConfigError(
            f'{key}: {value!r} has an empty id; use "id" or "id@SystemType"'
            f" with an id of 1 to {MAX_SYSTEM_ID} characters"
        )
    check_c_octets(system_id, key, MAX_SYSTEM_ID, "the id before '@'")
    if not at:
        return system_id, default_system_type
    # "id@" deliberately gives an empty system type: some SMSCs insist on one.
    check_c_octets(system_type, key, MAX_SYSTEM_TYPE, "the system type after '@'")
    return system_id, system_type


def check_password(password: str, key: str) -> None:
    """Say what is wrong with a password without ever showing it."""
    if not is_printable_ascii(password):
        raise ConfigError(f"{key}: must be printable ASCII (the value is not shown)")
    if len(password) > MAX_PASSWORD:
        raise ConfigError(
            f"{key}: too long ({len(password)} characters); SMPP allows at most"
            f" {MAX_PASSWORD} (the value is not shown)"
        )


_NAME = re.compile(r"[A-Za-z0-9._-]*")


def check_server_name(name: str, key: str) -> None:
    if not _NAME.fullmatch(name) or len(name) > MAX_NAME:
        raise ConfigError(
            f"{key}: {name!r} is not allowed; use up to {MAX_NAME} letters,"
            " digits, '-', '_' or '.' (or \"\" for the default server)"
        )


def check_sender(sender: str, key: str) -> None:
    if "*" not in sender and len(sender.removeprefix("+")) > MAX_SENDER:
        raise ConfigError(
            f"{key}: {sender!r} is too long; SMPP allows at most"
            f" {MAX_SENDER} characters (not counting a leading '+'), or use '*'"
        )


def check_recipient(recipient: str, key: str) -> None:
    if recipient and "@" not in recipient:
        raise ConfigError(
            f'{key}: {recipient!r} is not an address; use "" or an'
            " address with '@' such as \"sms@example.com\""
        )


def check_source_address(address: str, key: str) -> None:
    if not address:
        return
    try:
        ipaddress.ip_address(address)
    except ValueError:
        raise ConfigError(
            f"{key}: {address!r} is not an IP address;"
            ' use an IPv4 or IPv6 address of this host, or "" to let the OS choose'
        ) from None


# An ITU-T E.164 country calling code, and a trunk prefix such as "0", "8" or "06".
COUNTRY_CODE = re.compile(r"[1-9][0-9]{0,2}")
NATIONAL_PREFIX = re.compile(r"[0-9]{1,4}")


def check_digits(value: str, key: str, pattern: re.Pattern[str], what: str) -> None:
    if value and not pattern.fullmatch(value):
        raise ConfigError(f'{key}: {value!r} is not allowed; use {what}, or "" for none')


# --- file paths ------------------------------------------------------------------------


def resolve(path: str, base: str | None) -> str:
    """C{path} joined to C{base} when it is relative (and not empty nor SQLite's C{:memory:})."""
    if base is None or not path or path == ":memory:" or os.path.isabs(path):
        return path
    return os.path.normpath(os.path.join(base, path))


def check_existing_file(path: str, key: str) -> None:
    if path and not os.path.isfile(path):
        raise ConfigError(
            f"{key}: {path!r} does not exist or is not a file;"
            ' give the path of a PEM file, or "" for none'
        )


def check_store_path(path: str, key: str) -> None:
    if not path:
        raise ConfigError(f"{key}: '' is empty; give the SQLite file's path")


# --- SMSC addresses --------------------------------------------------------------------

_DNS_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_ADDRESS_HELP = (
    "use [tls:]host[:port] where host is a DNS name, an IPv4 address or an IPv6 address"
    " in brackets, and port is 1-65535 (2775 when left out)"
)


def parse_smsc_address(value: str, key: str) -> tuple[bool, str, int]:
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
