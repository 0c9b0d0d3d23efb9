"""
Tests for smppgw.smpp.codec: golden vectors, the lean path against the library path, framing.

The golden vectors are spelled out by hand from SMPP 3.4 (section 4 for the
PDU layouts, 5.3.2 for the TLV tags); both paths must produce and read them.
The property tests that hold the lean path to the library path are in
tests/test_codec_paths.py.
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from smpp.pdu import operations, pdu_types
from twisted.trial.unittest import SynchronousTestCase

from smppgw.smpp.codec import (
    MAX_PDU_LEN,
    PDU,
    DecodeError,
    EncodeError,
    FrameError,
    Framer,
    decode,
    encode,
)
from smppgw.smpp.constants import STATUSES
from smppgw.smpp.leanpath import Defer, lean_encode
from smppgw.smpp.libpath import library_decode, library_encode
from smppgw.smpp.wire import _DELIVER_SM_TLVS, _LARGEST_TLV_VALUE

PROPERTY = settings(max_examples=300, deadline=None, derandomize=True)
FUZZ = settings(max_examples=1500, deadline=None, derandomize=True)

HOT_IDS = {
    "submit_sm": 0x00000004,
    "submit_sm_resp": 0x80000004,
    "deliver_sm": 0x00000005,
    "deliver_sm_resp": 0x80000005,
    "data_sm_resp": 0x80000103,
    "enquire_link": 0x00000015,
    "enquire_link_resp": 0x80000015,
    "generic_nack": 0x80000000,
    "unbind": 0x00000006,
    "unbind_resp": 0x80000006,
}


def frame(hex_text: str) -> bytes:
    """Bytes from hex written with spaces between fields."""
    return bytes.fromhex(hex_text.replace(" ", ""))


def message_params(**overrides: int | bytes) -> dict[str, int | bytes]:
    """Every mandatory submit_sm / deliver_sm parameter, as decode returns them."""
    params: dict[str, int | bytes] = {
        "service_type": b"",
        "source_addr_ton": 5,
        "source_addr_npi": 0,
        "source_addr": b"123",
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "destination_addr": b"4567",
        "esm_class": 0,
        "protocol_id": 0,
        "priority_flag": 0,
        "schedule_delivery_time": b"",
        "validity_period": b"",
        "registered_delivery": 1,
        "replace_if_present_flag": 0,
        "data_coding": 0,
        "sm_default_msg_id": 0,
        "short_message": b"Hi",
    }
    params.update(overrides)
    return params


# submit_sm, sequence 1: service_type "", 5/0 "123", 1/1 "4567", esm_class 0,
# protocol_id 0, priority 0, no times, registered_delivery 1, replace 0,
# data_coding 0, sm_default_msg_id 0, short_message "Hi".
SUBMIT_SM = frame(
    "0000002A 00000004 00000000 00000001"
    " 00  05 00 31323300  01 01 3435363700  00 00 00  00 00  01 00 00 00  02 4869"
)
# Offsets of the one-octet fields in SUBMIT_SM (and in any deliver_sm built like it).
OCTET_OFFSETS = {
    "source_addr_ton": 17,
    "source_addr_npi": 18,
    "dest_addr_ton": 23,
    "dest_addr_npi": 24,
    "esm_class": 30,
    "protocol_id": 31,
    "priority_flag": 32,
    "registered_delivery": 35,
    "replace_if_present_flag": 36,
    "data_coding": 37,
    "sm_default_msg_id": 38,
}
# One-octet and two-octet TLVs: name -> (tag, size), SMPP 3.4 section 5.3.2.
INT_TLVS = {
    "dest_addr_subunit": (0x0005, 1),
    "dest_network_type": (0x0006, 1),
    "source_addr_subunit": (0x000D, 1),
    "source_network_type": (0x000E, 1),
    "payload_type": (0x0019, 1),
    "privacy_indicator": (0x0201, 1),
    "user_message_reference": (0x0204, 2),
    "user_response_code": (0x0205, 1),
    "source_port": (0x020A, 2),
    "destination_port": (0x020B, 2),
    "sar_msg_ref_num": (0x020C, 2),
    "language_indicator": (0x020D, 1),
    "sar_total_segments": (0x020E, 1),
    "sar_segment_seqnum": (0x020F, 1),
    "number_of_messages": (0x0304, 1),
    "delivery_failure_reason": (0x0425, 1),
    "more_messages_to_send": (0x0426, 1),
    "message_state": (0x0427, 1),
    "display_time": (0x1201, 1),
}
SUBMIT_INT_TLVS = [
    "user_message_reference", "source_port", "source_addr_subunit", "destination_port",
    "dest_addr_subunit", "sar_msg_ref_num", "sar_total_segments", "sar_segment_seqnum",
    "more_messages_to_send", "payload_type", "privacy_indicator", "user_response_code",
    "display_time", "number_of_messages", "language_indicator",
]
DELIVER_INT_TLVS = [
    "source_network_type", "dest_network_type", "more_messages_to_send",
    "user_message_reference", "source_port", "destination_port", "sar_msg_ref_num",
    "sar_total_segments", "sar_segment_seqnum", "user_response_code", "privacy_indicator",
    "payload_type", "language_indicator", "message_state",
]


# The TLV tags each command carries, as smpp.pdu defines them (operations.py).
CARRIED_TAGS = {
    "submit_sm": {0x0204, 0x020A, 0x000D, 0x020B, 0x0005, 0x020C, 0x020E, 0x020F, 0x0426, 0x0019,
                  0x0424, 0x0201, 0x0381, 0x0202, 0x0203, 0x0205, 0x1201, 0x1203, 0x0304, 0x020D},
    "deliver_sm": {0x000E, 0x0006, 0x0426, 0x0204, 0x020A, 0x020B, 0x020C, 0x020E, 0x020F, 0x0205,
                   0x0201, 0x0019, 0x0424, 0x0381, 0x0202, 0x0203, 0x020D, 0x0423, 0x0427, 0x001E},
    "data_sm_resp": {0x0425, 0x0423, 0x001D},
}
# Mandatory fields before the TLVs: c a C-Octet String, 1 an octet, s a short message.
LAYOUTS = {"submit_sm": "c11c11c111cc1111s", "deliver_sm": "c11c11c111cc1111s", "data_sm_resp": "c"}


def without_skipped_tlvs(data: bytes) -> bytes:
    """`data` without the TLVs its command does not carry, as far as its TLVs can be walked."""
    command = {v: k for k, v in HOT_IDS.items()}[int.from_bytes(data[4:8], "big")]
    if command not in LAYOUTS:
        return data
    pos, end = 16, len(data)
    for kind in LAYOUTS[command]:
        if kind == "c":
            pos = data.find(b"\0", pos) + 1
            if pos == 0:
                return data
        elif kind == "1":
            pos += 1
        elif pos < end:
            pos += 1 + data[pos]
        if pos > end:
            return data
    kept = [data[16:pos]]
    while end - pos >= 4:
        tag = int.from_bytes(data[pos : pos + 2], "big")
        stop = pos + 4 + int.from_bytes(data[pos + 2 : pos + 4], "big")
        if stop > end:
            break
        if tag in CARRIED_TAGS[command]:
            kept.append(data[pos:stop])
        pos = stop
    kept.append(data[pos:])
    return with_body(data, b"".join(kept))


def with_body(data: bytes, body: bytes) -> bytes:
    """`data`'s header with a new body and its command_length fixed."""
    return (16 + len(body)).to_bytes(4, "big") + data[4:16] + body


