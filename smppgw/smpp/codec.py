"""
The codec: the seam between smppgw and the SMPP library, smpp.pdu.

The rest of smppgw sees a plain `PDU` (a command name, a status, a sequence
number and a dict of ints and bytes) and two functions, `encode` and `decode`,
plus a `Framer` that cuts a byte stream into whole PDUs (`smppgw.smpp.wire`).
A request can also be encoded once ahead of time (`prepare`) and sent later as
a `PreparedPDU`: the queue does so with each part of a message when it accepts
it.  Keeping the library behind this seam lets it be replaced without
touching the session.

Two paths do the work: the lean path (`smppgw.smpp.leanpath`) writes and
reads the PDUs every message needs, directly, and leaves whatever it does not
fully understand to the library path (`smppgw.smpp.libpath`), the only one
that hands PDUs to smpp.pdu.
"""

from __future__ import annotations

from typing import Any

from smppgw.smpp.constants import COMMAND_NAMES, RESPONSE_BIT
from smppgw.smpp.leanpath import Defer, lean_decode, lean_encode, prepared_submit_sm
from smppgw.smpp.libpath import library_decode, library_encode
from smppgw.smpp.wire import (
    HEADER,
    HEADER_LEN,
    MAX_PDU_LEN,
    PDU,
    DecodeError,
    EncodeError,
    FrameError,
    Framer,
    Value,
    peek_header,
)

__all__ = [
    "HEADER", "HEADER_LEN", "MAX_PDU_LEN", "PDU", "DecodeError", "EncodeError", "FrameError",
    "Framer", "PreparedPDU", "Value", "decode", "encode", "peek_header", "prepare",
    "prepared_submit_sm", "request", "response_to", "split_prepared",
]


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
        return lean_encode(pdu)
    except Defer:
        return library_encode(pdu)


def decode(frame: bytes) -> PDU:
    """The PDU in one whole frame (as cut by `Framer`).  Raises `DecodeError`."""
    try:
        return lean_decode(frame)
    except Defer as defer:
        return library_decode(defer.frame if defer.frame is not None else frame)


def request(command: str, **params: Value) -> PDU:
    """A request PDU with sequence number 0 (the session numbers it)."""
    return PDU(command, 0, 0, dict(params))


def response_to(pdu: PDU, status: int = 0, **params: Value) -> PDU:
    """The *_resp of `pdu` with the same sequence number."""
    return PDU(COMMAND_NAMES[pdu.command_id | RESPONSE_BIT], pdu.sequence_number, status, dict(params))
