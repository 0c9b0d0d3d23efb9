"""
SMPP on the wire as plain values: the `PDU`, its header, the `Framer` that
cuts a byte stream into whole frames, and the codec's errors.

A `PDU` is a command name, a status, a sequence number and a dict of ints
and bytes; nothing here knows a PDU's body (see `smppgw.smpp.codec`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

from smppgw.smpp.constants import (
    COMMAND_IDS,
    COMMAND_NAMES,
    ESME_RINVCMDID,
    ESME_RINVCMDLEN,
    RESPONSE_BIT,
)

HEADER = struct.Struct("!IIII")
HEADER_LEN = 16
#: The largest command_length a valid PDU sent to an ESME can have: a
#: deliver_sm or data_sm with every field at its largest and every TLV it may
#: carry, each once (SMPP 3.4 sections 4.6.1, 4.7.1 and 5.3.2; a TLV costs 4
#: octets of tag and length plus its value).  The responses an ESME gets are
#: all smaller.  message_payload alone may hold 65,535 octets, so a fixed
#: 64 KiB limit would cut off a valid message.
_LARGEST_TLV_VALUE = {
    "source_port": 2, "source_addr_subunit": 1, "source_network_type": 1,
    "source_bearer_type": 1, "source_telematics_id": 2, "destination_port": 2,
    "dest_addr_subunit": 1, "dest_network_type": 1, "dest_bearer_type": 1,
    "dest_telematics_id": 2, "sar_msg_ref_num": 2, "sar_total_segments": 1,
    "sar_segment_seqnum": 1, "more_messages_to_send": 1, "qos_time_to_live": 4,
    "payload_type": 1, "message_payload": 0xFFFF, "set_dpf": 1,
    "receipted_message_id": 65, "message_state": 1, "network_error_code": 3,
    "user_message_reference": 2, "privacy_indicator": 1, "callback_num": 19,
    "callback_num_pres_ind": 1, "callback_num_atag": 65, "source_subaddress": 23,
    "dest_subaddress": 23, "user_response_code": 1, "display_time": 1, "sms_signal": 2,
    "ms_validity": 1, "ms_msg_wait_facilities": 1, "number_of_messages": 1,
    "alert_on_msg_delivery": 0, "language_indicator": 1, "its_reply_type": 1,
    "its_session_info": 2,
}
# deliver_sm's TLVs (4.6.1, and the three smpp.pdu also reads there) are a
# subset of data_sm's, the table's keys.
_DELIVER_SM_TLVS = (
    "user_message_reference", "source_port", "destination_port", "sar_msg_ref_num",
    "sar_total_segments", "sar_segment_seqnum", "user_response_code", "privacy_indicator",
    "payload_type", "message_payload", "callback_num", "source_subaddress", "dest_subaddress",
    "language_indicator", "its_session_info", "network_error_code", "message_state",
    "receipted_message_id", "source_network_type", "dest_network_type", "more_messages_to_send",
)
# Mandatory fields, C-Octet Strings with their NUL: service_type 6, two
# addresses of 21 with a TON and an NPI each, 7 one-octet fields, two times
# of 17 (NULL in a deliver_sm, but read if present) and short_message of 254
# after its sm_length.
_DELIVER_SM_FIELDS = 6 + 2 * (1 + 1 + 21) + 7 + 2 * 17 + 1 + 254
# data_sm: service_type 6, two addresses of 65 with a TON and an NPI each,
# esm_class, registered_delivery and data_coding.
_DATA_SM_FIELDS = 6 + 2 * (1 + 1 + 65) + 3
MAX_PDU_LEN = HEADER_LEN + max(
    _DELIVER_SM_FIELDS + sum(4 + _LARGEST_TLV_VALUE[name] for name in _DELIVER_SM_TLVS),
    _DATA_SM_FIELDS + sum(4 + size for size in _LARGEST_TLV_VALUE.values()),
)

Value = int | bytes


@dataclass(slots=True)
class PDU:
    """One SMPP PDU with plain values: integers for integer fields, bytes for strings."""

    command: str
    sequence_number: int = 0
    command_status: int = 0
    params: dict[str, Value] = field(default_factory=dict)

    @property
    def command_id(self) -> int:
        return COMMAND_IDS[self.command]

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE_BIT)

    def get(self, name: str, default: Value | None = None) -> Value | None:
        return self.params.get(name, default)

    def __repr__(self) -> str:
        shown = {k: ("<hidden>" if k == "password" else v) for k, v in self.params.items()}
        return (
            f"PDU({self.command}, seq={self.sequence_number}, "
            f"status=0x{self.command_status:08X}, {shown})"
        )


class DecodeError(Exception):
    """A frame that does not decode; answer it with generic_nack (or a *_resp) carrying `status`."""

    def __init__(self, reason: str, status: int, command_id: int, sequence_number: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.command_id = command_id
        self.sequence_number = sequence_number


class EncodeError(Exception):
    """A PDU that cannot be encoded (a value out of range, a string too long)."""


class FrameError(Exception):
    """A command_length no SMPP peer can mean: the stream is lost and the connection must close."""


class Framer:
    """Cuts a byte stream into whole PDUs, checking each command_length before buffering its body."""

    def __init__(self, max_length: int = MAX_PDU_LEN) -> None:
        self._buffer = bytearray()
        self._max = max_length

    def feed(self, data: bytes) -> list[bytes]:
        """Add bytes; return every complete frame now available.  Raises `FrameError`."""
        buf = self._buffer
        buf += data
        frames: list[bytes] = []
        offset = 0
        end = len(buf)
        while end - offset >= 4:
            (length,) = struct.unpack_from("!I", buf, offset)
            if length < HEADER_LEN or length > self._max:
                self._buffer = bytearray()
                raise FrameError(
                    f"command_length {length} outside {HEADER_LEN}..{self._max}"
                )
            if end - offset < length:
                break
            frames.append(bytes(buf[offset : offset + length]))
            offset += length
        if offset:
            del buf[:offset]
        return frames


def peek_header(frame: bytes) -> tuple[int, int, int, int]:
    """(command_length, command_id, command_status, sequence_number) read from the bytes."""
    return HEADER.unpack_from(frame, 0)


def read_header(frame: bytes) -> tuple[str, int, int, int]:
    """(command, command_id, command_status, sequence_number) of a whole frame, or `DecodeError`."""
    if len(frame) < HEADER_LEN:
        raise DecodeError("frame shorter than a header", ESME_RINVCMDLEN, 0, 0)
    length, command_id, status, sequence = HEADER.unpack_from(frame, 0)
    if length != len(frame):
        raise DecodeError(
            f"command_length {length} but frame of {len(frame)}", ESME_RINVCMDLEN, command_id, sequence
        )
    command = COMMAND_NAMES.get(command_id)
    if command is None:
        raise DecodeError(
            f"unknown command_id 0x{command_id:08X}", ESME_RINVCMDID, command_id, sequence
        )
    return command, command_id, status, sequence

