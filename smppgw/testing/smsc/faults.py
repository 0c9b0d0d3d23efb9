"""What a test sets on the SMSC simulator and reads back: its faults, the records it keeps, its errors."""

from __future__ import annotations

from dataclasses import dataclass

from smppgw.smpp.codec import PDU


class NotBound(Exception):
    """No session is bound that could take this PDU (no receiver, or not that system_id)."""


class UnknownMessageId(KeyError):
    """A delivery receipt was asked for a message id the simulator never accepted."""


@dataclass
class Faults:
    """
    Misbehaviours a test switches on and off while the simulator runs.

    The submit faults apply to submit_sm and data_sm alike; the first that
    applies wins, in the order black_hole_all, black_hole, throttle_every,
    submit_status, max_rate.
    """

    #: Every Nth submit (counted from 1 over the whole simulator) is answered
    #: ESME_RTHROTTLED and not accepted.
    throttle_every: int = 0
    #: When nonzero, every submit is answered with this status.
    submit_status: int = 0
    #: When nonzero, a submit that arrives sooner than 1/max_rate seconds
    #: after the last one accepted from the same system_id is answered
    #: ESME_RTHROTTLED and not accepted: a limit by spacing, as an SMSC's
    #: per-account throughput (Jasmin's, say) enforces it.
    max_rate: float = 0.0
    #: Never answer a submit (enquire_link and the rest are still answered).
    black_hole: bool = False
    #: Answer nothing at all, binds included.
    black_hole_all: bool = False
    #: Seconds to wait before answering each submit (on the injected clock).
    response_delay: float = 0.0
    #: Close a connection once it has received this many PDUs; the last one
    #: is recorded but not answered.  0 never closes.
    drop_after: int = 0
    #: Close with a TCP reset (abortConnection) rather than a clean close.
    drop_with_reset: bool = False
    #: When nonzero, refuse every bind with this status (e.g. ESME_RBINDFAIL).
    bind_status: int = 0
    #: After each drop_after close, flip drop_with_reset, so that successive
    #: drops alternate a clean close (FIN) and a reset (RST).
    alternate_drops: bool = False


@dataclass(frozen=True)
class Drop:
    """One connection the drop_after fault closed: how, whose, and when."""

    reset: bool
    system_id: str | None
    #: PDUs the connection had received, the dropping one included.
    pdus: int
    #: Submits the simulator had accepted in all (over every connection) at the drop.
    accepted: int


@dataclass(frozen=True)
class Received:
    """One PDU the simulator received, with the system_id its session was bound as (None before)."""

    system_id: str | None
    pdu: PDU



@dataclass(frozen=True)
class SentReceipt:
    """A delivery receipt the simulator sent and the ESME answered: its ``stat:`` word and that answer's status."""

    stat: str
    status: int
