"""Text on the SMPP wire: choose a data_coding, encode, split into parts, read parts back.

Outbound, ``encode_message`` turns an IM body into one or more ``Part`` objects ready
for submit_sm; inbound, ``decode_text`` and ``concat_info`` turn deliver_sm fields back
into text and reassembly facts.

Sizes follow GSM 03.40: one SMS carries 140 octets of user data. With ``data_coding``
0 SMPP carries GSM 03.38 *unpacked*, one septet per octet, and the SMSC packs them,
so a single GSM message holds 160 septets (an extension-table character such as
``€`` takes two: ESC 0x1B and its code). Concatenated parts lose 6 octets to the
``05 00 03 ref total seq`` header, leaving 153 septets, 134 octets or 67 UTF-16 units.

SMPP 3.4 leaves data_coding 0 to the SMSC ("SMSC default alphabet"): many read it as
GSM 03.38 (``@`` = 0x00), others as ASCII/IA5 or Latin-1 (``@`` = 0x40). The functions
here take that alphabet as ``default_alphabet`` (one of `DEFAULT_ALPHABETS`, GSM unless
told otherwise); it applies to data_coding 0 only, and leaves the sizes as they are.

The alphabets themselves (the GSM 03.38 tables, from the ``gsm0338`` package) are
`smppgw.sms.alphabet`, the concatenation of inbound parts `smppgw.sms.concat`; this
module cuts a message into parts, and offers all three under one name.
"""

from __future__ import annotations

from dataclasses import dataclass

from smppgw.sms.alphabet import (
    _IEI_CONCAT_8BIT,
    _LONG_MESSAGE_STYLES,
    _PART_CAPACITY,
    _SINGLE_CAPACITY,
    _UDHI,
    DC_ASCII,
    DC_BINARY,
    DC_GSM,
    DC_LATIN1,
    DC_UCS2,
    DEFAULT_ALPHABETS,
    TooLong,
    UndecodableText,
    UnencodableText,
    _atoms,
    _encode_whole,
    alphabet_hint,
    at_signs,
    choose_coding,
    decode_text,
    encode_text,
)
from smppgw.sms.concat import Concat, concat_info, split_udh

__all__ = [
    "DC_ASCII", "DC_BINARY", "DC_GSM", "DC_LATIN1", "DC_UCS2", "DEFAULT_ALPHABETS",
    "Concat", "EncodedMessage", "Part", "TooLong", "UndecodableText", "UnencodableText",
    "alphabet_hint", "at_signs", "choose_coding", "concat_info", "decode_text",
    "encode_message", "encode_text", "split_udh",
]


@dataclass(frozen=True)
class Part:
    """One submit_sm's worth of a message."""

    short_message: bytes
    """Text bytes, led by the UDH when ``esm_class`` has UDHI (0x40)."""
    esm_class: int
    """0x00, or 0x40 when ``short_message`` starts with a UDH."""
    tlvs: tuple[tuple[str, int | bytes], ...] = ()
    """Optional parameters by their smpp.pdu names, e.g. ``("sar_msg_ref_num", 7)``."""


@dataclass(frozen=True)
class EncodedMessage:
    """A whole text, encoded and cut into parts."""

    data_coding: int
    parts: tuple[Part, ...]
    units: int
    """Septets (GSM), octets (ASCII, Latin-1) or UTF-16 code units (UCS2) of the text."""



def _pack(atoms: list[bytes], capacity: int) -> list[bytes]:
    """Cut atoms into chunks of at most ``capacity`` octets, never inside an atom."""
    chunks: list[bytes] = []
    current = bytearray()
    for atom in atoms:
        if len(current) + len(atom) > capacity:
            chunks.append(bytes(current))
            current = bytearray()
        current += atom
    chunks.append(bytes(current))
    return chunks


def encode_message(
    text: str,
    preferred: str = "gsm",
    long_messages: str = "udh",
    max_parts: int = 10,
    reference: int = 0,
    default_alphabet: str = "gsm",
) -> EncodedMessage:
    """Encode ``text`` into the parts to submit.

    A text that fits one SMS is one plain part whatever ``long_messages`` says: the
    style only decides how a longer text travels. ``"udh"`` gives parts with a
    ``05 00 03`` header (8-bit ``reference``); ``"sar"`` gives the same parts bare,
    with the SAR TLVs (16-bit ``reference``); ``"payload"`` gives one part carrying the
    whole text in ``message_payload``. Every style refuses, with ``TooLong``, a text
    that would need more than ``max_parts`` UDH parts, so the limit means the same
    whichever style a server uses. A text in data_coding 0 is written in
    ``default_alphabet``, one octet per character (two for a GSM escape).
    """
    if long_messages not in _LONG_MESSAGE_STYLES:
        raise ValueError(
            f"unknown long_messages {long_messages!r}; "
            f"expected one of {', '.join(_LONG_MESSAGE_STYLES)}"
        )
    if not 1 <= max_parts <= 255:
        # 255 is the most that the one-octet total of a UDH or SAR TLV can say.
        raise ValueError(f"max_parts must be from 1 to 255, not {max_parts}")
    data_coding = choose_coding(text, preferred, default_alphabet)
    encoded = _encode_whole(text, data_coding, default_alphabet)
    units = len(encoded) // 2 if data_coding == DC_UCS2 else len(encoded)

    if len(encoded) <= _SINGLE_CAPACITY[data_coding]:
        return EncodedMessage(data_coding, (Part(encoded, 0x00),), units)

    # Longer texts are cut between atoms, never inside an escape or surrogate pair.
    chunks = _pack(_atoms(text, data_coding, default_alphabet), _PART_CAPACITY[data_coding])
    total = len(chunks)
    if total > max_parts:
        raise TooLong(total, max_parts)

    parts: tuple[Part, ...]
    if long_messages == "payload":
        parts = (Part(b"", 0x00, (("message_payload", encoded),)),)
    elif long_messages == "sar":
        ref16 = reference & 0xFFFF
        parts = tuple(
            Part(
                chunk,
                0x00,
                (
                    ("sar_msg_ref_num", ref16),
                    ("sar_total_segments", total),
                    ("sar_segment_seqnum", sequence),
                ),
            )
            for sequence, chunk in enumerate(chunks, start=1)
        )
    else:
        ref8 = reference & 0xFF
        parts = tuple(
            Part(bytes([0x05, _IEI_CONCAT_8BIT, 0x03, ref8, total, sequence]) + chunk, _UDHI)
            for sequence, chunk in enumerate(chunks, start=1)
        )
    return EncodedMessage(data_coding, parts, units)
