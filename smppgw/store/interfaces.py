"""What the gateway keeps, as its components see it: the store's errors and rows.

Every store (SQLite, in memory) raises these errors and returns these rows;
nothing here knows how a store keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class StoreError(Exception):
    """The database failed (a commit, a write, a closed store): the caller answers "try later"."""


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
class InboxRow:
    """A message or delivery report waiting to be handed to a host."""

    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int
    created: float


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
