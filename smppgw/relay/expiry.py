"""
What inbound traffic gives up waiting for: the parts of a long SMS that never
completes within the reassembly timeout are dropped (a line names what
arrived), and a delivery receipt that has not come by its server's
``receipt_timeout`` is reported to the host as ``UNKNOWN`` with error
``NO_RECEIPT``, through the inbox like any receipt, while the inbox has room.
Both look at rows every node on a store shares: their timers tick on every
node and look only while ``maintains()`` says this node does the maintenance
(`smppgw.cluster.election`).  The third part of
`smppgw.relay.inbound.Inbound`, beside `Intake` and `Dispatch`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, FirstError, gatherResults
from twisted.python.failure import Failure

from smppgw.smpp.log import SmppLog
from smppgw.sms.receipts import NO_RECEIPT
from smppgw.store.interfaces import DueReceipt, StoreError

if TYPE_CHECKING:
    from smppgw.config import Config
    from smppgw.store.sqlite import Store

#: The expiry timer runs at most this far apart (and at a quarter of the timeout).
_MAX_EXPIRY_INTERVAL = 60.0
#: Parts whose receipt deadline passed that are reported in one reactor turn.
_RECEIPT_BATCH = 500


class Expiry:
    """What `Inbound` gives up waiting for (see the module docstring)."""

    # What the service and the intake give it.
    _config: Config
    _store: Store
    _clock: Any
    _max_inbox: int
    _module_log: SmppLog
    _inbox_size: int
    _fragment_rows: int
    _receipt_check: Any
    _log: Callable[[str], SmppLog]
    _maintains: Callable[[], bool]
    _wake: Callable[[], None]
    _recount: Callable[[], None]
    _forget_parts: Callable[[str, int], None]

    # -- reassembly expiry ---------------------------------------------------------

    def expire_fragments(self) -> int:
        """Drop the parts of every message still incomplete after the reassembly timeout.

        Returns how many messages were dropped; each gets a line at ``problems``.
        None are, on a node that does not do the maintenance.
        """
        if not self._maintains():
            return 0
        timeout = self._config.module.reassembly_timeout
        try:
            keys = self._store.stale_fragments(self._clock.seconds() - timeout)
            for key in keys:
                got = len(self._store.fragments(key))
                self._store.drop_fragments(key).addErrback(self._not_expired)
                self._forget_parts(key, got)
                try:
                    server, source, destination, _bits, reference, total = json.loads(key)
                except (ValueError, TypeError):
                    self._module_log.problem("incomplete SMS {key!r} expired", key=key)
                    continue
                self._log(server).problem(
                    "incomplete SMS from {source} to {destination} (reference {reference})"
                    " dropped: {got} of {total} parts arrived within {timeout:g}s",
                    source=source, destination=destination, reference=reference, got=got,
                    total=total, timeout=timeout)
        except StoreError as error:
            self._module_log.problem("cannot expire incomplete SMS: {error}", error=error)
            return 0
        return len(keys)

    def _not_expired(self, failure: Failure) -> None:
        # The parts stay: the next expiry drops them.
        self._module_log.problem("cannot expire incomplete SMS: {error}",
                                 error=failure.getErrorMessage())
        self._recount()

    # -- receipts that never come ---------------------------------------------------

    def _check_receipts(self) -> None:
        """Report the parts whose receipt deadline has passed, and look again when the next is due.

        The queue writes deadlines without telling anyone, so the next look
        is never further off than the shortest ``receipt_timeout`` (nor than
        `_MAX_EXPIRY_INTERVAL`): a deadline is always seen before it is due,
        and is then met to the second.  With nothing due, a look is one query
        on an index of the parts still waiting.
        """
        self._receipt_check = None
        now = self._clock.seconds()
        every = min([_MAX_EXPIRY_INTERVAL] + [
            server.receipt_timeout for server in self._config.servers
            if server.registered_delivery and server.receipt_timeout > 0])
        try:
            if not self._maintains():
                delay = every  # another node reports them
            elif self._expire_receipts(now) == _RECEIPT_BATCH:
                delay = 0.0  # more may be due: on the next turn
            else:
                due = self._store.next_receipt_due()
                # Still due after a look: the inbox is full; wait for room.
                delay = every if due is None or due <= now else min(every, due - now)
        except StoreError as error:
            self._module_log.problem("cannot look for missing delivery receipts: {error}",
                                     error=error)
            self._recount()
            delay = every
        self._receipt_check = self._clock.callLater(delay, self._check_receipts)

    def _expire_receipts(self, now: float) -> int:
        """Report UNKNOWN "no receipt" through the inbox for each part due by ``now``, while
        the inbox has room; return how many parts were seen to."""
        servers = {server.name: server for server in self._config.servers}
        due = self._store.due_receipts(now, _RECEIPT_BATCH)
        done = 0
        writes: list[Deferred[Any]] = []
        for part in due:
            if self._inbox_size + self._fragment_rows >= self._max_inbox:
                break
            done += 1
            server = servers.get(part.server)
            if server is not None and not (server.registered_delivery and server.receipt_timeout):
                # That server now waits for ever (or asks for no receipts).
                writes.append(self._store.receipt_came(part.request_id, part.index))
                continue
            # The report and the end of the wait go in one transaction, the report only
            # if the part still awaits its receipt: one may have come meanwhile through
            # another node, or another node may have reported it.
            writes.append(self._store.add_inbox("report", {
                "part": part.index + 1, "parts": part.parts, "request_id": part.request_id,
                "message_id": part.message_id, "state": "UNKNOWN", "error": NO_RECEIPT,
                "server": part.server}, now, receipt=(part.request_id, part.index),
                if_awaited=True).addCallback(self._reported_missing, part))
            self._inbox_size += 1
            self._log(part.server).major(
                "no delivery receipt for {request_id} part {part}/{parts} ({message_id}):"
                " reported UNKNOWN", request_id=part.request_id, part=part.index + 1,
                parts=part.parts, message_id=part.message_id)
        if done:
            gatherResults(writes, consumeErrors=True).addCallbacks(
                lambda _: self._wake(), self._lost_reports)
        return done

    def _reported_missing(self, row_id: int | None, part: DueReceipt) -> None:
        if row_id is None:
            self._inbox_size = max(0, self._inbox_size - 1)
            self._log(part.server).low(
                "the receipt of {request_id} part {part} came meanwhile: its UNKNOWN report is"
                " not kept",
                request_id=part.request_id, part=part.index + 1)

    def _lost_reports(self, failure: Failure) -> None:
        error = failure.value.subFailure.getErrorMessage() if isinstance(
            failure.value, FirstError) else failure.getErrorMessage()
        # Their deadlines were rolled back with them: the next look finds them again.
        self._module_log.problem("cannot store the reports of missing delivery receipts: {error}",
                                 error=error)
        self._recount()
