"""What the SMSC simulator sends the ESME: a phone's messages, and the receipts of accepted submits.

`Deliveries` is the part of `SMSCSimulator` that plays the phones: it sends
deliver_sm (and data_sm), delivery receipts (now, or `receipt_delay` after
an accepted submit), and logs them for the demo with `log_messages`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any, cast

from twisted.internet import defer
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure

from smppgw.smpp.codec import PDU
from smppgw.smpp.constants import STATUS_NAMES
from smppgw.sms.textcodec import (
    Concat,
    TooLong,
    UndecodableText,
    concat_info,
    decode_text,
    encode_message,
    split_udh,
)
from smppgw.testing.smsc.faults import NotBound, SentReceipt, UnknownMessageId
from smppgw.testing.smsc.session import _BOUND, _CAN_RECEIVE, SMSCProtocol, _text

# One namespace for the simulator's log lines, whichever of its modules writes them.
log = Logger(namespace="smppgw.testing.simulator")

#: The receipt ``stat:`` words and the message_state each one reports.
RECEIPT_STATES: dict[str, int] = {
    "ENROUTE": 1,
    "DELIVRD": 2,
    "EXPIRED": 3,
    "DELETED": 4,
    "UNDELIV": 5,
    "ACCEPTD": 6,
    "UNKNOWN": 7,
    "REJECTD": 8,
}


class Deliveries:
    """The simulator's sending side: deliver_sm to a bound receiver, receipts, the demo's log of them."""

    # What the sending side reads of the simulator (set in SMSCSimulator.__init__).
    clock: IReactorTime
    connections: list[SMSCProtocol]
    message_ids: dict[str, PDU]
    receipts_sent: dict[str, SentReceipt]
    alphabets: dict[str, str]
    log_messages: bool
    receipt_delay: float | None
    _accepted_at: dict[str, float]
    _receipt_calls: set[IDelayedCall]

    # -- sending to the ESME -------------------------------------------------------

    def deliver(
        self,
        source_addr: str,
        destination_addr: str,
        short_message: bytes = b"",
        *,
        data_coding: int = 0,
        esm_class: int = 0,
        source_ton: int = 1,
        source_npi: int = 1,
        dest_ton: int = 1,
        dest_npi: int = 1,
        tlvs: Mapping[str, int | bytes] | None = None,
        system_id: str | None = None,
        command: str = "deliver_sm",
    ) -> Deferred[PDU]:
        """
        Send a deliver_sm (or data_sm) to a bound receiver or transceiver.

        It goes to the session bound as `system_id`, or the first one bound.
        The Deferred fires with the ESME's response whatever its status (a
        generic_nack included), and fails with `NotBound` when no session can
        take it, `EncodeError` when the values do not fit the PDU, or the
        connection's loss reason when it closes first.  With data_sm the
        message goes in message_payload.
        """
        if command not in ("deliver_sm", "data_sm"):
            return defer.fail(ValueError(f"deliver sends deliver_sm or data_sm, not {command!r}"))
        params: dict[str, int | bytes] = {
            "source_addr_ton": source_ton,
            "source_addr_npi": source_npi,
            "source_addr": source_addr.encode("latin-1"),
            "dest_addr_ton": dest_ton,
            "dest_addr_npi": dest_npi,
            "destination_addr": destination_addr.encode("latin-1"),
            "esm_class": esm_class,
            "data_coding": data_coding,
        }
        if command == "deliver_sm":
            params["short_message"] = short_message
        elif short_message:
            params["message_payload"] = short_message
        params.update(tlvs or {})
        connection = self._receiver(system_id)
        if connection is None:
            wanted = "any session" if system_id is None else f"system_id {system_id!r}"
            return defer.fail(NotBound(f"no receiver or transceiver bound as {wanted}"))
        return connection.send_request(PDU(command, 0, 0, params))

    def deliver_receipt(
        self,
        message_id: str,
        stat: str = "DELIVRD",
        err: str = "000",
        *,
        system_id: str | None = None,
        with_tlvs: bool = True,
    ) -> Deferred[PDU]:
        """
        Send the delivery receipt of an accepted submit, as `deliver` does.

        The text follows SMPP 3.4 appendix B: ``id:<id> sub:001 dlvrd:001
        submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DELIVRD err:000
        text:<first 20 octets>``.  It fails with `UnknownMessageId` for an id
        never accepted and ValueError for a `stat` not in `RECEIPT_STATES`.
        Once answered, it is in `receipts_sent`.
        """
        submit = self.message_ids.get(message_id)
        if submit is None:
            return defer.fail(UnknownMessageId(message_id))
        if stat not in RECEIPT_STATES:
            return defer.fail(ValueError(f"unknown receipt stat {stat!r}"))
        body = submit.get("short_message") or submit.get("message_payload") or b""
        assert isinstance(body, bytes)
        delivered = "001" if stat == "DELIVRD" else "000"
        text = (
            f"id:{message_id} sub:001 dlvrd:{delivered}"
            f" submit date:{_receipt_date(self._accepted_at[message_id])}"
            f" done date:{_receipt_date(self.clock.seconds())}"
            f" stat:{stat} err:{err} text:"
        ).encode("ascii") + body[:20]
        tlvs: dict[str, int | bytes] = {}
        if with_tlvs:
            tlvs = {
                "receipted_message_id": message_id.encode("ascii"),
                "message_state": RECEIPT_STATES[stat],
            }
        sent = self.deliver(
            _text(submit.get("destination_addr")),
            _text(submit.get("source_addr")),
            text,
            esm_class=0x04,
            source_ton=_int(submit.get("dest_addr_ton")),
            source_npi=_int(submit.get("dest_addr_npi")),
            dest_ton=_int(submit.get("source_addr_ton")),
            dest_npi=_int(submit.get("source_addr_npi")),
            tlvs=tlvs,
            system_id=system_id,
        )

        def answered(response: PDU) -> PDU:
            self.receipts_sent[message_id] = SentReceipt(stat, response.command_status)
            return response

        return sent.addCallback(answered)

    def deliver_text(
        self,
        source_addr: str,
        destination_addr: str,
        text: str,
        *,
        source_ton: int = 1,
        source_npi: int = 1,
        dest_ton: int = 1,
        dest_npi: int = 1,
        system_id: str | None = None,
        reference: int = 0,
    ) -> Deferred[list[PDU]]:
        """
        Send `text` as a phone's SMS: one deliver_sm, or several with a UDH when it is long.

        It goes as `deliver` sends it, in data_coding 0 written in the
        alphabet of the receiving session's system_id (see `alphabets`) when
        that alphabet has every character, else in UCS2; a long text is cut
        into parts with an 8-bit concatenation header of `reference`.  The
        Deferred fires with the ESME's responses, one per part, whatever their
        status, and fails as `deliver` does (`TooLong` past 255 parts).
        """
        connection = self._receiver(system_id)
        if connection is None:
            wanted = "any session" if system_id is None else f"system_id {system_id!r}"
            return defer.fail(NotBound(f"no receiver or transceiver bound as {wanted}"))
        try:
            message = encode_message(
                text, "gsm", "udh", max_parts=255, reference=reference,
                default_alphabet=self.alphabets.get(connection.system_id or "", "gsm"),
            )
        except (TooLong, ValueError):
            return defer.fail()
        sent = [
            self.deliver(
                source_addr, destination_addr, part.short_message,
                data_coding=message.data_coding, esm_class=part.esm_class,
                source_ton=source_ton, source_npi=source_npi,
                dest_ton=dest_ton, dest_npi=dest_npi,
                system_id=connection.system_id,
            )
            for part in message.parts
        ]
        answers: Deferred[list[PDU]] = defer.gatherResults(sent, consumeErrors=True)

        def first_error(failure: Failure) -> Failure:
            failure.trap(defer.FirstError)
            return cast(defer.FirstError, failure.value).subFailure

        answers.addErrback(first_error)

        def logged(responses: list[PDU]) -> list[PDU]:
            if self.log_messages:
                statuses = sorted({STATUS_NAMES.get(r.command_status, f"0x{r.command_status:08X}")
                                   for r in responses})
                log.info(
                    "SMSC sent for {destination} from {source}: {text}"
                    " (ESME {system_id} answered {statuses})",
                    system_id=connection.system_id,
                    destination=_shown_address(destination_addr, dest_ton),
                    source=_shown_address(source_addr, source_ton),
                    text=json.dumps(text, ensure_ascii=False),
                    statuses=", ".join(statuses),
                )
            return responses

        return answers.addCallback(logged)

    def cancel_receipts(self) -> None:
        """Forget the delivery receipts that `receipt_delay` has not sent yet."""
        for call in self._receipt_calls:
            if call.active():
                call.cancel()
        self._receipt_calls.clear()
    def _accepted_for_demo(self, system_id: str | None, message_id: str, pdu: PDU) -> None:
        """Log an accepted submit, and schedule its receipt, as `log_messages` and
        `receipt_delay` say."""
        if self.log_messages:
            text, part = _shown_text(pdu, self.alphabets.get(system_id or "", "gsm"))
            log.info(
                "SMSC got for {destination} from {source}{part}: {text}",
                destination=_shown_address(_text(pdu.get("destination_addr")),
                                           _int(pdu.get("dest_addr_ton"))),
                source=_shown_address(_text(pdu.get("source_addr")),
                                      _int(pdu.get("source_addr_ton"))),
                part=part,
                text=text,
            )
        # Bit 0 alone asks for a receipt of every final outcome (2 asks only
        # for failures, which the demo has none of).
        if self.receipt_delay is not None and _int(pdu.get("registered_delivery")) & 0x03 == 1:
            call = self.clock.callLater(self.receipt_delay, self._send_receipt, message_id,
                                        system_id)
            self._receipt_calls.add(call)

    def _send_receipt(self, message_id: str, system_id: str | None) -> None:
        self._receipt_calls = {call for call in self._receipt_calls if call.active()}

        def sent(response: PDU) -> None:
            if self.log_messages:
                log.info("SMSC sent the receipt of {message_id} (DELIVRD): {status}",
                         message_id=message_id,
                         status=STATUS_NAMES.get(response.command_status,
                                                  f"0x{response.command_status:08X}"))

        def not_sent(failure: Failure) -> None:
            log.info("SMSC cannot send the receipt of {message_id}: {error}",
                     message_id=message_id, error=failure.getErrorMessage())

        self.deliver_receipt(message_id, system_id=system_id).addCallbacks(sent, not_sent)

    def _receiver(self, system_id: str | None) -> SMSCProtocol | None:
        for connection in self.connections:
            if (
                connection.state == _BOUND
                and connection.bind_type in _CAN_RECEIVE
                and system_id in (None, connection.system_id)
            ):
                return connection
        return None


def _receipt_date(seconds: float) -> str:
    return time.strftime("%y%m%d%H%M", time.gmtime(seconds))


def _int(value: Any) -> int:
    return value if isinstance(value, int) else 0


def _shown_address(addr: str, ton: int) -> str:
    """An address as the demo's log shows it: an international number with its "+"."""
    return "+" + addr if ton == 1 and addr.isdigit() else addr


