"""
The settings that the gateway nodes on one PostgreSQL database share, kept in step.

Each node has its own configuration file.  ``[node]``, ``[amp]``, ``[store]``
and ``[admin]`` are the node's own; ``[module]`` (but its ``source_address``,
an address of the node's machine) and the ``[[server]]`` records are the
cluster's, kept in the store's ``settings`` row (see
`smppgw.store.postgres.settings`) with a revision that counts the changes:

- a node that applies a change of them (``kill -HUP`` or ``smppgw reload`` of
  its file, an Update in its admin) publishes them as the next revision;
- every node looks at the revision every `CHECK_EVERY` seconds (one read of
  one row) and applies a newer one as a reload would, then writes it into
  its own file (atomically, the previous one kept as ``FILE.bak``), so that
  the file, the admin's pages and the next reload agree with what runs;
- at start, the newer wins: the database's settings when they were published
  after the node's file was last changed, else the file's, published.

Where two nodes publish at once, the later commit is in force everywhere.
A revision a node cannot use (a ``ca_file`` missing on its machine, say) is
refused there with a line naming the key, and that node keeps what it runs.
"""

from __future__ import annotations

import os
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

import tomlkit
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from smppgw.config import Config, ConfigError, parse_config
from smppgw.config.schema import MODULE, SERVER
from smppgw.smpp.log import SmppLog
from smppgw.store.interfaces import StoreError

if TYPE_CHECKING:
    from smppgw.store.postgres.settings import SharedSettings

#: Seconds between two looks at the shared settings' revision.
CHECK_EVERY = 2.0


class SettingsStore(Protocol):
    """What `SettingsSync` needs of the store: `smppgw.store.postgres.settings.SettingsTable`."""

    def shared_settings(self) -> SharedSettings | None: ...

    def newer_settings(self, revision: int) -> Any: ...

    def publish_settings(self, text: str, node: str) -> Any: ...


class Applier(Protocol):
    """What `SettingsSync` needs of the gateway."""

    config: Config
    config_path: str | None

    def apply_config(self, new: Config, *, from_cluster: bool = False) -> list[str]: ...


def shared_text(config: Config) -> str:
    """The cluster's part of ``config`` as TOML text: ``[module]`` (without
    ``source_address``) and the ``[[server]]`` records, each key written out."""
    from smppgw.admin.configfile import document_from_config

    whole = document_from_config(config)
    document = tomlkit.document()
    module = whole[MODULE.name]
    module.pop("source_address", None)  # type: ignore[union-attr]
    document.add(MODULE.name, module)
    document.add(SERVER.name, whole[SERVER.name])
    return tomlkit.dumps(document)


def with_shared(local: Config, text: str, source: str) -> Config:
    """``local`` (a node's own configuration) with the cluster's part read from ``text``.

    :raise ConfigError: ``text`` is not a configuration this node can use.
    """
    theirs = parse_config(text, source=source)
    module = replace(theirs.module, source_address=local.module.source_address)
    return replace(local, module=module, servers=theirs.servers)


def write_shared(path: str, config: Config) -> None:
    """Put the cluster's part of ``config`` into the configuration file ``path``, the node's
    own tables and every comment outside the changed ones kept; atomically, with FILE.bak."""
    from smppgw.admin.configfile import read_document, write_atomically

    document, seen = read_document(path)
    ours = tomlkit.parse(shared_text(config))
    module = document.get(MODULE.name)
    if module is None:
        document.add(MODULE.name, ours[MODULE.name])
    else:
        for key in [key for key in module if key != "source_address"]:
            if key not in ours[MODULE.name]:  # type: ignore[operator]
                del module[key]
        for key, value in ours[MODULE.name].items():  # type: ignore[union-attr]
            if module.get(key) != value:
                module[key] = value
    if SERVER.name in document:
        document[SERVER.name] = ours[SERVER.name]
    else:
        document.add(SERVER.name, ours[SERVER.name])
    write_atomically(path, tomlkit.dumps(document), seen)


