"""
The configuration file as the admin edits it: a tomlkit document, so that what an
operator wrote (comments, order, the way a value is spelt) survives an Update.

A file is written atomically: the new text goes to a temporary file in the same folder,
flushed to disk, given the old file's mode, and renamed over the old one, so a crash
leaves either version whole, never half of one.  The previous version is kept beside
it as C{FILE.bak}.

What the admin saw of the file is remembered as a L{Fingerprint} (its modification
time and a digest of its bytes); a file edited on disk since then is refused rather
than overwritten, since writing it would silently undo that edit.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass
from typing import Any

import tomlkit
from tomlkit.items import AoT, Table
from tomlkit.toml_document import TOMLDocument

from smppgw.config import Config, ConfigError, ServerConfig, parse_config
from smppgw.config.schema import ADMIN, AMP, MODULE, NODE, SERVER, STORE, Section

__all__ = [
    "FileChanged",
    "Fingerprint",
    "document_from_config",
    "fingerprint",
    "read_document",
    "server_tables",
    "set_admin_password",
    "table",
    "write_atomically",
]


class FileChanged(Exception):
    """The file is not what the admin read: it was edited (or removed) on disk since."""


@dataclass(frozen=True)
class Fingerprint:
    """What a file was when read: its modification time and the SHA-256 of its bytes."""

    mtime_ns: int
    digest: str

    @classmethod
    def of(cls, data: bytes, mtime_ns: int) -> Fingerprint:
        return cls(mtime_ns, hashlib.sha256(data).hexdigest())


def fingerprint(path: str) -> Fingerprint | None:
    """The file's fingerprint now; None when it cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read()
            mtime = os.fstat(f.fileno()).st_mtime_ns
    except OSError:
        return None
    return Fingerprint.of(data, mtime)


def read_document(path: str) -> tuple[TOMLDocument, Fingerprint]:
    """
    The file as a tomlkit document, and its fingerprint.

    @raise ConfigError: it cannot be read or is not TOML.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
            mtime = os.fstat(f.fileno()).st_mtime_ns
    except OSError as error:
        raise ConfigError(f"{path}: cannot read the configuration file:"
                          f" {error.strerror or error}") from None
    try:
        document = tomlkit.parse(data.decode("utf-8-sig"))
    except (UnicodeDecodeError, tomlkit.exceptions.TOMLKitError) as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    return document, Fingerprint.of(data, mtime)


def same(seen: Fingerprint, now: Fingerprint | None) -> bool:
    """Whether the file still holds what was read (a mere touch changes nothing)."""
    return now is not None and now.digest == seen.digest


def write_atomically(path: str, text: str, expected: Fingerprint | None = None) -> Fingerprint:
    """
    Replace the file at C{path} with C{text}, keeping the previous one as C{path.bak}.

    @param expected: what the file must still be; None to write whatever it is.
    @raise FileChanged: the file is no longer C{expected}; nothing was written.
    @raise OSError: the folder cannot be written; the file is unchanged.
    @return: the new file's fingerprint.
    """
    if expected is not None and not same(expected, fingerprint(path)):
        raise FileChanged(path)
    folder = os.path.dirname(os.path.abspath(path))
    data = text.encode("utf-8")
    try:
        mode = os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        mode = 0o600
    descriptor, temporary = tempfile.mkstemp(dir=folder, prefix="." + os.path.basename(path) + ".")
    try:
        with os.fdopen(descriptor, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(temporary, mode)
        if os.path.exists(path):
            _backup(path)
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    _sync_folder(folder)
    written = fingerprint(path)
    assert written is not None
    return written


def _backup(path: str) -> None:
    """C{path.bak} becomes the current file, itself replaced atomically."""
    backup = path + ".bak"
    staged = backup + ".new"
    if os.path.exists(staged):
        os.unlink(staged)
    # A hard link is the old file itself, whose inode the rename then leaves alone;
    # where the filesystem has no links, a copy.
    try:
        os.link(path, staged)
    except OSError:
        with open(path, "rb") as source, open(staged, "wb") as copy:
            copy.write(source.read())
        os.chmod(staged, os.stat(path).st_mode & 0o7777)
    os.replace(staged, backup)


def _sync_folder(folder: str) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def table(document: TOMLDocument, name: str) -> Table:
    """The document's C{[name]} table, added at its end when missing."""
    if name not in document:
        document.add(tomlkit.nl())
        document.add(name, tomlkit.table())
    found = document[name]
    assert isinstance(found, Table)
    return found


def server_tables(document: TOMLDocument) -> AoT:
    """The document's C{[[server]]} tables, an empty array added when there are none."""
    if SERVER.name not in document:
        document.add(SERVER.name, tomlkit.aot())
    found = document[SERVER.name]
    assert isinstance(found, AoT)
    return found


def set_admin_password(path: str, password_hash: str) -> None:
    """
    Write C{password_hash} as C{[admin] password_hash} into the file at C{path}, atomically.

    The file must hold a valid configuration before and after: a broken one is reported
    and left as it is.

    @raise ConfigError: the file cannot be read, is not TOML, or is not a valid configuration.
    @raise OSError: the file cannot be written.
    """
    document, seen = read_document(path)
    base = os.path.dirname(os.path.abspath(path))
    parse_config(tomlkit.dumps(document), source=path, base=base)
    table(document, ADMIN.name)["password_hash"] = password_hash
    text = tomlkit.dumps(document)
    parse_config(text, source=path, base=base)
    write_atomically(path, text, seen)


def _values(section: Section[Any], obj: object) -> dict[str, object]:
    """A config object's keys as TOML values; keys without a value (None) left out."""
    values: dict[str, object] = {}
    for key in section.keys:
        value = getattr(obj, key.targets[0])
        if value is not None:
            values[key.name] = value
    return values


def _server_values(server: ServerConfig) -> dict[str, object]:
    values = _values(SERVER, server)
    values["address"] = server.address
    values["system_id"] = f"{server.system_id}@{server.system_type}"
    # A server that is off may have neither.
    if not server.host:
        del values["address"]
    if not server.system_id:
        del values["system_id"]
    return values


def document_from_config(config: Config) -> TOMLDocument:
    """A document that parses to C{config}: for a gateway started without a file."""
    document = tomlkit.document()
    for section, obj in ((MODULE, config.module), (AMP, config.amp), (STORE, config.store),
                         (NODE, config.node), (ADMIN, config.admin)):
        document.add(section.name, _values(section, obj))  # type: ignore[arg-type]
    servers = tomlkit.aot()
    for server in config.servers:
        servers.append(_server_values(server))  # type: ignore[arg-type]
    document.add(SERVER.name, servers)
    return document
