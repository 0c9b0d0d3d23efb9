"""Fuzzing the configuration parser: only ConfigError ever escapes, and it names the key."""

from __future__ import annotations

import datetime
import math
import os
import tomllib
from typing import Any

from hypothesis import example, given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from smppgw import config
from smppgw.config import Config, ConfigError, parse_config

FUZZ = settings(max_examples=int(os.environ.get("SMPPGW_FUZZ_EXAMPLES", "200")), deadline=None)

BASE = {
    "module": {},
    "amp": {},
    "store": {},
    "server": {"name": "a", "address": "127.0.0.1", "system_id": "esme", "password": "pw"},
}
#: Every key of config.py, by section, as the parser lists them.
KEYS = [(section, key) for section, keys in [
    ("module", config._MODULE_KEYS), ("amp", config._AMP_KEYS), ("store", config._STORE_KEYS),
    ("server", config._SERVER_KEYS)] for key in keys]

# What each key is, so that values of every other TOML type are known to be wrong.
_BOOLEAN = {"dialogs", "registered_delivery", "verify"}
_INTEGER = {"window", "max_parts", "source_ton", "source_npi"}
_NUMBER = {"throughput", "min_rate", "rate_step"}
_DURATION = {"keep_alive", "response_timeout", "reject_if_not_relayed_in", "dialog_timeout",
             "reassembly_timeout", "receipt_timeout", "throttle_pause", "rate_period"}
_TOML_TYPES = {"string": str, "integer": int, "float": float, "boolean": bool, "array": list,
               "table": dict, "datetime": datetime.datetime, "date": datetime.date,
               "time": datetime.time}


def accepted_types(key: str) -> set[str]:
    if key in _BOOLEAN:
        return {"boolean"}
    if key in _INTEGER:
        return {"integer"}
    if key in _NUMBER:
        return {"integer", "float"}
    if key in _DURATION:
        return {"integer", "float", "string"}
    return {"string"}


def toml_type(value: Any) -> str:
    for name in ("boolean", "integer", "float", "string", "array", "table", "datetime", "date",
                 "time"):
        if isinstance(value, _TOML_TYPES[name]):
            return name
    raise TypeError(value)


def toml(value: Any) -> str:
    """``value`` written as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "nan" if math.isnan(value) else repr(value)
    if isinstance(value, str):
        escaped = "".join(
            "\\" + char if char in '"\\' else
            f"\\u{ord(char):04x}" if ord(char) < 0x20 or ord(char) == 0x7F else char
            for char in value)
        return f'"{escaped}"'
    if isinstance(value, list):
        return "[" + ", ".join(toml(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{key} = {toml(item)}" for key, item in value.items()) + "}"
    return value.isoformat()  # datetime, date, time


def document(section: str, key: str, value: Any) -> str:
    """The base configuration with ``section.key`` set to ``value``."""
    tables = {name: dict(values) for name, values in BASE.items()}
    tables[section][key] = value
    lines = []
    for name, values in tables.items():
        lines.append("[[server]]" if name == "server" else f"[{name}]")
        lines += [f"{k} = {toml(v)}" for k, v in values.items()]
    return "\n".join(lines) + "\n"


def key_name(section: str, key: str) -> str:
    return f"server[0].{key}" if section == "server" else f"{section}.{key}"


scalars = st.one_of(
    st.text(st.characters(codec="utf-8"), max_size=30),
    st.integers(-(2**63), 2**63 - 1),
    st.sampled_from([10**30, -(10**30), 10**400]),  # tomllib reads integers of any size
    st.floats(),
    st.booleans(),
    st.datetimes(), st.dates(), st.times(),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=3),
        st.dictionaries(st.from_regex(r"[a-z]{1,6}", fullmatch=True), children, max_size=3)),
    max_leaves=6)


class FuzzConfigTests(SynchronousTestCase):
    def check(self, text: str | bytes, key: str | None = None) -> Config | None:
        """Parse ``text``: a Config, or None after a ConfigError that names ``key``."""
        try:
            return parse_config(text)
        except ConfigError as error:
            message = str(error)
            self.assertTrue(message.startswith("<config>: "), message)
            if key is not None:
                self.assertIn(key, message)
            return None

    def test_keys_known(self) -> None:
        """The type table above covers exactly the parser's keys, so no key escapes the fuzzing."""
        typed = _BOOLEAN | _INTEGER | _NUMBER | _DURATION
        self.assertLessEqual(typed, {key for _, key in KEYS})

    @FUZZ
    @given(st.sampled_from(KEYS), values)
    def test_any_value(self, where: tuple[str, str], value: Any) -> None:
        """Any TOML value for any key gives a Config or a ConfigError naming that key."""
        section, key = where
        text = document(section, key, value)
        tomllib.loads(text)  # the test writes valid TOML
        self.check(text, key_name(section, key))

    @FUZZ
    @given(st.sampled_from(KEYS), st.data())
    def test_wrong_type(self, where: tuple[str, str], data: st.DataObject) -> None:
        """A value of a type the key does not take is always a ConfigError naming the key."""
        section, key = where
        value = data.draw(values.filter(lambda v: toml_type(v) not in accepted_types(key)))
        try:
            parse_config(document(section, key, value))
        except ConfigError as error:
            self.assertIn(key_name(section, key), str(error))
        else:
            self.fail(f"{key_name(section, key)} = {toml(value)} was accepted")

    @FUZZ
    @given(st.sampled_from(sorted(_DURATION)),
           st.from_regex(r"[0-9]{1,400}(\.[0-9]{1,20})?(ms|s|m|h|d)", fullmatch=True))
    @example("keep_alive", "9" * 400 + "s")
    def test_duration_strings(self, key: str, text: str) -> None:
        """A duration string of any size gives a finite duration or a ConfigError naming the key."""
        section = "server" if key in config._SERVER_KEYS else "module"
        parsed = self.check(document(section, key, text), key_name(section, key))
        if parsed is not None:
            found = getattr(parsed.servers[0] if section == "server" else parsed.module, key)
            self.assertTrue(math.isfinite(found), found)

    def test_huge_numbers(self) -> None:
        """Integers too big for a float are refused by name, not an OverflowError."""
        for key in sorted(_DURATION | _NUMBER | _INTEGER):
            section = "server" if key in config._SERVER_KEYS else "module"
            for value in (10**400, -(10**400)):
                self.assertIsNone(self.check(document(section, key, value), key_name(section, key)))

    def test_empty_file(self) -> None:
        """An empty file, or one of comments and blanks, is the defaults with no server."""
        for text in ("", "\n\n", "# nothing here\n", b"\xef\xbb\xbf", "  \t\n# x\n"):
            parsed = self.check(text)
            assert parsed is not None
            self.assertEqual(parsed.servers, ())

    @FUZZ
    @given(st.text(max_size=200))
    @example("this is not toml")
    @example("[server")
    @example("[[server]]\nname =")
    @example('a = "unterminated')
    def test_not_toml(self, text: str) -> None:
        """Any text gives a Config or a ConfigError, and text that is not TOML says so."""
        try:
            tomllib.loads(text)
        except tomllib.TOMLDecodeError:
            with self.assertRaises(ConfigError) as raised:
                parse_config(text)
            self.assertIn("not valid TOML", str(raised.exception))
        else:
            self.check(text)

    @FUZZ
    @given(st.binary(max_size=200))
    @example(b"\xff\xfe\x00")
    def test_random_bytes(self, data: bytes) -> None:
        """Random bytes give a Config or a ConfigError, never another exception."""
        self.check(data)
