"""
The codec adapter: the only module that imports smpp.pdu.

The rest of smppgw sees a plain `PDU` (a command name, a status, a sequence
number and a dict of ints and bytes) and two functions, `encode` and `decode`,
plus a `Framer` that cuts a byte stream into whole PDUs.  Keeping the library
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
"""

from __future__ import annotations

import contextlib
import io
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from smpp.pdu import operations, pdu_encoding, pdu_types

from .constants import (
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
#: Largest PDU accepted on the wire.  SMPP 3.4 sets no limit; 64 KiB holds a
#: full message_payload (which has a 16-bit length) with room to spare.
MAX_PDU_LEN = 64 * 1024

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


def encode(pdu: PDU) -> bytes:
    """The wire bytes of `pdu`.  Raises `EncodeError` for values the PDU cannot carry."""
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


def decode(frame: bytes) -> PDU:
    """The PDU in one whole frame (as cut by `Framer`).  Raises `DecodeError`."""
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


def request(command: str, **params: Value) -> PDU:
    """A request PDU with sequence number 0 (the session numbers it)."""
    return PDU(command, 0, 0, dict(params))


def response_to(pdu: PDU, status: int = 0, **params: Value) -> PDU:
    """The *_resp of `pdu` with the same sequence number."""
    return PDU(COMMAND_NAMES[pdu.command_id | RESPONSE_BIT], pdu.sequence_number, status, dict(params))


#: Encoders that tests and benchmarks may swap for speed comparisons.
Encoder = Callable[[PDU], bytes]
