"""Tests for smppgw.sms.textcodec: coding choice, golden encodings, splitting and reassembly facts."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from smppgw.sms.textcodec import (
    DC_ASCII,
    DC_GSM,
    DC_LATIN1,
    DC_UCS2,
    DEFAULT_ALPHABETS,
    Concat,
    EncodedMessage,
    Part,
    TooLong,
    UndecodableText,
    UnencodableText,
    alphabet_hint,
    at_signs,
    choose_coding,
    concat_info,
    decode_text,
    encode_message,
    encode_text,
    split_udh,
)

GSM_TEXT_CHARS = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
    "\x0c^{}\\[~]|€"
)


def udh(reference: int, total: int, sequence: int) -> bytes:
    """The 8-bit concatenation header the encoder is expected to write."""
    return bytes([0x05, 0x00, 0x03, reference, total, sequence])


class GoldenEncodingTests(SynchronousTestCase):
    """Exact bytes for known texts."""

    def test_gsm_single(self) -> None:
        """A plain GSM text is one part of unpacked septets, no UDH."""
        message = encode_message("Hello @ 1")
        self.assertEqual(
            message,
            EncodedMessage(DC_GSM, (Part(bytes.fromhex("48656c6c6f20002031"), 0x00),), 9),
        )

    def test_gsm_extension_characters(self) -> None:
        """Extension-table characters go out as ESC + code and count two septets each."""
        message = encode_message("€{^}")
        self.assertEqual(message.data_coding, DC_GSM)
        self.assertEqual(message.parts[0].short_message.hex(), "1b651b281b141b29")
        self.assertEqual(message.units, 8)

    def test_gsm_national_characters(self) -> None:
        """Basic-table accented letters map to their single GSM septets."""
        self.assertEqual(encode_text("éÇÑü", DC_GSM).hex(), "05095d7e")

    def test_160_septets_is_one_part(self) -> None:
        """160 septets still fit one SMS."""
        message = encode_message("a" * 160)
        self.assertEqual(message.parts, (Part(b"a" * 160, 0x00),))
        self.assertEqual(message.units, 160)

    def test_160_septets_with_extension_is_one_part(self) -> None:
        """158 letters and a euro sign make exactly 160 septets: still one part."""
        message = encode_message("a" * 158 + "€")
        self.assertEqual(len(message.parts), 1)
        self.assertEqual(message.units, 160)

    def test_161_septets_is_two_parts(self) -> None:
        """161 septets split into 153 + 8, each with a 05 00 03 header."""
        message = encode_message("a" * 161, reference=0x2A)
        self.assertEqual(
            message.parts,
            (
                Part(bytes.fromhex("0500032a0201") + b"a" * 153, 0x40),
                Part(bytes.fromhex("0500032a0202") + b"a" * 8, 0x40),
            ),
        )
        self.assertEqual(message.units, 161)

    def test_extension_character_pushes_over_160(self) -> None:
        """159 letters and a euro sign make 161 septets, so two parts."""
        message = encode_message("a" * 159 + "€")
        self.assertEqual(len(message.parts), 2)

    def test_two_full_parts(self) -> None:
        """306 septets fill exactly two parts of 153."""
        message = encode_message("b" * 306, reference=1)
        self.assertEqual(
            [part.short_message for part in message.parts],
            [udh(1, 2, 1) + b"b" * 153, udh(1, 2, 2) + b"b" * 153],
        )

    def test_one_septet_past_two_full_parts(self) -> None:
        """307 septets need a third part holding one septet."""
        message = encode_message("b" * 307, reference=1)
        self.assertEqual(
            [part.short_message for part in message.parts],
            [udh(1, 3, 1) + b"b" * 153, udh(1, 3, 2) + b"b" * 153, udh(1, 3, 3) + b"b"],
        )

    def test_escape_pair_never_straddles_parts(self) -> None:
        """A euro sign that would take septets 153 and 154 moves whole to the next part."""
        message = encode_message("a" * 152 + "€" + "b" * 10, reference=7)
        self.assertEqual(
            [part.short_message for part in message.parts],
            [udh(7, 2, 1) + b"a" * 152, udh(7, 2, 2) + b"\x1b\x65" + b"b" * 10],
        )

    def test_escape_pair_that_fits_stays(self) -> None:
        """A euro sign taking septets 152 and 153 stays in the first part."""
        message = encode_message("a" * 151 + "€" + "b" * 10, reference=7)
        self.assertEqual(
            [part.short_message for part in message.parts],
            [udh(7, 2, 1) + b"a" * 151 + b"\x1b\x65", udh(7, 2, 2) + b"b" * 10],
        )

    def test_ucs2_70_units_is_one_part(self) -> None:
        """70 UCS2 characters fit one SMS."""
        message = encode_message("Ж" * 70)
        self.assertEqual(message.data_coding, DC_UCS2)
        self.assertEqual(message.parts, (Part(bytes.fromhex("0416") * 70, 0x00),))
        self.assertEqual(message.units, 70)

    def test_ucs2_71_units_is_two_parts(self) -> None:
        """71 UCS2 characters split into 67 + 4."""
        message = encode_message("Ж" * 71, reference=3)
        self.assertEqual(
            [part.short_message for part in message.parts],
            [udh(3, 2, 1) + bytes.fromhex("0416") * 67, udh(3, 2, 2) + bytes.fromhex("0416") * 4],
        )

    def test_emoji_is_two_units(self) -> None:
        """An emoji is a surrogate pair: two UTF-16 units, four octets."""
        message = encode_message("hi 😀")
        self.assertEqual(message.data_coding, DC_UCS2)
        self.assertEqual(message.parts[0].short_message.hex(), "006800690020d83dde00")
        self.assertEqual(message.units, 5)

    def test_surrogate_pair_never_straddles_parts(self) -> None:
        """An emoji that would take units 67 and 68 moves whole to the next part."""
        message = encode_message("Ж" * 66 + "😀" + "Ж" * 5, reference=9)
        self.assertEqual(
            [part.short_message for part in message.parts],
            [
                udh(9, 2, 1) + bytes.fromhex("0416") * 66,
                udh(9, 2, 2) + bytes.fromhex("d83dde00") + bytes.fromhex("0416") * 5,
            ],
        )

    def test_reference_is_masked_to_8_bits(self) -> None:
        """The UDH carries only the low octet of the reference."""
        message = encode_message("a" * 200, reference=0x1234)
        self.assertEqual(message.parts[0].short_message[:6], udh(0x34, 2, 1))

    def test_latin1_preference(self) -> None:
        """With latin-1 preferred, Latin-1 text goes out as data_coding 3, one octet each."""
        message = encode_message("café ±", preferred="latin-1")
        self.assertEqual(message.data_coding, DC_LATIN1)
        self.assertEqual(message.parts[0].short_message.hex(), "636166e920b1")

    def test_latin1_splits_at_134_octets(self) -> None:
        """Latin-1 holds 140 octets in one SMS and 134 per part."""
        self.assertEqual(len(encode_message("é" * 140, preferred="latin-1").parts), 1)
        message = encode_message("é" * 141, preferred="latin-1", reference=5)
        self.assertEqual(
            [part.short_message for part in message.parts],
            [udh(5, 2, 1) + b"\xe9" * 134, udh(5, 2, 2) + b"\xe9" * 7],
        )

    def test_latin1_preference_falls_back_to_ucs2(self) -> None:
        """A euro sign is not Latin-1, so the text goes as UCS2."""
        message = encode_message("5 €", preferred="latin-1")
        self.assertEqual(message.data_coding, DC_UCS2)
        self.assertEqual(message.parts[0].short_message.hex(), "0035002020ac")

    def test_ascii_preference(self) -> None:
        """With ascii preferred, ASCII text goes as IA5, data_coding 1."""
        message = encode_message("Hi {x}", preferred="ascii")
        self.assertEqual(message.data_coding, DC_ASCII)
        self.assertEqual(message.parts[0].short_message, b"Hi {x}")

    def test_ascii_preference_falls_back_to_ucs2(self) -> None:
        """One non-ASCII letter sends the whole text as UCS2."""
        message = encode_message("héllo", preferred="ascii")
        self.assertEqual(message.data_coding, DC_UCS2)
        self.assertEqual(message.parts[0].short_message.hex(), "006800e9006c006c006f")

    def test_gsm_preference_falls_back_to_ucs2(self) -> None:
        """Cyrillic is not in GSM 03.38, so a GSM-preferring server sends UCS2."""
        message = encode_message("Привет")
        self.assertEqual(message.data_coding, DC_UCS2)
        self.assertEqual(message.parts[0].short_message.hex(), "041f04400438043204350442")

    def test_escape_character_is_not_gsm(self) -> None:
        """U+001B cannot go as GSM (it would read as an escape), so UCS2 is chosen."""
        self.assertEqual(choose_coding("a\x1bb", "gsm"), DC_UCS2)

    def test_ucs2_preference(self) -> None:
        """With ucs2 preferred even plain ASCII goes as UCS2."""
        self.assertEqual(choose_coding("abc", "ucs2"), DC_UCS2)

    def test_choose_coding_keeps_fitting_preferences(self) -> None:
        """Each preference is kept when it can carry the text."""
        self.assertEqual(
            [choose_coding("abc", name) for name in ("gsm", "ascii", "latin-1")],
            [DC_GSM, DC_ASCII, DC_LATIN1],
        )

    def test_unknown_preference(self) -> None:
        """An unknown encoding name is a ValueError naming it."""
        error = self.assertRaises(ValueError, choose_coding, "abc", "utf-8")
        self.assertIn("'utf-8'", str(error))

    def test_empty_text(self) -> None:
        """An empty text is one part with an empty short_message."""
        self.assertEqual(encode_message(""), EncodedMessage(DC_GSM, (Part(b"", 0x00),), 0))

    def test_too_long(self) -> None:
        """A text needing 11 parts when 10 are allowed raises TooLong saying both."""
        error = self.assertRaises(TooLong, encode_message, "a" * (153 * 10 + 1))
        self.assertEqual((error.parts_needed, error.max_parts), (11, 10))
        self.assertIn("11", str(error))
        self.assertIn("10", str(error))

    def test_exactly_max_parts(self) -> None:
        """A text needing exactly max_parts parts is sent."""
        self.assertEqual(len(encode_message("a" * 153 * 3, max_parts=3).parts), 3)

    def test_max_parts_one_allows_a_single_sms(self) -> None:
        """With max_parts 1, a text over one SMS is TooLong."""
        self.assertEqual(len(encode_message("a" * 160, max_parts=1).parts), 1)
        error = self.assertRaises(TooLong, encode_message, "a" * 161, max_parts=1)
        self.assertEqual(error.parts_needed, 2)

    def test_sar(self) -> None:
        """With sar, parts carry no UDH but the SAR TLVs with a 16-bit reference."""
        message = encode_message("a" * 161, long_messages="sar", reference=0x11234)
        self.assertEqual(
            message.parts,
            (
                Part(
                    b"a" * 153,
                    0x00,
                    (
                        ("sar_msg_ref_num", 0x1234),
                        ("sar_total_segments", 2),
                        ("sar_segment_seqnum", 1),
                    ),
                ),
                Part(
                    b"a" * 8,
                    0x00,
                    (
                        ("sar_msg_ref_num", 0x1234),
                        ("sar_total_segments", 2),
                        ("sar_segment_seqnum", 2),
                    ),
                ),
            ),
        )

    def test_payload(self) -> None:
        """With payload, a long text is one part whose message_payload holds it all."""
        message = encode_message("Ж" * 100, long_messages="payload")
        self.assertEqual(
            message,
            EncodedMessage(
                DC_UCS2,
                (Part(b"", 0x00, (("message_payload", bytes.fromhex("0416") * 100),)),),
                100,
            ),
        )

    def test_payload_too_long(self) -> None:
        """message_payload still refuses a text that would need more than max_parts parts."""
        error = self.assertRaises(
            TooLong, encode_message, "a" * 460, long_messages="payload", max_parts=3
        )
        self.assertEqual((error.parts_needed, error.max_parts), (4, 3))

    def test_short_text_is_plain_whatever_the_style(self) -> None:
        """A text that fits one SMS goes plain under every long-message style."""
        for style in ("udh", "sar", "payload"):
            self.assertEqual(encode_message("hi", long_messages=style).parts, (Part(b"hi", 0x00),))

    def test_bad_style_and_max_parts(self) -> None:
        """An unknown long_messages style or max_parts out of 1-255 is a ValueError."""
        self.assertRaises(ValueError, encode_message, "hi", long_messages="split")
        self.assertRaises(ValueError, encode_message, "hi", max_parts=0)
        self.assertRaises(ValueError, encode_message, "hi", max_parts=256)

    def test_encode_text_refuses_uncarried_characters(self) -> None:
        """encode_text with a coding that cannot carry a character says which."""
        error = self.assertRaises(UnencodableText, encode_text, "a€", DC_LATIN1)
        self.assertIn("'€'", str(error))
        self.assertRaises(UnencodableText, encode_text, "Ж", DC_GSM)
        self.assertRaises(UnencodableText, encode_text, "é", DC_ASCII)

    def test_lone_surrogate_is_unencodable(self) -> None:
        """A lone surrogate cannot be carried by UCS2 and gets a clear error."""
        self.assertRaises(UnencodableText, encode_message, "a\ud800b")


def part_body(part: Part) -> bytes:
    """The text bytes of one encoded part, read back the way inbound reads them."""
    tlvs = dict(part.tlvs)
    concat = concat_info(part.esm_class, part.short_message, tlvs)
    if concat is not None:
        return concat.body
    if part.short_message:
        return part.short_message
    payload = tlvs.get("message_payload", b"")
    assert isinstance(payload, bytes)
    return payload


def user_data_octets(part: Part, data_coding: int) -> int:
    """The octets a part takes in the SMS once the SMSC packs GSM septets."""
    if data_coding != DC_GSM:
        return len(part.short_message)
    septets = len(part.short_message)
    if part.esm_class & 0x40:
        header = 1 + part.short_message[0]
        # The header is octets; the septets after it start on a septet boundary.
        septets = -(-header * 8 // 7) + len(part.short_message) - header
    return -(-septets * 7 // 8)


characters = st.one_of(st.sampled_from(GSM_TEXT_CHARS), st.characters(codec="utf-8"))
# Repeating a short run reaches multi-part lengths that plain st.text rarely draws.
texts = st.one_of(
    st.text(characters, max_size=400),
    st.builds(
        lambda run, times: run * times,
        st.text(characters, min_size=1, max_size=30),
        st.integers(1, 60),
    ),
)


class RoundTripTests(SynchronousTestCase):
    """Whatever the text, the parts read back to it and each fits one SMS."""

    @settings(max_examples=300, deadline=None)
    @given(
        text=texts,
        preferred=st.sampled_from(["gsm", "ascii", "latin-1", "ucs2"]),
        style=st.sampled_from(["udh", "sar", "payload"]),
        reference=st.integers(0, 0xFFFF),
    )
    def test_round_trip(self, text: str, preferred: str, style: str, reference: int) -> None:
        """Decoding the concatenated part bodies gives back the text."""
        message = encode_message(text, preferred, style, max_parts=255, reference=reference)
        data = b"".join(part_body(part) for part in message.parts)
        self.assertEqual(decode_text(message.data_coding, data), text)

    @settings(max_examples=300, deadline=None)
    @given(text=texts, preferred=st.sampled_from(["gsm", "ascii", "latin-1", "ucs2"]))
    def test_each_part_decodes_alone(self, text: str, preferred: str) -> None:
        """No part ends inside an escape pair or a surrogate pair: each decodes on its own."""
        message = encode_message(text, preferred, "udh", max_parts=255)
        decoded = [decode_text(message.data_coding, part_body(p)) for p in message.parts]
        self.assertEqual("".join(decoded), text)

    @settings(max_examples=300, deadline=None)
    @given(text=texts, preferred=st.sampled_from(["gsm", "ascii", "latin-1", "ucs2"]))
    def test_parts_fit_one_sms(self, text: str, preferred: str) -> None:
        """Every UDH part, header included, fits the 140 octets of one SMS."""
        message = encode_message(text, preferred, "udh", max_parts=255, reference=0xAB)
        for part in message.parts:
            self.assertLessEqual(user_data_octets(part, message.data_coding), 140)
            if message.data_coding != DC_GSM:
                self.assertLessEqual(len(part.short_message), 140)

    @settings(max_examples=200, deadline=None)
    @given(text=texts)
    def test_udh_headers_count_the_parts(self, text: str) -> None:
        """UDH parts are numbered 1..n of n under one reference."""
        message = encode_message(text, max_parts=255, reference=0x1FE)
        if len(message.parts) == 1:
            return
        infos = [concat_info(p.esm_class, p.short_message, {}) for p in message.parts]
        total = len(message.parts)
        self.assertEqual(
            [(i.reference, i.total, i.sequence, i.ref_bits) for i in infos if i is not None],
            [(0xFE, total, seq, 8) for seq in range(1, total + 1)],
        )


class DefaultAlphabetTests(SynchronousTestCase):
    """data_coding 0 in the link's default alphabet: the bytes each way for gsm, ascii and latin-1."""

    def test_at_sign_outbound(self) -> None:
        """An outbound "@" goes as 0x00 for gsm and as 0x40 for ascii and latin-1, all in data_coding 0."""
        wire = {}
        for alphabet in DEFAULT_ALPHABETS:
            message = encode_message("@b: fine", default_alphabet=alphabet)
            self.assertEqual((message.data_coding, message.units), (DC_GSM, 8))
            wire[alphabet] = message.parts[0].short_message.hex(" ")
        self.assertEqual(wire, {"gsm": "00 62 3a 20 66 69 6e 65",
                                "ascii": "40 62 3a 20 66 69 6e 65",
                                "latin-1": "40 62 3a 20 66 69 6e 65"})

    def test_gsm_is_the_default(self) -> None:
        """Without a default alphabet, data_coding 0 is GSM 03.38 both ways."""
        self.assertEqual(encode_message("@£{").parts[0].short_message.hex(" "), "00 01 1b 28")
        self.assertEqual(encode_text("@£{", DC_GSM).hex(" "), "00 01 1b 28")
        self.assertEqual(decode_text(DC_GSM, b"\x00\x01\x1b\x28"), "@£{")

    def test_ascii_braces_take_one_octet(self) -> None:
        """On an ascii link "{" and "€"-free text go as plain octets, with no GSM escape."""
        message = encode_message("$5 {x}_", default_alphabet="ascii")
        self.assertEqual(message.data_coding, DC_GSM)
        self.assertEqual(message.parts[0].short_message, b"$5 {x}_")

    def test_uncarried_characters_go_as_ucs2(self) -> None:
        """A character the link's alphabet cannot carry sends the whole text as UCS2, data_coding 8."""
        cases = {("café", "gsm"): (DC_GSM, "63 61 66 05"),
                 ("café", "ascii"): (DC_UCS2, "00 63 00 61 00 66 00 e9"),
                 ("café", "latin-1"): (DC_GSM, "63 61 66 e9"),
                 ("5 €", "latin-1"): (DC_UCS2, "00 35 00 20 20 ac"),
                 ("5 €", "gsm"): (DC_GSM, "35 20 1b 65"),
                 ("a`b", "gsm"): (DC_UCS2, "00 61 00 60 00 62"),
                 ("a`b", "ascii"): (DC_GSM, "61 60 62")}
        for (text, alphabet), (coding, wire) in cases.items():
            message = encode_message(text, default_alphabet=alphabet)
            self.assertEqual((message.data_coding, message.parts[0].short_message.hex(" ")),
                             (coding, wire), (text, alphabet))
            self.assertEqual(choose_coding(text, "gsm", alphabet), coding)

    def test_other_encodings_ignore_the_default_alphabet(self) -> None:
        """encoding = ascii or latin-1 still means data_coding 1 or 3, whatever data_coding 0 means."""
        self.assertEqual(encode_message("@", "ascii", default_alphabet="gsm").data_coding, DC_ASCII)
        self.assertEqual(encode_message("é", "latin-1", default_alphabet="ascii").data_coding,
                         DC_LATIN1)

    def test_long_ascii_text_splits_as_data_coding_0(self) -> None:
        """A data_coding-0 text in ascii keeps the GSM sizes: 160 in one SMS, 153 per UDH part."""
        self.assertEqual(len(encode_message("@" * 160, default_alphabet="ascii").parts), 1)
        message = encode_message("@" * 161, default_alphabet="ascii", reference=7)
        self.assertEqual([part.short_message for part in message.parts],
                         [udh(7, 2, 1) + b"@" * 153, udh(7, 2, 2) + b"@" * 8])

    def test_inbound_bytes(self) -> None:
        """The same data_coding-0 bytes read as each alphabet says; ascii refuses an 8-bit octet."""
        self.assertEqual([decode_text(DC_GSM, b"\x40b: fine", a) for a in DEFAULT_ALPHABETS],
                         ["¡b: fine", "@b: fine", "@b: fine"])
        self.assertEqual([decode_text(DC_GSM, b"\x00b \x24", a) for a in DEFAULT_ALPHABETS],
                         ["@b ¤", "\x00b $", "\x00b $"])
        self.assertEqual(decode_text(DC_GSM, b"caf\xe9", "latin-1"), "café")
        error = self.assertRaises(UndecodableText, decode_text, DC_GSM, b"caf\xe9", "ascii")
        self.assertIn("0xE9", str(error))

    def test_explicit_codings_ignore_the_default_alphabet(self) -> None:
        """Only data_coding 0 follows the setting: 0xF0 (GSM by TP-DCS) and 1 (IA5) read as they say."""
        self.assertEqual(decode_text(0xF0, b"\x40", "ascii"), "¡")
        self.assertEqual(decode_text(DC_ASCII, b"\x40", "gsm"), "@")

    def test_unknown_default_alphabet(self) -> None:
        """An unknown alphabet name is a ValueError naming it and the allowed ones."""
        for call in (lambda: encode_message("hi", default_alphabet="utf-8"),
                     lambda: decode_text(DC_GSM, b"hi", "utf-8"),
                     lambda: encode_text("hi", DC_GSM, "utf-8")):
            error = self.assertRaises(ValueError, call)
            self.assertIn("'utf-8'", str(error))
            self.assertIn("gsm, ascii, latin-1", str(error))

    def test_at_signs(self) -> None:
        """What an "@" sent in the other alphabets reads as, by data_coding and default alphabet."""
        self.assertEqual([at_signs(DC_GSM, a) for a in DEFAULT_ALPHABETS], ["@¡", "\x00@", "\x00@"])
        self.assertEqual([at_signs(coding, "gsm") for coding in (DC_ASCII, DC_UCS2, 0xF0)],
                         ["@", "@", "@"])

    def test_alphabet_hint(self) -> None:
        """ASCII "@", "$" or "_" with no octet below 0x20 but LF and CR looks like ASCII (Latin-1 with 8-bit octets)."""
        cases = {b"\x40b: fine": "ascii", b"costs $5\r\n": "ascii", b"my_name": "ascii",
                 b"caf\xe9 @ 5": "latin-1", b"\x00b: fine": None, b"plain text": None,
                 b"\x40Hola \x05": None, b"caf\xe9": None, b"": None}
        self.assertEqual({data: alphabet_hint(data) for data in cases}, cases)

    @settings(max_examples=200, deadline=None)
    @given(text=texts, alphabet=st.sampled_from(DEFAULT_ALPHABETS))
    def test_round_trip_in_each_alphabet(self, text: str, alphabet: str) -> None:
        """Whatever the default alphabet, the parts decoded under it give back the text."""
        message = encode_message(text, max_parts=255, default_alphabet=alphabet)
        data = b"".join(part_body(part) for part in message.parts)
        self.assertEqual(decode_text(message.data_coding, data, alphabet), text)
        for part in message.parts:
            self.assertLessEqual(len(part.short_message), 160)


