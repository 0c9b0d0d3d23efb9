"""
The hosts connected to the gateway, and what the gateway needs of one (`IHost`).

`HostRegistry` knows the logged-in host connections and hands them out
round-robin to whoever delivers inbound messages; it holds them as `IHost`
providers, so it knows nothing of AMP's protocol class.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from zope.interface import Interface


class IHost(Interface):
    """A logged-in host connection, as the gateway's inbound side uses it."""

    def callRemote(commandType: type, *a: Any, **kw: Any) -> Deferred[Any]:
        """Send ``commandType`` (DeliverSignal, SignalReport) with the keyword
        arguments ``kw``: a Deferred of the host's answer, or of its error."""


class HostRegistry:
    """The logged-in host connections, for handing them inbound messages round-robin.

    A logged-in connection need not be a host: ``python -m smppgw.host.client
    status`` logs in too, and has no DeliverSignal responder.  One that answers
    a DeliverSignal ``UNHANDLED`` is `exclude`-d from the round-robin for as
    long as it stays connected.  A host that answers a SignalReport
    ``UNHANDLED`` stays, for messages only (`refuses_reports`).
    """

    def __init__(self) -> None:
        self.hosts: list[IHost] = []
        self._next = 0
        self._observers: list[Callable[[], None]] = []
        self._excluded: set[IHost] = set()
        self._no_reports: set[IHost] = set()

    def add(self, host: IHost) -> None:
        """``host`` logged in: hand it inbound messages, unless it was excluded."""
        if host not in self.hosts and host not in self._excluded:
            self.hosts.append(host)
            for observer in list(self._observers):
                observer()

    def remove(self, host: IHost) -> None:
        """``host`` disconnected: forget it."""
        self._excluded.discard(host)
        self._no_reports.discard(host)
        if host in self.hosts:
            self.hosts.remove(host)

    def exclude(self, host: IHost) -> None:
        """Hand ``host`` no more inbound messages, even if it logs in again, until it disconnects.

        For a connection that does not handle DeliverSignal / SignalReport (it
        answered ``UNHANDLED``): a monitoring or command-line client, not a host.
        """
        if host in self.hosts:
            self.hosts.remove(host)
            self._excluded.add(host)

    def refuses_reports(self, host: IHost) -> None:
        """``host`` answered a SignalReport ``UNHANDLED``: it gets messages but no more reports."""
        if host in self.hosts:
            self._no_reports.add(host)

    def takes(self, host: IHost, reports: bool) -> bool:
        """Whether ``host`` takes messages (or, with ``reports``, delivery reports)."""
        return not reports or host not in self._no_reports

    def any_takes_reports(self) -> bool:
        return any(host not in self._no_reports for host in self.hosts)

    def on_host(self, observer: Callable[[], None]) -> None:
        """Call ``observer()`` whenever a host becomes available."""
        self._observers.append(observer)

    def pick(self) -> IHost | None:
        if not self.hosts:
            return None
        self._next %= len(self.hosts)
        host = self.hosts[self._next]
        self._next += 1
        return host
