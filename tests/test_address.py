"""Tests for smppgw.address: recipient forms, sender rules, reply addresses."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from smppgw.address import (
    BadAddress,
    Recipient,
    SmppAddress,
    compose_sender,
    destination,
    parse_recipient,
    phone_address,
)


class ParseRecipientTests(SynchronousTestCase):
    """parse_recipient reads the three recipient forms and names what is wrong."""

    def test_smpp(self) -> None:
        """+E164@smpp is the any-server form."""
        self.assertEqual(parse_recipient("+74992713152@smpp"), Recipient("74992713152", "smpp"))

    def test_named(self) -> None:
        """+E164@name._smpp names a server, keeping the name's case."""
        self.assertEqual(
            parse_recipient("+74992713152@MassList._smpp"),
            Recipient("74992713152", "named", "MassList"),
        )

    def test_named_with_dots(self) -> None:
        """A server name may contain dots; only the ._smpp suffix is removed."""
        self.assertEqual(parse_recipient("+1@eu.provider._smpp").server, "eu.provider")

    def test_named_empty(self) -> None:
        """+E164@._smpp names the empty-named server."""
        self.assertEqual(parse_recipient("+1@._smpp"), Recipient("1", "named", ""))

    def test_telnum(self) -> None:
        """+E164@telnum is the gateway form."""
        self.assertEqual(parse_recipient("+15551234567@telnum"), Recipient("15551234567", "telnum"))

    def test_domains_are_case_insensitive(self) -> None:
        """SMPP, TelNum and ._SMPP domains are recognised in any case."""
        self.assertEqual(parse_recipient("+1@SMPP").kind, "smpp")
        self.assertEqual(parse_recipient("+1@TelNum").kind, "telnum")
        self.assertEqual(parse_recipient("+1@abc._SMPP"), Recipient("1", "named", "abc"))

    def test_fifteen_digits(self) -> None:
        """Fifteen digits is the longest E.164 number."""
        self.assertEqual(parse_recipient("+" + "9" * 15 + "@smpp").number, "9" * 15)

    def test_missing_plus(self) -> None:
        """A number without its + is refused, saying so."""
        error = self.assertRaises(BadAddress, parse_recipient, "74992713152@smpp")
        self.assertIn("'+'", str(error))

    def test_bad_numbers(self) -> None:
        """Empty, too long, or non-digit numbers are refused as not E.164."""
        for number in ("+", "+" + "1" * 16, "+12a4", "+1 234", "+١٢٣", "++1"):
            error = self.assertRaises(BadAddress, parse_recipient, number + "@smpp")
            self.assertIn("1 to 15 digits", str(error))

    def test_no_domain(self) -> None:
        """An address without @ is refused."""
        self.assertRaises(BadAddress, parse_recipient, "+12345")

    def test_unknown_domain(self) -> None:
        """Any other domain is refused, naming it."""
        for address in ("+1@example.com", "+1@_smpp", "+1@smpp.", "+1@"):
            error = self.assertRaises(BadAddress, parse_recipient, address)
            self.assertIn("domain", str(error))


class DestinationTests(SynchronousTestCase):
    """destination gives the international SMPP address."""

    def test_with_and_without_plus(self) -> None:
        """A number with or without + goes out as TON 1, NPI 1 digits."""
        self.assertEqual(destination("+4930123"), SmppAddress("4930123", 1, 1))
        self.assertEqual(destination("4930123"), SmppAddress("4930123", 1, 1))

    def test_bad_number(self) -> None:
        """A destination that is not 1-15 digits is refused."""
        for number in ("", "+", "12ab", "1" * 16):
            self.assertRaises(BadAddress, destination, number)