class DecodeTextTests(SynchronousTestCase):
    """decode_text reads each data_coding, and refuses what is not text."""

    def test_gsm(self) -> None:
        """GSM septets decode, extension pairs included."""
        self.assertEqual(decode_text(0x00, bytes.fromhex("48656c6c6f201b65001b3c")), "Hello €@[")

    def test_gsm_unknown_escape_shows_basic_character(self) -> None:
        """ESC before a code missing from the extension table shows the basic character."""
        self.assertEqual(decode_text(0x00, bytes.fromhex("1b41")), "A")

    def test_gsm_dangling_escape_is_a_space(self) -> None:
        """A trailing ESC, or the first of ESC ESC, shows as a space instead of vanishing."""
        self.assertEqual(decode_text(0x00, bytes.fromhex("411b")), "A ")
        self.assertEqual(decode_text(0x00, bytes.fromhex("1b1b65")), " €")

    def test_gsm_refuses_8_bit_octets(self) -> None:
        """An octet over 0x7F is not a septet."""
        error = self.assertRaises(UndecodableText, decode_text, 0x00, b"ab\x80")
        self.assertIn("0x80", str(error))

    def test_ascii(self) -> None:
        """IA5 decodes as ASCII; an 8-bit octet is refused."""
        self.assertEqual(decode_text(0x01, b"Hi {x}"), "Hi {x}")
        self.assertRaises(UndecodableText, decode_text, 0x01, b"\xe9")

    def test_latin1(self) -> None:
        """data_coding 3 is Latin-1."""
        self.assertEqual(decode_text(0x03, b"caf\xe9"), "café")

    def test_ucs2_with_emoji(self) -> None:
        """UCS2 is read as UTF-16BE, so surrogate pairs give emoji."""
        self.assertEqual(decode_text(0x08, bytes.fromhex("0048d83dde00")), "H😀")

    def test_ucs2_odd_length(self) -> None:
        """UCS2 with an odd octet count is refused."""
        error = self.assertRaises(UndecodableText, decode_text, 0x08, b"\x00a\x00")
        self.assertIn("odd", str(error))

    def test_ucs2_lone_surrogate(self) -> None:
        """A lone surrogate reads as U+FFFD, keeping the rest of the text."""
        self.assertEqual(decode_text(0x08, bytes.fromhex("d83d0041")), "\ufffdA")

    def test_binary_is_undecodable(self) -> None:
        """8-bit binary data_coding values are not text."""
        for data_coding in (0x02, 0x04, 0xF4, 0xF6, 0x15):
            self.assertRaises(UndecodableText, decode_text, data_coding, b"abc")

    def test_other_smpp_charsets(self) -> None:
        """SMPP's Cyrillic and Latin/Hebrew values decode with ISO 8859-5 and -8."""
        self.assertEqual(decode_text(0x06, b"\xbf\xe0"), "Пр")
        self.assertEqual(decode_text(0x07, b"\xe0"), "א")

    def test_gsm_0338_coding_groups(self) -> None:
        """TP-DCS values passed through by an SMSC decode by their 03.38 coding group."""
        self.assertEqual(decode_text(0xF0, b"Hi"), "Hi")
        self.assertEqual(decode_text(0xF1, b"Hi"), "Hi")
        self.assertEqual(decode_text(0x11, b"Hi"), "Hi")
        self.assertEqual(decode_text(0x18, bytes.fromhex("0416")), "Ж")
        self.assertEqual(decode_text(0xC0, b"Hi"), "Hi")
        self.assertEqual(decode_text(0xE0, bytes.fromhex("0416")), "Ж")

    def test_unknown_and_compressed_codings(self) -> None:
        """Reserved, compressed and unsupported codings are refused naming the value."""
        for data_coding in (0x05, 0x0E, 0x0F, 0x1C, 0x24, 0x80, 0xB0):
            error = self.assertRaises(UndecodableText, decode_text, data_coding, b"abc")
            self.assertIn(f"0x{data_coding:02X}", str(error))


