"""
The operator's view of a running gateway: what waits, where a message got to, the dialog bindings.

`Operator` reads the outbound queue (`smppgw.relay.outbound.Outbound`), its
store and its dialog table, and offers the few actions an operator needs on
them: reject one stuck message (the host that waits gets NOT_RELAYED, the
reason saying the operator rejected it) and retire one dialog binding.  The
AMP commands (`smppgw.host.protocol`) and the web admin's pages both use it,
so that they say the same things.  It keeps nothing of its own: each call
reads the live parts again, so it follows a reload.

Bad input is an `OperatorError` (`smppgw.errors`): the request,
server or binding asked for does not exist, or cannot be acted on.
"""

from __future__ import annotations

import re
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from smppgw.errors import BadRequest, NotFound, Unavailable
from smppgw.relay.dialogs import DialogError, UnknownBinding
from smppgw.smpp.codec import DecodeError, decode, split_prepared
from smppgw.store.interfaces import StoreError

if TYPE_CHECKING:
    from smppgw.relay.dialogs import DialogTable
    from smppgw.relay.jobs import Job
    from smppgw.relay.linkqueue import LinkQueue
    from smppgw.relay.outbound import Outbound
    from smppgw.store.interfaces import OutboundRow

#: Messages shown per server by default: the oldest, which are the stuck ones.
QUEUE_SHOWN = 100
#: Requests a search by phone number finds at most, newest first.
LOOKUP_FOUND = 50
#: The outcome reason of a message the operator rejected.
REJECTED = "rejected by the operator"

_PHONE = re.compile(r"\+?([0-9]{3,20})(@.*)?")


@dataclass(frozen=True)
class Waiting:
    """One message waiting for its server: how old it is and how far it got."""

    request_id: str
    server: str
    created: float
    age: float
    parts: int
    #: Parts the SMSC has accepted.
    sent: int
    #: Parts sent whose answer has not come.
    in_flight: int
    #: Who asked for it: a host's address, or "restored" for a message queued before a restart.
    host: str


@dataclass(frozen=True)
class ServerQueue:
    """What waits for one server, oldest first; ``total`` counts those not shown too."""

    server: str
    total: int
    waiting: tuple[Waiting, ...]


@dataclass(frozen=True)
class Part:
    """One part of a message: its message id, whether the SMSC took it, its receipt."""

    number: int
    message_id: str | None
    #: "accepted", "waiting" or "not sent".
    submit: str
    #: "awaited", "came (or was given up on)", "not asked for", a report waiting for a
    #: host ("DELIVRD, waiting for a host"), or "" for a part not sent.
    receipt: str
    #: While the receipt is awaited, when it is given up on.
    receipt_due: float | None = None


@dataclass(frozen=True)
class Message:
    """Where one request got to: queued, relayed or failed, part by part."""

    request_id: str
    server: str
    destination: str
    sender: str
    created: float
    #: "queued", "relayed" or "failed".
    state: str
    #: For a failed request, its code and reason ("CODE: reason"); else "".
    outcome: str
    parts: tuple[Part, ...]


@dataclass(frozen=True)
class DialogBinding:
    """A dialog binding as the operator sees it; ``idle`` is seconds since its last use."""

    phone: str
    letter: str
    address: str
    last_used: float
    idle: float


