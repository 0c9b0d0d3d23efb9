"""
Cutting AMP boxes out of a host's byte stream: a parser with `BoxParser.feed`.

The wire format is AMP's own (a key and a value, each after a two-byte
length, up to an empty key), read without Twisted's per-string state machine,
which costs more than anything else a SendSignal needs.  What this buys:

- Speed: a read holding whole boxes is cut in one pass over the bytes as
  they came, with no copy; each box is a plain dict (``AmpBox``'s constructor
  costs more than the parsing).
- Work linear in the bytes received: the pairs of an unfinished box are kept
  between reads, and of the pair still arriving only its bytes are held, so a
  box sent a byte at a time is not read again from its start on every read.
- A bounded box: `limit` caps what one unfinished box may hold (its bytes,
  plus `PAIR_COST` per key for the memory each costs), checked as soon as a
  pair's header says how long it will be.
"""

from __future__ import annotations

from collections.abc import Callable

#: AMP's longest key.
MAX_KEY_LENGTH = 255
#: What one key of an unfinished box is counted for, besides its bytes: about
#: what a key and its value cost in memory as two bytes objects in a dict.
PAIR_COST = 64


class KeyTooLong(Exception):
    """A key length over AMP's 255 bytes: the stream is not AMP."""

    def __init__(self, length: int) -> None:
        super().__init__(length)
        self.length = length


class BoxTooLarge(Exception):
    """An unfinished box would hold more than the parser's limit."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(size, limit)
        self.size = size
        self.limit = limit


class BoxParser:
    """
    Boxes from a byte stream fed in pieces of any size.

    ``receiver(box)`` is called with each whole box, as a dict of bytes to
    bytes, and returns whether to go on: False stops this feed (its
    connection is closing) and the rest of the bytes fed are dropped.
    `feed` raises `KeyTooLong` or `BoxTooLarge` for a stream to give up on.
    """

    __slots__ = ("receiver", "limit", "_box", "_box_bytes", "_pending", "_need")

    def __init__(self, receiver: Callable[[dict[bytes, bytes]], bool], limit: int) -> None:
        self.receiver = receiver
        #: The most an unfinished box may hold (it may change between feeds).
        self.limit = limit
        #: The unfinished box's whole pairs, and their bytes on the wire.
        self._box: dict[bytes, bytes] = {}
        self._box_bytes = 0
        #: The bytes of the pair still arriving, and how many it takes to go
        #: on (its whole length once its header is in).
        self._pending = bytearray()
        self._need = 2

    def feed(self, data: bytes) -> None:
        pending = self._pending
        if len(pending) + len(data) < self._need:
            pending += data
            return
        if pending:
            buf = b"".join((pending, data))
            pending.clear()
        else:
            buf = data
        box = self._box
        box_bytes = self._box_bytes
        box_start = 0
        pos = 0
        end = len(buf)
        receiver = self.receiver
        while True:
            if pos + 2 > end:
                need = 2
                break
            key_length = (buf[pos] << 8) | buf[pos + 1]
            if key_length == 0:
                pos += 2
                self._box = {}
                self._box_bytes = 0
                if not receiver(box):
                    return
                box = {}
                box_bytes = 0
                box_start = pos
                continue
            if key_length > MAX_KEY_LENGTH:
                raise KeyTooLong(key_length)
            key_end = pos + 2 + key_length
            if key_end + 2 > end:
                need = key_length + 4
                break
            value_end = key_end + 2 + ((buf[key_end] << 8) | buf[key_end + 1])
            if value_end > end:
                need = value_end - pos
                break
            box[buf[pos + 2 : key_end]] = buf[key_end + 2 : value_end]
            pos = value_end
        box_bytes += pos - box_start
        size = box_bytes + len(box) * PAIR_COST + (need if pos < end else 0)
        if size > self.limit:
            raise BoxTooLarge(size, self.limit)
        self._box = box
        self._box_bytes = box_bytes
        self._need = need
        if pos < end:
            pending += memoryview(buf)[pos:]
