"""
The live set of servers: the links the gateway runs now, by server name.

It changes while the gateway runs (a reload adds a server, re-binds one with a
new address, stops one set to ``off``), so the components that act per server
do not keep their own copy: they read it, and `observe` it to hear of each
change.  A server that is off or removed has no link here; what is queued for
it stays with the outbound queue, which hears ``(name, None)``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from smppgw.smpp.link import Link

__all__ = ["LiveServers", "LinkChanged"]

#: Called with a server's name and its link now, None when it has none.
LinkChanged = Callable[[str, Any], object]


class LiveServers(Mapping[str, "Link"]):
    """The running links by server name: read as a mapping, changed with add, replace, remove."""

    def __init__(self, links: Mapping[str, Link] | None = None) -> None:
        self._links: dict[str, Link] = dict(links or {})
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

    def add(self, link: Link) -> None:
        """A server that had no link has `link` now."""
        name = link.server.name
        if name in self._links:
            raise KeyError(f"server {name!r} has a link already")
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
