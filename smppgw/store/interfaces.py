"""What the gateway keeps, as its components see it: `IStore`, its errors and its rows.

Every store (SQLite, in memory) provides `IStore`, raises these errors and
returns these rows; nothing here knows how a store keeps them.  `IGroupCommit`
is how a store tells today when its writes are durable.  The claims of a
node's queue are in `smppgw.store.claiming`; the hot path's way of hearing
that a write is durable without a Deferred (`Then`), in `smppgw.store.writes`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from zope.interface import Attribute, Interface

if TYPE_CHECKING:
    from smppgw.relay.dialogs import Binding
    from smppgw.store.writes import Then


class StoreError(Exception):
    """The database failed (a commit, a write, a closed store): the caller answers "try later"."""


class LeaseLost(StoreError):
    """The writer no longer holds the lease it wrote under: its lease ran out, was
    released, or another node holds the key now.  Nothing was written."""


class BadStoreInput(ValueError):
    """An argument the store cannot keep: a payload that is not JSON, a part index out of range."""


class UnknownRow(LookupError):
    """A request_id or inbox id that the store does not hold."""


@dataclass(frozen=True, slots=True)
class OutboundRow:
    """One accepted SendSignal request and how far it got.

    ``message_ids`` has one entry per part, None until the SMSC accepted that
    part; ``outcome`` is None while the request is unfinished.
    """

    request_id: str
    server: str
    payload: OutboundPayload
    parts: int
    message_ids: tuple[str | None, ...]
    created: float
    outcome: dict[str, Any] | None
    seq: int


@dataclass(frozen=True, slots=True)
class DueReceipt:
    """An accepted part whose delivery receipt has not come by its deadline.

    ``index`` counts from 0; ``parts`` is how many parts its request has.
    """

    request_id: str
    index: int
    message_id: str
    server: str
    parts: int
    due: float


@dataclass(frozen=True, slots=True)
class InboxClaim:
    """A node's hold on an inbox row: ``node`` claimed it at ``epoch`` (each claim of a row
    has the next epoch, so a late write under an older claim is told apart)."""

    node: str
    epoch: int


@dataclass(frozen=True, slots=True)
class InboxRow:
    """A message or delivery report waiting to be handed to a host; ``claim`` is the
    claim it was given under (`IStore.claim_inbox`), None when only listed."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    created: float
    claim: InboxClaim | None = None


class DuplicateRequest(Exception):
    """A request_id that is already stored; ``row`` is the stored request."""

    def __init__(self, row: OutboundRow) -> None:
        super().__init__(f"request {row.request_id!r} is already stored")
        self.row = row


#: What an outbound request keeps: bytes as given (the queue's encoded PDUs),
#: or a dict kept as JSON.
OutboundPayload = bytes | dict[str, Any]


#: The outcome the queue stores for a request every part of which the SMSC
#: accepted (the rows have the server, the part count and the message ids
#: already): nearly every request's.
OK_OUTCOME: dict[str, Any] = {"ok": True}


#: One unfinished request as `IStore.unfinished_brief` gives it, without its
#: payload: (request_id, server, parts, message_ids, created).
BriefRow = tuple[str, str, int, tuple[str | None, ...], float]


