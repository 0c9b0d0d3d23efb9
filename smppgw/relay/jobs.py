"""
A request on its way to the SMSC (`Job`), and its outcome as the host gets it.

A job is one SendSignal: its parts' PDUs encoded back to back (its payload,
kept in the store and in memory near the queue's head), the SMSC's message id
of each part once accepted, when it expires, and who waits for its outcome.
An outcome is a dict: ``{"ok": True, ...}`` with the parts' message ids, or
``{"ok": False, "code": ..., "reason": ...}`` with the code of an
`smppgw.errors` error; `outcome_answer` turns it into what the host
gets.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, fail, succeed

from smppgw.errors import (
    SignalError,
    TryLater,
    error_of,
)
from smppgw.smpp.codec import PDU, PreparedPDU, split_prepared
from smppgw.smpp.session import (
    Answer,
)

if TYPE_CHECKING:
    from smppgw.store.interfaces import OutboundRow

#: Hosts waiting at once for the outcome of one request_id.
MAX_WAITERS = 100


class Job:
    """One accepted request: its parts, their message ids, and who waits for the outcome.

    The payload (the parts' submit_sm PDUs, encoded when the request was
    accepted, back to back) lives in the store; a job keeps it in memory only
    while it is near the head of its queue, so that a long backlog costs
    little memory, and cuts it into one PDU per part when it first sends.
    """

    __slots__ = ("request_id", "server", "payload", "message_ids", "expires", "seq",
                 "in_flight", "waiters", "done", "expired", "attempts", "host", "accepted",
                 "unsure")

    def __init__(self, request_id: str, server: str,
                 payload: bytes | list[bytes] | None,
                 message_ids: list[str | None], seq: int, expires: float,
                 host: Hashable = None, accepted: float | None = None) -> None:
        self.request_id = request_id
        #: When this process accepted it (None: restored from the store), for its duration.
        self.accepted = accepted
        #: Who asked (a host connection), so that hosts take turns; None for
        #: requests restored from the store.
        self.host = host
        self.server = server
        self.payload = payload
        self.message_ids = message_ids
        self.expires = expires
        self.seq = seq
        self.in_flight = 0
        # None, one waiter (the usual case: the memory of a long backlog
        # counts), or a list of them when a host asks again while waiting.
        self.waiters: Answer | list[Answer] | None = None
        self.done = False
        self.expired = False
        self.attempts: dict[int, int] | None = None
        #: Whether the record of one of its parts' acceptance was lost once (a
        #: failed write): its outcome is then written whole, with every part again.
        self.unsure = False

    def wait(self, answer: Answer | None = None) -> Any:
        """Have `answer` (a new Deferred if None) hear the outcome; returns it.

        Anything with a Deferred's ``callback`` and ``errback`` will do.
        """
        d: Any = Deferred() if answer is None else answer
        if self.waiters is None:
            self.waiters = d
        elif not isinstance(self.waiters, list):
            self.waiters = [self.waiters, d]
        elif len(self.waiters) >= MAX_WAITERS:
            # A host asking again and again for one pending request must not
            # grow memory: the earlier askers get the answer.
            d.errback(TryLater(f"{len(self.waiters)} requests already wait for this request_id"))
        else:
            self.waiters.append(d)
        return d

    def take_waiters(self) -> list[Answer]:
        """Every waiter for the outcome; none are left."""
        waiters, self.waiters = self.waiters, None
        if waiters is None:
            return []
        return waiters if isinstance(waiters, list) else [waiters]

    def pdu(self, index: int) -> PDU:
        """Part `index`'s submit_sm.  Raises ValueError for a payload that cannot be read."""
        p = self.payload
        assert p is not None, "payload not loaded"
        if isinstance(p, bytes):
            frames = split_prepared(p)
            if len(frames) != len(self.message_ids):
                raise ValueError(f"{len(frames)} PDUs stored for {len(self.message_ids)} parts")
            # Cut once: each later part of a long message is then one lookup.
            self.payload = p = frames
        if not isinstance(p, list):
            raise ValueError(f"a payload of {type(p).__name__} holds no PDUs")
        return PreparedPDU(p[index])

    @property
    def complete(self) -> bool:
        return None not in self.message_ids


def success(job: Job) -> dict[str, Any]:
    return {"ok": True, "server": job.server, "parts": len(job.message_ids),
            "message_ids": list(job.message_ids)}


def outcome_answer(outcome: dict[str, Any]) -> dict[str, Any] | SignalError:
    """A finished request's outcome as its answer: the result, or the error to fail with."""
    if outcome.get("ok"):
        return {"server": outcome["server"], "parts": outcome["parts"],
                "message_ids": outcome["message_ids"]}
    return error_of(outcome)


def row_answer(row: OutboundRow) -> dict[str, Any] | SignalError:
    """A finished request's stored outcome as its answer: the result, or the error to fail with."""
    outcome = row.outcome
    assert outcome is not None
    if outcome.get("ok") and "message_ids" not in outcome:
        # Stored as OK_OUTCOME (whole only after a lost record: see Recorder._write_outcome).
        outcome = {"ok": True, "server": row.server, "parts": row.parts,
                   "message_ids": list(row.message_ids)}
    return outcome_answer(outcome)


def outcome_result(row: OutboundRow) -> Deferred[dict[str, Any]]:
    """A finished request's stored outcome as the Deferred an answer is built from."""
    answer = row_answer(row)
    return fail(answer) if isinstance(answer, SignalError) else succeed(answer)