class ComposeSenderTests(SynchronousTestCase):
    """compose_sender follows the reference module's Sender rules."""

    def test_international_pattern(self) -> None:
        """A +number pattern goes out without + as TON 1, NPI 1."""
        self.assertEqual(
            compose_sender("+74992713154", "bob@example.com"), SmppAddress("74992713154", 1, 1)
        )

    def test_local_pattern(self) -> None:
        """A digit pattern goes out as a local number, TON 0, NPI 1."""
        self.assertEqual(compose_sender("12345", "bob@example.com"), SmppAddress("12345", 0, 1))

    def test_alphanumeric_pattern(self) -> None:
        """A name goes out alphanumeric, TON 5, NPI 0."""
        self.assertEqual(
            compose_sender("MyCompany", "bob@example.com"), SmppAddress("MyCompany", 5, 0)
        )

    def test_digit_led_name_is_alphanumeric(self) -> None:
        """A name that starts with a digit but is not all digits goes out alphanumeric."""
        self.assertEqual(compose_sender("1and1", "bob@example.com"), SmppAddress("1and1", 5, 0))

    def test_star_is_the_im_sender(self) -> None:
        """A * stands for the IM sender's whole address."""
        self.assertEqual(compose_sender("*", "bob@ex.com"), SmppAddress("bob@ex.com", 5, 0))

    def test_empty_pattern_means_star(self) -> None:
        """An empty pattern works as *."""
        self.assertEqual(compose_sender("", "bob@ex.com"), SmppAddress("bob@ex.com", 5, 0))

    def test_telnum_sender_keeps_its_plus(self) -> None:
        """+number@telnum gives +number, which goes out international."""
        self.assertEqual(
            compose_sender("*", "+74992713154@telnum"), SmppAddress("74992713154", 1, 1)
        )
        self.assertEqual(compose_sender("", "+1555@TELNUM"), SmppAddress("1555", 1, 1))

    def test_null_sender_gives_user_name(self) -> None:
        """userName@null gives userName."""
        self.assertEqual(compose_sender("*", "alice@null"), SmppAddress("alice", 5, 0))

    def test_null_sender_digits_go_local(self) -> None:
        """A digit userName@null goes out as a local number."""
        self.assertEqual(compose_sender("*", "5551234@null"), SmppAddress("5551234", 0, 1))

    def test_every_star_is_replaced(self) -> None:
        """Each * in the pattern is replaced."""
        self.assertEqual(compose_sender("*-*", "ab@null"), SmppAddress("ab-ab", 5, 0))

    def test_star_inside_international_pattern(self) -> None:
        """A pattern such as +7* builds an international number from the sender."""
        self.assertEqual(compose_sender("+7*", "4992@null"), SmppAddress("74992", 1, 1))

    def test_plus_with_non_digits(self) -> None:
        """A + result with anything but digits after it is refused."""
        error = self.assertRaises(BadAddress, compose_sender, "*", "+12ab@telnum")
        self.assertIn("digits", str(error))
        self.assertRaises(BadAddress, compose_sender, "+", "x@null")

    def test_overrides(self) -> None:
        """source_ton and source_npi replace the derived values."""
        self.assertEqual(
            compose_sender("+1555", "x@null", source_ton=2, source_npi=0), SmppAddress("1555", 2, 0)
        )
        self.assertEqual(compose_sender("Shop", "x@null", source_npi=9), SmppAddress("Shop", 5, 9))

    def test_twenty_characters_allowed(self) -> None:
        """A 20-character sender fits, even alphanumeric beyond GSM's 11."""
        self.assertEqual(compose_sender("A" * 20, "x@null").addr, "A" * 20)

    def test_over_twenty_characters_refused(self) -> None:
        """A 21-character sender is refused naming the 20-character limit, never truncated."""
        error = self.assertRaises(BadAddress, compose_sender, "*", "someone@example.com.ru")
        self.assertIn("20", str(error))

    def test_international_length_counts_without_plus(self) -> None:
        """A + and 20 digits fits, since the + is not sent."""
        self.assertEqual(compose_sender("+" + "1" * 20, "x@null").addr, "1" * 20)

    def test_empty_result(self) -> None:
        """A pattern and IM sender that give nothing are refused."""
        self.assertRaises(BadAddress, compose_sender, "", "")
        self.assertRaises(BadAddress, compose_sender, "*", "@null")

    def test_non_ascii_name(self) -> None:
        """An alphanumeric sender must be printable ASCII."""
        error = self.assertRaises(BadAddress, compose_sender, "Zoë", "x@null")
        self.assertIn("ASCII", str(error))
        self.assertRaises(BadAddress, compose_sender, "a\x00b", "x@null")


class PhoneAddressTests(SynchronousTestCase):
    """phone_address gives the address a reply routes back through."""

    def test_named_server(self) -> None:
        """A named server gives +E164@name._smpp."""
        self.assertEqual(phone_address("74992713154", "provider1"), "+74992713154@provider1._smpp")

    def test_empty_named_server(self) -> None:
        """The empty-named server gives +E164@smpp."""
        self.assertEqual(phone_address("+74992713154", ""), "+74992713154@smpp")

    def test_round_trips_through_parse(self) -> None:
        """A phone address parses back to the number and server."""
        self.assertEqual(
            parse_recipient(phone_address("+15551234", "Mass")),
            Recipient("15551234", "named", "Mass"),
        )

    def test_bad_number(self) -> None:
        """A number that is not 1-15 digits is refused."""
        for number in ("", "Bank", "+1" + "0" * 15):
            self.assertRaises(BadAddress, phone_address, number, "x")