def as_deliver_sm(data: bytes) -> bytes:
    """A submit_sm frame with the command_id of a deliver_sm (the layouts are the same)."""
    return data[:4] + HOT_IDS["deliver_sm"].to_bytes(4, "big") + data[8:]


def outcome(call: Any, arg: Any) -> tuple[str, Any]:
    """("ok", result) or ("error", status-or-None) for encode and decode alike."""
    try:
        return ("ok", call(arg))
    except DecodeError as e:
        return ("error", e.status)
    except EncodeError:
        return ("error", None)


class GoldenVectorTests(SynchronousTestCase):
    """Both paths write and read hand-spelled frames of every hot PDU."""

    def assertGolden(self, pdu: PDU, data: bytes) -> None:
        self.assertEqual(encode(pdu).hex(), data.hex())
        self.assertEqual(library_encode(pdu).hex(), data.hex())
        self.assertEqual(decode(data), pdu)
        self.assertEqual(library_decode(data), pdu)

    def test_submit_sm(self) -> None:
        """A plain submit_sm has its seventeen mandatory fields in SMPP 3.4 order."""
        self.assertGolden(PDU("submit_sm", 1, 0, message_params()), SUBMIT_SM)

    def test_submit_sm_tlvs_in_library_order(self) -> None:
        """TLVs are written in the library's order, whatever the order of the params."""
        params = message_params(short_message=b"")
        params.update(message_payload=b"abc", sar_segment_seqnum=2, sar_total_segments=3,
                      sar_msg_ref_num=0x0102)
        data = frame(
            "0000003F 00000004 00000000 00000009"
            " 00  05 00 31323300  01 01 3435363700  00 00 00  00 00  01 00 00 00  00"
            " 020C 0002 0102  020E 0001 03  020F 0001 02  0424 0003 616263"
        )
        self.assertGolden(PDU("submit_sm", 9, 0, params), data)

    def test_submit_sm_resp(self) -> None:
        """A submit_sm_resp carries the message_id as a C-Octet String."""
        data = frame("00000019 80000004 00000000 00000001  3030303030303141 00")
        self.assertGolden(PDU("submit_sm_resp", 1, 0, {"message_id": b"0000001A"}), data)

    def test_submit_sm_resp_error(self) -> None:
        """A submit_sm_resp with an error status has no body and no params."""
        data = frame("00000010 80000004 00000058 00000002")
        self.assertGolden(PDU("submit_sm_resp", 2, 0x58, {}), data)

    def test_deliver_sm_receipt(self) -> None:
        """A delivery receipt carries message_state and receipted_message_id TLVs."""
        params = message_params(
            source_addr_ton=1, source_addr_npi=1, source_addr=b"4567",
            dest_addr_ton=0, dest_addr_npi=1, destination_addr=b"123",
            esm_class=0x04, registered_delivery=0, short_message=b"ok",
            receipted_message_id=b"abc", message_state=2,
        )
        data = frame(
            "00000037 00000005 00000000 00000004"
            " 00  01 01 3435363700  00 01 31323300  04 00 00  00 00  00 00 00 00  02 6F6B"
            " 0427 0001 02  001E 0004 61626300"
        )
        self.assertGolden(PDU("deliver_sm", 4, 0, params), data)

    def test_deliver_sm_resp(self) -> None:
        """A deliver_sm_resp has an empty message_id: one NUL."""
        data = frame("00000011 80000005 00000000 00000007 00")
        self.assertGolden(PDU("deliver_sm_resp", 7, 0, {"message_id": b""}), data)

    def test_data_sm_resp(self) -> None:
        """A data_sm_resp has a message_id and may carry delivery_failure_reason."""
        data = frame("00000017 80000103 00000000 00000008  7800  0425 0001 01")
        pdu = PDU("data_sm_resp", 8, 0, {"message_id": b"x", "delivery_failure_reason": 1})
        self.assertGolden(pdu, data)

    def test_header_only_pdus(self) -> None:
        """enquire_link, generic_nack, unbind and their responses are a header alone."""
        for command, command_id, status in [
            ("enquire_link", "00000015", 0),
            ("enquire_link_resp", "80000015", 0),
            ("generic_nack", "80000000", 3),
            ("unbind", "00000006", 0),
            ("unbind_resp", "80000006", 0),
        ]:
            data = frame(f"00000010 {command_id} {status:08X} 00000003")
            self.assertGolden(PDU(command, 3, status, {}), data)