class IStore(Interface):
    """What the gateway keeps, and finds again after a restart.

    Every row the store returns is a fresh object (a row, a payload dict, an
    outcome): changing it changes nothing stored.  Every method raises
    :class:`StoreError` once the store is closed, or when its storage fails;
    :class:`BadStoreInput` for an argument it cannot keep, before changing
    anything.  Payloads and outcomes are JSON values (bytes for an outbound
    payload): what is stored is what JSON gives back (a tuple comes back a list).

    Today a write takes effect at once for the store's own readers, and is
    durable (survives the process being killed) once `IGroupCommit` says so.
    """

    path = Attribute("Where the rows are kept, for log lines: a file, or ':memory:'.")

    shared = Attribute(
        "Whether other gateway nodes share the inbox (PostgreSQL): a claim then keeps a row"
        " from them, and lapses unless renewed.  A store of one process (False) holds no"
        " claims: see `claim_inbox`.")

    retention = Attribute(
        "Seconds a finished request is kept after its creation, for answering a retried"
        " request_id: `prune` forgets it after that.")

    # -- outbound requests and their parts ------------------------------------

    def add_outbound(
        request_id: str, server: str, payload: OutboundPayload, parts: int, created: float,
        then: Then | None = None,
    ) -> Deferred[int] | None:
        """Keep a new request of ``parts`` parts for ``server``, unfinished; fires with its
        seq once that is durable (fails with :class:`StoreError` if it cannot be).  Given
        ``then``, it returns None and says so through ``then`` (see `Then`; no seq).

        Idempotent by ``request_id``: a request_id already kept (finished or
        not, until `prune` forgets it) fails with :class:`DuplicateRequest`
        carrying the kept row, and changes nothing.  Seqs count up in the
        order requests are added.  ``parts`` below 1 or a payload that is not
        bytes nor JSON raises :class:`BadStoreInput` (the caller's mistake).
        """

    def outbound(request_id: str) -> OutboundRow | None:
        """Return the kept request ``request_id`` (finished or not), or None."""

    def unfinished(server: str | None = None) -> list[OutboundRow]:
        """Return the unfinished requests (of ``server``, or all) in the order they were added."""

    def unfinished_brief(server: str | None = None) -> Iterator[BriefRow]:
        """Yield each unfinished request as a `BriefRow`, in the order they were added.

        No payloads are read (a large queue restores in little memory); the
        caller may write to the store (finish a request) while it iterates.
        """

    def payloads(request_ids: list[str]) -> dict[str, OutboundPayload]:
        """Return the payloads of those of ``request_ids`` that are kept, by request_id."""

    def set_message_id(
        request_id: str,
        index: int,
        message_id: str,
        lookup_key: str,
        known: tuple[str, int] | None = None,
        receipt_due: float | None = None,
        then: Then | None = None,
    ) -> Deferred[None] | None:
        """Record that the SMSC accepted part ``index`` (from 0) of ``request_id`` as
        ``message_id``; fires once that is durable (given ``then``: see `Then`).

        ``lookup_key`` is the id as receipts name it (normalised by the
        caller), found by `lookup_message`.  ``known`` is the request's
        (server, parts) when the caller has them, trusted as given.
        ``receipt_due`` is when the part's delivery receipt is given up on
        (None: none is awaited).  A part recorded again takes the new id and
        key and keeps the deadline it had, so a receipt that came meanwhile
        is not awaited again.  An unknown request (with ``known`` None)
        fails with :class:`UnknownRow`; an index outside the parts raises
        :class:`BadStoreInput`.
        """

    def finish(request_id: str, outcome: dict[str, Any], then: Then | None = None
               ) -> Deferred[None] | None:
        """Record the final outcome of ``request_id``, firing once that is durable (given
        ``then``: see `Then`); a second call replaces the first.

        The request is then no longer unfinished.  An unknown request fails with
        :class:`UnknownRow`.
        """

    # -- delivery receipts ----------------------------------------------------

    def lookup_message(server: str, lookup_key: str) -> tuple[str, int] | None:
        """Return (request_id, part index) of the part ``server`` accepted as ``lookup_key``, or None.

        Should an SMSC reuse an id, the part of the newest request wins.
        """

    def receipt_came(request_id: str, index: int) -> Deferred[None]:
        """Part ``index`` of ``request_id`` has its final receipt: no longer await it (fires
        once that is durable).

        A part that awaits nothing, or is unknown, is left as it is.
        """

    def next_receipt_due() -> float | None:
        """Return the earliest deadline of a part still awaiting its receipt, or None."""

    def due_receipts(now: float, limit: int = 500) -> list[DueReceipt]:
        """Return up to ``limit`` parts whose receipt deadline is ``now`` or earlier, earliest first.

        A part stays due until `receipt_came`; parts of one deadline come in
        no promised order.
        """

    # -- the inbox, for the hosts ---------------------------------------------

    def add_inbox(kind: str, payload: dict[str, Any], created: float, *,
                  receipt: tuple[str, int] | None = None,
                  drop_fragments: str | None = None,
                  if_awaited: bool = False) -> Deferred[int | None]:
        """Keep a message or report (``kind``) for a host; fires with its id once durable.

        With it, in one transaction (neither is kept without the row):
        ``receipt`` (request_id, part index) is `receipt_came` of that part,
        ``drop_fragments`` is `drop_fragments` of the message's parts.  Ids
        increase, and are never given again, even once removed, so that a
        host's late answer about a removed row cannot touch a newer one.

        A receipt's report is kept even if its part awaited none (a late one).  With
        ``if_awaited`` (a report of a receipt that did not come) it is kept only if the
        part still awaited one, as its transaction sees it; else it fires with None.
        """

    def inbox(limit: int = 1000, after_id: int = 0) -> list[InboxRow]:
        """Return up to ``limit`` durable inbox rows with an id above ``after_id``, lowest id
        first (a row whose write may still be rolled back is not listed)."""

    def claim_inbox(node: str, limit: int, lease: float, after_id: int = 0,
                    kinds: tuple[str, ...] | None = None) -> list[InboxRow]:
        """Claim for ``node`` up to ``limit`` durable inbox rows above ``after_id`` (of ``kinds``
        only, if given) that no node holds, lowest id first, each with its claim.

        A claim runs ``lease`` seconds on the store's (the database server's) clock
        unless renewed, and each claim of a row has a higher epoch than the last.  A
        store that is not `shared` lists the rows as `inbox` does, each under the claim
        (``node``, 0), which never lapses nor is refused.
        """

    def renew_inbox(node: str, rows: list[InboxRow], lease: float) -> set[int]:
        """Extend ``node``'s claims of ``rows`` (as claimed) by ``lease`` seconds from now, those
        it still holds (not lapsed, nor claimed since); return the ids of the rows renewed."""

    def bump_inbox(id: int, claim: InboxClaim | None = None, retry_in: float = 0.0
                   ) -> Deferred[int]:
        """Count one more delivery attempt of inbox row ``id``; fires with the new count once
        durable.  Given its ``claim``, only while that holds (same node and epoch): it is
        released, and no node claims the row for ``retry_in`` seconds.  An id not kept, or
        a claim not held, fails with :class:`UnknownRow` and changes nothing.
        """

    def remove_inbox(id: int, claim: InboxClaim | None = None) -> Deferred[None]:
        """Forget inbox row ``id`` (nothing happens if it is already gone); fires once durable.
        Given its ``claim``, only while that holds: a row claimed since is left as it is."""

    # -- fragments of long inbound messages -----------------------------------

    def add_fragment(key: str, seq: int, total: int, payload: dict[str, Any],
                     received: float) -> Deferred[int]:
        """Keep part ``seq`` of the message ``key``; fires, once durable, with how many
        distinct parts of it were kept then.

        A repeated part replaces the kept one (its total and payload) but
        keeps its first arrival time, so a resending SMSC cannot postpone
        `stale_fragments`.
        """

    def fragments(key: str) -> list[tuple[int, dict[str, Any]]]:
        """Return the kept parts of ``key`` as (seq, payload), by seq."""

    def drop_fragments(key: str) -> Deferred[None]:
        """Forget every kept part of ``key``; fires once durable."""

    def stale_fragments(before: float) -> list[str]:
        """Return the keys whose earliest kept part arrived before ``before``, sorted."""

    # -- SMS Dialogs bindings (a smppgw.relay.dialogs.BindingStore) -----------

    def load_bindings(phone: str | None = None) -> list[Binding]:
        """Return every kept dialog binding (of ``phone`` only, if given), by (phone, letter)."""

    def save_binding(binding: Binding) -> Deferred[None]:
        """Keep ``binding``, replacing any binding of the same (phone, letter); fires once durable."""

    def delete_binding(phone: str, letter: str) -> Deferred[None]:
        """Forget the binding (phone, letter), if there is one; fires once durable."""

    # -- maintenance ----------------------------------------------------------

    def prune(now: float) -> int:
        """Forget finished requests created more than `retention` before ``now``; return how many.

        Requests are walked in the order they were added, up to the first
        one created within the retention: should the clock have been set
        back, finished requests added after that one wait for a later prune.
        Unfinished requests are always kept.  A forgotten request's parts go
        with it: its request_id may be added again, and receipts no longer find it.
        """

    def counts() -> dict[str, int]:
        """Return how many rows are kept: ``unfinished`` requests, ``inbox`` rows,
        ``fragments`` (parts, not messages) and ``bindings``."""

    def close() -> None:
        """Make what was written durable and let the storage go; closing again does nothing."""


