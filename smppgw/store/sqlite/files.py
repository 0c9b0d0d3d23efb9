"""The SQLite store's files: a private state folder, private files, and the lock that
keeps a store file to one process.

A store file is held by one process at a time: an exclusive ``flock`` on
``<path>.lock`` beside it, which names the holder's pid.  The kernel drops
the lock when its holder dies, however it dies, so a SIGKILL leaves nothing
that stops the next start.  The state directory is created 0700 and every
file in it (database, log, shared memory, lock) is 0600, whatever the umask.
"""

from __future__ import annotations

import fcntl
import os

from smppgw.store.interfaces import StoreError


def private_folder(folder: str) -> None:
    """Make ``folder`` (and its parents) if missing, the folder itself the user's only (0700).

    A folder that exists keeps its mode: it may be shared (``/tmp``, say);
    the files the gateway puts in it are private anyway.
    """
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700, exist_ok=True)
        os.chmod(folder, 0o700)  # the umask may have taken more than group and other bits


def private_file(path: str) -> None:
    """Create ``path`` if missing and make it the user's only (0600), before SQLite opens it.

    SQLite gives the files it makes beside a database (the log, the shared
    memory) the database's own mode; made by SQLite, the database would be
    0644 under the usual umask.  An earlier version's files are tightened too.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        try:
            os.chmod(path + suffix, 0o600)
        except FileNotFoundError:
            pass


#: The lock files this process holds, by (device, inode): [descriptor, stores open].
#: A store opened twice in one process (a second look in a test) shares the one
#: lock, which a second ``flock`` on a new descriptor would refuse.
_held: dict[tuple[int, int], list[int]] = {}


def lock(path: str) -> tuple[int, int]:
    """Hold the lock file beside the store ``path``; its key for :func:`unlock`.

    :raise StoreError: another process holds it (the message names the store
        and, when the lock file tells it, the holder's pid).
    """
    fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        info = os.fstat(fd)
        key = (info.st_dev, info.st_ino)
        if key in _held:
            _held[key][1] += 1
            os.close(fd)
            return key
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            holder = f"pid {pid}" if pid.isdecimal() else "its pid unknown"
            raise StoreError(
                f"the store {os.path.abspath(path)!r} is in use by another gateway ({holder});"
                " stop it, or give this one its own [store] path") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    _held[key] = [fd, 1]
    return key


def unlock(key: tuple[int, int]) -> None:
    held = _held[key]
    held[1] -= 1
    if held[1] == 0:
        del _held[key]
        os.close(held[0])  # the lock goes with the last descriptor