class ValidationTests(SynchronousTestCase):
    """Malformed hot PDUs fail as the library path fails them."""

    def assertStatus(self, data: bytes, name: str) -> None:
        with self.assertRaises(DecodeError) as cm:
            decode(data)
        self.assertEqual(cm.exception.status, STATUSES[name])

    def test_source_addr_too_long(self) -> None:
        """A 21-character source_addr (22 octets with its NUL) is ESME_RINVSRCADR."""
        body = SUBMIT_SM[16:19] + b"1" * 18 + SUBMIT_SM[19:]
        self.assertStatus(with_body(SUBMIT_SM, body), "ESME_RINVSRCADR")

    def test_destination_addr_too_long(self) -> None:
        """A 21-character destination_addr is ESME_RINVDSTADR."""
        body = SUBMIT_SM[16:25] + b"1" * 17 + SUBMIT_SM[25:]
        self.assertStatus(with_body(SUBMIT_SM, body), "ESME_RINVDSTADR")

    def test_message_id_too_long(self) -> None:
        """A 65-character message_id in a submit_sm_resp is ESME_RINVMSGID."""
        data = with_body(frame("00000010 80000004 00000000 00000001"), b"1" * 65 + b"\0")
        self.assertStatus(data, "ESME_RINVMSGID")

    def test_missing_nul(self) -> None:
        """A message_id without its NUL is ESME_RINVMSGLEN."""
        data = with_body(frame("00000010 80000004 00000000 00000001"), b"123")
        self.assertStatus(data, "ESME_RINVMSGLEN")

    def test_short_message_past_the_end(self) -> None:
        """An sm_length beyond the body is ESME_RINVMSGLEN."""
        data = SUBMIT_SM[:39] + b"\x09" + SUBMIT_SM[40:]
        self.assertStatus(data, "ESME_RINVMSGLEN")

    def test_body_cut_in_the_mandatory_fields(self) -> None:
        """A body that stops inside the fixed fields is ESME_RINVMSGLEN."""
        self.assertStatus(with_body(SUBMIT_SM, SUBMIT_SM[16:33]), "ESME_RINVMSGLEN")

    def test_tlv_past_the_end(self) -> None:
        """A message_payload whose length runs past the body is an error (the library's ESME_RINVOPTPARAMVAL)."""
        data = with_body(SUBMIT_SM, SUBMIT_SM[16:] + frame("0424 0005 616263"))
        self.assertStatus(data, "ESME_RINVOPTPARAMVAL")

    def test_known_tlv_of_the_wrong_size(self) -> None:
        """A sar_total_segments two octets long is ESME_RINVPARLEN."""
        data = with_body(SUBMIT_SM, SUBMIT_SM[16:] + frame("020E 0002 0101"))
        self.assertStatus(data, "ESME_RINVPARLEN")

    def test_short_message_of_255_octets(self) -> None:
        """An sm_length of 255 is refused as the library path refuses it (254 at most): ESME_RUNKNOWNERR."""
        body = SUBMIT_SM[16:39] + b"\xff" + b"x" * 255
        self.assertStatus(with_body(SUBMIT_SM, body), "ESME_RUNKNOWNERR")

    def test_two_octet_tlv_one_octet_long(self) -> None:
        """A sar_msg_ref_num labelled one octet long at the end of the body is an error, not a crash."""
        data = with_body(SUBMIT_SM, SUBMIT_SM[16:] + frame("020C 0001 01"))
        self.assertStatus(data, "ESME_RINVOPTPARAMVAL")

    def test_c_octet_tlv_too_long(self) -> None:
        """A receipted_message_id of 65 characters is ESME_RINVOPTPARAMVAL."""
        tlv = frame("001E 0042") + b"1" * 65 + b"\0"
        self.assertStatus(as_deliver_sm(with_body(SUBMIT_SM, SUBMIT_SM[16:] + tlv)), "ESME_RINVOPTPARAMVAL")

    def test_c_octet_tlv_with_an_early_nul(self) -> None:
        """A receipted_message_id whose NUL comes before its labelled end is ESME_RINVPARLEN."""
        data = as_deliver_sm(with_body(SUBMIT_SM, SUBMIT_SM[16:] + frame("001E 0004 61006200")))
        self.assertStatus(data, "ESME_RINVPARLEN")

    def test_tlv_value_outside_its_range(self) -> None:
        """A message_state of 9 is ESME_RINVOPTPARAMVAL, as the library says."""
        data = as_deliver_sm(with_body(SUBMIT_SM, SUBMIT_SM[16:] + frame("0427 0001 09")))
        self.assertStatus(data, "ESME_RINVOPTPARAMVAL")

    def test_unknown_ton(self) -> None:
        """A source_addr_ton of 7 is ESME_RINVSRCTON."""
        data = SUBMIT_SM[:17] + b"\x07" + SUBMIT_SM[18:]
        self.assertStatus(data, "ESME_RINVSRCTON")

    def test_skipped_tlvs(self) -> None:
        """Unknown TLVs and TLVs the command does not carry are skipped in a hot PDU, where the library rejects some."""
        tlvs = frame(
            "1400 0001 61"  # vendor-specific: the library skips it too
            " 0002 0000"  # reserved tag
            " 0030 0001 0F"  # ms_msg_wait_facilities: defined, but not in this library
            " 001E 0004 61626300"  # receipted_message_id: not in a submit_sm
            " 020E 0001 03"  # sar_total_segments: carried
        )
        data = with_body(SUBMIT_SM, SUBMIT_SM[16:] + tlvs)
        self.assertEqual(decode(data), PDU("submit_sm", 1, 0, message_params(sar_total_segments=3)))
        with self.assertRaises(DecodeError) as cm:
            library_decode(data)
        self.assertEqual(cm.exception.status, STATUSES["ESME_RINVOPTPARSTREAM"])

    def test_skipped_tlv_before_a_rewritten_value(self) -> None:
        """A skipped TLV stays skipped when the library decides the rest of the PDU."""
        body = SUBMIT_SM[16:35] + b"\x21" + SUBMIT_SM[36:] + frame("0002 0000")
        # The library path keeps only bits 4-0 of registered_delivery.
        expected = PDU("submit_sm", 1, 0, message_params(registered_delivery=1))
        self.assertEqual(decode(with_body(SUBMIT_SM, body)), expected)

    def test_error_response_bodies(self) -> None:
        """An error submit_sm_resp may omit its body; an error deliver_sm_resp may not (as in the library)."""
        self.assertEqual(decode(frame("00000010 80000004 00000401 00000001")).params, {})
        self.assertStatus(frame("00000010 80000005 00000401 00000001"), "ESME_RINVMSGLEN")

    def test_vendor_status_preserved(self) -> None:
        """Statuses 0x400-0x4FF survive encode and decode unchanged."""
        for status in (0x400, 0x401, 0x4FF):
            data = encode(PDU("submit_sm_resp", 5, status, {}))
            self.assertEqual(data[8:12], status.to_bytes(4, "big"))
            self.assertEqual(decode(data).command_status, status)
            self.assertEqual(decode(encode(PDU("deliver_sm_resp", 5, status))).command_status, status)

    def test_short_frames(self) -> None:
        """A frame shorter than a header, or unlike its command_length, is ESME_RINVCMDLEN."""
        self.assertStatus(frame("00000010 00000015 00000000")[:15], "ESME_RINVCMDLEN")
        self.assertStatus(frame("00000011 00000015 00000000 00000001"), "ESME_RINVCMDLEN")


