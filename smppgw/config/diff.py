"""
What changed between two configurations: the plan a live reload applies.

Servers are matched by name (a renamed server is one removed and one added), and each
server present in both is classified by the keys whose value changed:

 - C{rebind}: a connection key changed, so the link needs a new connection.  The
   connection keys are those L{smppgw.config.schema} flags C{connection=True}: today
   C{mode}, C{address} (TLS, host, port), C{system_id} (with its system type),
   C{password}, C{ca_file}, C{client_cert} and C{verify}, and in C{[module]}
   C{source_address}, which every server's connection leaves from.  A change of
   C{[module] system_type} reaches a server through its own system type, so it
   re-binds only the servers whose C{system_id} names no type.  A change of mode to or
   from C{"off"} is a rebind too: read C{old.enabled} and C{new.enabled} to tell a
   start or a stop from a re-bind.  A server that is off before and after has nothing
   to re-bind: its changes are an update.
 - C{update}: only other keys changed (window, throughput, sender, dialogs, recipient,
   encoding, keep_alive, receipts, long messages...); they apply to the bound link.

A server whose keys are all equal is not listed.  Server order matters (a recipient
without a server goes to the first that can send), so a new order of the servers kept
is reported as C{reordered}.  The changed C{[module]} and C{[amp]} keys are listed by
name (an C{[amp] listen} change needs a new listening port: C{relisten}), and a change
of C{[store]} or C{[node]} is flagged, for a reload to refuse: the store is opened
once, by the node of that name.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from .model import Config, ServerConfig
from .schema import AMP, MODULE, NODE, SERVER, STORE, Section

__all__ = ["ADDED", "REBIND", "REMOVED", "UPDATE", "ConfigChange", "ServerChange", "diff"]

ADDED = "added"
REMOVED = "removed"
REBIND = "rebind"
UPDATE = "update"


@dataclass(frozen=True)
class ServerChange:
    """What becomes of one server, by name."""

    name: str
    #: L{ADDED}, L{REMOVED}, L{REBIND} or L{UPDATE}.
    kind: str
    old: ServerConfig | None
    new: ServerConfig | None
    #: The keys whose value changed, in schema order: the server's own by name, then any
    #: [module] connection key as C{module.NAME}.  Empty for an added or removed server.
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class ConfigChange:
    """Everything that differs from one configuration to the next."""

    #: The servers added, re-bound or updated in the new file's order, then those removed.
    servers: tuple[ServerChange, ...] = ()
    #: Whether the servers in both configurations come in another order.
    reordered: bool = False
    #: The [module] keys that changed.
    module: tuple[str, ...] = ()
    #: The [amp] keys that changed.
    amp: tuple[str, ...] = ()
    #: Whether [store] changed, which only a restart can apply.
    store: bool = False
    #: Whether [node] changed, which only a restart can apply too.
    node: bool = False

    def __bool__(self) -> bool:
        return bool(self.servers or self.reordered or self.module or self.amp or self.store
                    or self.node)

    def _names(self, kind: str) -> tuple[str, ...]:
        return tuple(change.name for change in self.servers if change.kind == kind)

    @property
    def added(self) -> tuple[str, ...]:
        return self._names(ADDED)

    @property
    def removed(self) -> tuple[str, ...]:
        return self._names(REMOVED)

    @property
    def rebind(self) -> tuple[str, ...]:
        return self._names(REBIND)

    @property
    def update(self) -> tuple[str, ...]:
        return self._names(UPDATE)

    @property
    def relisten(self) -> bool:
        """Whether the AMP listener must be opened anew."""
        return any(AMP.named(name).connection for name in self.amp)


def changed_keys(section: Section[Any], old: object, new: object) -> tuple[str, ...]:
    """The keys of C{section} whose fields differ between C{old} and C{new}, in schema order."""
    differing = {f.name for f in fields(section.cls)
                 if getattr(old, f.name) != getattr(new, f.name)}
    return tuple(key.name for key in section.keys if differing & set(key.targets))


def diff(old: Config, new: Config) -> ConfigChange:
    """What must be done to go from C{old} to C{new}."""
    module = changed_keys(MODULE, old.module, new.module)
    moved = tuple(f"module.{name}" for name in module if MODULE.named(name).connection)
    before = {server.name: server for server in old.servers}
    after = {server.name for server in new.servers}
    changes: list[ServerChange] = []
    for server in new.servers:
        previous = before.get(server.name)
        if previous is None:
            changes.append(ServerChange(server.name, ADDED, None, server))
            continue
        own = changed_keys(SERVER, previous, server)
        connects = previous.enabled or server.enabled
        keys = own + (moved if connects else ())
        if not keys:
            continue
        rebind = connects and (bool(moved) or any(SERVER.named(k).connection for k in own))
        changes.append(ServerChange(server.name, REBIND if rebind else UPDATE,
                                    previous, server, keys))
    changes += [ServerChange(server.name, REMOVED, server, None)
                for server in old.servers if server.name not in after]
    kept_before = [server.name for server in old.servers if server.name in after]
    kept_after = [server.name for server in new.servers if server.name in before]
    return ConfigChange(
        servers=tuple(changes),
        reordered=kept_before != kept_after,
        module=module,
        amp=changed_keys(AMP, old.amp, new.amp),
        store=bool(changed_keys(STORE, old.store, new.store)),
        node=bool(changed_keys(NODE, old.node, new.node)),
    )
