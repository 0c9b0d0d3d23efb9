"""
Wiring: the gateway's MultiService.

One `Link` per enabled server (named ``smsc:<name>``), the store (an SQLite
file, or with ``[store] url`` a PostgreSQL database: `open_store`, where each
server's link runs only while this node holds one of its bind slots, a
`BindSlots` named ``binds:<name>``, its queue sends what this node claimed
under that slot (`smppgw.cluster.claims`), and the server stands by
otherwise), the outbound queue, the AMP endpoint and the elector of the node that runs the
maintenance jobs (`smppgw.cluster.election`); with ``demo``, an SMSC simulator listening
where the configured plain-TCP loopback servers connect, started first so the
links find it.  While it runs, SIGHUP never stops it: `Gateway.hangup` says
what it does (it reopens the log file and reloads the configuration file,
applied live by `smppgw.live`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.endpoints import (
    serverFromString,
)
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from smppgw.cluster.binds import BindSlots
from smppgw.cluster.claims import OutboundClaims, claims_for
from smppgw.cluster.connection import ThreadedConnection
from smppgw.cluster.dialogsync import dialog_sync_for
from smppgw.cluster.election import maintenance_for
from smppgw.cluster.leases import Leases, Tenure
from smppgw.cluster.notifier import Notifier
from smppgw.config import Config, ConfigError, ServerConfig, load_config, unix_socket_path
from smppgw.host.protocol import GatewayAMPFactory
from smppgw.host.registry import HostRegistry
from smppgw.logfile import reopen_log_files
from smppgw.relay.dialogs import DialogTable
from smppgw.relay.inbound import Inbound
from smppgw.relay.outbound import Outbound
from smppgw.relay.servers import LiveServers
from smppgw.relay.sharedinbox import inbox_news
from smppgw.shared import SettingsSync
from smppgw.smpp.link import Link, build_endpoint
from smppgw.smpp.log import SmppLog
from smppgw.startup import (
    Listener,
    StartupError,
    amp_endpoint,
    describe,
    on_signal,
    open_store,
    state_dir,
)
from smppgw.stats import GatewayStats
from smppgw.store.claiming import Claim
from smppgw.store.interfaces import StoreError
from smppgw.store.sqlite import Checkpointer, private_folder

_log = Logger()

#: How often finished requests past the store's retention (7 days) are deleted.
PRUNE_EVERY = 3600.0


class Gateway(MultiService):
    """The running gateway: its links by server name, its store, queue and AMP endpoint."""

    def __init__(self, config: Config, reactor: Any, config_path: str | None = None) -> None:
        super().__init__()
        self.config = config
        #: The file the configuration came from, read again by `reload`; None if none.
        self.config_path = config_path
        self.reactor = reactor
        self.log = SmppLog("*", config.module.log_level)
        #: The running links by server name (a server off or removed has none).
        self.links = LiveServers()
        self.amp_factory: GatewayAMPFactory | None = None
        #: The counters of every server and request, kept across links replaced.
        self.stats = GatewayStats(reactor)
        self.simulator: Any = None
        #: In demo mode, the simulator's phones (`smppgw.testing.demo.DemoPhones`); else None.
        self.phones: Any = None
        #: The SQLite `Store`, or the `PostgresStore` when ``[store] url`` is set.
        self.store: Any = None
        self.outbound: Outbound | None = None
        self.registry = HostRegistry()
        self.dialogs: DialogTable | None = None
        self.inbound: Inbound | None = None
        self._pruning: LoopingCall | None = None
        #: Whether this node runs the maintenance jobs now (pruning, inbound expiry): always
        #: on SQLite, while it holds the maintenance lock on PostgreSQL.  The first
        #: service, so that it starts first and stops last of them.
        self.maintenance = maintenance_for(config, reactor)
        self.maintenance.setServiceParent(self)
        self.checkpointer: Checkpointer | None = None
        #: On a PostgreSQL store, what keeps the settings shared with the other nodes in step.
        self.shared: SettingsSync | None = None
        #: On a PostgreSQL store, the bind slots of each enabled server, by name.
        self.binds: dict[str, BindSlots] = {}
        self._leases: Leases | None = None
        #: What tells this node's dispatcher of the inbox rows other nodes add (PostgreSQL).
        self._inbox_news: Notifier | None = None
        #: On a PostgreSQL store, the claims of the servers this node binds (`smppgw.cluster.claims`).
        self.claims: OutboundClaims | None = None
        self._restore_hangup: Callable[[], object] = lambda: None

    def add_link(self, link: Link) -> None:
        self.links.add(link)
        self._deliver_to_hosts(link)
        self.stats.server(link.server.name).attach(link)
        link.setServiceParent(self)

    def _deliver_to_hosts(self, link: Link) -> None:
        if self.inbound is not None and link.server.can_receive:
            link.deliver = self.inbound.handler(link.server)

    def new_link(self, server: ServerConfig) -> Link:
        """A link for `server` as the configuration in force says, not started."""
        log = SmppLog(server.name, self.config.module.log_level)
        endpoint = build_endpoint(self.reactor, server, self.config.module.source_address, log)
        return Link(server, endpoint, self.reactor, self.config.module.log_level)

    # -- live changes (smppgw.live) ---------------------------------------------------

    def start_server(self, server: ServerConfig) -> None:
        """Bind `server`, which has no link: at once, or on a PostgreSQL store while this
        node holds one of its bind slots (from start-up, for a gateway not started yet)."""
        if not self.config.store.postgres:
            self.start_link(server)
        elif self._leases is not None:
            self.stand_by(server)

    def stop_server(self, name: str) -> Deferred[None]:
        """Unbind server ``name`` gracefully, then free its bind slot if it has one."""
        slots = self.binds.pop(name, None)
        self.links.stand_down(name)
        if slots is not None:
            return maybeDeferred(slots.disownServiceParent)
        return self.stop_link(name) if name in self.links else succeed(None)

    def serves(self, name: str) -> bool:
        """Whether server ``name`` has a link here, or stands by for one."""
        return name in self.links or name in self.binds

    def stand_by(self, server: ServerConfig) -> None:
        """On a PostgreSQL store: bind `server` whenever this node holds one of its slots."""
        assert self._leases is not None
        name = server.name
        slots = BindSlots(self._leases, name, self.config.node.name, self.config.node.lease,
                          self.reactor, lambda tenure: self._bound(name, tenure),
                          lambda _: self._unbind(name), max_binds=server.max_binds,
                          log=SmppLog(name, self.config.module.log_level))
        self.binds[name] = slots
        self.links.stand_by(name)
        slots.setServiceParent(self)

    def _bound(self, name: str, tenure: Tenure) -> None:
        """This node holds ``tenure``, a bind slot of server ``name``: bind it, and claim
        what is queued for it."""
        self.start_link(self.config.server(name))
        if self.claims is not None:
            self.claims.took(tenure)

    def _fenced(self, claim: Claim, reason: str) -> None:
        """A write under ``claim`` was refused: give its bind slot up now, not at the next
        renewal (the link unbinds, the server stands by)."""
        slots = self.binds.get(claim.server)
        if slots is not None:
            slots.fenced(claim.lease, claim.epoch, reason)

    def _unbind(self, name: str) -> Deferred[None]:
        """Server ``name``'s slot is given up or lost: its link unbinds, then its queue gives up
        what it claimed; it stands by if kept."""
        done = self.stop_link(name) if name in self.links else succeed(None)
        if name in self.binds:
            self.links.stand_by(name)
        claims = self.claims
        if claims is not None:
            done.addCallback(lambda _: claims.gave_up(name))
        return done

    def start_link(self, server: ServerConfig) -> Link:
        """Start and bind a link for `server`, which has none."""
        link = self.new_link(server)
        self.add_link(link)
        return link

    def stop_link(self, name: str) -> Deferred[None]:
        """Unbind server ``name`` gracefully and forget its link; what is queued for it waits."""
        link = self.links.remove(name)
        if link.parent is None:  # a re-bind's new link, not started yet: it never will be
            return succeed(None)
        return maybeDeferred(link.disownServiceParent)

    def replace_link(self, server: ServerConfig) -> Link:
        """Re-bind `server`: its link unbinds gracefully, then a new one connects.

        The queue sends on the new link from now on; it is not ready until bound.
        """
        link = self.new_link(server)
        old = self.links.replace(link)
        self.stats.server(server.name).attach(link)
        self._deliver_to_hosts(link)

        def start(_: object) -> None:
            # A gateway stopped meanwhile does not start it (nor stop it: it never ran).
            if self.running and self.links.get(server.name) is link:
                link.setServiceParent(self)

        maybeDeferred(old.disownServiceParent).addBoth(start)
        return link

    def apply_config(self, new: Config, *, from_cluster: bool = False) -> list[str]:
        """Apply `new` live (see `smppgw.live`); one line per change.  On a PostgreSQL
        store a change of the shared settings is published to the other nodes, unless
        it came ``from_cluster`` (see `smppgw.shared`)."""
        from smppgw.live import apply

        lines = apply(self, new)
        if self.shared is not None and not from_cluster:
            self.shared.changed(self.config)
        return lines

    def reload(self) -> list[str]:
        """Read the configuration file again and apply what changed; one line per change.

        An unreadable or invalid file changes nothing: `ReloadRefused` says why.
        """
        if self.config_path is None:
            raise ReloadRefused("no configuration file to read again: it came from elsewhere")
        try:
            new = load_config(self.config_path)
        except ConfigError as error:
            self.log.problem("reload refused, nothing changed: {error}", error=error)
            raise ReloadRefused(str(error)) from None
        lines = self.apply_config(new)
        if not lines:
            self.log.major("reload: {path} has no change", path=self.config_path)
        return lines

    def disconnect(self, name: str) -> None:
        """Drop the connection of server ``name``; it reconnects (an operator's action)."""
        self.link(name).reset("disconnected by the operator")

    def rebind(self, name: str) -> None:
        """Unbind server ``name`` gracefully and bind it again (an operator's action)."""
        self.replace_link(self.link(name).server)

    def link(self, name: str) -> Link:
        """The link of server ``name``; KeyError saying why if it has none."""
        link = self.links.get(name)
        if link is None:
            why = ("stands by: other nodes hold its binds" if self.links.standing_by(name)
                   else "has no link")
            raise KeyError(f"server {name!r} {why}")
        return link

    def startService(self) -> None:
        try:
            private_folder(state_dir(self.config))
        except OSError as error:
            raise StartupError(f"smppgw cannot start: no folder for the store: {describe(error)}"
                               ) from error
        try:
            self.store = open_store(self.config, self.reactor)
            if self.config.store.postgres:
                self.log.major("using the store {path} as node {node}", path=self.store.path,
                               node=self.config.node.name)
            elif self.config.store.path != ":memory:":
                self.log.major("using the store {path}", path=os.path.abspath(self.store.path))
                self.checkpointer = Checkpointer(self.store, self.reactor)
                self.checkpointer.start()
            if any(s.dialogs for s in self.config.servers) and self.config.module.dialog_timeout > 0:
                self.dialogs = DialogTable(self.reactor, self.config.module.dialog_timeout,
                                           self.store)
                sync = dialog_sync_for(self.config, self.store, self.dialogs, self.reactor,
                                       self.log)
                if sync is not None:
                    sync.setServiceParent(self)
            self.outbound = Outbound(self.config, self.links, self.store, self.reactor,
                                     self.dialogs, self.stats)
            self.outbound.restore()
            self.outbound.on_fenced = self._fenced
            if self.config.store.postgres:
                password = self.config.store.password
                params: dict[str, Any] = {"password": password} if password else {}
                self._leases = Leases(ThreadedConnection(self.config.store.url, self.reactor,
                                                         name="smppgw-binds", **params))
                self.claims = claims_for(self.config, self.outbound, self.store, self.reactor,
                                         self.log, self.maintenance.maintains)
                for server in self.config.servers:
                    if server.enabled:
                        self.stand_by(server)
        except StoreError as error:
            raise StartupError(f"smppgw cannot start: {error}") from error
        self.inbound = Inbound(self.config, self.store, self.registry, self.reactor, self.dialogs,
                               stats=self.stats, maintains=self.maintenance.maintains)
        for link in self.links.values():
            self._deliver_to_hosts(link)
        self.inbound.start()
        if self.config.store.postgres:
            self._inbox_news = inbox_news(self.config, self.store, self.inbound, self.reactor,
                                          self.log)
        self._pruning = LoopingCall(self._prune)
        self._pruning.clock = self.reactor
        self._pruning.start(PRUNE_EVERY, now=True)
        factory = GatewayAMPFactory(self.outbound, self.registry, self.reactor,
                                    self.config.amp.secret, SmppLog("amp", self.config.module.log_level),
                                    self.config.amp.max_connections, reload=self.reload)
        self.amp_factory = factory
        listen = amp_endpoint(self.config)
        amp_service = Listener(serverFromString(self.reactor, listen), factory)
        amp_service.setName("amp")
        # A gateway whose hosts cannot reach it must not pretend to run: a
        # listen failure (a bad path, a port in use) stops start-up, with one
        # line that says why rather than a traceback.
        amp_service._raiseSynchronously = True
        amp_service.setServiceParent(self)
        if self.config.admin.listen:
            from smppgw.admin.web import admin_service

            admin_service(self, self.reactor).setServiceParent(self)
        socket_path = unix_socket_path(listen)
        if socket_path is not None:
            # Like the store's folder, the socket's is made if missing.
            try:
                private_folder(os.path.dirname(socket_path) or ".")
            except OSError as error:
                raise StartupError(f"smppgw cannot start: no folder for the AMP socket"
                                   f" {socket_path!r}: {describe(error)}") from error
        try:
            super().startService()
        except Exception as error:
            raise StartupError(f"smppgw cannot start: {describe(error)}") from error
        self._restore_hangup = on_signal(self.reactor, "SIGHUP", self.hangup)
        self.log.major("AMP endpoint listening on {listen}", listen=listen)
        if self.config.store.postgres:
            self.shared = SettingsSync(self, self.store, self.reactor, self.config.node.name,
                                       self.log)
            try:
                self.shared.start()
            except StoreError as error:
                self.log.problem("the shared settings cannot be read now: {error}; this node"
                                 " runs on its file's", error=error)
        if self.config.admin.listen:
            self.log.major("web admin listening on {listen}", listen=self.config.admin.listen)

    def hangup(self) -> None:
        """What SIGHUP asks of the running gateway (logrotate, ``systemctl reload``).

        It never stops the gateway: it reopens the file twistd logs to, if
        any, for a rotation tool that has moved it away, then reads the
        configuration file again and applies what changed (`reload`).
        """
        try:
            reopened = reopen_log_files()
        except OSError as error:
            self.log.problem("SIGHUP: cannot reopen the log file: {error}", error=describe(error))
        else:
            if reopened:
                self.log.major("SIGHUP: reopened the log file {paths}", paths=", ".join(reopened))
            else:
                self.log.major("SIGHUP: no log file to reopen")
        try:
            self.reload()
        except ReloadRefused:
            pass  # logged, the old configuration stays in force
        except Exception:
            _log.failure("SIGHUP: the reload failed")

    def _prune(self) -> None:
        """Forget finished requests older than the store's retention (their answers were given),
        if this node does the maintenance."""
        if self.store is None or not self.maintenance.maintains():
            return
        try:
            removed = self.store.prune(self.reactor.seconds())
        except Exception as e:
            self.log.problem("cannot prune the store: {error}", error=e)
            return
        if removed:
            self.log.low("pruned {count} finished request(s) from the store", count=removed)

    def stopService(self) -> Any:
        # Each bind slot is freed once its link has unbound, while the gateway still runs.
        freed = [self.stop_server(name) for name in list(self.binds)]
        d = super().stopService()
        if freed:
            d = DeferredList([*freed, *([d] if d is not None else [])])

        def close(result: Any) -> Any:
            if self._pruning is not None and self._pruning.running:
                self._pruning.stop()
            if self.shared is not None:
                self.shared.stop()
            if self._inbox_news is not None:
                self._inbox_news.stop()
            if self.claims is not None:
                self.claims.stop()
            if self.inbound is not None:
                self.inbound.stop()
            if self.outbound is not None:
                self.outbound.stop()
            # The checkpointer's connection closes first: SQLite removes the
            # log when the store's, the last one, closes.
            stopped = self.checkpointer.stop() if self.checkpointer is not None else succeed(None)
            if self._leases is not None:
                leases = self._leases.connection
                stopped.addCallback(lambda _: leases.close())

            def close_store(_: Any) -> Any:
                if self.store is not None:
                    self.store.close()
                self._restore_hangup()
                return result

            return stopped.addCallback(close_store)

        return d.addBoth(close) if d is not None else close(None)


class ReloadRefused(Exception):
    """The configuration file cannot be applied (unreadable, invalid): nothing changed."""


def build_gateway(config: Config, reactor: Any, *, demo: bool = False,
                  config_path: str | None = None) -> Gateway:
    """The gateway for `config` (read from `config_path`, if given), on `reactor`."""
    gateway = Gateway(config, reactor, config_path)
    if demo:
        from smppgw.testing.demosmsc import demo_simulator

        gateway.simulator, gateway.phones = demo_simulator(config, reactor, gateway)
    for server in config.servers:
        if server.enabled:
            gateway.start_server(server)
    return gateway
