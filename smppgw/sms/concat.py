"""The concatenation of inbound parts: a UDH's concat element or the SAR TLVs of a deliver_sm."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from smppgw.sms.alphabet import _IEI_CONCAT_8BIT, _IEI_CONCAT_16BIT, _UDHI, UndecodableText


@dataclass(frozen=True)
class Concat:
    """Where one inbound part sits in a concatenated message."""

    reference: int
    total: int
    sequence: int
    body: bytes
    """The part's text bytes, without any UDH."""
    ref_bits: int
    """8 or 16: the reference's width, so 8-bit and 16-bit series are kept apart."""



def split_udh(short_message: bytes) -> tuple[list[tuple[int, bytes]], bytes]:
    """Split a message that starts with a UDH into its (IEI, data) elements and the body."""
    if not short_message:
        raise UndecodableText("UDH indicator set but the message is empty")
    header_end = 1 + short_message[0]
    if header_end > len(short_message):
        raise UndecodableText(
            f"UDH length {short_message[0]} runs past the {len(short_message)}-octet message"
        )
    elements: list[tuple[int, bytes]] = []
    position = 1
    while position < header_end:
        if position + 2 > header_end:
            raise UndecodableText(f"UDH element at octet {position} is cut off by the UDH end")
        iei, length = short_message[position], short_message[position + 1]
        data_end = position + 2 + length
        if data_end > header_end:
            raise UndecodableText(
                f"UDH element 0x{iei:02X} at octet {position} runs past the UDH end"
            )
        elements.append((iei, short_message[position + 2 : data_end]))
        position = data_end
    return elements, short_message[header_end:]


def _sar_number(tlvs: Mapping[str, int | bytes], name: str) -> int:
    value = tlvs[name]
    if not isinstance(value, int):
        raise UndecodableText(f"{name} is {value!r}, not a number")
    return value


def _checked(concat: Concat) -> Concat:
    if concat.total == 0 or concat.sequence == 0 or concat.sequence > concat.total:
        raise UndecodableText(
            f"concatenated part {concat.sequence} of {concat.total} is not a valid position"
        )
    return concat


def concat_info(
    esm_class: int, short_message: bytes, tlvs: Mapping[str, int | bytes]
) -> Concat | None:
    """Where this inbound part sits in a concatenated message, or None if it stands alone.

    Reads an 8-bit (IEI 0x00) or 16-bit (IEI 0x08) concat element anywhere in the UDH,
    else the SAR TLVs. When ``short_message`` is empty the text is taken from a
    ``message_payload`` TLV instead. A message with a UDH but no concat element gives
    None: the caller strips the UDH with ``split_udh``.
    """
    data = short_message
    payload = tlvs.get("message_payload")
    if not data and isinstance(payload, bytes):
        data = payload
    body = data
    if esm_class & _UDHI:
        elements, body = split_udh(data)
        for iei, value in elements:
            if iei == _IEI_CONCAT_8BIT:
                if len(value) != 3:
                    raise UndecodableText(f"8-bit concat element has {len(value)} octets, not 3")
                return _checked(Concat(value[0], value[1], value[2], body, 8))
            if iei == _IEI_CONCAT_16BIT:
                if len(value) != 4:
                    raise UndecodableText(f"16-bit concat element has {len(value)} octets, not 4")
                reference = int.from_bytes(value[:2], "big")
                return _checked(Concat(reference, value[2], value[3], body, 16))
    sar_names = ("sar_msg_ref_num", "sar_total_segments", "sar_segment_seqnum")
    present = [name for name in sar_names if name in tlvs]
    if not present:
        return None
    if len(present) != len(sar_names):
        missing = ", ".join(name for name in sar_names if name not in tlvs)
        raise UndecodableText(f"SAR parameters incomplete: missing {missing}")
    reference, total, sequence = (_sar_number(tlvs, name) for name in sar_names)
    return _checked(Concat(reference, total, sequence, body, 16))
