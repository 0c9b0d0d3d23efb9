"""
Reading a configuration file: TOML text in, a checked L{Config} out, or one
L{ConfigError} naming the file, the key and the value.

Each section is read key by key as L{smppgw.config.schema} declares it.  The sections
are read in the order their defaults need: C{[store]} (the AMP socket's folder),
C{[module]} (the servers' default system type), the servers, then C{[amp]}.  The few
rules that span keys or sections are here: unique server names, a default gateway
that names a server, and no network listener without a secret.

Relative file paths resolve against C{base}, which L{load_config} sets to the folder
of the file it reads, never to the working directory.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from .endpoints import check_listen_secret
from .kinds import Table
from .model import Config, ModuleConfig, ServerConfig
from .schema import ADMIN, AMP, MODULE, NODE, SECTIONS, SERVER, STORE, Section
from .values import ConfigError, did_you_mean, english_list, toml_type

__all__ = ["load_config", "parse_config", "read_table"]

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_T = TypeVar("_T", bound="DataclassInstance")


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


def _build_config(document: Mapping[str, Any], base: str | None) -> Config:
    names = [section.name for section in SECTIONS]
    for name in document:
        if name not in names:
            raise ConfigError(
                f"[{name}]: unknown section or key{_top_level_hint(name)}"
                f" (known sections: {', '.join(section.title for section in SECTIONS)})"
            )
    store = _read(STORE, _table(document, STORE.name), STORE.name, base, {})
    module = _read(MODULE, _table(document, MODULE.name), MODULE.name, base, {})
    servers = _read_servers(document.get(SERVER.name, []), base, module)
    if module.default_gateway and all(s.name != module.default_gateway for s in servers):
        configured = english_list(repr(s.name) for s in servers) if servers else "none"
        raise ConfigError(
            f"module.default_gateway: {module.default_gateway!r} is not the name of a"
            f" configured server (configured: {configured})"
        )
    amp = _read(AMP, _table(document, AMP.name), AMP.name, base, {"store": store})
    check_listen_secret(amp.listen, amp.secret, "amp.listen")
    admin = _read(ADMIN, _table(document, ADMIN.name), ADMIN.name, base, {})
    node = _read(NODE, _table(document, NODE.name), NODE.name, base, {"store": store})
    return Config(module=module, amp=amp, store=store, servers=servers, admin=admin, node=node)


def _read(section: Section[_T], values: Mapping[str, Any], prefix: str, base: str | None,
          config: Mapping[str, Any]) -> _T:
    """Read one table as C{section} declares it into its config object."""
    read, _ = read_table(section, values, prefix, base, config, first_error=True)
    assert read is not None
    return read


def read_table(section: Section[_T], values: Mapping[str, Any], prefix: str, base: str | None,
               config: Mapping[str, Any], first_error: bool = False
               ) -> tuple[_T | None, dict[str, ConfigError]]:
    """
    Read one table as C{section} declares it: its config object, or None and the error of
    each bad key by name (a form shows them all at once, each by its field).

    @param config: the sections read before this one (C{"module"} for a server).
    @raise ConfigError: the table has an unknown key; with C{first_error}, any bad key.
    """
    table = Table(values, prefix, section.names, base, section.secrets, config)
    fields: dict[str, Any] = {}
    errors: dict[str, ConfigError] = {}
    for key in section.keys:
        try:
            value = key.kind.read(table, key.name, key.default)
        except ConfigError as error:
            if first_error:
                raise
            # The keys read after it may look at it (an address at the mode).
            errors[key.name], table.read[key.name] = error, key.default
            continue
        table.read[key.name] = value
        if key.fields:
            fields.update(zip(key.fields, value, strict=True))
        else:
            fields[key.name] = value
    return (None if errors else section.cls(**fields)), errors


def _read_servers(value: object, base: str | None,
                  module: ModuleConfig) -> tuple[ServerConfig, ...]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise ConfigError(
            f"server: expected an array of tables written [[server]], got {toml_type(value)}"
        )
    servers: list[ServerConfig] = []
    for index, values in enumerate(value):
        server = _read(SERVER, values, f"server[{index}]", base, {"module": module})
        for earlier, other in enumerate(servers):
            if other.name == server.name:
                raise ConfigError(
                    f"server[{index}].name: {server.name!r} is already the name of"
                    f" server[{earlier}]; names must be unique"
                )
        servers.append(server)
    return tuple(servers)


def _top_level_hint(name: str) -> str:
    """Point a key written above every table at the table it belongs in."""
    for section in SECTIONS:
        if name in section.names:
            return f"; {name} belongs in {section.title}"
    return did_you_mean(name, [section.name for section in SECTIONS])


def _table(document: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = document.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{name}: expected a table [{name}], got {toml_type(value)}")
    return value