def age(seconds: float) -> str:
    """A duration the way an operator reads it: 45s, 2m05s, 3h07m, 2d04h."""
    whole = int(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d{whole % 86400 // 3600:02d}h"


def when(epoch: float) -> str:
    """A moment in UTC, to the second."""
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(epoch))


def host_name(host: Hashable) -> str:
    """Who asked for a message, as the log names a host."""
    if host is None:
        return "restored"
    peer = getattr(host, "peer", None)
    shown = getattr(peer, "shown", None)
    return str(shown) if shown else "host"


def phone_digits(text: str) -> str | None:
    """The digits of a phone number as a submit_sm addresses it ("+1 555-1234@smpp" -> "15551234"); None if ``text`` is none."""
    squeezed = re.sub(r"[\s().-]", "", text)
    match = _PHONE.fullmatch(squeezed)
    return match.group(1) if match else None


class Operator:
    """The operator's queries and actions over ``outbound`` and what it holds."""

    def __init__(self, outbound: Outbound) -> None:
        self.outbound = outbound

    @property
    def clock(self) -> Any:
        return self.outbound.clock

    @property
    def dialogs(self) -> DialogTable | None:
        return self.outbound.dialogs

    # -- the queue ------------------------------------------------------------------

    def queues(self, server: str | None = None, limit: int = QUEUE_SHOWN) -> list[ServerQueue]:
        """What waits for each sending server (or only ``server``), oldest first, ``limit`` each."""
        queues = self.outbound.queues
        if server is not None:
            if server not in queues:
                known = any(s.name == server for s in self.outbound.config.servers)
                raise NotFound(f"server {server!r} sends nothing (its mode, or it is off)" if known
                               else f"there is no server {server!r}")
            names = [server]
        else:
            names = list(queues)
        return [self._queue(name, queues[name], limit) for name in names]

    def _queue(self, name: str, queue: LinkQueue, limit: int) -> ServerQueue:
        now = self.clock.seconds()
        shown = []
        for job in list(queue.jobs.values())[:limit]:
            created = self._created(job, queue)
            shown.append(Waiting(job.request_id, name, created, max(0.0, now - created),
                                 len(job.message_ids),
                                 sum(1 for m in job.message_ids if m is not None),
                                 job.in_flight, host_name(job.host)))
        return ServerQueue(name, len(queue.jobs), tuple(shown))

    def _created(self, job: Job, queue: LinkQueue) -> float:
        try:
            row = self.outbound.store.outbound(job.request_id)
        except StoreError:
            row = None
        if row is not None:
            return row.created
        return job.expires - queue.reject_after  # what it was queued with

    def reject(self, request_id: str) -> Waiting:
        """End queued ``request_id`` with NOT_RELAYED "rejected by the operator"; what it was."""
        for name, queue in self.outbound.queues.items():
            job = queue.jobs.get(request_id)
            if job is None:
                continue
            created = self._created(job, queue)
            sent = sum(1 for m in job.message_ids if m is not None)
            reason = REJECTED + (f" ({sent} of {len(job.message_ids)} parts sent)" if sent else "")
            queue.reject(request_id, reason)
            return Waiting(request_id, name, created, max(0.0, self.clock.seconds() - created),
                           len(job.message_ids), sent, job.in_flight, host_name(job.host))
        row = self._row(request_id)
        if row is None:
            raise NotFound(f"there is no request {request_id!r}")
        if row.outcome is not None:
            ended = _outcome(row)[1] or "relayed"
            raise BadRequest(f"request {request_id!r} is no longer queued: {ended}")
        raise BadRequest(f"request {request_id!r} is being stored or finished; look it up again")

    # -- looking a message up -------------------------------------------------------

    def lookup(self, query: str) -> list[Message]:
        """The request ``query`` names, or else the newest requests to the phone number it is."""
        query = query.strip()
        if not query:
            raise BadRequest("give a request_id or a phone number")
        row = self._row(query)
        if row is not None:
            return [self._message(row)]
        digits = phone_digits(query)
        if digits is None:
            raise NotFound(f"there is no request {query!r}")
        try:
            rows = self.outbound.store.find_outbound(digits.encode("ascii") + b"\0", LOOKUP_FOUND)
        except StoreError as error:
            raise Unavailable(f"cannot read the store: {error}") from None
        found = [message for message in map(self._message, rows)
                 if message.destination == digits]
        if not found:
            raise NotFound(f"there is no request {query!r}, nor any message to {digits}"
                           " in the store")
        return found

    def _row(self, request_id: str) -> OutboundRow | None:
        try:
            return self.outbound.store.outbound(request_id)
        except StoreError as error:
            raise Unavailable(f"cannot read the store: {error}") from None

    def _message(self, row: OutboundRow) -> Message:
        destination, sender = _addresses(row.payload)
        state, outcome = _outcome(row)
        try:
            deadlines = self.outbound.store.receipt_deadlines(row.request_id)
        except StoreError:
            deadlines = {}
        reports = self._reports(row.request_id)
        asks = self._asks_receipts(row.server)
        parts = []
        for index, message_id in enumerate(row.message_ids):
            if message_id is not None:
                submit = "accepted"
            elif state == "queued":
                submit = "waiting"
            else:
                submit = "not sent"
            if message_id is None:
                receipt = ""
            elif index in deadlines:
                receipt = "awaited"
            elif asks:
                receipt = "came (or was given up on)"
            else:
                receipt = "not asked for"
            if index + 1 in reports:
                receipt = f"{reports[index + 1]}, waiting for a host"
            parts.append(Part(index + 1, message_id, submit, receipt, deadlines.get(index)))
        return Message(row.request_id, row.server, destination, sender, row.created, state,
                       outcome, tuple(parts))

    def _asks_receipts(self, server: str) -> bool:
        return any(s.name == server and s.registered_delivery for s in self.outbound.config.servers)

    def _reports(self, request_id: str) -> dict[int, str]:
        """The delivery reports of ``request_id`` still in the inbox, by part number."""
        try:
            rows = self.outbound.store.inbox()
        except StoreError:
            return {}
        reports = {}
        for row in rows:
            payload = row.payload
            if row.kind == "report" and payload.get("request_id") == request_id:
                error = f" (error {payload['error']})" if payload.get("error") else ""
                reports[int(payload.get("part") or 1)] = f"{payload.get('state', '')}{error}"
        return reports

    # -- dialog bindings ------------------------------------------------------------

    def bindings(self) -> list[DialogBinding]:
        """Every live dialog binding, by phone and letter (none when Dialogs are off)."""
        table = self.dialogs
        if table is None:
            return []
        now = self.clock.seconds()
        return [DialogBinding(b.phone, b.letter, b.address, b.last_used, max(0.0, now - b.last_used))
                for b in table.every_binding()]

    def retire(self, phone: str, letter: str) -> DialogBinding:
        """Forget one dialog binding now; what it was."""
        table = self.dialogs
        if table is None:
            raise NotFound("Dialogs are off on every server: there are no bindings")
        try:
            b = table.retire(phone, letter)
        except UnknownBinding as error:
            raise NotFound(str(error)) from None
        except DialogError as error:
            raise BadRequest(str(error)) from None
        except StoreError as error:
            raise Unavailable(f"cannot write the store: {error}") from None
        return DialogBinding(b.phone, b.letter, b.address, b.last_used,
                             max(0.0, self.clock.seconds() - b.last_used))


def _outcome(row: OutboundRow) -> tuple[str, str]:
    """A request's state, and for a failed one "CODE: reason"."""
    outcome = row.outcome
    if outcome is None:
        return "queued", ""
    if outcome.get("ok"):
        return "relayed", ""
    return "failed", f"{outcome.get('code', 'ERROR')}: {outcome.get('reason', '')}"


def _addresses(payload: Any) -> tuple[str, str]:
    """The destination and source addresses of a stored payload's first submit_sm ("" if unreadable)."""
    if not isinstance(payload, bytes):
        return "", ""
    try:
        params = decode(split_prepared(payload)[0]).params
    except (ValueError, IndexError, DecodeError):
        return "", ""
    return _ascii(params.get("destination_addr")), _ascii(params.get("source_addr"))


def _ascii(value: object) -> str:
    return value.decode("ascii", "replace") if isinstance(value, bytes) else ""
