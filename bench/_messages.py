"""The benchmark's traffic: which text message number `i` carries, for each mix.

Shared by the AMP load generator (`_host.py`) and the raw SMPP sender
(`_raw_sender.py`) so both put the same bytes on the wire.  Every body fills
exactly one SMS part: 160 GSM 03.38 characters (no escaped characters, which
would count twice), or 70 UCS2 characters (Cyrillic, which GSM cannot carry).
"""

from __future__ import annotations

MIXES = ("gsm160", "ucs2-70", "mixed")

GSM_CHARS = 160
UCS2_CHARS = 70

_GSM_FILLER = (
    "The quick brown fox jumps over the lazy dog while the gateway relays this "
    "benchmark text to the SMSC simulator; every character here is in the GSM basic set. "
) * 3
_UCS2_FILLER = (
    "Съешь же ещё этих мягких французских булок да выпей чаю, "
    "это проверка шлюза в кодировке UCS2. "
) * 3


def is_ucs2(i: int, mix: str) -> bool:
    """Whether message `i` of `mix` is the 70-character UCS2 text (else the 160-character GSM one)."""
    if mix == "gsm160":
        return False
    if mix == "ucs2-70":
        return True
    if mix == "mixed":
        return i % 2 == 1
    raise ValueError(f"mix must be one of {', '.join(MIXES)}, not {mix!r}")


def body(i: int, mix: str) -> str:
    """The text of message `i`: numbered, so that no two bodies are alike."""
    prefix = f"{i:07d} "
    if is_ucs2(i, mix):
        return prefix + _UCS2_FILLER[: UCS2_CHARS - len(prefix)]
    return prefix + _GSM_FILLER[: GSM_CHARS - len(prefix)]


def number(i: int) -> str:
    """The destination number of message `i`, in international form without the "+"."""
    return f"1555{i % 10_000_000:07d}"
