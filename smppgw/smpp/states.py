"""
What a session knows of its server (`SessionSettings`), which requests each bind type
may send and receive, and the session's state table.
"""

from __future__ import annotations

from dataclasses import dataclass, field

BIND_COMMANDS = {
    "transmitter": "bind_transmitter",
    "receiver": "bind_receiver",
    "transceiver": "bind_transceiver",
}
#: Requests an ESME may send, by bind type.
MAY_SEND = {
    "transmitter": {"submit_sm", "data_sm", "query_sm", "cancel_sm", "replace_sm", "submit_multi"},
    "receiver": set(),
    "transceiver": {"submit_sm", "data_sm", "query_sm", "cancel_sm", "replace_sm", "submit_multi"},
}
#: Requests the SMSC may send to an ESME bound this way.
MAY_RECEIVE = {
    "transmitter": set(),
    "receiver": {"deliver_sm", "data_sm"},
    "transceiver": {"deliver_sm", "data_sm"},
}


@dataclass(frozen=True)
class SessionSettings:
    """What a session needs to know of its server."""

    system_id: str
    password: str = field(repr=False)
    system_type: str = ""
    bind_type: str = "transceiver"
    window: int = 10
    response_timeout: float = 10.0
    keep_alive: float = 30.0
    address_range: str = ""


# The state table: which events are allowed in which state, and where they lead.
OPEN, BINDING, BOUND, UNBINDING, CLOSED = "open", "binding", "bound", "unbinding", "closed"
TRANSITIONS: dict[tuple[str, str], str] = {
    (OPEN, "bind"): BINDING,
    (BINDING, "bind_ok"): BOUND,
    (BINDING, "bind_failed"): CLOSED,
    (BOUND, "unbind"): UNBINDING,
    (BOUND, "peer_unbind"): CLOSED,
    (BINDING, "peer_unbind"): CLOSED,
    (UNBINDING, "peer_unbind"): CLOSED,
    (UNBINDING, "unbind_done"): CLOSED,
    (OPEN, "lost"): CLOSED,
    (BINDING, "lost"): CLOSED,
    (BOUND, "lost"): CLOSED,
    (UNBINDING, "lost"): CLOSED,
    (CLOSED, "lost"): CLOSED,
}


class InvalidTransition(Exception):
    """An event that the session's current state does not allow."""
