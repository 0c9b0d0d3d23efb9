"""
Live changes: a new configuration applied to the running gateway, without a restart.

`apply` takes the plan of `smppgw.config.diff` and carries it out:

 - a new enabled server gets a link, which binds; one set to ``off`` or removed unbinds
   gracefully (`Link.stopService`: in-flight answers are waited for, a bounded time);
   what is queued for it stays queued, detached (`LinkQueue.detach`), until
   ``reject_if_not_relayed_in`` or until a server of that name has a link again;
 - a change of a connection key re-binds that server only: its old link unbinds, and
   once it has stopped a new one connects with the new settings.  The queue stays;
   the parts in flight on the old link are answered there, or go again on the new one
   (at least once, as on a link drop);
 - any other change of a server applies to its link and queue as they run; on a
   PostgreSQL store a new ``max_binds`` applies to the server's bind slots at once
   (a node holding a slot beyond it unbinds and stands by), and a server standing
   by binds with its new settings when it takes a slot;
 - ``[module]`` settings take effect at once (the log level of every line, the expiry
   of what waits, the dialog table's timeout, routing's default gateway);
 - ``[amp]``: a new secret or connection limit applies to the next connections, a new
   ``listen`` opens the new listener before the old one closes;
 - ``[store]`` and ``[node]`` cannot change while running: the store in use (the
   file, or the database and its password) and the node's name are kept, with a line
   that says a restart applies them.

Each change is one line of the list returned, and each is logged (at ``major``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from twisted.internet.endpoints import serverFromString

from smppgw.config import Config, ServerConfig, diff
from smppgw.config.diff import ADDED, REMOVED, UPDATE
from smppgw.relay.dialogs import DialogTable
from smppgw.smpp import log as smpplog

if TYPE_CHECKING:
    from smppgw.service import Gateway

__all__ = ["apply"]


def apply(gateway: Gateway, new: Config) -> list[str]:
    """Make `new` the running configuration of `gateway`; one line per change."""
    old = gateway.config
    change = diff(old, new)
    lines: list[str] = []
    if change.store:
        lines.append("[store] changed: the store in use is kept; a restart applies the new one")
        new = replace(new, store=old.store)
    if change.node:
        lines.append("[node] changed: this node keeps its name and lease; a restart applies"
                     " the new ones")
        new = replace(new, node=old.node)
    gateway.config = new
    if "log_level" in change.module:
        smpplog.set_level(new.module.log_level)
    for key in change.module:
        lines.append(f"[module] {key} is now {getattr(new.module, key)!r}")
    _dialogs(gateway, new)
    if gateway.outbound is not None:
        gateway.outbound.dialogs = gateway.dialogs
        gateway.outbound.configure(new)
    if gateway.inbound is not None:
        gateway.inbound.configure(new, gateway.dialogs)
    for server_change in change.servers:
        lines.append(_server(gateway, server_change.kind, server_change.old,
                             server_change.new, server_change.keys))
    if change.reordered:
        lines.append("servers reordered: recipients without a server go to the first that can send")
    if change.amp:
        lines.extend(_amp(gateway, old, new, change.relisten))
    if old.admin != new.admin:
        lines.append("[admin] changed: a restart applies it")
    for line in lines:
        gateway.log.major("reload: {change}", change=line)
    return lines


def _dialogs(gateway: Gateway, config: Config) -> None:
    """The dialog table follows ``dialog_timeout``; it is made the first time a server needs it."""
    timeout = config.module.dialog_timeout
    if timeout <= 0:
        return
    if gateway.dialogs is not None:
        gateway.dialogs.timeout = timeout
    elif any(server.dialogs for server in config.servers) and gateway.store is not None:
        gateway.dialogs = DialogTable(gateway.reactor, timeout, gateway.store)


def _server(gateway: Gateway, kind: str, old: ServerConfig | None, new: ServerConfig | None,
            keys: tuple[str, ...]) -> str:
    if kind == ADDED:
        assert new is not None
        if not new.enabled:
            return f"server {new.name!r} added, off"
        gateway.start_server(new)
        return f"server {new.name!r} added: binding to {new.address}"
    if kind == REMOVED:
        assert old is not None
        if not gateway.serves(old.name):
            return f"server {old.name!r} removed"
        gateway.stop_server(old.name)
        return f"server {old.name!r} removed: unbinding{_waiting(gateway, old.name)}"
    assert old is not None and new is not None
    what = ", ".join(keys)
    if kind == UPDATE:
        link = gateway.links.get(new.name)
        if link is not None:
            link.configure(new)
            if new.can_receive and gateway.inbound is not None:
                link.deliver = gateway.inbound.handler(new)
        slots = gateway.binds.get(new.name)
        if slots is not None:
            slots.resize(new.max_binds)
        return f"server {new.name!r}: {what} changed, applied without a re-bind"
    if not new.enabled:
        gateway.stop_server(new.name)
        return f"server {new.name!r} off: unbinding{_waiting(gateway, new.name)}"
    if not gateway.serves(new.name):
        gateway.start_server(new)
        return f"server {new.name!r} on ({new.mode}): binding to {new.address}"
    if new.name not in gateway.links:
        return f"server {new.name!r}: {what} changed, for when this node binds it"
    gateway.replace_link(new)
    return f"server {new.name!r}: {what} changed, re-binding"


def _waiting(gateway: Gateway, name: str) -> str:
    queue = gateway.outbound.queues.get(name) if gateway.outbound is not None else None
    count = len(queue.jobs) if queue is not None else 0
    if not count:
        return ""
    return (f"; {count} queued message(s) wait for it until reject_if_not_relayed_in"
            f" ({gateway.config.module.reject_if_not_relayed_in:g}s from each one's acceptance)")


def _amp(gateway: Gateway, old: Config, new: Config, relisten: bool) -> list[str]:
    from smppgw.startup import Listener, amp_endpoint, describe

    lines = []
    factory = gateway.amp_factory
    if factory is not None:
        if old.amp.secret != new.amp.secret:
            factory.secret = new.amp.secret
            lines.append("[amp] secret changed: it applies to the next logins")
        if old.amp.max_connections != new.amp.max_connections:
            factory.max_connections = new.amp.max_connections
            lines.append(f"[amp] max_connections is now {new.amp.max_connections}")
    if not relisten or factory is None:
        return lines
    listen = amp_endpoint(new)
    # The new listener listens before the old one closes: should it fail (a port in
    # use), the old one goes on.
    service = Listener(serverFromString(gateway.reactor, listen), factory)
    service._raiseSynchronously = True
    try:
        service.privilegedStartService()
    except Exception as error:
        gateway.config = replace(gateway.config, amp=replace(new.amp, listen=old.amp.listen))
        lines.append(f"[amp] listen {new.amp.listen!r} refused ({describe(error)}):"
                     f" still listening on {old.amp.listen}")
        return lines
    gateway.getServiceNamed("amp").disownServiceParent()
    service.setName("amp")
    service.setServiceParent(gateway)
    lines.append(f"[amp] now listening on {listen} (no longer on {old.amp.listen})")
    return lines
