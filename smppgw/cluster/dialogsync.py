"""SMS Dialogs across gateway nodes: a binding made through one node routes a reply at another.

Each node holds the bindings in memory (`smppgw.relay.dialogs.DialogTable`)
and writes every change to the shared store, which notifies it
(`smppgw.store.postgres.bindings`).  `DialogSync` listens on that channel
(`smppgw.cluster.notifier`): when another node changed a phone's bindings,
it reads that phone's bindings again and holds them in place of its own; when
its connection was lost and is back (notifications sent meanwhile are lost),
it reads every phone again.  What a node hears is at most a round trip to the
database behind what another node committed: a phone's reply, seconds after
the SMS that made the binding, finds it on any node.

Not covered: two nodes binding a letter of one phone for two IM users within
that round trip give the letter to whichever wrote last (the first user's
SMS already went out with it); the dialog timeout is applied by every node
to what it holds, and each expiry is written to the store, so a binding used
on one node and idle on another lives as long as its last use on any.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service

from smppgw.cluster.connection import connect
from smppgw.cluster.notifier import Notifier
from smppgw.relay.dialogs import DialogTable
from smppgw.smpp.log import SmppLog
from smppgw.store.interfaces import StoreError

if TYPE_CHECKING:
    from smppgw.config import Config

#: What the sync's connection calls itself, before the node's name.
APPLICATION = "smppgw dialogs "


class DialogSync(Service):
    """Keeps ``dialogs`` in step with the bindings other nodes write to ``store`` (a
    PostgreSQL store), listening through a connection of ``connect()``'s."""

    name = "dialog-sync"

    def __init__(self, store: Any, dialogs: DialogTable, connect: Any, reactor: Any,
                 log: SmppLog | None = None) -> None:
        self.store = store
        self.dialogs = dialogs
        self.reactor = reactor
        self.log = log or SmppLog("*")
        # The phones heard of since the last read, read again together at the end of the turn.
        self._changed: set[str] = set()
        self._reading: Any = None
        self.notifier = Notifier(connect, [store.binding_channel], reactor, self._heard,
                                 self._reconnected, self.log)
        #: Phones read again after another node's change, and full reloads: for tests and status.
        self.refreshed = 0
        self.reloads = 0
        #: Called with each phone read again (after the table holds its new bindings).
        self.observers: list[Callable[[str], object]] = []

    def startService(self) -> None:
        super().startService()
        # What changed between the table's first read and the first LISTEN is read once
        # listening, as after a reconnection.
        self.notifier.start().addCallback(lambda _: self._reconnected())

    def stopService(self) -> Any:
        self.notifier.stop()
        if self._reading is not None and self._reading.active():
            self._reading.cancel()
        self._reading = None
        return super().stopService()

    def when_listening(self) -> Any:
        """A Deferred that fires once the sync hears the other nodes' changes."""
        return self.notifier.when_listening()

    def _heard(self, channel: str, payload: str) -> None:
        token, _, phone = payload.partition(" ")
        if token == self.store.notify_token or not phone:
            return  # this node's own write, or not one of ours
        self._changed.add(phone)
        if self._reading is None:
            # Every message another node sends with a dialog touches its binding: what a
            # burst of them changed is read in one query, not one per notification.
            self._reading = self.reactor.callLater(0, self._read_changed)

    def _read_changed(self) -> None:
        self._reading = None
        phones, self._changed = sorted(self._changed), set()
        try:
            bindings = self.store.bindings_of(phones)
        except StoreError as error:
            self.log.problem("cannot read the dialog bindings of {count} phone(s) another node"
                             " changed: {error}", count=len(phones), error=error)
            return
        self.refreshed += len(phones)
        self._hold(phones, bindings)
        for phone in phones:
            for observer in list(self.observers):
                observer(phone)

    def _reconnected(self) -> None:
        """Notifications may have been lost while the connection was down: read every phone."""
        try:
            bindings = self.store.load_bindings()
        except StoreError as error:
            self.log.problem("cannot read the dialog bindings again: {error}", error=error)
            return
        self._hold(sorted(set(self.dialogs.phones()) | {b.phone for b in bindings}), bindings)
        self.reloads += 1

    def _hold(self, phones: list[str], bindings: list[Any]) -> None:
        """Have the table hold ``bindings`` (as the store has them) as the bindings of
        ``phones``: a phone with none there has none."""
        by_phone: dict[str, list[Any]] = {}
        for binding in bindings:
            by_phone.setdefault(binding.phone, []).append(binding)
        for phone in phones:
            self.dialogs.refresh(phone, by_phone.get(phone, []))


def dialog_sync_for(config: Config, store: Any, dialogs: DialogTable | None, reactor: Any,
                    log: SmppLog | None = None) -> DialogSync | None:
    """The sync of a gateway's dialogs on a PostgreSQL store; None with SQLite, in memory,
    or without dialogs (nothing is shared then)."""
    if dialogs is None or not config.store.postgres:
        return None
    params: dict[str, Any] = {"password": config.store.password} if config.store.password else {}
    name = (APPLICATION + config.node.name)[:63]

    def open_connection() -> Any:
        return connect(config.store.url, application_name=name, **params)

    return DialogSync(store, dialogs, open_connection, reactor, log)
