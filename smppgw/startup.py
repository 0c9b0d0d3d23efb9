"""What the gateway opens at start-up, outside itself: its store, its listeners, its
signal handlers; and how a start-up failure is said (one line, a non-zero exit)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any

from twisted.application.internet import StreamServerEndpointService

from smppgw.config import Config
from smppgw.store.sqlite import Store

__all__ = ["Listener", "StartupError", "amp_endpoint", "describe", "on_signal", "open_store",
           "state_dir"]


class Listener(StreamServerEndpointService):
    """A listener that listens once: one that listened before it joined a running
    parent is not asked to listen again (a live change of ``[amp] listen``)."""

    def privilegedStartService(self) -> None:
        if self._waitingForPort is None:
            super().privilegedStartService()


class StartupError(SystemExit):
    """Start-up failed (the AMP endpoint or the simulator cannot listen): twistd exits
    non-zero printing only this message."""


def describe(error: BaseException) -> str:
    """One line for an error of the operating system or of Twisted's listen."""
    if isinstance(error, OSError) and error.strerror:
        where = error.filename or ""
        return f"{where}: {error.strerror}" if where else error.strerror
    return str(error) or error.__class__.__name__


def on_signal(reactor: Any, name: str, act: Callable[[], object]) -> Callable[[], object]:
    """Call ``act()`` on the reactor's thread each time the signal ``name`` arrives.

    Returns what puts the signal's previous handler back.  Only the main
    thread may set handlers: elsewhere, and where the signal does not exist,
    nothing is set.
    """
    number = getattr(signal, name, None)
    if number is None or threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = signal.signal(number, lambda signum, frame: reactor.callFromThread(act))
    # None: a handler set from C, which Python cannot put back; the default then.
    return lambda: signal.signal(number, signal.SIG_DFL if previous is None else previous)


def open_store(config: Config, reactor: Any) -> Any:
    """The store ``config`` names: the PostgreSQL database of ``[store] url`` (which other
    nodes may share), or the SQLite file of ``[store] path``.

    :raise StoreError: it cannot be opened, or another gateway holds the SQLite file.
    """
    if config.store.postgres:
        from smppgw.store.postgres import PostgresStore

        return PostgresStore(config.store.url, reactor, password=config.store.password or None,
                             node=config.node.name)
    return Store(config.store.path, reactor)


def state_dir(config: Config) -> str:
    return config.store.state_dir or "."


def amp_endpoint(config: Config) -> str:
    """The AMP listen string, with a private mode for unix sockets that give none."""
    listen = config.amp.listen
    if listen.startswith("unix:") and ":mode=" not in listen:
        # Twisted's default mode for a unix socket is 0666: never world-writable.
        listen += ":mode=600"
    return listen
