"""A store kept in dicts, for tests: `IStore` with nothing written to disk.

It answers as the SQLite store does (the same rows, errors and orders; the
conformance suite in `smppgw.store.conformance` holds both to it), keeps
payloads and outcomes as JSON text so that what a caller gets back is a
fresh value, and is durable at once: every `IGroupCommit` waiter fires when
it asks.  Nothing survives `close`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import islice
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, succeed
from zope.interface import implementer

from smppgw.relay.dialogs import Binding
from smppgw.store.interfaces import (
    BadStoreInput,
    BriefRow,
    DueReceipt,
    DuplicateRequest,
    IGroupCommit,
    InboxClaim,
    InboxRow,
    IStore,
    OutboundPayload,
    OutboundRow,
    StoreError,
    UnknownRow,
)
from smppgw.store.unshared import UnsharedInbox
from smppgw.store.writes import durable_when_done

_encode_json = json.JSONEncoder(separators=(",", ":"), allow_nan=False).encode

_T = TypeVar("_T")


def _dump(value: object) -> str:
    try:
        return _encode_json(value)
    except (TypeError, ValueError) as error:
        raise BadStoreInput(f"payload is not JSON-able: {error}") from error


def _limited(rows: Iterable[_T], limit: int) -> list[_T]:
    """The first ``limit`` of ``rows`` (all of them for a negative limit, as SQL's LIMIT)."""
    return list(rows if limit < 0 else islice(rows, limit))


@dataclass(slots=True)
class _Request:
    seq: int
    server: str
    payload: bytes | str  # bytes as given, anything else as JSON text
    parts: int
    created: float
    outcome: str | None  # JSON text once finished


@dataclass(slots=True)
class _Part:
    message_id: str
    server: str
    lookup_key: str
    due: float | None


@dataclass(slots=True)
class _Inbox:
    kind: str
    payload: str
    attempts: int
    created: float


@dataclass(slots=True)
class _Fragment:
    total: int
    payload: str
    received: float


def _payload(stored: bytes | str) -> OutboundPayload:
    return stored if isinstance(stored, bytes) else json.loads(stored)  # type: ignore[no-any-return]


@implementer(IStore, IGroupCommit)
class MemoryStore(UnsharedInbox):
    """Requests, inbox, fragments and dialog bindings in dicts, durable as soon as written."""

    def __init__(self, *, retention: float = 7 * 86400) -> None:
        if isinstance(retention, bool) or not isinstance(retention, int | float) or retention < 0:
            raise BadStoreInput(f"retention must be a number of seconds >= 0: {retention!r}")
        self.path = ":memory:"
        self.retention = float(retention)
        #: Never grows: nothing kept in memory is lost to a failed commit.
        self.failed_commits = 0
        self._closed = False
        # Requests by request_id, in seq order (a new seq is always the highest).
        self._requests: dict[str, _Request] = {}
        # Accepted parts by request_id and index; a part may be recorded for a
        # request that is not (or no longer) kept, as in the SQLite store's table.
        self._parts: dict[str, dict[int, _Part]] = {}
        # Which parts each (server, lookup key) names, for receipts.
        self._lookup: dict[tuple[str, str], set[tuple[str, int]]] = {}
        self._inbox: dict[int, _Inbox] = {}
        self._last_inbox_id = 0
        self._fragments: dict[str, dict[int, _Fragment]] = {}
        self._bindings: dict[tuple[str, str], Binding] = {}

    def _open(self) -> None:
        if self._closed:
            raise StoreError(f"the store {self.path!r} is closed")

    # -- outbound requests and their parts ------------------------------------

    @durable_when_done
    def add_outbound(
        self, request_id: str, server: str, payload: OutboundPayload, parts: int, created: float
    ) -> int:
        self._open()
        if isinstance(parts, bool) or not isinstance(parts, int) or parts < 1:
            raise BadStoreInput(f"parts must be a positive integer: {parts!r}")
        kept = payload if isinstance(payload, bytes) else _dump(payload)
        if request_id in self._requests:
            raise DuplicateRequest(self._row(request_id, self._requests[request_id]))
        # As SQLite's INTEGER PRIMARY KEY: one above the highest kept, 1 if none is.
        seq = next(reversed(self._requests.values())).seq + 1 if self._requests else 1
        self._requests[request_id] = _Request(seq, server, kept, parts, created, None)
        return seq

    def _row(self, request_id: str, request: _Request) -> OutboundRow:
        return OutboundRow(
            request_id,
            request.server,
            _payload(request.payload),
            request.parts,
            self._message_ids(request_id, request.parts),
            request.created,
            None if request.outcome is None else json.loads(request.outcome),
            request.seq,
        )

    def _message_ids(self, request_id: str, parts: int) -> tuple[str | None, ...]:
        message_ids: list[str | None] = [None] * parts
        for index, part in self._parts.get(request_id, {}).items():
            message_ids[index] = part.message_id
        return tuple(message_ids)

    def outbound(self, request_id: str) -> OutboundRow | None:
        self._open()
        request = self._requests.get(request_id)
        return None if request is None else self._row(request_id, request)

    def _unfinished(self, server: str | None) -> list[tuple[str, _Request]]:
        self._open()
        return [
            (request_id, request)
            for request_id, request in self._requests.items()
            if request.outcome is None and (server is None or request.server == server)
        ]

    def unfinished(self, server: str | None = None) -> list[OutboundRow]:
        return [self._row(request_id, request) for request_id, request in self._unfinished(server)]

    def unfinished_brief(self, server: str | None = None) -> Iterator[BriefRow]:
        # Read them all before the first is given: the caller may finish some meanwhile.
        for request_id, request in self._unfinished(server):
            yield (request_id, request.server, request.parts,
                   self._message_ids(request_id, request.parts), request.created)

    def payloads(self, request_ids: list[str]) -> dict[str, OutboundPayload]:
        self._open()
        return {
            request_id: _payload(self._requests[request_id].payload)
            for request_id in request_ids
            if request_id in self._requests
        }

    @durable_when_done
    def set_message_id(
        self,
        request_id: str,
        index: int,
        message_id: str,
        lookup_key: str,
        known: tuple[str, int] | None = None,
        receipt_due: float | None = None,
    ) -> None:
        self._open()
        if known is None:
            request = self._requests.get(request_id)
            if request is None:
                raise UnknownRow(f"no stored request {request_id!r}")
            known = (request.server, request.parts)
        server, parts = known
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < parts:
            raise BadStoreInput(
                f"part index {index!r} is out of range for request {request_id!r} of {parts} parts"
            )
        of_request = self._parts.setdefault(request_id, {})
        part = of_request.get(index)
        if part is None:
            of_request[index] = _Part(message_id, server, lookup_key, receipt_due)
        else:  # recorded again: a new id and key, the deadline it had
            self._unindex(request_id, index, part)
            part.message_id, part.server, part.lookup_key = message_id, server, lookup_key
        self._lookup.setdefault((server, lookup_key), set()).add((request_id, index))

    def _unindex(self, request_id: str, index: int, part: _Part) -> None:
        named = self._lookup.get((part.server, part.lookup_key))
        if named is not None:
            named.discard((request_id, index))
            if not named:
                del self._lookup[(part.server, part.lookup_key)]

    @durable_when_done
    def finish(self, request_id: str, outcome: dict[str, Any]) -> None:
        self._open()
        text = _dump(outcome)
        request = self._requests.get(request_id)
        if request is None:
            raise UnknownRow(f"no stored request {request_id!r}")
        request.outcome = text

    # -- delivery receipts ----------------------------------------------------

    def lookup_message(self, server: str, lookup_key: str) -> tuple[str, int] | None:
        self._open()
        found = [
            (self._requests[request_id].seq, index, request_id)
            for request_id, index in self._lookup.get((server, lookup_key), ())
            if request_id in self._requests
        ]
        if not found:
            return None
        _seq, index, request_id = max(found)
        return request_id, index

    @durable_when_done
    def receipt_came(self, request_id: str, index: int) -> None:
        self._open()
        part = self._parts.get(request_id, {}).get(index)
        if part is not None:
            part.due = None

    def _awaiting(self) -> Iterator[tuple[str, int, _Part]]:
        for request_id, of_request in self._parts.items():
            for index, part in of_request.items():
                if part.due is not None:
                    yield request_id, index, part

    def next_receipt_due(self) -> float | None:
        self._open()
        return min((part.due for _, _, part in self._awaiting() if part.due is not None),
                   default=None)

    def due_receipts(self, now: float, limit: int = 500) -> list[DueReceipt]:
        self._open()
        due = sorted(
            (part.due, request_id, index, part)
            for request_id, index, part in self._awaiting()
            if part.due is not None and part.due <= now and request_id in self._requests
        )
        return _limited(
            (DueReceipt(request_id, index, part.message_id, part.server,
                        self._requests[request_id].parts, when)
             for when, request_id, index, part in due),
            limit,
        )

    # -- the inbox, for the hosts ---------------------------------------------

    @durable_when_done
    def add_inbox(self, kind: str, payload: dict[str, Any], created: float, *,
                  receipt: tuple[str, int] | None = None,
                  drop_fragments: str | None = None, if_awaited: bool = False) -> int | None:
        self._open()
        text = _dump(payload)
        part = None if receipt is None else self._parts.get(receipt[0], {}).get(receipt[1])
        if if_awaited and (part is None or part.due is None):
            return None
        self._last_inbox_id += 1
        self._inbox[self._last_inbox_id] = _Inbox(kind, text, 0, created)
        if part is not None:
            part.due = None
        if drop_fragments is not None:
            self._fragments.pop(drop_fragments, None)
        return self._last_inbox_id

    def inbox(self, limit: int = 1000, after_id: int = 0) -> list[InboxRow]:
        self._open()
        return _limited(
            (InboxRow(row_id, row.kind, json.loads(row.payload), row.attempts, row.created)
             for row_id, row in self._inbox.items() if row_id > after_id),
            limit,
        )

    @durable_when_done
    def bump_inbox(self, id: int, claim: InboxClaim | None = None, retry_in: float = 0.0) -> int:
        self._open()
        row = self._inbox.get(id)
        if row is None:
            raise UnknownRow(f"no inbox row {id!r}")
        row.attempts += 1
        return row.attempts

    @durable_when_done
    def remove_inbox(self, id: int, claim: InboxClaim | None = None) -> None:
        self._open()
        self._inbox.pop(id, None)

    # -- fragments of long inbound messages -----------------------------------

    @durable_when_done
    def add_fragment(
        self, key: str, seq: int, total: int, payload: dict[str, Any], received: float
    ) -> int:
        self._open()
        text = _dump(payload)
        parts = self._fragments.setdefault(key, {})
        earlier = parts.get(seq)
        first = received if earlier is None else min(earlier.received, received)
        parts[seq] = _Fragment(total, text, first)
        return len(parts)

    def fragments(self, key: str) -> list[tuple[int, dict[str, Any]]]:
        self._open()
        parts = self._fragments.get(key, {})
        return [(seq, json.loads(parts[seq].payload)) for seq in sorted(parts)]

    @durable_when_done
    def drop_fragments(self, key: str) -> None:
        self._open()
        self._fragments.pop(key, None)

    def stale_fragments(self, before: float) -> list[str]:
        self._open()
        return sorted(
            key for key, parts in self._fragments.items()
            if min(part.received for part in parts.values()) < before
        )

    # -- SMS Dialogs bindings -------------------------------------------------

    def load_bindings(self, phone: str | None = None) -> list[Binding]:
        self._open()
        return [self._bindings[key] for key in sorted(self._bindings)
                if phone is None or key[0] == phone]

    @durable_when_done
    def save_binding(self, binding: Binding) -> None:
        self._open()
        self._bindings[(binding.phone, binding.letter)] = binding

    @durable_when_done
    def delete_binding(self, phone: str, letter: str) -> None:
        self._open()
        self._bindings.pop((phone, letter), None)

    # -- maintenance ----------------------------------------------------------

    def prune(self, now: float) -> int:
        self._open()
        before = now - self.retention
        gone = []
        for request_id, request in self._requests.items():
            if request.created >= before:
                break
            if request.outcome is not None:
                gone.append(request_id)
        for request_id in gone:
            del self._requests[request_id]
            for index, part in self._parts.pop(request_id, {}).items():
                self._unindex(request_id, index, part)
        return len(gone)

    def counts(self) -> dict[str, int]:
        self._open()
        return {
            "unfinished": sum(request.outcome is None for request in self._requests.values()),
            "inbox": len(self._inbox),
            "fragments": sum(len(parts) for parts in self._fragments.values()),
            "bindings": len(self._bindings),
        }

    def close(self) -> None:
        self._closed = True

    # -- IGroupCommit: everything is durable once written -----------------------

    def durable(self) -> Deferred[None]:
        return succeed(None)

    def when_durable(self, done: Callable[[], object], failed: Callable[[StoreError], object]) -> None:
        done()

    def commit(self) -> None:
        """Nothing is ever pending."""

    def commit_pending(self) -> None:
        """Nothing is ever pending."""
