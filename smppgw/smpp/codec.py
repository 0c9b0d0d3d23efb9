"""
The codec adapter: the only module that imports smpp.pdu.

The rest of smppgw sees a plain `PDU` (a command name, a status, a sequence
number and a dict of ints and bytes) and two functions, `encode` and `decode`,
plus a `Framer` that cuts a byte stream into whole PDUs.  A request can also
be encoded once ahead of time (`prepare`) and sent later as a `PreparedPDU`:
the queue does so with each part of a message when it accepts it.  Keeping the library
behind this seam lets it be replaced without touching the session.

The library has traps, each handled here:

- its option encoder remembers the length of the last TLV it decoded and
  reuses it when encoding, so encoding and decoding use separate instances;
- it folds vendor statuses 0x400-0x4FF into one value, so the header
  (length, id, status, sequence) is read from the bytes here;
- it raises more than its own ``PDUParseError`` (KeyError, ValueError,
  struct.error...), so every exception of a decode becomes a `DecodeError`;
- it prints to stdout while parsing times, so stdout is silenced around it;
- it has no GSM 03.38 codec, so text never goes through it: ``short_message``
  and ``message_payload`` are bytes in and bytes out (see textcodec).

The library path costs ~60 us a PDU, too much for the PDUs every message
needs, so a lean path writes and reads those directly (submit_sm,
submit_sm_resp, deliver_sm, deliver_sm_resp, data_sm_resp, enquire_link,
generic_nack, unbind and their responses) and leaves to the library path
whatever it does not fully understand; see "the lean path" below.
"""

from __future__ import annotations

import contextlib
import io
import struct
from dataclasses import dataclass, field
from typing import Any

from smpp.pdu import operations, pdu_encoding, pdu_types