class IGroupCommit(Interface):
    """When the writes of an `IStore` are durable: today's contract, seen by its callers.

    A store may keep writes pending and make a batch of them durable at once
    (the SQLite store commits once per reactor turn).  The gateway answers
    the outside world (an SMSC's deliver_sm, a host's SendSignal) only once
    what it wrote is durable.  A later step makes the writes of `IStore`
    return Deferreds that fire once durable, and removes these methods from
    the callers; until then they are part of what a store offers.
    """

    failed_commits = Attribute(
        "How many batches of writes were lost (rolled back) since the store was opened:"
        " a writer that sees it grow writes again what it cannot afford to lose.")

    def durable() -> Deferred[None]:
        """Return a Deferred that fires once every write made so far is durable.

        It has fired already if nothing is pending; it errbacks with
        :class:`StoreError` if those writes are lost.
        """

    def when_durable(done: Callable[[], object], failed: Callable[[StoreError], object]) -> None:
        """Call ``done()`` once every write made so far is durable, or ``failed(error)`` if
        they are lost: `durable` without a Deferred, for the hot path.

        With nothing pending, ``done`` is called at once.  A callback that
        raises is logged; the others are still called.
        """

    def commit() -> None:
        """Make every pending write durable now, and call its waiters.

        If that fails, the pending writes are lost (rolled back), their
        waiters fail and :class:`StoreError` is raised.
        """

    def commit_pending() -> None:
        """Make pending writes durable now, if there are any: `commit` that logs a failure
        rather than raising it (its waiters are told), for a socket's flush."""