class SettingsSync:
    """Keeps ``gateway``'s shared settings in step with the other nodes' through ``store``."""

    def __init__(self, gateway: Applier, store: SettingsStore, clock: Any, node: str,
                 log: SmppLog) -> None:
        self.gateway = gateway
        self.store = store
        self.clock = clock
        self.node = node
        self.log = log
        #: The revision this node runs, and the text of it.
        self.revision = 0
        self._text = ""
        self._looking: LoopingCall | None = None

    def start(self) -> None:
        """Meet the cluster's settings (the newer wins, see the module), then look every
        `CHECK_EVERY` seconds.  :raise StoreError: the store cannot be read."""
        config = self.gateway.config
        mine = shared_text(config)
        found = self.store.shared_settings()
        if found is None:
            self._publish(mine, "the first settings of the cluster")
        elif found.text == mine:
            self.revision, self._text = found.revision, mine
        elif self._file_changed_after(found.written):
            self._publish(mine, f"{self.gateway.config_path} is newer than revision"
                                f" {found.revision} (by node {found.node})")
        else:
            self._take(found)
        self._looking = LoopingCall(self.check)
        self._looking.clock = self.clock
        self._looking.start(CHECK_EVERY, now=False)

    def stop(self) -> None:
        if self._looking is not None and self._looking.running:
            self._looking.stop()
        self._looking = None

    def changed(self, config: Config) -> None:
        """``config`` was applied on this node (not from the cluster): publish its shared part
        if it differs from the revision in force."""
        text = shared_text(config)
        if text != self._text:
            self._publish(text, "changed on this node")

    def check(self) -> Deferred[None]:
        """Look for a newer revision of the shared settings (read off the reactor's thread)
        and apply it; fires when done, never with an error (the loop waits for it)."""
        looked: Deferred[None] = self.store.newer_settings(self.revision).addCallbacks(
            self._looked, self._not_looked)
        return looked.addErrback(self._not_applied)

    def _looked(self, found: SharedSettings | None) -> None:
        if found is not None and found.revision > self.revision:
            self._take(found)

    def _not_looked(self, failure: Failure) -> None:
        self.log.problem("cannot read the shared settings: {error}",
                         error=failure.getErrorMessage())

    def _not_applied(self, failure: Failure) -> None:
        # A fault of this gateway's own: said, and the next look goes on.
        self.log.problem("the shared settings could not be applied: {error}",
                         error=failure.getTraceback())

    def _file_changed_after(self, when: float) -> bool:
        path = self.gateway.config_path
        if path is None:
            return False
        try:
            return os.stat(path).st_mtime > when
        except OSError:
            return False

    def _take(self, found: SharedSettings) -> None:
        if found.text == self._text:  # this node's own, seen before its write was answered
            self.revision = found.revision
            return
        source = f"settings revision {found.revision} (by node {found.node})"
        try:
            new = with_shared(self.gateway.config, found.text, source)
        except ConfigError as error:
            self.log.problem("{source} not applied, this node keeps its own: {error}",
                             source=source, error=error)
            self.revision = found.revision  # said once; the next revision is tried again
            return
        self.revision, self._text = found.revision, found.text
        lines = self.gateway.apply_config(new, from_cluster=True)
        self.log.major("{source} applied: {changes}", source=source,
                       changes="; ".join(lines) if lines else "no change here")
        path = self.gateway.config_path
        if path is None:
            return
        try:
            write_shared(path, new)
        except Exception as error:
            self.log.problem("{source} is in force but not saved to {path}: {error}",
                             source=source, path=path, error=error)

    def _publish(self, text: str, why: str) -> None:
        self._text = text
        try:
            written = self.store.publish_settings(text, self.node)
        except StoreError as error:
            self.log.problem("cannot publish the shared settings ({why}): {error}", why=why,
                             error=error)
            return

        def published(revision: int) -> None:
            self.revision = max(self.revision, revision)
            self.log.major("published the shared settings as revision {revision}: {why}",
                           revision=revision, why=why)

        def failed(failure: Failure) -> None:
            self.log.problem("cannot publish the shared settings ({why}): {error}", why=why,
                             error=failure.getErrorMessage())

        written.addCallbacks(published, failed)