class EncodeRejectionTests(SynchronousTestCase):
    """Values the library rejects raise EncodeError on the lean path too."""

    def assertRejected(self, command: str, **params: Any) -> None:
        pdu = PDU(command, 1, 0, params)
        self.assertRaises(EncodeError, encode, pdu)
        self.assertRaises(EncodeError, library_encode, pdu)

    def test_c_octet_string_too_long(self) -> None:
        """A 21-character source_addr does not fit its 21-octet field."""
        self.assertRejected("submit_sm", source_addr=b"1" * 21)

    def test_nul_inside_c_octet_string(self) -> None:
        """A NUL inside a C-Octet String is refused."""
        self.assertRejected("submit_sm", destination_addr=b"12\x0034")
        self.assertRejected("submit_sm_resp", message_id=b"a\x00b")

    def test_short_message_too_long(self) -> None:
        """A short_message of 255 octets is refused (254 at most)."""
        self.assertRejected("submit_sm", short_message=b"x" * 255)

    def test_values_out_of_range(self) -> None:
        """Integers the field cannot hold, or that SMPP does not define, are refused."""
        self.assertRejected("submit_sm", data_coding=256)
        self.assertRejected("submit_sm", esm_class=-1)
        self.assertRejected("submit_sm", dest_addr_ton=7)
        self.assertRejected("submit_sm", source_port=0x10000)
        self.assertRejected("deliver_sm", message_state=0)

    def test_wrong_types_and_names(self) -> None:
        """A string for an integer, an int for bytes, or a parameter the command lacks is refused."""
        self.assertRejected("submit_sm", esm_class=b"\x00")
        self.assertRejected("submit_sm", short_message=5)
        self.assertRejected("submit_sm", receipted_message_id=b"1")
        self.assertRejected("enquire_link", message_id=b"1")

    def test_header_out_of_range(self) -> None:
        """Sequence number 0 (the library numbers from 1) and a status past 32 bits are refused."""
        self.assertRaises(EncodeError, encode, PDU("enquire_link", 0, 0))
        self.assertRaises(EncodeError, encode, PDU("enquire_link", 1, 2**32))
        self.assertRaises(EncodeError, encode, PDU("enquire_link", 2**32, 0))

    def test_non_empty_message_id_in_deliver_sm_resp(self) -> None:
        """The library allows only an empty message_id in a deliver_sm_resp."""
        self.assertRejected("deliver_sm_resp", message_id=b"1")