class UdhTests(SynchronousTestCase):
    """split_udh and concat_info read headers and SAR TLVs."""

    def test_split_udh(self) -> None:
        """A UDH splits into its elements and the body after it."""
        self.assertEqual(
            split_udh(bytes.fromhex("0b05040000000000030102034142")),
            ([(0x05, b"\x00\x00\x00\x00"), (0x00, b"\x01\x02\x03")], b"AB"),
        )

    def test_split_udh_empty_header(self) -> None:
        """A zero-length UDH has no elements."""
        self.assertEqual(split_udh(b"\x00hi"), ([], b"hi"))

    def test_split_udh_malformed(self) -> None:
        """A UDH running past the message, or an element past the UDH, is refused."""
        for hexdata in ("", "050003", "0300032a0201", "0100", "020003"):
            self.assertRaises(UndecodableText, split_udh, bytes.fromhex(hexdata))

    def test_concat_8bit(self) -> None:
        """An 8-bit concat element gives reference, total, sequence and the bare body."""
        self.assertEqual(
            concat_info(0x40, bytes.fromhex("0500032a0302") + b"hello", {}),
            Concat(0x2A, 3, 2, b"hello", 8),
        )

    def test_concat_16bit(self) -> None:
        """A 16-bit concat element gives a 16-bit reference."""
        self.assertEqual(
            concat_info(0x40, bytes.fromhex("060804123403") + b"\x01" + b"hi", {}),
            Concat(0x1234, 3, 1, b"hi", 16),
        )

    def test_concat_element_not_first(self) -> None:
        """A concat element after a port-addressing element is still found."""
        short_message = bytes.fromhex("0b0504000000000003070202") + b"body"
        self.assertEqual(concat_info(0x43, short_message, {}), Concat(7, 2, 2, b"body", 8))

    def test_no_concat(self) -> None:
        """A plain message, or a UDH without a concat element, is not concatenated."""
        self.assertIsNone(concat_info(0x00, b"hello", {}))
        self.assertIsNone(concat_info(0x40, bytes.fromhex("06050400000000") + b"hi", {}))

    def test_udh_ignored_without_udhi(self) -> None:
        """Bytes that look like a UDH are text when esm_class has no UDHI."""
        self.assertIsNone(concat_info(0x00, bytes.fromhex("0500032a0302"), {}))

    def test_concat_malformed_udh(self) -> None:
        """A malformed UDH with UDHI set is refused."""
        self.assertRaises(UndecodableText, concat_info, 0x40, bytes.fromhex("0800032a0302"), {})

    def test_concat_bad_element_length(self) -> None:
        """A concat element of the wrong length is refused."""
        self.assertRaises(UndecodableText, concat_info, 0x40, bytes.fromhex("0400022a03"), {})
        self.assertRaises(UndecodableText, concat_info, 0x40, bytes.fromhex("050803123402"), {})

    def test_concat_bad_positions(self) -> None:
        """Total 0, sequence 0 or sequence past total is refused."""
        for total, sequence in ((0, 0), (3, 0), (2, 3)):
            message = bytes([0x05, 0x00, 0x03, 0x01, total, sequence]) + b"x"
            self.assertRaises(UndecodableText, concat_info, 0x40, message, {})

    def test_sar(self) -> None:
        """SAR TLVs give a 16-bit reference, and the whole short_message is the body."""
        tlvs = {"sar_msg_ref_num": 0x0102, "sar_total_segments": 2, "sar_segment_seqnum": 1}
        self.assertEqual(concat_info(0x00, b"abc", tlvs), Concat(0x0102, 2, 1, b"abc", 16))

    def test_sar_bad_positions(self) -> None:
        """SAR TLVs with a sequence past the total are refused."""
        tlvs = {"sar_msg_ref_num": 1, "sar_total_segments": 2, "sar_segment_seqnum": 3}
        self.assertRaises(UndecodableText, concat_info, 0x00, b"abc", tlvs)

    def test_sar_incomplete(self) -> None:
        """Some SAR TLVs without the others are refused, naming the missing ones."""
        tlvs = {"sar_msg_ref_num": 1, "sar_total_segments": 2}
        error = self.assertRaises(UndecodableText, concat_info, 0x00, b"abc", tlvs)
        self.assertIn("sar_segment_seqnum", str(error))

    def test_message_payload_body(self) -> None:
        """With an empty short_message, the text comes from message_payload."""
        payload = bytes.fromhex("0500032a0201") + b"hello"
        self.assertEqual(
            concat_info(0x40, b"", {"message_payload": payload}),
            Concat(0x2A, 2, 1, b"hello", 8),
        )
