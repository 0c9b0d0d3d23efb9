"""
The lean path: struct-level encode and decode of the hot PDUs.

Every message costs a submit_sm and a submit_sm_resp (or a deliver_sm and a
deliver_sm_resp), and the library path spends ~60 us on each.  The lean path
reads and writes those PDUs directly (submit_sm, submit_sm_resp, deliver_sm,
deliver_sm_resp, data_sm_resp, enquire_link, generic_nack, unbind and their
responses).  It takes only what it fully understands: values the library path
would pass through unchanged.  Anything else (a value the library rejects or
rewrites, a non-empty time, a TLV with inner structure, a frame that does not
parse) it leaves to the library path by raising `Defer`, so errors, their
statuses and the library's rewrites stay exactly the library's.
tests/test_codec_paths.py checks both paths byte for byte;
``bench/bench_codec.py`` measures them.

One deliberate difference: in a hot PDU the lean decoder skips every TLV the
command does not carry (an unknown tag, or a known tag not expected in this
command), as SMPP 3.4's forward-compatibility rules ask of a receiver.  The
library rejects some of them (ESME_RINVOPTPARSTREAM, ESME_ROPTPARNOTALLWD,
or a value error in a TLV it then refuses anyway), and an SMSC would retry
such a deliver_sm forever.  A TLV the command does carry must have the size
and form its type gives, or the frame is an error.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from smpp.pdu import operations, pdu_types

from smppgw.smpp.constants import COMMAND_IDS, RESPONSE_BIT
from smppgw.smpp.libpath import OPTIONS
from smppgw.smpp.wire import HEADER, HEADER_LEN, PDU, Value, read_header


class Defer(Exception):
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
    names = [n for n in klass.optionalParams if n in OPTIONS and n != "vendor_specific_bypass"]
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


def lean_encode(pdu: PDU) -> bytes:
    """`encode` by the lean path.  Raises `Defer` for what it leaves to the library path."""
    shape = _SHAPES.get(pdu.command)
    if shape is None:
        raise Defer()
    sequence, status = pdu.sequence_number, pdu.command_status
    # The library numbers from 1 (a request is numbered by the session); a
    # response may carry 0, answering a peer's PDU whose number could not be
    # read or was 0 (SMPP 3.4 section 4.3: generic_nack).
    if type(sequence) is not int or not 0 <= sequence <= 0xFFFFFFFF:
        raise Defer()
    if sequence == 0 and not shape.command_id & RESPONSE_BIT:
        raise Defer()
    if type(status) is not int or not 0 <= status <= 0xFFFFFFFF:
        raise Defer()
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
                raise Defer()
        elif kind == _C_OCTET_STRING:
            if value is None or value == b"":
                body.append(0)
            elif type(value) is bytes and len(value) < arg and 0 not in value:
                body += value
                body.append(0)
            else:
                raise Defer()
        elif kind == _SHORT_MESSAGE:
            if value is None:
                body.append(0)
            elif type(value) is bytes and len(value) <= arg:
                body.append(len(value))
                body += value
            else:
                raise Defer()
        elif value is None or value == b"":  # _TIME or _NULL: only the empty value is lean
            body.append(0)
        else:
            raise Defer()
    if not params.keys() <= shape.field_names:
        _encode_tlvs(params, shape, body)
    if status and shape.no_body_on_error:
        del body[HEADER_LEN:]
    HEADER.pack_into(body, 0, len(body), shape.command_id, status, sequence)
    return bytes(body)


_SUBMIT_SM_ID = COMMAND_IDS["submit_sm"]


def prepared_submit_sm(source_ton: int, source_npi: int, source: bytes, dest_ton: int,
                       dest_npi: int, destination: bytes, esm_class: int,
                       registered_delivery: int, data_coding: int,
                       short_message: bytes) -> bytes | None:
    """What ``prepare(PDU("submit_sm", params=...))`` gives for a submit_sm without TLVs
    that sets only these fields (the others empty or 0), built in one step; None
    when a value is not lean (the caller then takes `prepare`, which refuses it
    or leaves it to the library path exactly as for any other PDU).

    Every message costs one of these: the general encoder walks the field
    table and tests each value's kind, about 9 us per submit_sm against 2 us
    here.  tests/test_codec_paths.py checks both give the same bytes.
    """
    if (
        source_ton in _TONS and source_npi in _NPIS and dest_ton in _TONS
        and dest_npi in _NPIS and esm_class in _ESM_CLASSES
        and registered_delivery in _REGISTERED_DELIVERIES and data_coding in _DATA_CODINGS
        and len(source) < 21 and len(destination) < 21 and len(short_message) <= 254
        and 0 not in source and 0 not in destination
    ):
        body = b"".join((
            b"\0", bytes((source_ton, source_npi)), source, b"\0", bytes((dest_ton, dest_npi)),
            destination, bytes((0, esm_class, 0, 0, 0, 0, registered_delivery, 0, data_coding, 0,
                                len(short_message))), short_message,
        ))
        return HEADER.pack(HEADER_LEN + len(body), _SUBMIT_SM_ID, 0, 0) + body
    return None


def _encode_tlvs(params: dict[str, Value], shape: _Shape, body: bytearray) -> None:
    extra = params.keys() - shape.field_names
    if shape.tlvs is None or not extra <= shape.tlv_names:
        raise Defer()  # the library path names what this command cannot carry
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
            raise Defer()


def lean_decode(frame: bytes) -> PDU:
    """`decode` by the lean path.  Raises `DecodeError`, or `Defer` for what it leaves to the library."""
    if type(frame) is not bytes:
        frame = bytes(frame)
    command, command_id, status, sequence = read_header(frame)
    shape = _SHAPES.get(command)
    if shape is None:
        raise Defer(frame)
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
                raise Defer(frame)
            value: Value = frame[pos]
            pos += 1
            if value not in arg:
                deferred = True
        elif kind == _SHORT_MESSAGE:
            if pos >= end:
                raise Defer(frame)
            stop = pos + 1 + frame[pos]
            if stop > end:
                raise Defer(frame)
            value = frame[pos + 1 : stop]
            if stop - pos - 1 > arg:
                deferred = True
            pos = stop
        else:  # _C_OCTET_STRING, _TIME, _NULL
            nul = frame.find(b"\0", pos)
            if nul < 0:
                raise Defer(frame)
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
            raise Defer(_without(frame, ignored))
    # else: a command without TLVs; the library reads trailing bytes as padding.
    if deferred:
        raise Defer(_without(frame, ignored))
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
