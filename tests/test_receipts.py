"""Tests for delivery receipts: recognising them, reading them, and matching their ids."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from smppgw.sms.receipts import (
    Receipt,
    ends_wait,
    is_receipt,
    parse_receipt,
    receipt_due,
    receipt_keys,
    submit_key,
)

TEXT = ("id:0000001A sub:001 dlvrd:001 submit date:2611251200 done date:2611251201 "
        "stat:DELIVRD err:000 text:hello")


class ReceiptTests(SynchronousTestCase):
    def test_is_receipt(self) -> None:
        """The esm_class receipt bit or a receipted_message_id TLV mark a receipt; a plain MO is not one."""
        self.assertTrue(is_receipt(0x04, {}))
        self.assertTrue(is_receipt(0x00, {"receipted_message_id": b"1"}))
        self.assertFalse(is_receipt(0x00, {}))
        self.assertFalse(is_receipt(0x40, {}))

    def test_parse_text(self) -> None:
        """The appendix B text gives the id, the state name and the error code."""
        self.assertEqual(parse_receipt(TEXT, {}), Receipt("0000001A", "DELIVERED", "000"))

    def test_tlvs_win(self) -> None:
        """receipted_message_id and message_state TLVs take precedence over the text."""
        receipt = parse_receipt(TEXT, {"receipted_message_id": b"abc", "message_state": 5})
        self.assertEqual(receipt, Receipt("abc", "UNDELIVERABLE", "000"))

    def test_stat_words(self) -> None:
        """Each stat word maps to its message_state name; an unknown one is UNKNOWN."""
        for word, state in [("UNDELIV", "UNDELIVERABLE"), ("EXPIRED", "EXPIRED"),
                            ("REJECTD", "REJECTED"), ("ACCEPTD", "ACCEPTED"), ("WHATEVER", "UNKNOWN")]:
            self.assertEqual(parse_receipt(f"id:1 stat:{word} err:001", {}).state, state)

    def test_no_id(self) -> None:
        """A receipt that names no message id gives None."""
        self.assertIsNone(parse_receipt("stat:DELIVRD", {}))

    def test_hex_submit_decimal_receipt(self) -> None:
        """A submit id in hex matches a receipt that writes the same number in decimal."""
        self.assertIn(submit_key("0000001A"), receipt_keys("26"))

    def test_case_and_zeros(self) -> None:
        """Leading zeros and letter case do not matter."""
        self.assertEqual(receipt_keys("001a")[0], submit_key("1A"))

    def test_decimal_submit_hex_receipt(self) -> None:
        """A submit id in decimal matches a receipt that writes it in hex."""
        self.assertIn(submit_key("26"), receipt_keys("1a"))

    def test_forced_formats(self) -> None:
        """receipt_id_format string compares text only; decimal reads the receipt id as decimal."""
        self.assertEqual(receipt_keys("26", "string"), ["26"])
        self.assertEqual(receipt_keys("26", "decimal"), ["1a"])
        self.assertEqual(receipt_keys("26", "hex"), ["26"])

    def test_final_receipts_end_the_wait(self) -> None:
        """A final state ends a part's wait; ENROUTE, ACCEPTED or an intermediate notification do not."""
        self.assertTrue(ends_wait(Receipt("1", "DELIVERED", "000"), 0x04))
        self.assertTrue(ends_wait(Receipt("1", "UNDELIVERABLE", "001"), 0x04))
        self.assertFalse(ends_wait(Receipt("1", "ENROUTE", "000"), 0x04))
        self.assertFalse(ends_wait(Receipt("1", "ACCEPTED", "000"), 0x04))
        self.assertFalse(ends_wait(Receipt("1", "DELIVERED", "000"), 0x20))

    def test_receipt_due(self) -> None:
        """A part waits receipt_timeout after its acceptance, only with registered_delivery and a timeout."""
        self.assertEqual(receipt_due(True, 600.0, 100.0), 700.0)
        self.assertIsNone(receipt_due(True, 0.0, 100.0))
        self.assertIsNone(receipt_due(False, 600.0, 100.0))
