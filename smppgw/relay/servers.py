"""
The live set of servers: the links the gateway runs now, by server name.

It changes while the gateway runs (a reload adds a server, re-binds one with a
new address, stops one set to ``off``), so the components that act per server
do not keep their own copy: they read it, and `observe` it to hear of each
change.  A server that is off or removed has no link here; what is queued for
it stays with the outbound queue, which hears ``(name, None)``.  On a shared
PostgreSQL store a server whose bind slots other nodes hold has no link here
either: it stands by (`stand_by`), and `state` says so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smppgw.smpp.link import Link

__all__ = ["DISCONNECTED", "STANDBY", "LinkChanged", "LiveServers"]

#: The state of a server without a link: off, removed, or not connected yet.
DISCONNECTED = "disconnected"
#: The state of a server this node does not bind now: other nodes hold its bind slots.
STANDBY = "standby"

#: Called with a server's name and its link now, None when it has none.
LinkChanged = Callable[[str, Any], object]


class LiveServers(Mapping[str, "Link"]):
    """The running links by server name: read as a mapping, changed with add, replace, remove."""

    def __init__(self, links: Mapping[str, Link] | None = None) -> None:
        self._links: dict[str, Link] = dict(links or {})
        self._standby: set[str] = set()
        self._observers: list[LinkChanged] = []

    def __getitem__(self, name: str) -> Link:
        return self._links[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._links)

    def __len__(self) -> int:
        return len(self._links)

    def observe(self, observer: LinkChanged) -> None:
        """Call ``observer(name, link)`` after each change, ``link`` None for a server that has none now."""
        self._observers.append(observer)

    def _changed(self, name: str, link: Link | None) -> None:
        for observer in list(self._observers):
            observer(name, link)

    def state(self, name: str) -> str:
        """Where server ``name`` is: its link's state, else `STANDBY` or `DISCONNECTED`."""
        link = self._links.get(name)
        if link is not None:
            return str(link.state)
        return STANDBY if name in self._standby else DISCONNECTED

    def standing_by(self, name: str) -> bool:
        """Whether server ``name`` waits for one of its bind slots, other nodes holding them."""
        return name in self._standby

    def stand_by(self, name: str) -> None:
        """Server ``name``, which has no link, waits for a bind slot (until `add` or `stand_down`)."""
        if name in self._links:
            raise KeyError(f"server {name!r} has a link: it does not stand by")
        self._standby.add(name)

    def stand_down(self, name: str) -> None:
        """Server ``name`` no longer waits for a bind slot (it is off or removed)."""
        self._standby.discard(name)

    def add(self, link: Link) -> None:
        """A server that had no link has `link` now."""
        name = link.server.name
        if name in self._links:
            raise KeyError(f"server {name!r} has a link already")
        self._standby.discard(name)
        self._links[name] = link
        self._changed(name, link)

    def replace(self, link: Link) -> Link:
        """`link` takes the place of its server's link, which is returned (to be stopped)."""
        name = link.server.name
        old = self._links[name]
        self._links[name] = link
        self._changed(name, link)
        return old

    def remove(self, name: str) -> Link:
        """The server ``name`` has no link now; its old one is returned (to be stopped)."""
        old = self._links.pop(name)
        self._changed(name, None)
        return old
