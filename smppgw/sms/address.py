"""IM addresses and SMPP addresses: parse recipients, compose senders.

Recipients come from the host as ``number@smpp``, ``number@name._smpp`` or
``number@telnum``; senders are composed from a server's ``sender`` pattern and the IM
sender's address, following the reference module's Sender rules; inbound phone
numbers turn back into ``number@smpp`` / ``number@name._smpp`` so a reply routes through
the same SMSC, with the same type of number.

A *number* is written in one of two forms, the same both ways:

- ``+E164`` (``+31612345678``): an international number, sent as TON 1 / NPI 1.
- digits with optional ``;ton=N`` and ``;npi=N`` (``0612345678;ton=2``,
  ``12345;ton=3;npi=0``): sent as they are, with that TON (0 when not given) and
  NPI (1 when not given), so that a number the SMSC gave as national or as a
  short code goes back exactly as it came.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from smppgw.config import SMPP_NPI_VALUES
from smppgw.errors import BadAddressError

# SMPP TON / NPI values (SMPP 3.4 section 5.2.5 and 5.2.6).
TON_UNKNOWN = 0
TON_INTERNATIONAL = 1
TON_NATIONAL = 2
TON_ALPHANUMERIC = 5
TON_MAX = 6  # abbreviated, the last TON SMPP 3.4 defines
NPI_UNKNOWN = 0
NPI_ISDN = 1

# source_addr and destination_addr are C-Octet Strings of at most 21 octets, the last
# being the NUL.
MAX_SOURCE_ADDR = 20
MAX_DESTINATION_ADDR = 20

_E164_DIGITS = re.compile(r"[0-9]{1,15}")
_DIGITS = re.compile(r"[0-9]+")
_PRINTABLE_ASCII = re.compile(r"[\x20-\x7e]+")
_PARAMETER_VALUE = re.compile(r"[0-9]{1,2}")
_NAMED_SUFFIX = "._smpp"


class BadAddress(BadAddressError):
    """An address that cannot be used, with the reason: the host gets it as ``BAD_ADDRESS``."""


@dataclass(frozen=True)
class Recipient:
    """A parsed recipient address."""

    number: str
    """The digits, without a "+"."""
    kind: str
    """``smpp``, ``named`` or ``telnum``: which domain form the address used."""
    server: str | None = None
    """The server name, as written, for ``named``; None otherwise."""
    ton: int = TON_INTERNATIONAL
    """The dest_addr_ton the number goes out with."""
    npi: int = NPI_ISDN
    """The dest_addr_npi the number goes out with."""


@dataclass(frozen=True)
class SmppAddress:
    """An address as SMPP carries it."""

    addr: str
    ton: int
    npi: int


def _parameters(parameters: list[str], shown: str) -> tuple[int | None, int | None]:
    """The TON and NPI that ``;ton=N`` / ``;npi=N`` parameters give, None where not given."""
    values: dict[str, int] = {}
    for parameter in parameters:
        name, equals, value = parameter.partition("=")
        name = name.lower()
        if name not in ("ton", "npi") or not equals or name in values:
            raise BadAddress(
                f"{shown!r}: {';' + parameter!r} is not allowed; a number takes ;ton=N and"
                " ;npi=N, each at most once"
            )
        if not _PARAMETER_VALUE.fullmatch(value):
            raise BadAddress(f"{shown!r}: {name} must be a number, not {value!r}")
        values[name] = int(value)
    ton, npi = values.get("ton"), values.get("npi")
    if ton == TON_ALPHANUMERIC:
        raise BadAddress(f"{shown!r}: an alphanumeric sender (TON 5) cannot be sent an SMS")
    if ton is not None and ton > TON_MAX:
        raise BadAddress(f"{shown!r}: ton {ton} is not an SMPP 3.4 TON; use 0 to 4 or 6")
    if npi is not None and npi not in SMPP_NPI_VALUES:
        raise BadAddress(
            f"{shown!r}: npi {npi} is not an SMPP 3.4 NPI; use one of "
            + ", ".join(str(value) for value in SMPP_NPI_VALUES)
        )
    return ton, npi


def parse_number(number: str, address: str | None = None) -> SmppAddress:
    """The SMPP address of a number in its IM form (see the module docstring).

    ``address`` is the whole address, shown in the error when there is one.
    """
    shown = number if address is None else address
    written, *parameters = number.split(";")
    ton, npi = _parameters(parameters, shown)
    if written.startswith("+"):
        digits = written[1:]
        if parameters:
            raise BadAddress(
                f"{shown!r}: a '+' number is international (TON 1, NPI 1) and takes no ;ton="
                " or ;npi=; write the digits without '+' to give them"
            )
        if not _E164_DIGITS.fullmatch(digits):
            raise BadAddress(f"{shown!r}: an E.164 number is '+' and 1 to 15 digits")
        return SmppAddress(digits, TON_INTERNATIONAL, NPI_ISDN)
    if not _DIGITS.fullmatch(written) or len(written) > MAX_DESTINATION_ADDR:
        raise BadAddress(
            f"{shown!r}: {written!r} is not a phone number (a name cannot be sent an SMS);"
            f" use '+' and 1 to 15 digits (E.164), or 1 to {MAX_DESTINATION_ADDR} digits"
            " with optional ;ton=N;npi=N"
        )
    return SmppAddress(
        written, TON_UNKNOWN if ton is None else ton, NPI_ISDN if npi is None else npi
    )


def parse_recipient(address: str) -> Recipient:
    """Parse ``number@smpp``, ``number@name._smpp`` or ``number@telnum``.

    Domains match case-insensitively; a server name keeps its case as written (the
    router matches it exactly first, then case-insensitively).
    """
    number, at, domain = address.rpartition("@")
    if not at:
        raise BadAddress(f"{address!r}: expected +number@smpp, +number@name._smpp or @telnum")
    target = parse_number(number, address)
    folded = domain.lower()
    if folded == "smpp":
        return Recipient(target.addr, "smpp", None, target.ton, target.npi)
    if folded == "telnum":
        return Recipient(target.addr, "telnum", None, target.ton, target.npi)
    if folded.endswith(_NAMED_SUFFIX):
        server = domain[: -len(_NAMED_SUFFIX)]
        return Recipient(target.addr, "named", server, target.ton, target.npi)
    raise BadAddress(
        f"{address!r}: domain {domain!r} is not smpp, telnum or a server name with ._smpp"
    )


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


def inbound_number(
    addr: str, ton: int, npi: int, *, country_code: str = "", national_prefix: str = "0"
) -> str:
    """The IM form of an address an SMSC sent (the part before "@"), so that a reply
    goes back as it came.

    An international number (TON 1, or any number the SMSC wrote with "+") is
    ``+E164``. A national one (TON 2) is ``+E164`` too when ``country_code`` is set:
    the ``national_prefix`` it starts with (if any) gives way to the country code. Any
    other number is its digits with the TON and NPI it came with, as ``;ton=N`` (when
    not 0) and ``;npi=N`` (when not 1). Anything else, an alphanumeric sender
    included, keeps its text, blanks, ";" and "@" made "_" (and ``;ton=5`` added if
    it would read as a number), which no SMS can be sent to.
    """
    if ton != TON_ALPHANUMERIC:
        plus = addr.startswith("+")
        digits = addr[1:] if plus else addr
        if _DIGITS.fullmatch(digits) and len(digits) <= MAX_DESTINATION_ADDR:
            if (plus or ton == TON_INTERNATIONAL) and _E164_DIGITS.fullmatch(digits):
                return "+" + digits
            if ton == TON_NATIONAL and country_code and not plus:
                significant = digits
                if national_prefix and digits.startswith(national_prefix):
                    significant = digits[len(national_prefix):]
                if significant and _E164_DIGITS.fullmatch(country_code + significant):
                    return "+" + country_code + significant
            if not plus:
                return (
                    digits
                    + (f";ton={ton}" if ton != TON_UNKNOWN else "")
                    + (f";npi={npi}" if npi != NPI_ISDN else "")
                )
    name = "".join(c if "!" <= c <= "~" and c not in "@;" else "_" for c in addr) or "unknown"
    try:
        parse_number(name)
    except BadAddress:
        return name
    return name + f";ton={TON_ALPHANUMERIC}"


def number_key(number: str) -> str | None:
    """``+digits`` for a number in its IM form (the key its dialog bindings go by), else None."""
    try:
        return "+" + parse_number(number).addr
    except BadAddress:
        return None


def phone_address(number: str, server: str) -> str:
    """The IM address of a phone seen on ``server``, so that replies route back there.

    ``number`` is its IM form (see `inbound_number`); the address is ``number@smpp`` for
    the empty-named server, else ``number@server._smpp``.
    """
    if server == "":
        return f"{number}@smpp"
    return f"{number}@{server}{_NAMED_SUFFIX}"
