"""
From a request's text to its parts' submit_sm PDUs: the sender, the dialog prefix,
the text encoding and splitting, the concatenation reference.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import TYPE_CHECKING

from smppgw.errors import (
    BadRequest,
    TooLongError,
)
from smppgw.smpp.codec import PDU, EncodeError, prepare, prepared_submit_sm
from smppgw.sms import address, textcodec

if TYPE_CHECKING:
    from smppgw.config import ServerConfig
    from smppgw.relay.dialogs import DialogTable
    from smppgw.sms.address import Recipient

#: Text beyond this many characters cannot fit in 255 parts of any coding:
#: refuse it before encoding anything (a 10 MB body costs nothing).
MAX_TEXT_CHARS = 255 * 160
#: Destinations whose concatenation reference is remembered.
MAX_REFERENCES = 100_000


def submit_sm(source_ton: int, source_npi: int, source: str, destination: str,
              registered_delivery: int, data_coding: int, esm_class: int, short_message: bytes,
              tlvs: Iterable[tuple[str, int | bytes]] = (), dest_ton: int = 1,
              dest_npi: int = 1) -> PDU:
    """One part's submit_sm; the destination is international (TON 1, NPI 1) unless given."""
    params: dict[str, int | bytes] = {
        "source_addr_ton": source_ton,
        "source_addr_npi": source_npi,
        "source_addr": source.encode("ascii"),
        "dest_addr_ton": dest_ton,
        "dest_addr_npi": dest_npi,
        "destination_addr": destination.encode("ascii"),
        "esm_class": esm_class,
        "registered_delivery": registered_delivery,
        "data_coding": data_coding,
        "short_message": short_message,
    }
    params.update(tlvs)
    return PDU("submit_sm", params=params)


class Composer:
    """Builds the parts of a request for a server; remembers concatenation references per phone."""

    def __init__(self) -> None:
        self._references: dict[str, int] = {}
        self._rng = random.Random()

    def parts(self, server: ServerConfig, target: Recipient, sender: str, body: str,
              dialogs: DialogTable | None) -> tuple[bytes, int]:
        """The submit_sm PDUs of `body` from IM `sender` to `target` through `server`,
        encoded back to back, and their count; raises the `SignalError` that refuses it."""
        source = address.compose_sender(server.sender, sender, server.source_ton,
                                        server.source_npi)
        if len(body) > MAX_TEXT_CHARS:
            raise TooLongError(f"body of {len(body)} characters cannot fit in {server.max_parts} parts")
        text = body
        if server.dialogs and dialogs is not None:
            text = dialogs.outgoing_prefix("+" + target.number, sender) + body
        try:
            encoded = textcodec.encode_message(text, server.encoding, server.long_messages,
                                               server.max_parts,
                                               default_alphabet=server.default_alphabet)
            if len(encoded.parts) > 1:
                # Only split messages need a concatenation reference.
                encoded = textcodec.encode_message(
                    text, server.encoding, server.long_messages, server.max_parts,
                    self._reference(target.number, server.long_messages),
                    server.default_alphabet)
        except (ValueError, textcodec.UnencodableText) as e:
            raise BadRequest(f"body cannot be encoded: {e}") from None
        registered_delivery = 1 if server.registered_delivery else 0
        frames = []
        try:
            source_addr = source.addr.encode("ascii")
            destination = target.number.encode("ascii")
            for part in encoded.parts:
                frame = None if part.tlvs else prepared_submit_sm(
                    source.ton, source.npi, source_addr, target.ton, target.npi, destination,
                    part.esm_class, registered_delivery, encoded.data_coding,
                    part.short_message)
                if frame is None:
                    frame = prepare(submit_sm(
                        source.ton, source.npi, source.addr, target.number, registered_delivery,
                        encoded.data_coding, part.esm_class, part.short_message, part.tlvs,
                        target.ton, target.npi))
                frames.append(frame)
        except (EncodeError, UnicodeEncodeError) as e:
            raise BadRequest(f"cannot submit: {e}") from None
        return b"".join(frames), len(frames)

    def _reference(self, number: str, long_messages: str) -> int:
        modulus = 0x10000 if long_messages == "sar" else 0x100
        if len(self._references) > MAX_REFERENCES:
            # References only need to differ between messages in flight to
            # one phone; forgetting old ones keeps the table bounded.
            self._references.clear()
        current = self._references.get(number)
        if current is None:
            current = self._rng.randrange(modulus)
        current = (current + 1) % modulus
        self._references[number] = current
        return current

