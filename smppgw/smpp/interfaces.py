"""The seam between the relay and an SMSC link: what a server's queue sends through.

`smppgw.smpp.link.Link` is the real one (connects, binds, reconnects);
`smppgw.relay.linkqueue.NoLink` stands in while a server is off or removed,
and the tests' fake links provide it too (checked with ``verifyObject``).
The queue needs no more of a link than this: whether a submit would go out
now, a way to send one and hear its answer, a way to drop a connection that
stopped answering, and to hear of each state change.
"""

from __future__ import annotations

from typing import Any

from zope.interface import Attribute, Interface


class ILink(Interface):
    """One server's link to its SMSC, as the outbound queue and the status pages see it."""

    server = Attribute("The server's settings (a `smppgw.config.ServerConfig`) it runs with now.")
    state = Attribute(
        "Where the link is: disconnected, connecting, binding, bound, unbinding (or off).")
    ready = Attribute("Whether a submit made now would go out (bound, its window open).")
    last_error = Attribute("What ended the last attempt or connection; empty once bound again.")
    sent = Attribute("submit_sm the SMSC accepted over this link's life.")
    received = Attribute("deliver_sm and data_sm taken from the SMSC over this link's life.")

    def submit(pdu: Any, answer: Any) -> Any:
        """Send ``pdu`` (a submit_sm or data_sm); ``answer`` (a Deferred) fires with the
        SMSC's response or fails with a `smppgw.smpp.failures.RequestFailed`."""

    def reset(reason: str) -> None:
        """Close the current connection (an SMSC that stopped answering); ``reason`` is logged."""

    def observe(observer: Any) -> None:
        """Call ``observer(state)`` on every change of `state`."""