def submit_text(pdu: PDU, alphabet: str) -> tuple[str, Concat | None]:
    """The text of a submit (of the part it is, with its concatenation facts, if one),
    reading data_coding 0 in `alphabet`.

    @raise UndecodableText: its octets are no text of its data_coding.
    """
    data = pdu.get("short_message") or pdu.get("message_payload") or b""
    assert isinstance(data, bytes)
    concat = concat_info(_int(pdu.get("esm_class")), data, pdu.params)
    body = concat.body if concat is not None else data
    if concat is None and _int(pdu.get("esm_class")) & 0x40:
        body = split_udh(data)[1]
    return decode_text(_int(pdu.get("data_coding")), body, alphabet), concat


def _shown_text(pdu: PDU, alphabet: str) -> tuple[str, str]:
    """The text of a submit as the demo's log shows it (quoted), and which part it is."""
    try:
        text, concat = submit_text(pdu, alphabet)
    except UndecodableText as error:
        data = pdu.get("short_message") or pdu.get("message_payload") or b""
        return f"<{len(data) if isinstance(data, bytes) else 0} octets: {error}>", ""
    part = "" if concat is None else f" (part {concat.sequence} of {concat.total})"
    return json.dumps(text, ensure_ascii=False), part


# -- running it alone -----------------------------------------------------------

