"""
Inbound: deliver_sm / data_sm from an SMSC to a host's DeliverSignal / SignalReport.

Two halves meet in the store's inbox:

- A link's *handler* reads each deliver_sm. A delivery receipt becomes a
  ``report`` row for the request that sent that message id. A message is
  decoded by its data_coding, reassembled first if it is one part of several
  (parts wait in the store, so a restart between parts loses none), routed by
  the server's Dialogs and Recipient settings (`smppgw.relay.dialogs.route_incoming`)
  and becomes a ``deliver`` row. The SMSC hears ESME_ROK only once the row (or
  the part) is committed; a refusal by the rules, or a text too long for an
  AMP value (65,535 bytes of UTF-8), gets ESME_RX_R_APPN (permanent), a store
  failure or a full inbox ESME_RX_T_APPN (the SMSC keeps the message and tries
  again). The parts of incomplete messages count against ``max_inbox`` too, so
  an SMSC sending parts that never complete cannot fill the store. No message
  that goes nowhere gets ESME_ROK.
- The *dispatcher* hands the inbox, oldest row first, to the logged-in hosts
  round-robin, at most `MAX_IN_FLIGHT` rows at a time, each host at most its
  share of them (so that a host that stops answering cannot hold up the
  others), and each row to one host only. A row leaves the inbox when a host
  answers ``{}`` or ``REFUSED``; ``TRY_LATER``, any other error answer, and no
  answer within `HOST_ANSWER_TIMEOUT` are retried with exponential backoff,
  and after ``max_attempts`` of them the row is logged at ``problems`` and
  dropped. A connection that answers a DeliverSignal ``UNHANDLED`` (a
  monitoring client) leaves the round-robin; one that answers a SignalReport
  ``UNHANDLED`` stays for messages, and reports wait (parked) while no
  logged-in host takes them; a host that disconnects gives its rows back;
  none of these costs the row an attempt. With no host logged
  in, rows wait; the registry wakes the dispatcher when one logs in.

Senders reach the host as ``number@name._smpp`` (``number@smpp`` for the
empty-named server), the number written by `smppgw.sms.address.inbound_number`
from its TON and NPI, so that a reply goes back through the same SMSC with the
same type of number. An alphanumeric sender such as ``MyBank`` becomes
``MyBank@name._smpp`` in the same way: the host sees which server it came
through, and a reply to it fails at the router as a bad address, which is
right, since no SMS can reach it. The destination, when it decides the
recipient (``number@telnum``), is written the same way.
"""

from __future__ import annotations

import dataclasses
import heapq
import json
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred, maybeDeferred
from twisted.internet.error import ConnectionClosed
from twisted.internet.task import LoopingCall
from twisted.protocols.amp import MAX_VALUE_LENGTH, UnhandledCommand
from twisted.python.failure import Failure

from smppgw.host.commands import DeliverSignal, Refused, SignalReport
from smppgw.host.registry import HostRegistry
from smppgw.relay.dialogs import DialogTable, route_incoming
from smppgw.smpp.constants import ESME_ROK, ESME_RX_R_APPN, ESME_RX_T_APPN
from smppgw.smpp.log import SmppLog
from smppgw.sms.address import inbound_number, number_key, phone_address
from smppgw.sms.receipts import NO_RECEIPT, ends_wait, is_receipt, parse_receipt, receipt_keys
from smppgw.sms.textcodec import (
    UndecodableText,
    alphabet_hint,
    at_signs,
    concat_info,
    decode_text,
    split_udh,
)
from smppgw.store.interfaces import InboxRow, StoreError, UnknownRow

if TYPE_CHECKING:
    from smppgw.config import Config, ServerConfig
    from smppgw.smpp.codec import PDU
    from smppgw.stats import IStats
    from smppgw.store.sqlite import Store

#: Rows handed to hosts and not yet answered, at most.
MAX_IN_FLIGHT = 50
#: A host that has not answered a DeliverSignal / SignalReport after this many
#: seconds counts as having answered TRY_LATER.
HOST_ANSWER_TIMEOUT = 60.0
#: The first retry after a host error waits this long; each later one twice as long...
RETRY_DELAY = 1.0
#: ...but never longer than this.
MAX_RETRY_DELAY = 300.0
#: How long the dispatcher waits before reading the inbox again after the store failed.
STORE_RETRY_DELAY = 5.0
#: Inbox rows read from the store at a time.
_PAGE = 200
#: The expiry timer runs at most this far apart (and at a quarter of the timeout).
_MAX_EXPIRY_INTERVAL = 60.0
#: Parts whose receipt deadline passed that are reported in one reactor turn.
_RECEIPT_BATCH = 500

