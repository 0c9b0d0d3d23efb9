"""
The SMSC's half of inbound traffic: each deliver_sm / data_sm to an inbox row.

A delivery receipt becomes a ``report`` row for the request that sent that
message id. A message is decoded by its data_coding, reassembled first if it is
one part of several (parts wait in the store, so a restart between parts loses
none), routed by the server's Dialogs and Recipient settings and becomes a
``deliver`` row. The SMSC hears ESME_ROK only once the row (or the part) is
committed (see `smppgw.relay.inbound` for the whole contract). Parts that never
complete, and receipts that never come, are `smppgw.relay.expiry`'s.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.protocols.amp import MAX_VALUE_LENGTH
from twisted.python.failure import Failure

from smppgw.host.registry import HostRegistry
from smppgw.relay.dialogs import DialogTable, route_incoming
from smppgw.smpp.constants import ESME_ROK, ESME_RX_R_APPN, ESME_RX_T_APPN
from smppgw.smpp.log import SmppLog
from smppgw.sms.address import inbound_number, number_key, phone_address
from smppgw.sms.receipts import ends_wait, is_receipt, parse_receipt, receipt_keys
from smppgw.sms.textcodec import (
    Concat,
    UndecodableText,
    alphabet_hint,
    at_signs,
    concat_info,
    decode_text,
    split_udh,
)
from smppgw.store.interfaces import StoreError

if TYPE_CHECKING:
    from smppgw.config import Config, ServerConfig
    from smppgw.smpp.codec import PDU
    from smppgw.stats import IStats
    from smppgw.store.sqlite import Store

_UDHI = 0x40


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


class Intake:
    """What `Inbound` does for the SMSC side (see the module docstring)."""

    # What the service gives it (set by Inbound.__init__).
    _config: Config
    _store: Store
    _registry: HostRegistry
    _clock: Any
    _dialogs: DialogTable | None
    _stats: IStats | None
    _max_inbox: int
    _max_attempts: int
    _module_log: SmppLog
    _inbox_size: int
    _fragment_rows: int
    _parts_stored: dict[str, int]
    _full: bool
    _alphabet_hinted: set[str]
    _running: bool
    _expiry: LoopingCall | None
    _receipt_check: Any

    _log: Callable[[str], SmppLog]

    _wake: Callable[[], None]

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
        except StoreError as error:
            log.problem("cannot store the delivery receipt for {message_id}: {error}",
                        message_id=receipt.message_id, error=error)
            return ESME_RX_T_APPN
        # The end of the wait goes with the report: neither is kept without the other.
        ends = (request_id, index) if ends_wait(receipt, _int(params, "esm_class")) else None
        written = self._store.add_inbox("report", payload, self._clock.seconds(), receipt=ends)
        self._inbox_size += 1
        return self._when_durable(written, log, f"the delivery receipt for {receipt.message_id}", lambda: log.major(
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
        written = self._store.add_fragment(key, concat.sequence, concat.total, part,
                                           self._clock.seconds())
        if key not in self._parts_stored:
            # Counted at once against the inbox limit (a burst of parts of new messages
            # must meet it before any is durable); `_part_kept` counts the rest.
            self._fragment_rows += 1
            self._parts_stored[key] = 1
        return written.addCallbacks(
            self._part_kept, self._part_not_kept,
            callbackArgs=(server, log, key, concat, source, destination, numbers),
            errbackArgs=(log, concat, source))

    def _part_not_kept(self, failure: Failure, log: SmppLog, concat: Concat, source: str) -> int:
        log.problem("cannot store part {sequence} of an SMS from {source}: {error}",
                    sequence=concat.sequence, source=source, error=failure.getErrorMessage())
        self._recount()
        return ESME_RX_T_APPN

    def _part_kept(self, stored: int, server: ServerConfig, log: SmppLog, key: str,
                   concat: Concat, source: str, destination: str,
                   numbers: tuple[str, str]) -> Deferred[int] | int:
        """Part `concat` of a message is durable, `stored` parts of it with it: acknowledge
        it, or join the message once every part is there."""
        previous = self._parts_stored.get(key, 0)
        # A resent part replaces its row.  Keys unseen before this part (stored
        # before a restart) count it as new: at worst back-pressure starts early.
        if previous:
            self._fragment_rows += max(0, stored - previous)
            self._parts_stored[key] = max(stored, previous)
        else:
            self._fragment_rows += 1
            self._parts_stored[key] = stored
        if stored < concat.total:
            log.low("part {sequence} of {total} (reference {reference}) from {source} stored",
                    sequence=concat.sequence, total=concat.total, reference=concat.reference,
                    source=source)
            if self._stats is not None:
                self._stats.received(server.name, "part")
            return ESME_ROK
        try:
            parts = [payload for _, payload in self._store.fragments(key)]
        except StoreError as error:
            log.problem("cannot read the parts of an SMS from {source}: {error}", source=source,
                        error=error)
            return ESME_RX_T_APPN
        if len(parts) < concat.total:
            # A copy of this part, come with it, has joined the message already.
            return ESME_ROK
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
        """Forget the ``rows`` stored parts of ``key``, whose whole message is refused."""
        self._forget_parts(key, rows)
        self._store.drop_fragments(key).addErrback(
            # The message itself is settled: the parts go at the reassembly timeout.
            lambda failure: log.problem("cannot drop the parts of a refused SMS: {error}",
                                        error=failure.getErrorMessage()))

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
        # The parts go with the row: a failed write keeps both.
        written = self._store.add_inbox("deliver", payload, self._clock.seconds(),
                                        drop_fragments=parts_of[0] if parts_of else None)
        self._inbox_size += 1
        return self._when_durable(written, log, f"the SMS from {sender}", lambda: log.major(
            "SMS from {sender} for {recipient} accepted: {reason}", sender=sender,
            recipient=recipient, reason=delivery.reason), (server.name, "message"), parts_of)

    def _when_durable(self, written: Deferred[Any], log: SmppLog, what: str,
                      on_stored: Callable[[], None] | None = None,
                      received: tuple[str, str] | None = None,
                      parts_of: tuple[str, int] | None = None) -> Deferred[int]:
        """ESME_ROK once `written` is durable; ESME_RX_T_APPN if it fails.

        ``received`` is the (server, kind) the stats count once it is stored;
        ``parts_of`` the (key, rows) of the parts that went with it.
        """

        def stored(_: object) -> int:
            if parts_of is not None:
                self._forget_parts(*parts_of)
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

        return written.addCallbacks(stored, failed)

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
