"""How a node takes a server's requests for its queue, and writes under that claim.

`IOutboundClaims` gives a node the unfinished requests of a server it holds
a bind slot of; `IClaimedWrites` are its writes under that `Claim`: on a
store several nodes share (PostgreSQL), fenced by the slot's lease (a write
of a lease no longer held fails with `LeaseLost`); on a store of one node
(`smppgw.store.sole`), claims are no-ops.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from smppgw.store.interfaces import OutboundPayload, OutboundRow
    from smppgw.store.writes import Then


@dataclass(frozen=True, slots=True)
class Claim:
    """What a node holds a server's requests under: ``node``'s tenure (``epoch``) of the
    lease ``lease`` (its id), one of ``server``'s bind slots."""

    server: str
    lease: int
    node: str
    epoch: int


@dataclass(frozen=True, slots=True)
class ClaimedRow:
    """An unfinished request claimed for a node's queue, without its payload.

    ``in_doubt`` are the indices of its parts marked as being submitted (under
    any lease) that have no message id: the SMSC may or may not have them.
    ``seq`` is its seq where the store tells it (0 otherwise).
    """

    request_id: str
    parts: int
    message_ids: tuple[str | None, ...]
    created: float
    in_doubt: tuple[int, ...] = ()
    seq: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class ClaimBatch:
    """What one claim took, oldest first, and ``seen``: the highest seq it looked at (0
    where the store does not tell), for the next claim's ``after``."""

    rows: list[ClaimedRow]
    seen: int = 0


class IClaimedWrites(Interface):
    """The writes of one node under one `Claim`: those of `IStore` of the same name,
    each fenced: it fails with :class:`LeaseLost`, writing nothing, once the claim's
    lease is no longer held at that epoch."""

    claim = Attribute("The `Claim` these writes are made under.")

    def add_outbound(request_id: str, server: str, payload: OutboundPayload, parts: int,
                     created: float, then: Then | None = None) -> Deferred[int] | None:
        """`IStore.add_outbound`, the request kept claimed (it is this node's to send)."""

    def set_message_id(request_id: str, index: int, message_id: str, lookup_key: str,
                       known: tuple[str, int] | None = None,
                       receipt_due: float | None = None,
                       then: Then | None = None) -> Deferred[None] | None:
        """`IStore.set_message_id`, fenced."""

    def finish(request_id: str, outcome: dict[str, Any], then: Then | None = None
               ) -> Deferred[None] | None:
        """`IStore.finish`, fenced."""

    def payloads(request_ids: list[str]) -> dict[str, OutboundPayload]:
        """`IStore.payloads` (a read: not fenced)."""

    def mark_submitting(request_id: str, index: int) -> Deferred[None] | None:
        """Mark part ``index`` of ``request_id`` as being submitted under the claim; fires
        once that is committed (then its submit_sm may leave).  None where nothing needs
        marking (a store of one node): the part may leave at once."""


class IOutboundClaims(Interface):
    """How a node takes a server's unfinished requests for its queue (see the module
    docstring): on a shared store, the requests unclaimed or claimed under a lease no
    longer held, each then this node's alone while its lease lasts."""

    shared = Attribute("Whether other nodes write to the store too (claims matter).")

    def claim_outbound(claim: Claim, limit: int = 10000,
                       after: int = 0) -> Deferred[ClaimBatch]:
        """Claim up to ``limit`` of ``claim.server``'s unfinished requests that no running
        lease holds (none that ``claim`` holds already), oldest first; fires with them once
        committed, or fails with :class:`LeaseLost` (nothing claimed).  With ``after`` (the
        ``seen`` of an earlier claim), only those of a later seq need be looked at: the
        quick claim of requests just stored; a store may claim earlier ones as well."""

    def under(claim: Claim) -> IClaimedWrites:
        """The writes fenced by ``claim``."""

    def expire_unclaimed(before: float, outcome: dict[str, Any]) -> Deferred[int]:
        """Finish with ``outcome`` the unfinished requests created before ``before`` that no
        running lease holds (a server no node binds: off or removed everywhere); fires
        with how many.  A store of one node has none: its queues expire their own."""

    def finished(request_ids: list[str]) -> list[OutboundRow]:
        """The finished requests among ``request_ids`` (an outcome another node wrote)."""

    def queued() -> dict[str, int]:
        """How many unfinished requests each server has, whichever node accepted or
        claimed them: what the cluster has queued."""