_UDHI = 0x40
_COMMANDS = {"deliver": DeliverSignal, "report": SignalReport}


@dataclasses.dataclass
class _Call:
    """A row handed to a host and not yet answered (mutable: its timer comes and goes)."""

    host: Any
    row: InboxRow
    timer: Any = None  # the DelayedCall of HOST_ANSWER_TIMEOUT, while running
    timed_out: bool = False
    deferred: Deferred[Any] | None = None


def _bytes(params: Mapping[str, int | bytes], name: str) -> bytes:
    value = params.get(name)
    return value if isinstance(value, bytes) else b""


def _int(params: Mapping[str, int | bytes], name: str) -> int:
    value = params.get(name)
    return value if isinstance(value, int) else 0


def _im_number(server: ServerConfig, params: Mapping[str, int | bytes], prefix: str) -> str:
    """The IM form of the deliver_sm's ``source_addr`` or ``destination_addr`` (``prefix``)."""
    addr = "destination_addr" if prefix == "dest_addr" else prefix
    return inbound_number(_bytes(params, addr).decode("latin-1"), _int(params, prefix + "_ton"),
                          _int(params, prefix + "_npi"), country_code=server.country_code,
                          national_prefix=server.national_prefix)


def fragment_key(server: str, source: str, destination: str, ref_bits: int, reference: int,
                 total: int) -> str:
    """The store key of a concatenated message's parts.

    A JSON list rather than a joined string: sender names may hold any separator.
    The reference's width keeps an 8-bit and a 16-bit series with the same number apart.
    """
    return json.dumps([server, source, destination, ref_bits, reference, total])


