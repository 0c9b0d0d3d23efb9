"""Alphabets on the SMPP wire: the data_coding values, GSM 03.38 and the SMSC's
default alphabet, and single pieces of text encoded and decoded.

Messages (choosing, splitting into parts) are `smppgw.sms.textcodec`; reading the
concatenation of inbound parts is `smppgw.sms.concat`.

SMPP 3.4 leaves data_coding 0 to the SMSC ("SMSC default alphabet"): many read it as
GSM 03.38 (``@`` = 0x00), others as ASCII/IA5 or Latin-1 (``@`` = 0x40). The functions
here take that alphabet as ``default_alphabet`` (one of `DEFAULT_ALPHABETS`, GSM unless
told otherwise); it applies to data_coding 0 only, and leaves the sizes as they are.

The GSM 03.38 tables come from the ``gsm0338`` package; this module only derives
per-character lookups from it, so that a message can be cut between characters.
"""

from __future__ import annotations

import codecs

import gsm0338  # noqa: F401  (importing it registers the "gsm03.38" codec)

from smppgw.errors import TooLongError

DC_GSM = 0x00
DC_ASCII = 0x01
DC_LATIN1 = 0x03
DC_BINARY = 0x04
DC_UCS2 = 0x08

# Extra SMPP 3.4 data_coding values that Python can decode without any work.
_DC_CYRILLIC = 0x06
_DC_LATIN_HEBREW = 0x07

_PREFERRED_CODINGS = {"gsm": DC_GSM, "ascii": DC_ASCII, "latin-1": DC_LATIN1, "ucs2": DC_UCS2}
#: What data_coding 0 may mean on a link: the alphabets an SMSC uses for it.
DEFAULT_ALPHABETS = ("gsm", "ascii", "latin-1")
_LONG_MESSAGE_STYLES = ("udh", "sar", "payload")

_UDHI = 0x40
_IEI_CONCAT_8BIT = 0x00
_IEI_CONCAT_16BIT = 0x08
_ESCAPE = 0x1B
# "@" in GSM 03.38 (0x00) and in ASCII / Latin-1 (0x40).
_AT_OCTETS = (0x00, 0x40)
# ASCII "@", "$" and "_", which GSM 03.38 has elsewhere; LF and CR, which both share.
_ASCII_MARKERS = frozenset(b"@$_")
_LINE_ENDS = frozenset(b"\n\r")

# Octets of user data: a whole message, and what is left of it beside a concat UDH.
# GSM counts septets, which SMPP carries one per octet, so the same numbers apply.
_SINGLE_CAPACITY = {DC_GSM: 160, DC_ASCII: 140, DC_LATIN1: 140, DC_UCS2: 140}
_PART_CAPACITY = {DC_GSM: 153, DC_ASCII: 134, DC_LATIN1: 134, DC_UCS2: 134}


class TooLong(TooLongError):
    """The text needs more SMS parts than the server allows: the host gets it as ``TOO_LONG``."""

    def __init__(self, parts_needed: int, max_parts: int) -> None:
        super().__init__(f"text needs {parts_needed} SMS parts, more than the {max_parts} allowed")
        self.parts_needed = parts_needed
        self.max_parts = max_parts


class UndecodableText(Exception):
    """Inbound bytes that cannot be read as text (binary data, bad length, bad UDH)."""


class UnencodableText(ValueError):
    """``encode_text`` was asked for a data_coding that cannot carry the text."""



def _gsm_tables() -> tuple[dict[int, str], dict[int, str], dict[str, bytes]]:
    """Derive per-character GSM 03.38 lookups from the gsm0338 codec."""
    basic: dict[int, str] = {}
    extension: dict[int, str] = {}
    for code in range(0x80):
        if code == _ESCAPE:
            continue
        basic[code] = codecs.decode(bytes([code]), "gsm03.38")
        try:
            extension[code] = codecs.decode(bytes([_ESCAPE, code]), "gsm03.38")
        except UnicodeDecodeError:
            pass
    encode = {char: bytes([code]) for code, char in basic.items()}
    encode.update({char: bytes([_ESCAPE, code]) for code, char in extension.items()})
    # The codec maps U+001B to 0x1B, but a bare 0x1B is the escape prefix and the phone
    # would join it to the next character; such text is not GSM-encodable.
    encode.pop("\x1b", None)
    return basic, extension, encode


_GSM_BASIC, _GSM_EXTENSION, _GSM_ENCODE = _gsm_tables()
# C-speed forms of the same table: the set of encodable characters, and a
# str.translate table writing each character as its octets (as Latin-1 code
# points, so that one .encode("latin-1") gives the bytes).
_GSM_CHARSET = frozenset(_GSM_ENCODE)
_GSM_TRANSLATE = {ord(char): encoded.decode("latin-1") for char, encoded in _GSM_ENCODE.items()}


