"""
A copy of the store while the gateway runs and writes: SQLite's online backup.

`backup` opens a connection of its own to the store's file, copies every page
into a temporary file beside the target (`sqlite3.Connection.backup`, in one
step, so that the copy is one consistent snapshot: in WAL mode the gateway
writes on meanwhile), makes the copy a single file (no write-ahead log beside
it), checks its schema version, flushes it to disk and only then gives it the
target's name.  A target that exists is refused unless ``force``; the copy is
the user's only (0600), since it holds messages and dialog bindings.

It blocks: the AMP responder runs it off the reactor's thread.  The copy is
what a gateway of the same version opens as its ``[store] path``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import tempfile
from dataclasses import dataclass

from smppgw.errors import BadRequest, Unavailable


@dataclass(frozen=True)
class BackupDone:
    """Where the copy is, its size in bytes, and its schema version."""

    path: str
    size: int
    schema_version: int


def backup(source: str, target: str, force: bool = False) -> BackupDone:
    """Copy the store file ``source`` to ``target`` (an absolute path), atomically.

    :raise BadRequest: the target is not absolute, exists (without ``force``),
        is the store itself, or its folder is missing.
    :raise Unavailable: the store is in memory or a PostgreSQL database (``source`` is
        then its name, without a password), or the copy failed.
    """
    if source.startswith("postgresql://"):
        raise Unavailable(f"the store is the PostgreSQL database {source}: back it up with"
                          " PostgreSQL's own tools (pg_dump, or a base backup with"
                          " pg_basebackup); smppgw backup copies an SQLite store")
    if source == ":memory:":
        raise Unavailable("the store is in memory ([store] path = \":memory:\"): there is no file"
                          " to back up")
    if not os.path.isabs(target):
        raise BadRequest(f"the backup's path must be absolute: {target!r}")
    folder = os.path.dirname(target)
    if not os.path.isdir(folder):
        raise BadRequest(f"no folder {folder!r} for the backup")
    if os.path.isdir(target):
        raise BadRequest(f"{target} is a folder: name the backup's file")
    if os.path.exists(target):
        if os.path.samefile(target, source):
            raise BadRequest(f"{target} is the store itself")
        if not force:
            raise BadRequest(f"{target} exists; --force replaces it")
    if not os.path.exists(source):
        raise Unavailable(f"the store {source!r} does not exist")
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp",
                                         dir=folder)
    except OSError as error:
        raise Unavailable(f"cannot write in {folder}: {error.strerror or error}") from None
    os.close(fd)  # mkstemp made it 0600
    try:
        version = _copy(source, temporary)
        with open(temporary, "rb") as f:
            os.fsync(f.fileno())
        if force:
            os.replace(temporary, target)
        else:
            # A link fails if the target appeared meanwhile: nothing is overwritten.
            try:
                os.link(temporary, target)
            except FileExistsError:
                raise BadRequest(f"{target} exists; --force replaces it") from None
            os.unlink(temporary)
        _sync_folder(folder)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return BackupDone(target, os.path.getsize(target), version)


def _copy(source: str, temporary: str) -> int:
    """Copy ``source`` into the empty file ``temporary``; the copy's schema version."""
    try:
        # Not read-only: a read-only connection to a WAL file needs its shared memory writable.
        reading = sqlite3.connect(source)
    except sqlite3.Error as error:
        raise Unavailable(f"cannot open the store {source!r}: {error}") from None
    try:
        copy = sqlite3.connect(temporary)
        try:
            reading.backup(copy)
            # One file: a backup is moved and copied on its own, without a log beside it.
            copy.execute("PRAGMA journal_mode=DELETE")
            (version,) = copy.execute("PRAGMA user_version").fetchone()
        finally:
            copy.close()
    except sqlite3.Error as error:
        raise Unavailable(f"cannot back the store {source!r} up: {error}") from None
    finally:
        reading.close()
    return int(version)


def _sync_folder(folder: str) -> None:
    """Have the new name survive a crash, where the system allows it."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
