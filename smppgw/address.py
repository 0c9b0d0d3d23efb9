"""IM addresses and SMPP addresses: parse recipients, compose senders.

Recipients come from the host as ``+E164@smpp``, ``+E164@name._smpp`` or
``+E164@telnum``; senders are composed from a server's ``sender`` pattern and the IM
sender's address, following the reference module's Sender rules; inbound phone
numbers turn back into ``+E164@smpp`` / ``+E164@name._smpp`` so a reply routes through
the same SMSC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

# SMPP TON / NPI values (SMPP 3.4 section 5.2.5 and 5.2.6).
TON_UNKNOWN = 0
TON_INTERNATIONAL = 1
TON_ALPHANUMERIC = 5
NPI_UNKNOWN = 0
NPI_ISDN = 1

# source_addr is a C-Octet String of at most 21 octets, the last being the NUL.
MAX_SOURCE_ADDR = 20

_E164_DIGITS = re.compile(r"[0-9]{1,15}")
_DIGITS = re.compile(r"[0-9]+")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")
_NAMED_SUFFIX = "._smpp"


class BadAddress(Exception):
    """An address that cannot be used, with the reason."""


@dataclass(frozen=True)
class Recipient:
    """A parsed recipient address."""

    number: str
    """The E.164 digits, without the "+"."""
    kind: str
    """``smpp``, ``named`` or ``telnum``: which domain form the address used."""
    server: str | None = None
    """The server name, as written, for ``named``; None otherwise."""


@dataclass(frozen=True)
class SmppAddress:
    """An address as SMPP carries it."""

    addr: str
    ton: int
    npi: int


def _e164_digits(number: str, address: str) -> str:
    """The digits of a "+"-led E.164 number, or BadAddress saying what is wrong."""
    if not number.startswith("+"):
        raise BadAddress(f"{address!r}: the number must start with '+' (E.164)")
    digits = number[1:]
    if not _E164_DIGITS.fullmatch(digits):
        raise BadAddress(f"{address!r}: an E.164 number is '+' and 1 to 15 digits")
    return digits


def parse_recipient(address: str) -> Recipient:
    """Parse ``+E164@smpp``, ``+E164@name._smpp`` or ``+E164@telnum``.

    Domains match case-insensitively; a server name keeps its case as written (the
    router matches it exactly first, then case-insensitively).
    """
    number, at, domain = address.rpartition("@")
    if not at:
        raise BadAddress(f"{address!r}: expected +number@smpp, +number@name._smpp or @telnum")
    digits = _e164_digits(number, address)
    folded = domain.lower()
    if folded == "smpp":
        return Recipient(digits, "smpp")
    if folded == "telnum":
        return Recipient(digits, "telnum")
    if folded.endswith(_NAMED_SUFFIX):
        return Recipient(digits, "named", domain[: -len(_NAMED_SUFFIX)])
    raise BadAddress(
        f"{address!r}: domain {domain!r} is not smpp, telnum or a server name with ._smpp"
    )


def destination(number: str) -> SmppAddress:
    """The SMPP destination for an E.164 number, given with or without its "+"."""
    digits = number[1:] if number.startswith("+") else number
    if not _E164_DIGITS.fullmatch(digits):
        raise BadAddress(f"{number!r}: an E.164 number is 1 to 15 digits")
    return SmppAddress(digits, TON_INTERNATIONAL, NPI_ISDN)


def _sender_substitute(im_sender: str) -> str:
    """What a "*" in the sender pattern stands for, given the IM sender's address."""
    local, at, domain = im_sender.rpartition("@")
    if at:
        folded = domain.lower()
        if folded == "telnum":
            return local  # "+number": keeps its "+", so it goes out international
        if folded == "null":
            return local
    return im_sender


@lru_cache(maxsize=1024)
def compose_sender(
    pattern: str,
    im_sender: str,
    source_ton: int | None = None,
    source_npi: int | None = None,
) -> SmppAddress:
    """The SMPP source address for a message, from a server's ``sender`` pattern.

    An empty pattern means "*"; each "*" becomes the IM sender's address
    (``+number@telnum`` gives ``+number``, ``userName@null`` gives ``userName``).
    A result led by "+" goes out international (TON 1, NPI 1) without its "+"; an
    all-digit result goes out local (TON 0, NPI 1); anything else is alphanumeric
    (TON 5, NPI 0). The reference module calls any digit-led result local; here a
    digit-led name such as ``1and1`` is alphanumeric, as the SMSC would otherwise
    reject it as a malformed number. ``source_ton`` / ``source_npi`` override.

    SMPP allows 20 characters; GSM shows only 11 of an alphanumeric sender, but
    longer ones are passed on untouched, since some SMSCs map them. Nothing is ever
    truncated: an address over 20 characters is a BadAddress.
    """
    composed = (pattern or "*").replace("*", _sender_substitute(im_sender))
    if composed.startswith("+"):
        addr = composed[1:]
        if not _DIGITS.fullmatch(addr):
            raise BadAddress(f"sender {composed!r}: after '+' only digits may follow")
        ton, npi = TON_INTERNATIONAL, NPI_ISDN
    elif _DIGITS.fullmatch(composed):
        addr = composed
        ton, npi = TON_UNKNOWN, NPI_ISDN
    elif not composed:
        raise BadAddress("sender is empty: the pattern and the IM sender give no address")
    elif not _PRINTABLE_ASCII.fullmatch(composed):
        raise BadAddress(f"sender {composed!r}: SMPP sender names are printable ASCII only")
    else:
        addr = composed
        ton, npi = TON_ALPHANUMERIC, NPI_UNKNOWN
    if len(addr) > MAX_SOURCE_ADDR:
        raise BadAddress(
            f"sender {addr!r} has {len(addr)} characters, over the SMPP limit of {MAX_SOURCE_ADDR}"
        )
    return SmppAddress(
        addr,
        ton if source_ton is None else source_ton,
        npi if source_npi is None else source_npi,
    )


def phone_address(number: str, server: str) -> str:
    """The IM address of a phone seen on ``server``, so that replies route back there.

    ``+E164@smpp`` for the empty-named server, else ``+E164@server._smpp``.
    """
    digits = number[1:] if number.startswith("+") else number
    if not _E164_DIGITS.fullmatch(digits):
        raise BadAddress(f"{number!r}: an E.164 number is 1 to 15 digits")
    if server == "":
        return f"+{digits}@smpp"
    return f"+{digits}@{server}{_NAMED_SUFFIX}"
