"""Tests for smppgw.sms.address: recipient forms, sender rules, reply addresses."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from smppgw.sms.address import (
    BadAddress,
    Recipient,
    SmppAddress,
    compose_sender,
    inbound_number,
    number_key,
    parse_number,
    parse_recipient,
    phone_address,
)

#: Each TON both ways, shared by the inbound and outbound tests: what an SMSC sends
#: (TON, NPI, address, the server's ``country_code``), the number's IM form that the
#: host gets, and the (TON, NPI, address) a reply to it goes out with, None when no
#: SMS can be sent to it.
TON_CASES: list[tuple[str, int, int, str, str, str, tuple[int, int, str] | None]] = [
    ("unknown", 0, 1, "15551234", "", "15551234", (0, 1, "15551234")),
    ("unknown, NPI unknown", 0, 0, "12345", "", "12345;npi=0", (0, 0, "12345")),
    ("unknown, with country_code", 0, 1, "0612345678", "31", "0612345678", (0, 1, "0612345678")),
    ("international", 1, 1, "31612345678", "", "+31612345678", (1, 1, "31612345678")),
    ("international written with +", 1, 1, "+31612345678", "", "+31612345678",
     (1, 1, "31612345678")),
    ("national", 2, 1, "0612345678", "", "0612345678;ton=2", (2, 1, "0612345678")),
    ("national, with country_code", 2, 1, "0612345678", "31", "+31612345678",
     (1, 1, "31612345678")),
    ("national without its prefix, with country_code", 2, 1, "612345678", "31", "+31612345678",
     (1, 1, "31612345678")),
    ("network-specific", 3, 0, "12345", "", "12345;ton=3;npi=0", (3, 0, "12345")),
    ("network-specific, with country_code", 3, 1, "12345", "31", "12345;ton=3",
     (3, 1, "12345")),
    ("subscriber", 4, 1, "2345678", "", "2345678;ton=4", (4, 1, "2345678")),
    ("alphanumeric", 5, 0, "MyBank", "", "MyBank", None),
    ("alphanumeric of digits", 5, 0, "12345", "", "12345;ton=5", None),
    ("abbreviated", 6, 1, "112", "", "112;ton=6", (6, 1, "112")),
]


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

    def test_without_plus(self) -> None:
        """Digits without + go out as they are, TON 0 / NPI 1 unless ;ton= / ;npi= say otherwise."""
        self.assertEqual(parse_recipient("74992713152@smpp"), Recipient("74992713152", "smpp", None, 0, 1))
        self.assertEqual(parse_recipient("0612345678;ton=2@a._smpp"),
                         Recipient("0612345678", "named", "a", 2, 1))
        self.assertEqual(parse_recipient("12345;TON=3;npi=0@telnum"),
                         Recipient("12345", "telnum", None, 3, 0))
        self.assertEqual(parse_recipient("1" * 20 + ";npi=9@smpp").npi, 9)

    def test_bad_parameters(self) -> None:
        """A wrong ;ton= / ;npi= is refused, saying what is wrong."""
        for number, reason in [
            ("+31612345678;ton=2", "takes no ;ton="),
            ("12345;ton=5", "alphanumeric"),
            ("12345;ton=7", "ton 7 is not an SMPP 3.4 TON"),
            ("12345;npi=2", "npi 2 is not an SMPP 3.4 NPI"),
            ("12345;ton=", "ton must be a number"),
            ("12345;ton=x", "ton must be a number"),
            ("12345;ton=3;ton=3", "each at most once"),
            ("12345;type=3", "';type=3' is not allowed"),
            ("12345;", "';' is not allowed"),
            ("1" * 21, "1 to 20 digits"),
            ("12a45", "not a phone number"),
            ("", "not a phone number"),
        ]:
            error = self.assertRaises(BadAddress, parse_recipient, number + "@smpp")
            self.assertIn(reason, str(error))
            self.assertIn(repr(number + "@smpp"), str(error))

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
        """A named server gives number@name._smpp."""
        self.assertEqual(phone_address("+74992713154", "provider1"), "+74992713154@provider1._smpp")
        self.assertEqual(phone_address("12345;ton=3", "provider1"), "12345;ton=3@provider1._smpp")

    def test_empty_named_server(self) -> None:
        """The empty-named server gives number@smpp."""
        self.assertEqual(phone_address("+74992713154", ""), "+74992713154@smpp")

    def test_round_trips_through_parse(self) -> None:
        """A phone address parses back to the number and server."""
        self.assertEqual(
            parse_recipient(phone_address("+15551234", "Mass")),
            Recipient("15551234", "named", "Mass"),
        )


class InboundNumberTests(SynchronousTestCase):
    """inbound_number writes what an SMSC sent so that a reply goes back with the same TON and NPI."""

    def test_each_ton_both_ways(self) -> None:
        """Each TON's IM form, and the SMPP address a reply to it goes out with."""
        for what, ton, npi, addr, country_code, form, reply in TON_CASES:
            got = inbound_number(addr, ton, npi, country_code=country_code)
            self.assertEqual(got, form, what)
            if reply is None:
                self.assertRaises(BadAddress, parse_number, got)
            else:
                self.assertEqual(parse_number(got), SmppAddress(reply[2], reply[0], reply[1]), what)

    def test_national_prefix(self) -> None:
        """Only the configured national prefix gives way to the country code; "" strips nothing."""
        self.assertEqual(inbound_number("8916123", 2, 1, country_code="7", national_prefix="8"),
                         "+7916123")
        self.assertEqual(inbound_number("0612", 2, 1, country_code="39", national_prefix=""),
                         "+390612")
        self.assertEqual(inbound_number("06123", 2, 1, country_code="36", national_prefix="06"),
                         "+36123")

    def test_national_too_long_for_e164(self) -> None:
        """A national number that would be over 15 digits with its country code stays national."""
        self.assertEqual(inbound_number("0" + "1" * 14, 2, 1, country_code="31"), "0" + "1" * 14 + ";ton=2")
        self.assertEqual(inbound_number("0", 2, 1, country_code="31"), "0;ton=2")

    def test_plus_means_international(self) -> None:
        """A number the SMSC wrote with '+' is international whatever its TON."""
        self.assertEqual(inbound_number("+15551234", 0, 0), "+15551234")
        self.assertEqual(inbound_number("+15551234", 2, 1, country_code="31"), "+15551234")

    def test_international_over_fifteen_digits(self) -> None:
        """A TON 1 number too long for E.164 keeps its TON as a parameter."""
        self.assertEqual(inbound_number("1" * 16, 1, 1), "1" * 16 + ";ton=1")
        self.assertEqual(parse_number("1" * 16 + ";ton=1"), SmppAddress("1" * 16, 1, 1))

    def test_names(self) -> None:
        """Names keep their text, blanks, ';' and '@' made '_'; one that would read as a number is marked TON 5."""
        self.assertEqual(inbound_number("My Bank@x", 5, 0), "My_Bank_x")
        self.assertEqual(inbound_number("a;ton=3", 5, 0), "a_ton=3")
        self.assertEqual(inbound_number("12;ton=3", 5, 0), "12_ton=3")
        self.assertEqual(inbound_number("+12345", 5, 0), "+12345;ton=5")
        self.assertEqual(inbound_number("", 0, 0), "unknown")
        self.assertEqual(inbound_number("Info", 0, 1), "Info")
        self.assertEqual(inbound_number("*100#", 3, 0), "*100#")
        self.assertEqual(inbound_number("+" + "1" * 16, 1, 1), "+" + "1" * 16)

    def test_number_key(self) -> None:
        """The dialog key of a number is +digits, whatever its TON; a name has none."""
        self.assertEqual(number_key("+31612345678"), "+31612345678")
        self.assertEqual(number_key("0612345678;ton=2"), "+0612345678")
        self.assertIsNone(number_key("MyBank"))
        self.assertIsNone(number_key("12345;ton=5"))
