"""Pick the SMPP server that sends a message, from its recipient address.

``number@smpp`` goes to the enabled sending server with the empty name, else the first
enabled sending server in config order; ``number@name._smpp`` goes to that server;
``number@telnum`` goes to the host's gateway, else the default gateway, else as
``@smpp``. Server names match exactly, else case-insensitively. The number is
``+E164`` or digits with ``;ton=`` / ``;npi=`` (see `smppgw.sms.address`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from smppgw.errors import ServerDisabledError, UnknownServerError
from smppgw.sms.address import Recipient, parse_recipient


class ServerLike(Protocol):
    """What routing needs to know about a configured server."""

    @property
    def name(self) -> str: ...

    @property
    def mode(self) -> str:
        """``off``, ``send-only``, ``receive-only`` or ``send-and-receive``."""
        ...

    @property
    def can_send(self) -> bool: ...


Server = TypeVar("Server", bound=ServerLike)


def _by_name(name: str, servers: Sequence[Server]) -> Server:
    """The server called ``name``, matched exactly, else case-insensitively."""
    for server in servers:
        if server.name == name:
            return _sending(server)
    folded = name.casefold()
    matches = [server for server in servers if server.name.casefold() == folded]
    if not matches:
        raise UnknownServerError(f"no server named {name!r} is configured")
    if len(matches) > 1:
        # Which one the sender meant is a guess; refusing is safer than picking.
        names = ", ".join(repr(server.name) for server in matches)
        raise UnknownServerError(f"server name {name!r} matches several servers: {names}")
    return _sending(matches[0])


def _sending(server: Server) -> Server:
    if not server.can_send:
        raise ServerDisabledError(f"server {server.name!r} is {server.mode}, so it cannot send")
    return server


def _first_sending(servers: Sequence[Server]) -> Server:
    """The sending server with the empty name, else the first sending server."""
    sending = [server for server in servers if server.can_send]
    if not sending:
        raise ServerDisabledError("no server is enabled for sending")
    for server in sending:
        if server.name == "":
            return server
    return sending[0]


def route(
    address: str,
    servers: Sequence[Server],
    default_gateway: str = "",
    gateway: str | None = None,
) -> tuple[Server, Recipient]:
    """The server to send to ``address`` through, and the parsed recipient.

    ``gateway`` is the host's per-message choice for ``@telnum`` addresses (the
    sender's PSTNSMSGateway setting), ``default_gateway`` the module's. Raises
    the `smppgw.errors` a host gets: ``BadAddressError``
    (as `smppgw.sms.address.BadAddress`), ``UnknownServerError`` or ``ServerDisabledError``.
    """
    recipient = parse_recipient(address)
    if recipient.kind == "named":
        assert recipient.server is not None
        return _by_name(recipient.server, servers), recipient
    if recipient.kind == "telnum":
        chosen = gateway or default_gateway
        if chosen:
            return _by_name(chosen, servers), recipient
    return _first_sending(servers), recipient