from smppgw.smpp.constants import (
    COMMAND_IDS,
    COMMAND_NAMES,
    ESME_RINVCMDID,
    ESME_RINVCMDLEN,
    ESME_RUNKNOWNERR,
    RESPONSE_BIT,
    STATUSES,
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


# -- conversion between plain values and the library's values ------------------

_ENCODER = pdu_encoding.PDUEncoder()
_DECODER = pdu_encoding.PDUEncoder()
# Conversions build library values from wire bytes; they get their own option
# encoder so that its remembered TLV length never leaks into a real encode.
_CONVERT_OPTIONS = pdu_encoding.OptionEncoder()

_INT, _CSTR, _SM, _OCTETS, _EMPTY = "int", "cstr", "sm", "octets", "empty"


def _kind(encoder: Any) -> tuple[str, int]:
    if isinstance(encoder, pdu_encoding.ShortMessageEncoder):
        return _SM, 0
    if isinstance(encoder, pdu_encoding.IntegerBaseEncoder):
        return _INT, encoder.size
    if isinstance(encoder, pdu_encoding.IntegerWrapperEncoder):
        return _INT, encoder.encoder.size
    if isinstance(encoder, (pdu_encoding.COctetStringEncoder, pdu_encoding.TimeEncoder)):
        return _CSTR, 0
    if isinstance(encoder, pdu_encoding.EmptyEncoder):
        return _EMPTY, 0
    return _OCTETS, 0


def _to_wire(kind: str, size: int, value: Value) -> bytes:
    if kind == _INT:
        if not isinstance(value, int):
            raise EncodeError(f"expected an integer, got {value!r}")
        return value.to_bytes(size, "big")
    if not isinstance(value, (bytes, bytearray)):
        raise EncodeError(f"expected bytes, got {type(value).__name__}")
    if kind == _CSTR:
        if b"\0" in value:
            raise EncodeError("a C-Octet String cannot hold a NUL")
        return bytes(value) + b"\0"
    if kind == _SM:
        if len(value) > 254:
            raise EncodeError(f"short_message of {len(value)} octets (254 at most)")
        return bytes([len(value)]) + bytes(value)
    return bytes(value)


def _from_wire(kind: str, wire: bytes) -> Value:
    if kind == _INT:
        return int.from_bytes(wire, "big")
    if kind == _CSTR:
        return wire[:-1]
    if kind == _SM:
        return wire[1:]
    return wire


def _library_value(encoder: Any, kind: str, size: int, value: Value, options: bool) -> Any:
    if kind == _CSTR and value == b"" and encoder.nullable:
        return None
    wire = _to_wire(kind, size, value)
    if options:
        _CONVERT_OPTIONS.length = len(wire)
    return encoder.decode(io.BytesIO(wire))


def _plain_value(encoder: Any, kind: str, value: Any) -> Value:
    if value is None:
        return 0 if kind == _INT else b""
    return _from_wire(kind, encoder.encode(value))


_MANDATORY: dict[str, list[tuple[str, Any, str, int]]] = {}
_OPTIONS: dict[str, tuple[Any, Any, str, int]] = {
    tag.name: (tag, enc, *_kind(enc)) for tag, enc in _CONVERT_OPTIONS.options.items()
}


def _mandatory(command: str) -> list[tuple[str, Any, str, int]]:
    fields = _MANDATORY.get(command)
    if fields is None:
        klass = operations.getPDUClass(getattr(pdu_types.CommandId, command))
        encoders = _ENCODER.getRequiredParamEncoders(klass())
        fields = [(name, encoders[name], *_kind(encoders[name])) for name in klass.mandatoryParams]
        _MANDATORY[command] = fields
    return fields


def _library_status(status: int) -> Any:
    from smpp.pdu import constants as lib_constants

    entry = lib_constants.command_status_value_map.get(status)
    if entry is None:
        # The library cannot carry this status; encode() patches the header.
        return pdu_types.CommandStatus.ESME_RUNKNOWNERR
    return getattr(pdu_types.CommandStatus, entry["name"])


@contextlib.contextmanager
def _quiet() -> Any:
    # smpp.pdu prints while parsing time strings; keep the gateway's stdout clean.
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _library_encode(pdu: PDU) -> bytes:
    """`encode` through smpp.pdu: the reference the lean path is checked against."""
    status = pdu.command_status
    if not isinstance(status, int) or not 0 <= status <= 0xFFFFFFFF:
        raise EncodeError(f"command_status {status!r} is not a 32-bit unsigned integer")
    try:
        klass = operations.getPDUClass(getattr(pdu_types.CommandId, pdu.command))
    except (AttributeError, KeyError) as e:
        raise EncodeError(f"unknown command {pdu.command!r}") from e
    lib = klass(pdu.sequence_number, _library_status(pdu.command_status))
    known = {name for name, *_ in _mandatory(pdu.command)}
    try:
        with _quiet():
            for name, encoder, kind, size in _mandatory(pdu.command):
                value = pdu.params.get(name)
                if value is None:
                    value = 0 if kind == _INT else b""
                lib.params[name] = _library_value(encoder, kind, size, value, False)
            for name, value in pdu.params.items():
                if name in known:
                    continue
                if name not in _OPTIONS or name not in klass.optionalParams:
                    raise EncodeError(f"{pdu.command} cannot carry {name}")
                _tag, encoder, kind, size = _OPTIONS[name]
                lib.params[name] = _library_value(encoder, kind, size, value, True)
            data = _ENCODER.encode(lib)
    except EncodeError:
        raise
    except Exception as e:
        raise EncodeError(f"cannot encode {pdu.command}: {e}") from e
    if pdu.command_status != 0 and _library_status(pdu.command_status).name == "ESME_RUNKNOWNERR":
        data = data[:8] + pdu.command_status.to_bytes(4, "big") + data[12:]
    return data


def _read_header(frame: bytes) -> tuple[str, int, int, int]:
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


def _library_decode(frame: bytes) -> PDU:
    """`decode` through smpp.pdu: the reference the lean path is checked against."""
    frame = bytes(frame)
    command, command_id, status, sequence = _read_header(frame)
    try:
        with _quiet():
            lib = _DECODER.decode(io.BytesIO(frame))
            params: dict[str, Value] = {}
            for name, encoder, kind, _size in _mandatory(command):
                if name in lib.params:
                    params[name] = _plain_value(encoder, kind, lib.params[name])
            for name, value in lib.params.items():
                option = _OPTIONS.get(name)
                if option is not None and name not in params:
                    # The octet-string encoders check their value against the
                    # length last set by _library_value; here no length applies.
                    _CONVERT_OPTIONS.length = None
                    params[name] = _plain_value(option[1], option[2], value)
    except Exception as e:
        raise DecodeError(
            f"{command} does not parse: {e}", _error_status(e), command_id, sequence
        ) from e
    return PDU(command, sequence, status, params)


def _error_status(error: Exception) -> int:
    status = getattr(error, "status", None)
    if status is not None and getattr(status, "name", None) in STATUSES:
        return STATUSES[status.name]
    return ESME_RUNKNOWNERR


# -- the lean path: struct-level encode and decode of the hot PDUs -------------
#
# Every message costs a submit_sm and a submit_sm_resp (or a deliver_sm and a
# deliver_sm_resp), and the library path spends ~60 us on each.  The lean path
# reads and writes those PDUs directly.  It takes only what it fully
# understands: values the library path would pass through unchanged.  Anything
# else (a value the library rejects or rewrites, a non-empty time, a TLV with
# inner structure, a frame that does not parse) is left to the library path, so
# errors, their statuses and the library's rewrites stay exactly the library's.
# tests/test_codec.py checks both paths byte for byte.
#
# One deliberate difference: in a hot PDU the lean decoder skips every TLV the
# command does not carry (an unknown tag, or a known tag not expected in this
# command), as SMPP 3.4's forward-compatibility rules ask of a receiver.  The
# library rejects some of them (ESME_RINVOPTPARSTREAM, ESME_ROPTPARNOTALLWD,
# or a value error in a TLV it then refuses anyway), and an SMSC would retry
# such a deliver_sm forever.  A TLV the command does carry must have the size
# and form its type gives, or the frame is an error.


class _Defer(Exception):
    """The lean path leaves this PDU to the library path; `frame` is what the library is to read."""

    def __init__(self, frame: bytes | None = None) -> None:
        super().__init__()
        self.frame = frame


# Field kinds of the lean layouts (SMPP 3.4 section 3.1 names the types).
_ONE_OCTET = 1  # an integer in one octet
_TWO_OCTETS = 2  # an integer in two octets (TLVs only)
_OCTET_STRING = 3  # a TLV's value as it stands
_C_OCTET_STRING = 4  # text up to a NUL
_TIME = 5  # a C-Octet String time; only the empty one is lean
_NULL = 6  # a C-Octet String that must be empty
_SHORT_MESSAGE = 7  # sm_length and short_message
_STRUCTURED = 8  # a TLV with inner fields, left to the library path

#: Values of the one-octet fields that the library path passes through unchanged
#: (SMPP 3.4 section 5.2); any other value is left to it, which rejects or rewrites it.
_ANY_OCTET = frozenset(range(256))
_TONS = frozenset(range(7))  # 5.2.5: unknown .. abbreviated
_NPIS = frozenset({0, 1, 3, 4, 6, 8, 9, 10, 14, 18})  # 5.2.6
# 5.2.12: mode (bits 1-0) and GSM features (bits 7-6) are free; the message
# type (bits 5-2) is default, a receipt, an ack, an abort or a notification.
_ESM_CLASSES = frozenset(v for v in range(256) if v & 0x3C in (0x00, 0x04, 0x08, 0x10, 0x18, 0x20))
_PRIORITIES = frozenset(range(4))
# 5.2.17: receipt (bits 1-0) 0-2; the library drops bits 7-5, so those are left to it.
_REGISTERED_DELIVERIES = frozenset(v for v in range(32) if v & 0x03 != 0x03)
_REPLACE_FLAGS = frozenset({0, 1})
# 5.2.19: the library rewrites 0xF8-0xFF (it drops bit 3 of a message class coding).
_DATA_CODINGS = frozenset(range(0xF8))
_DEFAULT_MSG_IDS = frozenset(range(255))  # 0xFF is outside the library's range

#: (name, kind, argument) in wire order; the argument is the allowed values of
#: an octet, or the largest size of a C-Octet String with its NUL.
_Layout = tuple[tuple[str, int, Any], ...]
_MESSAGE_FIELDS: _Layout = (
    ("service_type", _C_OCTET_STRING, 6),
    ("source_addr_ton", _ONE_OCTET, _TONS),
    ("source_addr_npi", _ONE_OCTET, _NPIS),
    ("source_addr", _C_OCTET_STRING, 21),
    ("dest_addr_ton", _ONE_OCTET, _TONS),
    ("dest_addr_npi", _ONE_OCTET, _NPIS),
    ("destination_addr", _C_OCTET_STRING, 21),
    ("esm_class", _ONE_OCTET, _ESM_CLASSES),
    ("protocol_id", _ONE_OCTET, _ANY_OCTET),
    ("priority_flag", _ONE_OCTET, _PRIORITIES),
    ("schedule_delivery_time", _TIME, 17),
    ("validity_period", _TIME, 17),
    ("registered_delivery", _ONE_OCTET, _REGISTERED_DELIVERIES),
    ("replace_if_present_flag", _ONE_OCTET, _REPLACE_FLAGS),
    ("data_coding", _ONE_OCTET, _DATA_CODINGS),
    ("sm_default_msg_id", _ONE_OCTET, _DEFAULT_MSG_IDS),
    ("short_message", _SHORT_MESSAGE, 254),
)
_MESSAGE_ID: _Layout = (("message_id", _C_OCTET_STRING, 65),)
# The library insists that a deliver_sm_resp's message_id is empty.
_NULL_MESSAGE_ID: _Layout = (("message_id", _NULL, 1),)

#: TLVs by name (SMPP 3.4 section 5.3.2): tag, kind, argument.  _STRUCTURED marks
#: TLVs with inner structure, which the library path handles.
_TLVS: dict[str, tuple[int, int, Any]] = {
    "dest_addr_subunit": (0x0005, _ONE_OCTET, frozenset(range(5))),
    "dest_network_type": (0x0006, _ONE_OCTET, frozenset(range(9))),
    "source_addr_subunit": (0x000D, _ONE_OCTET, frozenset(range(5))),
    "source_network_type": (0x000E, _ONE_OCTET, frozenset(range(9))),
    "payload_type": (0x0019, _ONE_OCTET, frozenset({0, 1})),
    "additional_status_info_text": (0x001D, _C_OCTET_STRING, 256),
    "receipted_message_id": (0x001E, _C_OCTET_STRING, 65),
    "privacy_indicator": (0x0201, _ONE_OCTET, frozenset(range(4))),
    "source_subaddress": (0x0202, _STRUCTURED, None),
    "dest_subaddress": (0x0203, _STRUCTURED, None),
    "user_message_reference": (0x0204, _TWO_OCTETS, None),
    "user_response_code": (0x0205, _ONE_OCTET, _ANY_OCTET),
    "source_port": (0x020A, _TWO_OCTETS, None),
    "destination_port": (0x020B, _TWO_OCTETS, None),
    "sar_msg_ref_num": (0x020C, _TWO_OCTETS, None),
    "language_indicator": (0x020D, _ONE_OCTET, frozenset(range(6))),
    "sar_total_segments": (0x020E, _ONE_OCTET, _ANY_OCTET),
    "sar_segment_seqnum": (0x020F, _ONE_OCTET, _ANY_OCTET),
    "number_of_messages": (0x0304, _ONE_OCTET, frozenset(range(100))),
    "callback_num": (0x0381, _STRUCTURED, None),
    "network_error_code": (0x0423, _OCTET_STRING, None),
    "message_payload": (0x0424, _OCTET_STRING, None),
    "delivery_failure_reason": (0x0425, _ONE_OCTET, frozenset(range(4))),
    "more_messages_to_send": (0x0426, _ONE_OCTET, frozenset({0, 1})),
    "message_state": (0x0427, _ONE_OCTET, frozenset(range(1, 9))),
    "display_time": (0x1201, _ONE_OCTET, frozenset(range(3))),
    "sms_signal": (0x1203, _OCTET_STRING, None),
}

_TAG_LENGTH = struct.Struct("!HH")
_TLV_OCTET = struct.Struct("!HHB")
_TLV_INT2 = struct.Struct("!HHH")


@dataclass(frozen=True, slots=True)
class _Shape:
    """How the lean path reads and writes one command."""

    command_id: int
    fields: _Layout
    #: TLVs in the order the library writes them: (name, tag, kind, argument);
    #: None when the command has no TLVs and the library skips any trailing bytes.
    tlvs: tuple[tuple[str, int, int, Any], ...] | None
    #: A response whose body is absent when its status is not zero.
    no_body_on_error: bool = False
    field_names: frozenset[str] = frozenset()
    tlv_names: frozenset[str] = frozenset()
    tlv_tags: dict[int, tuple[str, int, Any]] = field(default_factory=dict)


def _shape(command: str, fields: _Layout, no_body_on_error: bool = False) -> _Shape:
    klass = operations.getPDUClass(getattr(pdu_types.CommandId, command))
    # The TLVs a command carries, and their order on the wire, are the
    # library's: the lean path must accept and write exactly what it does.
    # (vendor_specific_bypass is the library's name for "drop on decode";
    # a PDU naming it goes to the library path.)
    names = [n for n in klass.optionalParams if n in _OPTIONS and n != "vendor_specific_bypass"]
    tlvs = tuple((n, *_TLVS[n]) for n in names) if klass.optionalParams else None
    return _Shape(
        command_id=COMMAND_IDS[command],
        fields=fields,
        tlvs=tlvs,
        no_body_on_error=no_body_on_error,
        field_names=frozenset(name for name, _, _ in fields),
        tlv_names=frozenset(names),
        tlv_tags={tag: (n, kind, arg) for n, tag, kind, arg in (tlvs or ())},
    )


_SHAPES: dict[str, _Shape] = {
    "submit_sm": _shape("submit_sm", _MESSAGE_FIELDS),
    "deliver_sm": _shape("deliver_sm", _MESSAGE_FIELDS),
    "submit_sm_resp": _shape("submit_sm_resp", _MESSAGE_ID, no_body_on_error=True),
    "deliver_sm_resp": _shape("deliver_sm_resp", _NULL_MESSAGE_ID),
    "data_sm_resp": _shape("data_sm_resp", _MESSAGE_ID),
    "enquire_link": _shape("enquire_link", ()),
    "enquire_link_resp": _shape("enquire_link_resp", ()),
    "generic_nack": _shape("generic_nack", ()),
    "unbind": _shape("unbind", ()),
    "unbind_resp": _shape("unbind_resp", ()),
}


def _lean_encode(pdu: PDU) -> bytes:
    """`encode` by the lean path.  Raises `_Defer` for what it leaves to the library path."""
    shape = _SHAPES.get(pdu.command)
    if shape is None:
        raise _Defer()
    sequence, status = pdu.sequence_number, pdu.command_status
    # The library numbers from 1 (a request is numbered by the session); a
    # response may carry 0, answering a peer's PDU whose number could not be
    # read or was 0 (SMPP 3.4 section 4.3: generic_nack).
    if type(sequence) is not int or not 0 <= sequence <= 0xFFFFFFFF:
        raise _Defer()
    if sequence == 0 and not shape.command_id & RESPONSE_BIT:
        raise _Defer()
    if type(status) is not int or not 0 <= status <= 0xFFFFFFFF:
        raise _Defer()
    params = pdu.params
    get = params.get
    body = bytearray(HEADER_LEN)
    for name, kind, arg in shape.fields:
        value = get(name)
        if kind == _ONE_OCTET:
            if value is None:
                body.append(0)
            elif type(value) is int and value in arg:
                body.append(value)
            else:
                raise _Defer()
        elif kind == _C_OCTET_STRING:
            if value is None or value == b"":
                body.append(0)
            elif type(value) is bytes and len(value) < arg and 0 not in value:
                body += value
                body.append(0)
            else:
                raise _Defer()
        elif kind == _SHORT_MESSAGE:
            if value is None:
                body.append(0)
            elif type(value) is bytes and len(value) <= arg:
                body.append(len(value))
                body += value
            else:
                raise _Defer()
        elif value is None or value == b"":  # _TIME or _NULL: only the empty value is lean
            body.append(0)
        else:
            raise _Defer()
    if not params.keys() <= shape.field_names:
        _lean_encode_tlvs(params, shape, body)
    if status and shape.no_body_on_error:
        del body[HEADER_LEN:]
    HEADER.pack_into(body, 0, len(body), shape.command_id, status, sequence)
    return bytes(body)


def _lean_encode_tlvs(params: dict[str, Value], shape: _Shape, body: bytearray) -> None:
    extra = params.keys() - shape.field_names
    if shape.tlvs is None or not extra <= shape.tlv_names:
        raise _Defer()  # the library path names what this command cannot carry
    for name, tag, kind, arg in shape.tlvs:
        if name not in extra:
            continue
        value = params[name]
        if kind == _ONE_OCTET and type(value) is int and value in arg:
            body += _TLV_OCTET.pack(tag, 1, value)
        elif kind == _TWO_OCTETS and type(value) is int and 0 <= value <= 0xFFFF:
            body += _TLV_INT2.pack(tag, 2, value)
        elif kind == _OCTET_STRING and type(value) is bytes and len(value) <= 0xFFFF:
            body += _TAG_LENGTH.pack(tag, len(value))
            body += value
        elif kind == _C_OCTET_STRING and type(value) is bytes and len(value) < arg and 0 not in value:
            body += _TAG_LENGTH.pack(tag, len(value) + 1)
            body += value
            body.append(0)
        else:
            raise _Defer()


def _lean_decode(frame: bytes) -> PDU:
    """`decode` by the lean path.  Raises `DecodeError`, or `_Defer` for what it leaves to the library."""
    if type(frame) is not bytes:
        frame = bytes(frame)
    command, command_id, status, sequence = _read_header(frame)
    shape = _SHAPES.get(command)
    if shape is None:
        raise _Defer(frame)
    if status and shape.no_body_on_error:
        # As the library does: the body of such a response is not read at all.
        return PDU(command, sequence, status, {})
    params: dict[str, Value] = {}
    end = len(frame)
    pos = HEADER_LEN
    # Set when a value is well formed but not lean (the library rejects or
    # rewrites it): the rest is still walked so ignored TLVs can be dropped.
    deferred = False
    for name, kind, arg in shape.fields:
        if kind == _ONE_OCTET:
            if pos >= end:
                raise _Defer(frame)
            value: Value = frame[pos]
            pos += 1
            if value not in arg:
                deferred = True
        elif kind == _SHORT_MESSAGE:
            if pos >= end:
                raise _Defer(frame)
            stop = pos + 1 + frame[pos]
            if stop > end:
                raise _Defer(frame)
            value = frame[pos + 1 : stop]
            if stop - pos - 1 > arg:
                deferred = True
            pos = stop
        else:  # _C_OCTET_STRING, _TIME, _NULL
            nul = frame.find(b"\0", pos)
            if nul < 0:
                raise _Defer(frame)
            value = frame[pos:nul]
            if nul - pos >= arg or (value and kind != _C_OCTET_STRING):
                deferred = True
            pos = nul + 1
        params[name] = value
    ignored: list[tuple[int, int]] = []
    if shape.tlvs is not None:
        broken = False
        tags = shape.tlv_tags
        while pos < end:
            if end - pos < 4:
                broken = True
                break
            tag, length = _TAG_LENGTH.unpack_from(frame, pos)
            start = pos + 4
            stop = start + length
            if stop > end:
                broken = True
                break
            spec = tags.get(tag)
            if spec is None:
                ignored.append((pos, stop))
                pos = stop
                continue
            name, kind, arg = spec
            if kind == _ONE_OCTET:
                if length != 1:
                    broken = True
                    break
                value = frame[start]
                if value not in arg:
                    deferred = True
            elif kind == _TWO_OCTETS:
                if length != 2:
                    broken = True
                    break
                value = frame[start] << 8 | frame[start + 1]
            elif kind == _OCTET_STRING:
                value = frame[start:stop]
            elif kind == _C_OCTET_STRING:
                if length == 0 or frame.find(b"\0", start, stop) != stop - 1:
                    broken = True
                    break
                value = frame[start : stop - 1]
                if length > arg:
                    deferred = True
            else:
                value = b""
                deferred = True
            params[name] = value
            pos = stop
        if broken:
            raise _Defer(_without(frame, ignored))
    # else: a command without TLVs; the library reads trailing bytes as padding.
    if deferred:
        raise _Defer(_without(frame, ignored))
    return PDU(command, sequence, status, params)


def _without(frame: bytes, spans: list[tuple[int, int]]) -> bytes:
    """`frame` without the byte ranges `spans` (the TLVs the lean path ignores), its length fixed."""
    if not spans:
        return frame
    pieces = []
    pos = HEADER_LEN
    for start, stop in spans:
        pieces.append(frame[pos:start])
        pos = stop
    pieces.append(frame[pos:])
    body = b"".join(pieces)
    return HEADER.pack(HEADER_LEN + len(body), *HEADER.unpack_from(frame, 0)[1:]) + body


class PreparedPDU(PDU):
    """A request encoded ahead of time by `prepare`: sending it only writes its sequence number in.

    It is a `PDU` like any other; its params are read back from the bytes
    only if something asks for them (a trace log line, say).
    """

    __slots__ = ("wire",)

    def __init__(self, wire: bytes) -> None:
        # The base class's fields, but params: that slot stays empty until read.
        self.command = COMMAND_NAMES[int.from_bytes(wire[4:8], "big")]
        self.sequence_number = 0
        self.command_status = 0
        self.wire = wire

    @property  # type: ignore[override]
    def params(self) -> dict[str, Value]:
        try:
            return _PARAMS_SLOT.__get__(self, PDU)  # type: ignore[no-any-return]
        except AttributeError:
            params = decode(self.wire).params
            _PARAMS_SLOT.__set__(self, params)
            return params

    @params.setter
    def params(self, value: dict[str, Value]) -> None:
        _PARAMS_SLOT.__set__(self, value)


_PARAMS_SLOT: Any = PDU.__dict__["params"]


def prepare(pdu: PDU) -> bytes:
    """The wire bytes of request `pdu` with sequence number 0, for a `PreparedPDU` to send later.

    Raises `EncodeError` as `encode` does: a value the PDU cannot carry is
    refused now, not when the PDU is sent.
    """
    frame = encode(PDU(pdu.command, 1, 0, pdu.params))
    return frame[:12] + b"\0\0\0\0" + frame[HEADER_LEN:]


def split_prepared(wire: bytes) -> list[bytes]:
    """The frames that `prepare` made and were stored back to back.  Raises ValueError if
    `wire` is not such a run of whole frames."""
    frames = []
    offset = 0
    while offset < len(wire):
        length = int.from_bytes(wire[offset : offset + 4], "big")
        if length < HEADER_LEN or offset + length > len(wire):
            raise ValueError(f"no whole PDU at byte {offset} of {len(wire)}")
        if int.from_bytes(wire[offset + 4 : offset + 8], "big") not in COMMAND_NAMES:
            raise ValueError(f"unknown command id at byte {offset}")
        frames.append(wire[offset : offset + length])
        offset += length
    return frames


def encode(pdu: PDU) -> bytes:
    """The wire bytes of `pdu`.  Raises `EncodeError` for values the PDU cannot carry."""
    if type(pdu) is PreparedPDU:
        sequence = pdu.sequence_number
        if type(sequence) is not int or not 1 <= sequence <= 0xFFFFFFFF:
            raise EncodeError(f"sequence_number {sequence!r} is out of range")
        wire = pdu.wire
        return wire[:12] + sequence.to_bytes(4, "big") + wire[HEADER_LEN:]
    try:
        return _lean_encode(pdu)
    except _Defer:
        return _library_encode(pdu)


def decode(frame: bytes) -> PDU:
    """The PDU in one whole frame (as cut by `Framer`).  Raises `DecodeError`."""
    try:
        return _lean_decode(frame)
    except _Defer as defer:
        return _library_decode(defer.frame if defer.frame is not None else frame)


def request(command: str, **params: Value) -> PDU:
    """A request PDU with sequence number 0 (the session numbers it)."""
    return PDU(command, 0, 0, dict(params))


def response_to(pdu: PDU, status: int = 0, **params: Value) -> PDU:
    """The *_resp of `pdu` with the same sequence number."""
    return PDU(COMMAND_NAMES[pdu.command_id | RESPONSE_BIT], pdu.sequence_number, status, dict(params))