def _checked_alphabet(default_alphabet: str) -> str:
    if default_alphabet not in DEFAULT_ALPHABETS:
        raise ValueError(
            f"unknown default alphabet {default_alphabet!r};"
            f" expected one of {', '.join(DEFAULT_ALPHABETS)}"
        )
    return default_alphabet


def _charset(data_coding: int, default_alphabet: str) -> str:
    """The alphabet whose bytes a text data_coding carries: data_coding 0 as the link says."""
    if data_coding == DC_GSM:
        return _checked_alphabet(default_alphabet)
    return {DC_ASCII: "ascii", DC_LATIN1: "latin-1"}.get(data_coding, "ucs2")


def _fits(text: str, charset: str) -> bool:
    """Whether every character of ``text`` has a code in ``charset``."""
    if charset == "gsm":
        return _GSM_CHARSET.issuperset(text)
    if charset == "ascii":
        return text.isascii()
    if charset == "latin-1":
        return not text or max(text) <= "\xff"
    return True


def _encode_whole(text: str, data_coding: int, default_alphabet: str = "gsm") -> bytes:
    """``text`` encoded in one go (the caller has checked that the coding can carry it)."""
    charset = _charset(data_coding, default_alphabet)
    if charset == "gsm":
        return text.translate(_GSM_TRANSLATE).encode("latin-1")
    if charset != "ucs2":
        return text.encode(charset)
    try:
        return text.encode("utf-16-be")
    except UnicodeEncodeError as e:
        raise UnencodableText(
            f"text has a lone surrogate at position {e.start}, which UCS2 cannot carry"
        ) from None


def _utf16_atoms(text: str) -> list[bytes]:
    """UTF-16BE per code point; a surrogate pair stays one unsplittable atom."""
    try:
        return [char.encode("utf-16-be") for char in text]
    except UnicodeEncodeError as e:
        raise UnencodableText(
            f"text has a lone surrogate at position {e.start}, which UCS2 cannot carry"
        ) from None


def _atoms(text: str, data_coding: int, default_alphabet: str = "gsm") -> list[bytes]:
    """The encoded text as a list of pieces that must not be split between parts."""
    charset = _charset(data_coding, default_alphabet)
    if charset == "gsm":
        atoms = []
        for position, char in enumerate(text):
            encoded = _GSM_ENCODE.get(char)
            if encoded is None:
                raise UnencodableText(
                    f"character {char!r} at position {position} is not in the GSM 03.38 alphabet"
                )
            atoms.append(encoded)
        return atoms
    if charset in ("ascii", "latin-1"):
        try:
            return [bytes([octet]) for octet in text.encode(charset)]
        except UnicodeEncodeError as e:
            raise UnencodableText(
                f"character {text[e.start]!r} at position {e.start} is not in {charset}"
            ) from None
    if data_coding == DC_UCS2:
        return _utf16_atoms(text)
    raise UnencodableText(f"cannot encode text as data_coding 0x{data_coding:02X}")


def choose_coding(text: str, preferred: str, default_alphabet: str = "gsm") -> int:
    """The data_coding for ``text``: the preferred one if it can carry the text, else UCS2.

    ``"gsm"`` prefers data_coding 0, which carries what ``default_alphabet`` can.
    """
    try:
        coding = _PREFERRED_CODINGS[preferred]
    except KeyError:
        raise ValueError(
            f"unknown encoding {preferred!r}; expected one of {', '.join(_PREFERRED_CODINGS)}"
        ) from None
    return coding if _fits(text, _charset(coding, default_alphabet)) else DC_UCS2


def encode_text(text: str, data_coding: int, default_alphabet: str = "gsm") -> bytes:
    """``text`` encoded for ``short_message`` under ``data_coding`` (GSM unpacked)."""
    if data_coding in (DC_GSM, DC_ASCII, DC_LATIN1, DC_UCS2) and _fits(
        text, _charset(data_coding, default_alphabet)
    ):
        return _encode_whole(text, data_coding, default_alphabet)
    # Raises UnencodableText, naming the problem.
    return b"".join(_atoms(text, data_coding, default_alphabet))



def _decode_gsm(data: bytes) -> str:
    """GSM 03.38 unpacked septets to text, reading unknown escapes as 23.038 says."""
    out: list[str] = []
    position = 0
    length = len(data)
    while position < length:
        octet = data[position]
        if octet > 0x7F:
            raise UndecodableText(
                f"octet 0x{octet:02X} at position {position} is not a GSM 7-bit septet"
            )
        if octet != _ESCAPE:
            out.append(_GSM_BASIC[octet])
            position += 1
            continue
        following = data[position + 1] if position + 1 < length else None
        if following is None or following == _ESCAPE or following > 0x7F:
            # A dangling escape, or ESC ESC (reserved for a further table): 23.038 has
            # phones that do not understand an escape show it as a space.
            out.append(" ")
            position += 1
            continue
        # An escape code missing from the extension table shows as the basic character.
        out.append(_GSM_EXTENSION.get(following, _GSM_BASIC[following]))
        position += 2
    return "".join(out)