class OctetSweepTests(SynchronousTestCase):
    """Every value of every one-octet field goes the same way on both paths."""

    def test_mandatory_octets_encode(self) -> None:
        """Encoding any value of a one-octet field gives the library's bytes or its refusal."""
        for command in ("submit_sm", "deliver_sm"):
            for name in OCTET_OFFSETS:
                for value in range(-1, 257):
                    pdu = PDU(command, 1, 0, message_params(**{name: value}))
                    self.assertEqual(outcome(encode, pdu), outcome(library_encode, pdu),
                                     f"{command} {name}={value}")

    def test_mandatory_octets_decode(self) -> None:
        """Decoding any octet in a one-octet field gives the library's PDU or its status."""
        for data in (SUBMIT_SM, as_deliver_sm(SUBMIT_SM)):
            for name, offset in OCTET_OFFSETS.items():
                for value in range(256):
                    mutated = data[:offset] + bytes([value]) + data[offset + 1 :]
                    self.assertEqual(outcome(decode, mutated), outcome(library_decode, mutated),
                                     f"{name}={value}")

    def test_int_tlvs(self) -> None:
        """Every value of every integer TLV encodes and decodes as on the library path."""
        for data, names in ((SUBMIT_SM, SUBMIT_INT_TLVS), (as_deliver_sm(SUBMIT_SM), DELIVER_INT_TLVS)):
            command = decode(data).command
            for name in names:
                tag, size = INT_TLVS[name]
                for value in [*range(-1, 257), 0x1234, 0xFFFF, 0x10000]:
                    pdu = PDU(command, 1, 0, message_params(**{name: value}))
                    self.assertEqual(outcome(encode, pdu), outcome(library_encode, pdu),
                                     f"{command} {name}={value}")
                    if 0 <= value < 256**size:
                        tlv = tag.to_bytes(2, "big") + size.to_bytes(2, "big") + value.to_bytes(size, "big")
                        mutated = with_body(data, data[16:] + tlv)
                        self.assertEqual(outcome(decode, mutated), outcome(library_decode, mutated),
                                         f"{command} {name}={value}")


