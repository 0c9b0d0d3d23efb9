"""Tests for requests encoded ahead of time: `prepare`, `PreparedPDU`, `split_prepared`."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from smppgw.smpp.codec import PDU, EncodeError, PreparedPDU, decode, encode, prepare, split_prepared
from smppgw.smpp.libpath import library_encode

from .test_codec import PROPERTY, message_params
from .test_codec_paths import common_message


class PreparedTests(SynchronousTestCase):
    """A request encoded once when accepted (`prepare`) and sent later as a `PreparedPDU`."""

    @PROPERTY
    @given(common_message("submit_sm"), st.integers(1, 0xFFFFFFFF))
    def test_same_bytes_as_encoding_when_sent(self, pdu: PDU, sequence: int) -> None:
        """Prepared, then numbered by the session, a submit_sm is byte for byte the library's encoding."""
        prepared = PreparedPDU(prepare(pdu))
        prepared.sequence_number = sequence
        pdu.sequence_number = sequence
        self.assertEqual(encode(prepared).hex(), library_encode(pdu).hex())
        self.assertEqual(prepared.command, "submit_sm")
        self.assertEqual(prepared.params, decode(library_encode(pdu)).params)

    def test_prepared_bytes_carry_sequence_zero(self) -> None:
        wire = prepare(PDU("submit_sm", 7, 0, message_params()))
        self.assertEqual(wire[12:16], b"\0\0\0\0")
        self.assertEqual(int.from_bytes(wire[:4], "big"), len(wire))

    def test_refused_when_prepared(self) -> None:
        """A value the PDU cannot carry is refused by prepare, not later when the PDU is sent."""
        self.assertRaises(EncodeError, prepare, PDU("submit_sm", 0, 0, message_params(source_addr_npi=2)))
        self.assertRaises(EncodeError, prepare,
                          PDU("submit_sm", 0, 0, message_params(destination_addr=b"1" * 21)))

    def test_unnumbered_or_out_of_range_sequence_refused(self) -> None:
        prepared = PreparedPDU(prepare(PDU("submit_sm", 0, 0, message_params())))
        for sequence in (0, -1, 2**32):
            prepared.sequence_number = sequence
            self.assertRaises(EncodeError, encode, prepared)

    def test_params_read_back_only_when_asked_and_replaceable(self) -> None:
        prepared = PreparedPDU(prepare(PDU("submit_sm", 0, 0, message_params(short_message=b"hi"))))
        self.assertIn("'short_message': b'hi'", repr(prepared))  # what a trace log line shows
        self.assertEqual(prepared.get("short_message"), b"hi")
        prepared.params = {"x": 1}
        self.assertEqual(prepared.params, {"x": 1})

    def test_split_back_to_back_frames(self) -> None:
        one = prepare(PDU("submit_sm", 0, 0, message_params(short_message=b"a")))
        two = prepare(PDU("submit_sm", 0, 0, message_params(short_message=b"bc")))
        self.assertEqual(split_prepared(one + two + one), [one, two, one])
        self.assertEqual(split_prepared(b""), [])

    def test_split_refuses_what_is_not_whole_frames(self) -> None:
        one = prepare(PDU("submit_sm", 0, 0, message_params()))
        for bad in (one[:-1], one + b"\0", b"\0\0\0\x0f" + one[4:15], b"\0" * 16,
                    (16).to_bytes(4, "big") + b"\x00\x00\x99\x99" + bytes(8)):
            self.assertRaises(ValueError, split_prepared, bad)
