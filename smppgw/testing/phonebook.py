"""
What the demo's phones got: each number's SMS as the simulator accepted them, decoded,
and the delivery receipts sent for them.

`phones_seen` reads the simulator's own records (`SMSCSimulator.message_ids`,
``accepted_by`` and ``receipts_sent``) each time it is asked, so what it shows is
what the simulator holds, and nothing is kept twice.  A message's text is shown as
the phone would show it: its dialog prefix (``@a=alice@example.com ...``) is part of
it.  The web admin's Phone page (`smppgw.admin.phone`) shows them.
"""

from __future__ import annotations

from dataclasses import dataclass

from smppgw.config import Config
from smppgw.smpp.codec import PDU
from smppgw.smpp.constants import STATUS_NAMES
from smppgw.sms.textcodec import UndecodableText
from smppgw.testing.smsc.deliveries import submit_text
from smppgw.testing.smsc.server import SMSCSimulator

__all__ = ["Phone", "PhoneMessage", "phones_seen", "shown_address"]

#: How many of a phone's messages `phones_seen` gives by default, the newest first.
LAST_MESSAGES = 5
#: How many phones it gives at most, those that got an SMS last first.
MOST_PHONES = 50


@dataclass(frozen=True)
class PhoneMessage:
    """One SMS (or one part of a long one) a phone got."""

    message_id: str
    #: Who sent it, as an IM user writes an address (``+15550100``, ``alice@example.com``).
    sender: str
    #: The name of the server it came through, or its system_id when no server has it now.
    server: str
    #: Its text, decoded; or why it cannot be (``<12 octets: ...>``).
    text: str
    #: (part, of parts) when it is a part of a long message.
    part: tuple[int, int] | None
    #: What became of its delivery receipt: "not asked", "asked, not sent yet", or
    #: what was sent and how the gateway answered it.
    receipt: str


@dataclass(frozen=True)
class Phone:
    """A number that got at least one SMS."""

    #: As an IM user writes it: ``+15551234`` for an international number.
    number: str
    #: Its last messages, the newest first.
    messages: tuple[PhoneMessage, ...]
    #: How many it got in all.
    received: int
    #: How many delivery receipts were sent for them.
    receipts: int

    @property
    def last_sender(self) -> str:
        """Who sent it the last SMS: whom its reply goes to."""
        return self.messages[0].sender


def shown_address(addr: str, ton: int) -> str:
    """An address as an IM user writes it: an international number with its "+"."""
    return "+" + addr if ton == 1 and addr.isdigit() else addr


def phones_seen(simulator: SMSCSimulator, config: Config, last: int = LAST_MESSAGES,
                most: int = MOST_PHONES) -> list[Phone]:
    """The phones `simulator` accepted an SMS for, the one that got one last first."""
    names = {}
    for server in reversed(config.servers):
        if server.enabled:
            # Reversed: where servers share a system_id, the first one's name shows.
            names[server.system_id] = server.name
    by_number: dict[str, list[tuple[str, PDU]]] = {}
    for message_id, pdu in simulator.message_ids.items():
        number = shown_address(_text(pdu.get("destination_addr")).lstrip("+"),
                               _int(pdu.get("dest_addr_ton")))
        # Moved to the end: the dict's order is then that of the last SMS.
        got = by_number.pop(number, [])
        got.append((message_id, pdu))
        by_number[number] = got
    phones = []
    for number, got in reversed(list(by_number.items())[-most:]):
        messages = []
        for message_id, pdu in reversed(got[-last:]):
            system_id = simulator.accepted_by.get(message_id)
            messages.append(_message(simulator, message_id, pdu, system_id,
                                     names.get(system_id or "", system_id or "")))
        receipts = sum(1 for message_id, _ in got if message_id in simulator.receipts_sent)
        phones.append(Phone(number, tuple(messages), len(got), receipts))
    return phones


def _message(simulator: SMSCSimulator, message_id: str, pdu: PDU, system_id: str | None,
             server: str) -> PhoneMessage:
    try:
        text, concat = submit_text(pdu, simulator.alphabets.get(system_id or "", "gsm"))
    except UndecodableText as error:
        data = pdu.get("short_message") or pdu.get("message_payload") or b""
        text, concat = f"<{len(data) if isinstance(data, bytes) else 0} octets: {error}>", None
    sender = shown_address(_text(pdu.get("source_addr")), _int(pdu.get("source_addr_ton")))
    part = (concat.sequence, concat.total) if concat is not None else None
    return PhoneMessage(message_id, sender, server, text, part,
                        _receipt(simulator, message_id, pdu))


def _receipt(simulator: SMSCSimulator, message_id: str, pdu: PDU) -> str:
    sent = simulator.receipts_sent.get(message_id)
    if sent is not None:
        answer = STATUS_NAMES.get(sent.status, f"0x{sent.status:08X}")
        return f"{sent.stat} sent; the gateway answered {answer}"
    # Bit 0 alone asks for a receipt of every final outcome, as the simulator reads it.
    if _int(pdu.get("registered_delivery")) & 0x03 == 1:
        return "asked, not sent yet"
    return "not asked"


def _text(value: object) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else ""


def _int(value: object) -> int:
    return value if isinstance(value, int) else 0