class FramerTests(SynchronousTestCase):
    """The framer refuses lengths no peer can mean and keeps whole frames."""

    def test_impossible_lengths(self) -> None:
        """command_length 0, 15 and 2**31 lose the stream: FrameError."""
        for length in (0, 15, 2**31):
            framer = Framer()
            with self.assertRaises(FrameError):
                framer.feed(length.to_bytes(4, "big") + bytes(12))

    def test_largest_valid_length(self) -> None:
        """A frame of the largest length a valid deliver_sm or data_sm can have is cut whole; one octet more is refused."""
        self.assertEqual(MAX_PDU_LEN, 66136)
        data = MAX_PDU_LEN.to_bytes(4, "big") + bytes.fromhex("00000005 00000000 00000001")
        data += bytes(MAX_PDU_LEN - 16)
        self.assertEqual(Framer().feed(data), [data])
        with self.assertRaises(FrameError) as cm:
            Framer().feed((MAX_PDU_LEN + 1).to_bytes(4, "big"))
        self.assertEqual(str(cm.exception), "command_length 66137 outside 16..66136")

    def test_largest_length_counts_every_tlv(self) -> None:
        """The largest length counts every TLV the library reads in a deliver_sm and a data_sm."""
        def tlvs(command: str) -> set[str]:
            klass = operations.getPDUClass(getattr(pdu_types.CommandId, command))
            return set(klass.optionalParams) - {"vendor_specific_bypass"}

        self.assertEqual(tlvs("data_sm"), set(_LARGEST_TLV_VALUE))
        self.assertEqual(tlvs("deliver_sm"), set(_DELIVER_SM_TLVS))

    def test_header_only_length(self) -> None:
        """command_length 16 is a whole header-only PDU."""
        data = frame("00000010 00000015 00000000 00000001")
        self.assertEqual(Framer().feed(data), [data])
        self.assertEqual(decode(data), PDU("enquire_link", 1, 0, {}))

    def test_length_16_for_a_pdu_with_a_body(self) -> None:
        """A submit_sm of 16 octets frames, then fails to decode with ESME_RINVMSGLEN."""
        data = frame("00000010 00000004 00000000 00000001")
        [cut] = Framer().feed(data)
        with self.assertRaises(DecodeError) as cm:
            decode(cut)
        self.assertEqual(cm.exception.status, STATUSES["ESME_RINVMSGLEN"])