class Inbound:
    """Turns deliver_sm into inbox rows, and inbox rows into DeliverSignal / SignalReport."""

    def __init__(
        self,
        config: Config,
        store: Store,
        registry: HostRegistry,
        clock: Any,
        dialogs: DialogTable | None,
        *,
        max_inbox: int = 100_000,
        max_attempts: int = 10,
        stats: IStats | None = None,
    ) -> None:
        if max_inbox < 1 or max_attempts < 1:
            raise ValueError("max_inbox and max_attempts must be at least 1")
        self._config = config
        self._store = store
        self._registry = registry
        self._clock = clock
        self._dialogs = dialogs
        self._max_inbox = max_inbox
        self._max_attempts = max_attempts
        self._stats = stats
        self._logs: dict[str, SmppLog] = {}
        self._module_log = self._log("*")
        try:
            counts = store.counts()
            self._inbox_size, self._fragment_rows = counts["inbox"], counts["fragments"]
        except StoreError as error:
            self._module_log.problem("cannot count the inbox: {error}", error=error)
            self._inbox_size = self._fragment_rows = 0
        # Distinct parts stored per incomplete message, as last seen, to count new rows.
        self._parts_stored: dict[str, int] = {}
        self._full = False
        # Servers already told that their data_coding 0 looks like another alphabet.
        self._alphabet_hinted: set[str] = set()
        # The dispatcher's state.
        self._running = False
        self._observing = False
        self._pump_waiting = False
        self._pumping = False
        self._cursor = 0  # the highest inbox id read from the store
        self._ready: deque[InboxRow] = deque()
        # Delivery reports while every logged-in host refuses SignalReport:
        # they wait here (and in the store) for one that takes them.
        self._parked: deque[InboxRow] = deque()
        self._in_flight: dict[int, _Call] = {}
        self._host_load: dict[Any, int] = {}  # rows in flight per host
        # Rows waiting out a backoff: (due time, id, row), and their ids.
        self._retries: list[tuple[float, int, InboxRow]] = []
        self._held: set[int] = set()
        self._retry_call: Any = None
        self._retry_due: float | None = None
        self._expiry: LoopingCall | None = None
        self._receipt_check: Any = None  # the DelayedCall of the next look at receipt deadlines

    def _log(self, server: str) -> SmppLog:
        log = self._logs.get(server)
        if log is None:
            log = self._logs[server] = SmppLog(server, self._config.module.log_level)
        return log

    @property
    def inbox_size(self) -> int:
        """Messages and reports stored and not yet taken by a host."""
        return self._inbox_size

    # -- life ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the reassembly expiry timer and hand the stored inbox to the hosts."""
        if self._running:
            return
        self._running = True
        if not self._observing:
            # HostRegistry keeps its observers forever: register once, check _running.
            self._registry.on_host(self._wake)
            self._observing = True
        timeout = self._config.module.reassembly_timeout
        if timeout > 0:
            self._expiry = LoopingCall(self.expire_fragments)
            self._expiry.clock = self._clock
            self._expiry.start(min(_MAX_EXPIRY_INTERVAL, timeout / 4), now=True)
        self._check_receipts()
        for call in self._in_flight.values():
            # Calls made before a stop: their answers still count, and so does silence.
            self._arm(call)
        self._wake()

    def configure(self, config: Config, dialogs: DialogTable | None) -> None:
        """Apply a new configuration live: the servers' receipt and reassembly settings,
        the dialog table (one may exist only now)."""
        old, self._config, self._dialogs = self._config, config, dialogs
        if self._running and old.module.reassembly_timeout != config.module.reassembly_timeout:
            if self._expiry is not None and self._expiry.running:
                self._expiry.stop()
            self._expiry = None
            timeout = config.module.reassembly_timeout
            if timeout > 0:
                self._expiry = LoopingCall(self.expire_fragments)
                self._expiry.clock = self._clock
                self._expiry.start(min(_MAX_EXPIRY_INTERVAL, timeout / 4), now=False)

    def stop(self) -> None:
        """Cancel the timers; stored rows and parts stay for the next start."""
        self._running = False
        if self._expiry is not None and self._expiry.running:
            self._expiry.stop()
        self._expiry = None
        if self._receipt_check is not None and self._receipt_check.active():
            self._receipt_check.cancel()
        self._receipt_check = None
        self._cancel_retry_call()
        for call in self._in_flight.values():
            if call.timer is not None and call.timer.active():
                call.timer.cancel()
            call.timer = None
        # Forget what was read: the next start reads the store again from the top
        # (skipping rows still in flight).
        self._ready.clear()
        self._parked.clear()
        self._retries.clear()
        self._held.clear()
        self._cursor = 0

    # -- the SMSC side -------------------------------------------------------------

    def handler(self, server: ServerConfig) -> Callable[[PDU], Deferred[int] | int]:
        """The ``link.deliver`` hook of ``server``: answers each deliver_sm / data_sm with a status."""
        log = self._log(server.name)

        def deliver(pdu: PDU) -> Deferred[int] | int:
            try:
                return self._deliver(server, log, pdu)
            except Exception as error:
                # A bug must cost a retry by the SMSC, never a message acknowledged and lost.
                log.problem("cannot handle {command}: {error!r}; answered ESME_RX_T_APPN",
                            command=pdu.command, error=error)
                return ESME_RX_T_APPN

        return deliver

    def _deliver(self, server: ServerConfig, log: SmppLog, pdu: PDU) -> Deferred[int] | int:
        if self._inbox_size + self._fragment_rows >= self._max_inbox:
            if not self._full:
                log.problem("the inbox holds {count} rows waiting for a host and {parts} parts"
                            " of incomplete SMS (limit {limit}): the SMSC is asked to retry later",
                            count=self._inbox_size, parts=self._fragment_rows,
                            limit=self._max_inbox)
                self._full = True
            return ESME_RX_T_APPN
        self._full = False
        params = pdu.params
        if is_receipt(_int(params, "esm_class"), params):
            return self._receipt(server, log, params)
        return self._message(server, log, params)

    def _receipt(self, server: ServerConfig, log: SmppLog,
                 params: Mapping[str, int | bytes]) -> Deferred[int] | int:
        text = (_bytes(params, "short_message") or _bytes(params, "message_payload")).decode("latin-1")
        receipt = parse_receipt(text, params)
        if receipt is None:
            # Nothing could ever match it and a resent copy would say the same:
            # acknowledge it rather than have the SMSC retry it forever.
            log.problem("delivery receipt without a message id ignored: {text!r}", text=text)
            return ESME_ROK
        try:
            found = None
            for key in receipt_keys(receipt.message_id, server.receipt_id_format):
                found = self._store.lookup_message(server.name, key)
                if found is not None:
                    break
            if found is None:
                # An unmatched receipt (a message sent before the store was reset, or by
                # another ESME on this account) has no request to report to, and a retry
                # would not change that: acknowledge it.
                log.problem("delivery receipt for unknown message id {message_id} ({state})"
                            " ignored", message_id=receipt.message_id, state=receipt.state)
                return ESME_ROK
            request_id, index = found
            message_id = receipt.message_id
            payload: dict[str, Any] = {}
            row = self._store.outbound(request_id)
            if row is not None and 0 <= index < len(row.message_ids):
                # Report the id exactly as the host got it from SendSignal.
                message_id = row.message_ids[index] or message_id
                payload = {"part": index + 1, "parts": row.parts}
            payload.update(request_id=request_id, message_id=message_id, state=receipt.state,
                           error=receipt.error, server=server.name)
            self._store.add_inbox("report", payload, self._clock.seconds())
            if ends_wait(receipt, _int(params, "esm_class")):
                # In the same transaction as the report: neither is kept without the other.
                self._store.receipt_came(request_id, index)
        except StoreError as error:
            log.problem("cannot store the delivery receipt for {message_id}: {error}",
                        message_id=receipt.message_id, error=error)
            return ESME_RX_T_APPN
        self._inbox_size += 1
        return self._when_durable(log, f"the delivery receipt for {receipt.message_id}", lambda: log.major(
            "delivery receipt: {request_id} message {message_id} is {state}",
            request_id=request_id, message_id=message_id, state=receipt.state),
            (server.name, "receipt"))

    def _message(self, server: ServerConfig, log: SmppLog,
                 params: Mapping[str, int | bytes]) -> Deferred[int] | int:
        source = _bytes(params, "source_addr").decode("latin-1")
        destination = _bytes(params, "destination_addr").decode("latin-1")
        numbers = _im_number(server, params, "source_addr"), _im_number(server, params, "dest_addr")
        data_coding = _int(params, "data_coding")
        esm_class = _int(params, "esm_class")
        try:
            concat = concat_info(esm_class, _bytes(params, "short_message"), params)
            if concat is None:
                data = _bytes(params, "short_message") or _bytes(params, "message_payload")
                if esm_class & _UDHI:
                    data = split_udh(data)[1]
                self._check_alphabet(server, log, data_coding, data)
                text = decode_text(data_coding, data, server.default_alphabet)
            else:
                self._check_alphabet(server, log, data_coding, concat.body)
                # Refuse binary data at its first part, before a part is stored: an
                # empty text decodes under every text coding and under no other.
                decode_text(data_coding, b"")
        except UndecodableText as error:
            log.problem("not accepted: SMS from {source} to {destination}: {error}",
                        source=source, destination=destination, error=error)
            return ESME_RX_R_APPN
        if concat is None:
            return self._route(server, log, source, destination, numbers, text,
                               at_signs(data_coding, server.default_alphabet))

        key = fragment_key(server.name, source, destination, concat.ref_bits, concat.reference,
                           concat.total)
        part = {"body": concat.body.hex(), "data_coding": data_coding}
        try:
            previous = self._parts_stored.get(key, 0)
            stored = self._store.add_fragment(key, concat.sequence, concat.total, part,
                                              self._clock.seconds())
            # A resent part replaces its row.  Unseen keys (stored before a
            # restart) count this part as new: at worst back-pressure starts early.
            self._fragment_rows += stored - previous if previous else 1
            self._parts_stored[key] = stored
            if stored < concat.total:
                log.low("part {sequence} of {total} (reference {reference}) from {source} stored",
                        sequence=concat.sequence, total=concat.total, reference=concat.reference,
                        source=source)
                return self._when_durable(log, f"part {concat.sequence} of an SMS from {source}",
                                          received=(server.name, "part"))
            parts = [payload for _, payload in self._store.fragments(key)]
        except StoreError as error:
            log.problem("cannot store part {sequence} of an SMS from {source}: {error}",
                        sequence=concat.sequence, source=source, error=error)
            return ESME_RX_T_APPN
        try:
            text = _join(parts, server.default_alphabet)
        except UndecodableText as error:
            log.problem("not accepted: SMS of {total} parts from {source} to {destination}: {error}",
                        total=concat.total, source=source, destination=destination, error=error)
            self._drop_parts(log, key, stored)
            return ESME_RX_R_APPN
        # The parts stay until the whole message is stored (or refused for good):
        # after a temporary error the SMSC resends this part and finds the others.
        # The prefix is at the start of part 1, so its coding says what "@" may be.
        first = at_signs(parts[0]["data_coding"], server.default_alphabet)
        return self._route(server, log, source, destination, numbers, text, first,
                           parts_of=(key, stored))

    def _check_alphabet(self, server: ServerConfig, log: SmppLog, data_coding: int,
                        data: bytes) -> None:
        """Say once per link when data_coding-0 text on a GSM link looks like another alphabet."""
        if (data_coding != 0 or server.default_alphabet != "gsm"
                or server.name in self._alphabet_hinted):
            return
        hint = alphabet_hint(data)
        if hint is not None:
            self._alphabet_hinted.add(server.name)
            # The text itself stays out of the log.
            log.problem('an SMS in data_coding 0 looks like {hint}, not GSM 03.38 (0x40, 0x24'
                        ' or 0x5F and no octet below 0x20 but LF/CR): default_alphabet = "gsm"'
                        ' may be wrong for this SMSC; default_alphabet = "{hint}" would fit'
                        ' (said once per link)', hint=hint)

    def _drop_parts(self, log: SmppLog, key: str, rows: int) -> None:
        """Forget the ``rows`` stored parts of ``key``, whose whole message is stored or refused."""
        try:
            self._store.drop_fragments(key)
        except StoreError as error:
            # The message itself is settled: the parts go at the reassembly timeout.
            log.problem("cannot drop the parts of a reassembled SMS: {error}", error=error)
            return
        self._forget_parts(key, rows)

    def _route(self, server: ServerConfig, log: SmppLog, source: str, destination: str,
               numbers: tuple[str, str], text: str, at: str = "@",
               parts_of: tuple[str, int] | None = None) -> Deferred[int] | int:
        """Route and store one whole message; ``parts_of`` names the parts it was joined from.

        ``numbers`` are the sender's and the destination's IM forms; ``at``
        holds what the "@" of a dialog prefix may have been decoded as.
        """

        def refused() -> int:
            if parts_of is not None:
                self._drop_parts(log, *parts_of)
            return ESME_RX_R_APPN

        try:
            # A server with dialogs but no table (dialog_timeout 0) sends no prefixes
            # either (see queue.Outbound), so its replies are read as with Dialogs off.
            delivery = route_incoming(
                dialogs=server.dialogs and self._dialogs is not None,
                recipient=server.recipient,
                table=self._dialogs,
                # A national number made international meets the bindings made for it.
                phone=number_key(numbers[0]) or source,
                destination_number=numbers[1],
                text=text,
                at_signs=at,
            )
        except StoreError as error:  # the table saves the binding it touched
            log.problem("cannot store the dialog binding of {source}: {error}", source=source,
                        error=error)
            return ESME_RX_T_APPN
        if delivery.recipient is None:
            log.problem("not accepted: SMS from {source} to {destination}: {reason}",
                        source=source, destination=destination, reason=delivery.reason)
            return refused()
        sender = phone_address(numbers[0], server.name)
        recipient = delivery.recipient
        payload = {"method": "MESSAGE", "sender": sender, "recipient": recipient,
                   "body": delivery.body, "server": server.name}
        for name, value in payload.items():
            size = len(value.encode("utf-8", "surrogatepass"))
            if size > MAX_VALUE_LENGTH:
                # No DeliverSignal could carry it: acknowledged, it would be lost.
                log.problem("not accepted: SMS from {source} to {destination}: its {name} is too"
                            " long for AMP ({size} bytes of UTF-8, {limit} at most)",
                            source=source, destination=destination, name=name, size=size,
                            limit=MAX_VALUE_LENGTH)
                return refused()
        try:
            self._store.add_inbox("deliver", payload, self._clock.seconds())
        except StoreError as error:
            log.problem("cannot store the SMS from {sender}: {error}", sender=sender, error=error)
            return ESME_RX_T_APPN
        self._inbox_size += 1
        if parts_of is not None:
            # In the same transaction as the row: a failed commit keeps both.
            self._drop_parts(log, *parts_of)
        return self._when_durable(log, f"the SMS from {sender}", lambda: log.major(
            "SMS from {sender} for {recipient} accepted: {reason}", sender=sender,
            recipient=recipient, reason=delivery.reason), (server.name, "message"))

    def _when_durable(self, log: SmppLog, what: str,
                      on_stored: Callable[[], None] | None = None,
                      received: tuple[str, str] | None = None) -> Deferred[int]:
        """ESME_ROK once everything written so far is committed; ESME_RX_T_APPN if the commit fails.

        ``received`` is the (server, kind) the stats count once it is stored.
        """

        def stored(_: object) -> int:
            if received is not None and self._stats is not None:
                self._stats.received(*received)
            if on_stored is not None:
                on_stored()
            self._wake()
            return ESME_ROK

        def failed(failure: Failure) -> int:
            log.problem("cannot store {what}: {error}; the SMSC will send it again", what=what,
                        error=failure.getErrorMessage())
            self._recount()
            return ESME_RX_T_APPN

        return self._store.durable().addCallbacks(stored, failed)

    def _recount(self) -> None:
        """Read the inbox size again after a rolled-back commit took rows with it."""
        try:
            counts = self._store.counts()
        except StoreError:
            return  # keep the counts we have: at worst back-pressure starts early
        self._inbox_size, self._fragment_rows = counts["inbox"], counts["fragments"]
        self._parts_stored.clear()

    def _forget_parts(self, key: str, rows: int) -> None:
        """``rows`` parts of ``key`` were dropped from the store."""
        self._parts_stored.pop(key, None)
        self._fragment_rows = max(0, self._fragment_rows - rows)

    # -- reassembly expiry ---------------------------------------------------------

    def expire_fragments(self) -> int:
        """Drop the parts of every message still incomplete after the reassembly timeout.

        Returns how many messages were dropped; each gets a line at ``problems``.
        """
        timeout = self._config.module.reassembly_timeout
        try:
            keys = self._store.stale_fragments(self._clock.seconds() - timeout)
            for key in keys:
                got = len(self._store.fragments(key))
                self._store.drop_fragments(key)
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
            if self._expire_receipts(now) == _RECEIPT_BATCH:
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
        for part in due:
            if self._inbox_size + self._fragment_rows >= self._max_inbox:
                break
            done += 1
            # The report and the end of the wait go in one transaction.
            self._store.receipt_came(part.request_id, part.index)
            server = servers.get(part.server)
            if server is not None and not (server.registered_delivery and server.receipt_timeout):
                continue  # that server now waits for ever (or asks for no receipts)
            self._store.add_inbox("report", {
                "part": part.index + 1, "parts": part.parts, "request_id": part.request_id,
                "message_id": part.message_id, "state": "UNKNOWN", "error": NO_RECEIPT,
                "server": part.server}, now)
            self._inbox_size += 1
            self._log(part.server).major(
                "no delivery receipt for {request_id} part {part}/{parts} ({message_id}):"
                " reported UNKNOWN", request_id=part.request_id, part=part.index + 1,
                parts=part.parts, message_id=part.message_id)
        if done:
            self._store.when_durable(self._wake, self._lost_reports)
        return done

    def _lost_reports(self, error: StoreError) -> None:
        # Their deadlines were rolled back with them: the next look finds them again.
        self._module_log.problem("cannot store the reports of missing delivery receipts: {error}",
                                 error=error)
        self._recount()

    # -- the host side -------------------------------------------------------------

    def _wake(self) -> None:
        """Hand out what can go now, once everything written so far is committed.

        Reading only committed rows means a row whose commit then fails (and so
        was answered ESME_RX_T_APPN) never reaches a host.
        """
        if not self._running or self._pump_waiting or self._pumping:
            # While pumping, the running loop re-checks hosts, rows and room itself.
            return
        self._pump_waiting = True
        self._store.durable().addBoth(self._pump)

    def _pump(self, _: object = None) -> None:
        self._pump_waiting = False
        if not self._running:
            return
        self._pumping = True
        try:
            if self._parked and self._registry.any_takes_reports():
                self._ready.extendleft(reversed(self._parked))
                self._parked.clear()
            while self._has_room():
                row = self._next_row()
                if row is None:
                    break
                reports = row.kind == "report"
                host = self._pick_host(reports)
                if host is not None:
                    self._send(host, row)
                elif reports and not self._registry.any_takes_reports():
                    self._parked.append(row)
                else:
                    self._ready.appendleft(row)  # its hosts are busy: wait for room
                    break
        finally:
            self._pumping = False
        self._schedule_retry()

    def _host_share(self) -> int:
        """How many rows one host may hold unanswered: a silent host must leave room for the others."""
        return max(1, MAX_IN_FLIGHT // max(1, len(self._registry.hosts)))

    def _has_room(self) -> bool:
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            return False
        share = self._host_share()
        return any(self._host_load.get(host, 0) < share for host in self._registry.hosts)

    def _pick_host(self, reports: bool) -> Any:
        """The next host round-robin that takes the row's kind and holds less than its share; or None."""
        share = self._host_share()
        for _ in range(len(self._registry.hosts)):
            host = self._registry.pick()
            if (host is not None and self._host_load.get(host, 0) < share
                    and self._registry.takes(host, reports)):
                return host
        return None

    def _next_row(self) -> InboxRow | None:
        if self._retries and self._retries[0][0] <= self._clock.seconds():
            _, row_id, row = heapq.heappop(self._retries)
            self._held.discard(row_id)
            return row
        if not self._ready:
            self._refill()
        return self._ready.popleft() if self._ready else None

    def _refill(self) -> None:
        try:
            rows = self._store.inbox(limit=_PAGE, after_id=self._cursor)
        except StoreError as error:
            self._module_log.problem("cannot read the inbox: {error}", error=error)
            self._schedule_retry(self._clock.seconds() + STORE_RETRY_DELAY)
            return
        for row in rows:
            self._cursor = row.id
            if row.id not in self._in_flight and row.id not in self._held:
                self._ready.append(row)

    def _send(self, host: Any, row: InboxRow) -> None:
        command = _COMMANDS.get(row.kind)
        if command is None:
            self._log(str(row.payload.get("server", "*"))).problem(
                "inbox row {id} of unknown kind {kind!r} dropped", id=row.id, kind=row.kind)
            self._forget(row)
            return
        call = _Call(host, row)
        self._in_flight[row.id] = call
        self._host_load[host] = self._host_load.get(host, 0) + 1
        self._arm(call)
        d = call.deferred = maybeDeferred(host.callRemote, command, **row.payload)
        d.addCallbacks(self._answered, self._failed, callbackArgs=(call,), errbackArgs=(call,))
        d.addErrback(lambda failure: self._module_log.problem(
            "inbox dispatch failed: {error}", error=failure.getErrorMessage()))

    def _arm(self, call: _Call) -> None:
        if call.timer is None:
            call.timer = self._clock.callLater(HOST_ANSWER_TIMEOUT, self._time_out, call)

    def _time_out(self, call: _Call) -> None:
        call.timer = None
        call.timed_out = True
        assert call.deferred is not None
        # Errbacks with CancelledError; a late answer from the host is then ignored.
        call.deferred.cancel()

    def _settle(self, call: _Call) -> None:
        """``call`` has its outcome: it no longer holds a place in flight."""
        if call.timer is not None and call.timer.active():
            call.timer.cancel()
        call.timer = None
        if self._in_flight.get(call.row.id) is call:
            del self._in_flight[call.row.id]
        load = self._host_load.get(call.host, 0) - 1
        if load > 0:
            self._host_load[call.host] = load
        else:
            self._host_load.pop(call.host, None)

    def _answered(self, _: object, call: _Call) -> None:
        self._settle(call)
        row = call.row
        self._log(str(row.payload.get("server", "*"))).major(
            "{what} handed to a host", what=_describe(row))
        self._forget(row)
        self._wake()

    def _failed(self, failure: Failure, call: _Call) -> None:
        self._settle(call)
        row = call.row
        log = self._log(str(row.payload.get("server", "*")))
        if failure.check(Refused):
            log.problem("{what} refused by the host: dropped", what=_describe(row))
            self._forget(row)
            self._wake()
            return
        if failure.check(UnhandledCommand, ConnectionClosed) and not call.timed_out:
            # Not the host's answer about this row: it goes to another host,
            # and the attempts are kept for hosts that do answer.
            if failure.check(UnhandledCommand) and row.kind == "report":
                self._module_log.problem(
                    "a host does not handle SignalReport: it gets messages only, and delivery"
                    " reports wait for a host that takes them (registered_delivery = false"
                    " stops asking the SMSC for them)")
                self._registry.refuses_reports(call.host)
            elif failure.check(UnhandledCommand):
                self._module_log.low("a connection without DeliverSignal"
                                     " (a monitoring client?) is no delivery host")
                self._registry.exclude(call.host)
            else:
                self._registry.remove(call.host)
            if self._running:
                self._ready.appendleft(row)
            self._wake()
            return
        if call.timed_out and failure.check(CancelledError):
            error = f"no answer within {HOST_ANSWER_TIMEOUT:g}s"
        else:
            error = failure.getErrorMessage()
        try:
            attempts = self._store.bump_inbox(row.id)
        except UnknownRow:
            return  # gone already (a rolled-back commit): nothing left to deliver
        except StoreError:
            attempts = row.attempts + 1
        if attempts >= self._max_attempts:
            log.problem("{what} not taken by a host after {attempts} attempts ({error}): dropped",
                        what=_describe(row), attempts=attempts, error=error)
            self._forget(row)
            self._wake()
            return
        delay = min(MAX_RETRY_DELAY, RETRY_DELAY * 2 ** (attempts - 1))
        log.problem("{what} not taken by a host ({error}): attempt {attempts} of {max},"
                    " next in {delay:g}s", what=_describe(row), error=error,
                    attempts=attempts, max=self._max_attempts, delay=delay)
        if self._running:
            retry = dataclasses.replace(row, attempts=attempts)
            heapq.heappush(self._retries, (self._clock.seconds() + delay, row.id, retry))
            self._held.add(row.id)
        self._wake()

    def _forget(self, row: InboxRow) -> None:
        try:
            self._store.remove_inbox(row.id)
        except StoreError as error:
            # It stays in the store and goes to a host again after a restart.
            self._module_log.problem("cannot remove inbox row {id}: {error}", id=row.id,
                                     error=error)
            return
        self._inbox_size = max(0, self._inbox_size - 1)

    def _schedule_retry(self, due: float | None = None) -> None:
        """Wake the dispatcher at ``due``, or when the first row in backoff is due."""
        if due is None:
            if not self._retries or not self._has_room():
                return  # nothing waits, or a host logging in or answering will wake us
            due = self._retries[0][0]
        if self._retry_call is not None and self._retry_due is not None and self._retry_due <= due:
            return
        self._cancel_retry_call()
        self._retry_due = due
        self._retry_call = self._clock.callLater(max(0.0, due - self._clock.seconds()),
                                                 self._retry_now)

    def _retry_now(self) -> None:
        self._retry_call = self._retry_due = None
        self._wake()

    def _cancel_retry_call(self) -> None:
        if self._retry_call is not None and self._retry_call.active():
            self._retry_call.cancel()
        self._retry_call = self._retry_due = None


def _join(parts: list[dict[str, Any]], default_alphabet: str) -> str:
    """The text of a whole message from its stored parts, in sequence order.

    The bytes are joined before decoding: a sender may cut a UCS2 surrogate pair
    or a GSM escape between two parts. Parts in different codings (which no
    sender should send) are decoded one by one.
    """
    codings = {part["data_coding"] for part in parts}
    if len(codings) == 1:
        (coding,) = codings
        return decode_text(coding, b"".join(bytes.fromhex(part["body"]) for part in parts),
                           default_alphabet)
    return "".join(decode_text(part["data_coding"], bytes.fromhex(part["body"]), default_alphabet)
                   for part in parts)


def _describe(row: InboxRow) -> str:
    payload = row.payload
    if row.kind == "report":
        return (f"delivery report for {payload.get('request_id')}"
                f" ({payload.get('message_id')} {payload.get('state')})")
    return f"SMS from {payload.get('sender')} for {payload.get('recipient')}"