def _decode_ucs2(data: bytes) -> str:
    if len(data) % 2:
        raise UndecodableText(f"UCS2 text has an odd length of {len(data)} octets")
    # A lone surrogate becomes U+FFFD: the rest of the message is still worth reading.
    return data.decode("utf-16-be", errors="replace")


def _decode_charset(data: bytes, charset: str) -> str:
    try:
        return data.decode(charset)
    except UnicodeDecodeError as e:
        raise UndecodableText(
            f"octet 0x{data[e.start]:02X} at position {e.start} is not valid {charset}"
        ) from None


def _alphabet(data_coding: int) -> str:
    """Which alphabet a data_coding value names: gsm, ascii, latin-1, ... or binary/unknown.

    0x00-0x0F follow SMPP 3.4 section 5.2.19. Above that an SMSC usually passes the
    GSM 03.38 TP-DCS through, so the 03.38 coding groups are read for their alphabet.
    """
    smpp_values = {
        DC_GSM: "gsm",
        DC_ASCII: "ascii",
        0x02: "binary",
        DC_LATIN1: "latin-1",
        DC_BINARY: "binary",
        _DC_CYRILLIC: "iso8859-5",
        _DC_LATIN_HEBREW: "iso8859-8",
        DC_UCS2: "ucs2",
    }
    if data_coding < 0x10:
        return smpp_values.get(data_coding, "unknown")
    group = data_coding >> 4
    if group <= 0x7:
        # General data coding (00xx) and automatic deletion (01xx) groups.
        if data_coding & 0x20:
            return "compressed"
        return ("gsm", "binary", "ucs2", "unknown")[(data_coding >> 2) & 0x03]
    if group in (0xC, 0xD):
        return "gsm"  # message waiting indication, discard or store
    if group == 0xE:
        return "ucs2"  # message waiting indication, store, UCS2
    if group == 0xF:
        return "binary" if data_coding & 0x04 else "gsm"
    return "unknown"  # reserved coding groups 0x80-0xBF


def decode_text(data_coding: int, data: bytes, default_alphabet: str = "gsm") -> str:
    """The text in ``data`` (no UDH) under ``data_coding``; ``UndecodableText`` if none.

    data_coding 0 is read in ``default_alphabet``; every other value as it says.
    """
    if data_coding == DC_GSM:
        alphabet = _checked_alphabet(default_alphabet)
    else:
        alphabet = _alphabet(data_coding)
    if alphabet == "gsm":
        return _decode_gsm(data)
    if alphabet == "ucs2":
        return _decode_ucs2(data)
    if alphabet in ("ascii", "latin-1", "iso8859-5", "iso8859-8"):
        return _decode_charset(data, alphabet)
    if alphabet == "binary":
        raise UndecodableText(f"data_coding 0x{data_coding:02X} is 8-bit binary data, not text")
    if alphabet == "compressed":
        raise UndecodableText(f"data_coding 0x{data_coding:02X} is compressed text")
    raise UndecodableText(f"data_coding 0x{data_coding:02X} is not a known text encoding")


def at_signs(data_coding: int, default_alphabet: str = "gsm") -> str:
    """What an ``@`` may have become in text decoded by `decode_text`: "@" and, for
    data_coding 0, the character that the other alphabets' ``@`` reads as.

    ``@`` is 0x00 in GSM 03.38 and 0x40 in ASCII and Latin-1, so on a GSM link an
    ASCII ``@`` reads as ``¡`` (GSM 0x40) and on an ASCII link a GSM ``@`` as NUL.
    """
    if data_coding != DC_GSM:
        return "@"
    return "".join(decode_text(DC_GSM, bytes([octet]), default_alphabet) for octet in _AT_OCTETS)


def alphabet_hint(data: bytes) -> str | None:
    """The alphabet that data_coding-0 bytes read as GSM 03.38 would rather be in, or None.

    ASCII's ``@``, ``$`` and ``_`` (0x40, 0x24, 0x5F) are ``¡``, ``¤`` and ``§`` in GSM, which
    texts seldom hold, while octets below 0x20 are common GSM letters (``@`` itself,
    ``£``, ``é``...) but in ASCII only control characters; so bytes with one of the former
    and none of the latter but LF and CR look like ASCII ("latin-1" when an octet is above
    0x7F, which GSM septets never are). A hint for the log, never used to read the text.
    """
    if not _ASCII_MARKERS.intersection(data) or any(
        octet < 0x20 and octet not in _LINE_ENDS for octet in data
    ):
        return None
    return "latin-1" if any(octet > 0x7F for octet in data) else "ascii"