class LibraryTrapTests(SynchronousTestCase):
    """The library's remembered TLV length never leaks into an encode."""

    def test_tlv_length_trap(self) -> None:
        """After a bind_resp with sc_interface_version is decoded, a message_payload still encodes whole."""
        bind_resp = frame("0000001A 80000009 00000000 00000001  534D534300  0210 0001 34")
        self.assertEqual(decode(bind_resp).params, {"system_id": b"SMSC", "sc_interface_version": 0x34})
        pdu = PDU("submit_sm", 2, 0, message_params(short_message=b"", message_payload=b"x" * 300))
        for data in (encode(pdu), library_encode(pdu)):
            self.assertEqual(data[-304:-300], frame("0424 012C"))
            self.assertEqual(decode(data), pdu)

    def test_time_parsing_prints_nothing(self) -> None:
        """A PDU with a validity period goes through the library, which prints while parsing it, and stdout stays empty."""
        import contextlib
        import io

        pdu = PDU("submit_sm", 1, 0, message_params(validity_period=b"000001000000000R"))
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown):
            data = encode(pdu)
            self.assertEqual(decode(data), pdu)
        self.assertEqual(shown.getvalue(), "")

    def test_lean_path_is_taken(self) -> None:
        """Values outside the lean tables go to the library path, which rewrites them."""
        pdu = PDU("submit_sm", 1, 0, message_params(registered_delivery=0x21))
        self.assertRaises(Defer, lean_encode, pdu)
        self.assertEqual(decode(encode(pdu)).params["registered_delivery"], 1)


class SequenceZeroTests(SynchronousTestCase):
    def test_generic_nack_with_sequence_zero(self) -> None:
        """A generic_nack may carry sequence number 0 (SMPP 3.4 section 4.3), as when a header is unreadable."""
        self.assertEqual(encode(PDU("generic_nack", 0, 3)).hex(), "00000010800000000000000300000000")

    def test_request_with_sequence_zero_refused(self) -> None:
        """A request numbered 0 is refused: the session numbers requests from 1."""
        self.assertRaises(EncodeError, encode, PDU("enquire_link", 0))
