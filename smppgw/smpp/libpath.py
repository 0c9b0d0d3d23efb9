"""
The library path: PDUs encoded and decoded through smpp.pdu.

It handles every command and value the codec accepts; the lean path
(`smppgw.smpp.leanpath`) takes the hot PDUs and leaves the rest here, and is
checked against this path byte for byte.  The library's traps, each handled
here:

- its option encoder remembers the length of the last TLV it decoded and
  reuses it when encoding, so encoding and decoding use separate instances;
- it folds vendor statuses 0x400-0x4FF into one value, so the header
  (length, id, status, sequence) is read from the bytes (`read_header`);
- it raises more than its own ``PDUParseError`` (KeyError, ValueError,
  struct.error...), so every exception of a decode becomes a `DecodeError`;
- it prints to stdout while parsing times (`smppgw.smpp.quiet`);
- it has no GSM 03.38 codec, so text never goes through it: ``short_message``
  and ``message_payload`` are bytes in and bytes out (see textcodec).
"""

from __future__ import annotations

import io
from typing import Any

from smpp.pdu import operations, pdu_encoding, pdu_types

from smppgw.smpp.constants import ESME_RUNKNOWNERR, STATUSES
from smppgw.smpp.quiet import quiet
from smppgw.smpp.wire import PDU, DecodeError, EncodeError, Value, read_header

_ENCODER = pdu_encoding.PDUEncoder()
_DECODER = pdu_encoding.PDUEncoder()
# Conversions build library values from wire bytes; they get their own option
# encoder so that its remembered TLV length never leaks into a real encode.
_CONVERTOPTIONS = pdu_encoding.OptionEncoder()

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
        _CONVERTOPTIONS.length = len(wire)
    return encoder.decode(io.BytesIO(wire))


def _plain_value(encoder: Any, kind: str, value: Any) -> Value:
    if value is None:
        return 0 if kind == _INT else b""
    return _from_wire(kind, encoder.encode(value))


_MANDATORY: dict[str, list[tuple[str, Any, str, int]]] = {}
OPTIONS: dict[str, tuple[Any, Any, str, int]] = {
    tag.name: (tag, enc, *_kind(enc)) for tag, enc in _CONVERTOPTIONS.options.items()
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


def library_encode(pdu: PDU) -> bytes:
    """A PDU's wire bytes through smpp.pdu: the reference the lean path is checked against."""
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
        with quiet():
            for name, encoder, kind, size in _mandatory(pdu.command):
                value = pdu.params.get(name)
                if value is None:
                    value = 0 if kind == _INT else b""
                lib.params[name] = _library_value(encoder, kind, size, value, False)
            for name, value in pdu.params.items():
                if name in known:
                    continue
                if name not in OPTIONS or name not in klass.optionalParams:
                    raise EncodeError(f"{pdu.command} cannot carry {name}")
                _tag, encoder, kind, size = OPTIONS[name]
                lib.params[name] = _library_value(encoder, kind, size, value, True)
            data = _ENCODER.encode(lib)
    except EncodeError:
        raise
    except Exception as e:
        raise EncodeError(f"cannot encode {pdu.command}: {e}") from e
    if pdu.command_status != 0 and _library_status(pdu.command_status).name == "ESME_RUNKNOWNERR":
        data = data[:8] + pdu.command_status.to_bytes(4, "big") + data[12:]
    return data


def library_decode(frame: bytes) -> PDU:
    """The PDU in one whole frame, through smpp.pdu: the reference the lean path is checked against."""
    frame = bytes(frame)
    command, command_id, status, sequence = read_header(frame)
    try:
        with quiet():
            lib = _DECODER.decode(io.BytesIO(frame))
            params: dict[str, Value] = {}
            for name, encoder, kind, _size in _mandatory(command):
                if name in lib.params:
                    params[name] = _plain_value(encoder, kind, lib.params[name])
            for name, value in lib.params.items():
                option = OPTIONS.get(name)
                if option is not None and name not in params:
                    # The octet-string encoders check their value against the
                    # length last set by _library_value; here no length applies.
                    _CONVERTOPTIONS.length = None
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
