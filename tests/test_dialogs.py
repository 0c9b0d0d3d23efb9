"""Tests for smppgw.relay.dialogs: SMS Dialogs bindings and the Recipient rules."""

from __future__ import annotations

import string

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from smppgw.relay.dialogs import (
    BadDialogTimeout,
    BadIMAddress,
    BadPhoneNumber,
    Binding,
    Delivery,
    DialogError,
    DialogTable,
    Incoming,
    MemoryBindingStore,
    route_incoming,
)

PHONE = "+74992713154"
HOUR = 3600.0


def where(delivery: Delivery) -> tuple[str | None, str]:
    """Return where a delivery goes and what it carries."""
    return delivery.recipient, delivery.body


class DialogTableTestCase(SynchronousTestCase):
    """Bindings made by outgoing messages and found by incoming ones."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.store = MemoryBindingStore()
        self.table = DialogTable(self.clock, timeout=2 * HOUR, store=self.store)

    def test_first_message_gets_long_prefix(self) -> None:
        """The first message from an IM user to a phone names the letter and the address."""
        self.assertEqual(self.table.outgoing_prefix(PHONE, "user1@domain1"), "@a=user1@domain1 ")

    def test_later_messages_get_short_prefix(self) -> None:
        """Later messages from the same IM user carry only the letter."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.assertEqual(self.table.outgoing_prefix(PHONE, "user1@domain1"), "@a ")

    def test_second_sender_gets_next_letter(self) -> None:
        """Another IM user writing to the same phone gets the next letter."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.assertEqual(self.table.outgoing_prefix(PHONE, "user2@domain2"), "@b=user2@domain2 ")
        self.assertEqual(self.table.outgoing_prefix(PHONE, "user2@domain2"), "@b ")

    def test_letters_are_per_phone(self) -> None:
        """Each phone has its own letters: a second phone starts again at a."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.assertEqual(
            self.table.outgoing_prefix("+15550001", "user2@domain2"), "@a=user2@domain2 "
        )

    def test_bindings_listed_by_letter(self) -> None:
        """bindings() lists a phone's live bindings in letter order with their last use."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.clock.advance(5)
        self.table.outgoing_prefix(PHONE, "user2@domain2")
        self.assertEqual(
            self.table.bindings(PHONE),
            [
                Binding(PHONE, "user1@domain1", "a", 1000.0),
                Binding(PHONE, "user2@domain2", "b", 1005.0),
            ],
        )

    def test_number_without_plus_is_same_phone(self) -> None:
        """A reply from the number written without "+" finds the binding made for "+number"."""
        self.table.outgoing_prefix(PHONE, "smith@company.dom")
        incoming = self.table.resolve_incoming("74992713154", "Great. Signed?")
        self.assertEqual(incoming.address, "smith@company.dom")

    def test_single_binding_takes_unprefixed_reply(self) -> None:
        """A reply without a prefix goes to the phone's only binding."""
        self.table.outgoing_prefix(PHONE, "smith@company.dom")
        self.assertEqual(
            self.table.resolve_incoming(PHONE, "Great. Signed?"),
            Incoming("binding", "smith@company.dom", "Great. Signed?", "a"),
        )

    def test_no_binding(self) -> None:
        """A reply from a phone nobody wrote to finds no binding."""
        self.assertEqual(
            self.table.resolve_incoming(PHONE, "hello"), Incoming("no-binding", None, "hello", None)
        )

    def test_two_bindings_without_prefix_are_ambiguous(self) -> None:
        """A reply without a prefix to a phone with two bindings is ambiguous."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.table.outgoing_prefix(PHONE, "user2@domain2")
        self.assertEqual(
            self.table.resolve_incoming(PHONE, "Yes"), Incoming("ambiguous", None, "Yes", None)
        )

    def test_colon_and_space_forms(self) -> None:
        """Both "@b:" and "@b " pick binding b and are removed from the body."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.table.outgoing_prefix(PHONE, "user2@domain2")
        for text in ("@b:good", "@b: good", "@b good"):
            self.assertEqual(
                self.table.resolve_incoming(PHONE, text),
                Incoming("binding", "user2@domain2", "good", "b"),
            )

    def test_capital_letter(self) -> None:
        """A phone that capitalises the prefix ("@A ") still reaches binding a."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.table.outgoing_prefix(PHONE, "user2@domain2")
        self.assertEqual(
            self.table.resolve_incoming(PHONE, "@A Thnx"),
            Incoming("binding", "user1@domain1", "Thnx", "a"),
        )

    def test_unknown_letter(self) -> None:
        """A prefix naming an unbound letter is reported as unknown-letter, even with one binding."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.assertEqual(
            self.table.resolve_incoming(PHONE, "@z: hi"),
            Incoming("unknown-letter", None, "hi", "z"),
        )

    def test_not_a_prefix(self) -> None:
        """Text that only looks like a prefix ("@ab", "@1 ", "@a" alone) is plain text."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        for text in ("@ab hi", "@1 hi", "@a", "@@hi", "a@b c"):
            self.assertEqual(
                self.table.resolve_incoming(PHONE, text),
                Incoming("binding", "user1@domain1", text, "a"),
            )

    def test_escape_prefix(self) -> None:
        """ "@@ " is an escape: no binding is used and the prefix is removed."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.assertEqual(
            self.table.resolve_incoming(PHONE, "@@ to the desk"),
            Incoming("escape", None, "to the desk", None),
        )

    def test_other_at_signs(self) -> None:
        """Characters named as at_signs count as the "@" of "@b:", "@b " and "@@ "; plain "@" still does."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.table.outgoing_prefix(PHONE, "user2@domain2")
        for text in ("¡b: fine", "¡b fine", "@b: fine"):
            self.assertEqual(self.table.resolve_incoming(PHONE, text, "¡"),
                             Incoming("binding", "user2@domain2", "fine", "b"))
        for text in ("¡¡ desk", "¡@ desk", "@@ desk"):
            self.assertEqual(self.table.resolve_incoming(PHONE, text, "¡"),
                             Incoming("escape", None, "desk", None))
        self.assertEqual(self.table.resolve_incoming(PHONE, "\x00A ok", "\x00"),
                         Incoming("binding", "user1@domain1", "ok", "a"))

    def test_other_at_signs_only_when_named(self) -> None:
        """Without at_signs, "¡b: fine" is plain text, and at_signs only counts at the prefix's "@"."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.table.outgoing_prefix(PHONE, "user2@domain2")
        self.assertEqual(self.table.resolve_incoming(PHONE, "¡b: fine"),
                         Incoming("ambiguous", None, "¡b: fine", None))
        for text in ("¡bc fine", "x¡b fine", "¡ b fine"):
            self.assertEqual(self.table.resolve_incoming(PHONE, text, "¡").kind, "ambiguous")

    def test_expiry_by_clock(self) -> None:
        """A binding unused for the timeout is gone, and its letter is given out afresh."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.clock.advance(2 * HOUR - 1)
        self.assertEqual(len(self.table.bindings(PHONE)), 1)
        self.clock.advance(1)
        self.assertEqual(self.table.bindings(PHONE), [])
        self.assertEqual(self.table.resolve_incoming(PHONE, "late").kind, "no-binding")
        self.assertEqual(self.table.outgoing_prefix(PHONE, "user2@domain2"), "@a=user2@domain2 ")

    def test_incoming_use_refreshes_binding(self) -> None:
        """A reply through a binding keeps it alive for another full timeout."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.clock.advance(HOUR)
        self.table.resolve_incoming(PHONE, "still here")
        self.clock.advance(2 * HOUR - 1)
        self.assertEqual(self.table.resolve_incoming(PHONE, "yes").address, "user1@domain1")

    def test_outgoing_use_refreshes_binding(self) -> None:
        """Another message from the IM user keeps the binding alive and keeps the short prefix."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.clock.advance(HOUR)
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.clock.advance(2 * HOUR - 1)
        self.assertEqual(self.table.outgoing_prefix(PHONE, "user1@domain1"), "@a ")

    def test_expire_returns_count_and_frees_lowest_letter(self) -> None:
        """expire() retires only stale bindings, counts them, and the freed lowest letter comes first."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.clock.advance(HOUR)
        self.table.outgoing_prefix(PHONE, "user2@domain2")
        self.table.outgoing_prefix("+15550001", "user3@domain3")
        self.clock.advance(HOUR)
        self.assertEqual(self.table.expire(), 1)
        self.assertEqual(self.table.expire(), 0)
        self.assertEqual(self.table.outgoing_prefix(PHONE, "user4@domain4"), "@a=user4@domain4 ")

    def test_lru_reuse_after_26_letters(self) -> None:
        """With all 26 letters live, the least recently used letter goes to the newcomer."""
        for letter in string.ascii_lowercase:
            self.table.outgoing_prefix(PHONE, f"{letter}@x.dom")
            self.clock.advance(1)
        self.table.resolve_incoming(PHONE, "@a still talking")
        self.assertEqual(self.table.outgoing_prefix(PHONE, "new@x.dom"), "@b=new@x.dom ")
        self.assertEqual(self.table.resolve_incoming(PHONE, "@b hi").address, "new@x.dom")
        self.assertEqual(len(self.table.bindings(PHONE)), 26)
        self.assertEqual(self.store.rows[(PHONE, "b")].address, "new@x.dom")
        self.assertEqual(self.table.outgoing_prefix(PHONE, "b@x.dom"), "@c=b@x.dom ")

    def test_store_follows_changes(self) -> None:
        """The store is written on create and touch, and the row is deleted on retire."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.assertEqual(
            list(self.store.load_bindings()), [Binding(PHONE, "user1@domain1", "a", 1000.0)]
        )
        self.clock.advance(10)
        self.table.resolve_incoming(PHONE, "hi")
        self.assertEqual(
            list(self.store.load_bindings()), [Binding(PHONE, "user1@domain1", "a", 1010.0)]
        )
        self.clock.advance(2 * HOUR)
        self.table.expire()
        self.assertEqual(list(self.store.load_bindings()), [])

    def test_restart_keeps_bindings(self) -> None:
        """A new table over the same store knows the old bindings and their letters."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.table.outgoing_prefix(PHONE, "user2@domain2")
        restarted = DialogTable(self.clock, timeout=2 * HOUR, store=self.store)
        self.assertEqual(restarted.outgoing_prefix(PHONE, "user2@domain2"), "@b ")
        self.assertEqual(restarted.resolve_incoming(PHONE, "@a hi").address, "user1@domain1")

    def test_restart_retires_stale_bindings(self) -> None:
        """Bindings that went stale while the gateway was down are retired on first access."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        self.clock.advance(3 * HOUR)
        restarted = DialogTable(self.clock, timeout=2 * HOUR, store=self.store)
        self.assertEqual(restarted.bindings(PHONE), [])
        self.assertEqual(list(self.store.load_bindings()), [])

    def test_many_touches_keep_expiry_queue_small(self) -> None:
        """100,000 uses of one binding leave one expiry entry, and it still expires a timeout after the last use."""
        self.table.outgoing_prefix(PHONE, "user1@domain1")
        for _ in range(100_000):
            self.clock.advance(0.5)
            self.table.resolve_incoming(PHONE, "hi")
        # The expiry queue is private; its size is what this test is about.
        self.assertLessEqual(len(self.table._due), 2)
        self.clock.advance(2 * HOUR - 1)
        self.assertEqual(self.table.resolve_incoming(PHONE, "yes").address, "user1@domain1")
        self.assertLessEqual(len(self.table._due), 2)
        self.clock.advance(2 * HOUR)
        self.assertEqual(self.table.expire(), 1)
        self.assertEqual(self.table._due, [])

    def test_reused_letter_gets_full_timeout(self) -> None:
        """A letter given to a newcomer lives a full timeout from then, not from the old binding's use."""
        for letter in string.ascii_lowercase:
            self.table.outgoing_prefix(PHONE, f"{letter}@x.dom")
        self.clock.advance(HOUR)
        for letter in string.ascii_lowercase[1:]:
            self.table.outgoing_prefix(PHONE, f"{letter}@x.dom")
        self.assertEqual(self.table.outgoing_prefix(PHONE, "new@x.dom"), "@a=new@x.dom ")
        self.clock.advance(2 * HOUR - 1)
        self.assertEqual([b.letter for b in self.table.bindings(PHONE)], list(string.ascii_lowercase))
        self.clock.advance(1)
        self.assertEqual(self.table.bindings(PHONE), [])

    def test_bad_input(self) -> None:
        """Empty phones, addresses with blanks and non-positive timeouts raise DialogError subclasses."""
        self.assertRaises(BadPhoneNumber, self.table.outgoing_prefix, " ", "user1@domain1")
        self.assertRaises(BadIMAddress, self.table.outgoing_prefix, PHONE, "user one@domain1")
        self.assertRaises(BadIMAddress, self.table.outgoing_prefix, PHONE, "")
        self.assertRaises(BadDialogTimeout, DialogTable, self.clock, 0)
        self.assertTrue(issubclass(BadPhoneNumber, DialogError))
        self.assertEqual(self.table.bindings(PHONE), [])


class ManualExamplesTestCase(SynchronousTestCase):
    """The manual's two phone-screen examples, replayed."""

    def setUp(self) -> None:
        self.table = DialogTable(Clock(), timeout=2 * HOUR)

    def reply(self, text: str) -> Delivery:
        return route_incoming(
            dialogs=True,
            recipient="",
            table=self.table,
            phone=PHONE,
            destination_number="4000",
            text=text,
        )

    def test_single_dialog(self) -> None:
        """One IM user and one phone talk; the unprefixed replies reach the IM user."""
        self.assertEqual(
            self.table.outgoing_prefix(PHONE, "smith@company.dom"), "@a=smith@company.dom "
        )
        self.assertEqual(
            where(self.reply("Great. Signed?")), ("smith@company.dom", "Great. Signed?")
        )
        self.assertEqual(self.table.outgoing_prefix(PHONE, "smith@company.dom"), "@a ")
        self.assertEqual(where(self.reply("Congrats, CU!")), ("smith@company.dom", "Congrats, CU!"))

    def test_two_dialogs(self) -> None:
        """Two IM users write to one phone; prefixed replies reach each of them."""
        self.assertEqual(
            self.table.outgoing_prefix(PHONE, "susan@company.dom"), "@a=susan@company.dom "
        )
        self.assertEqual(where(self.reply("Yes")), ("susan@company.dom", "Yes"))
        self.assertEqual(self.table.outgoing_prefix(PHONE, "susan@company.dom"), "@a ")
        self.assertEqual(
            self.table.outgoing_prefix(PHONE, "smith@company.dom"), "@b=smith@company.dom "
        )
        self.assertEqual(
            where(self.reply("@b good! I'll be there in 30m")),
            ("smith@company.dom", "good! I'll be there in 30m"),
        )
        self.assertEqual(
            where(self.reply("@a Thnx a lot, I will!")),
            ("susan@company.dom", "Thnx a lot, I will!"),
        )
        self.assertIsNone(self.reply("which of you?").recipient)


class RouteIncomingTestCase(SynchronousTestCase):
    """The Recipient setting combined with Dialogs."""

    def setUp(self) -> None:
        self.table = DialogTable(Clock(), timeout=2 * HOUR)

    def route(
        self,
        text: str,
        *,
        dialogs: bool = True,
        recipient: str = "",
        destination: str = "74992713154",
    ) -> Delivery:
        return route_incoming(
            dialogs=dialogs,
            recipient=recipient,
            table=self.table if dialogs else None,
            phone="+15550001",
            destination_number=destination,
            text=text,
        )

    def test_dialogs_off_to_recipient(self) -> None:
        """With Dialogs off and a Recipient, everything goes to the Recipient, text untouched."""
        delivery = self.route("@a hi", dialogs=False, recipient="desk@company.dom")
        self.assertEqual(where(delivery), ("desk@company.dom", "@a hi"))

    def test_dialogs_off_to_telnum(self) -> None:
        """With Dialogs off and no Recipient, the message goes to destination@telnum, its number form kept."""
        for destination in ("+74992713154", "74992713154", "12345;ton=3"):
            self.assertEqual(
                self.route("hi", dialogs=False, destination=destination).recipient,
                f"{destination}@telnum",
            )

    def test_dialogs_off_bad_destination(self) -> None:
        """With Dialogs off, no Recipient and a destination that is no number, the message is refused."""
        delivery = self.route("hi", dialogs=False, destination="INFO")
        self.assertIsNone(self.route("hi", dialogs=False, destination="++1").recipient)
        self.assertIsNone(delivery.recipient)
        self.assertIn("'INFO'", delivery.reason)

    def test_binding_wins_over_recipient(self) -> None:
        """With Dialogs on, a found binding beats the Recipient."""
        self.table.outgoing_prefix("+15550001", "smith@company.dom")
        self.assertEqual(
            self.route("ok", recipient="desk@company.dom").recipient, "smith@company.dom"
        )

    def test_no_binding_to_recipient(self) -> None:
        """No binding, several bindings, or an unbound letter all fall back to the Recipient."""
        self.assertEqual(
            where(self.route("hi", recipient="desk@company.dom")), ("desk@company.dom", "hi")
        )
        self.table.outgoing_prefix("+15550001", "user1@domain1")
        self.table.outgoing_prefix("+15550001", "user2@domain2")
        self.assertEqual(
            self.route("hi", recipient="desk@company.dom").recipient, "desk@company.dom"
        )
        self.assertEqual(
            where(self.route("@q hi", recipient="desk@company.dom")), ("desk@company.dom", "hi")
        )

    def test_no_binding_without_recipient_refused(self) -> None:
        """With Dialogs on and no Recipient, a message with no binding is refused, saying why."""
        delivery = self.route("hi")
        self.assertIsNone(delivery.recipient)
        self.assertIn("no dialog binding", delivery.reason)

    def test_ambiguous_without_recipient_refused(self) -> None:
        """Two bindings and no letter, with no Recipient, is refused and the reason counts them."""
        self.table.outgoing_prefix("+15550001", "user1@domain1")
        self.table.outgoing_prefix("+15550001", "user2@domain2")
        delivery = self.route("hi")
        self.assertIsNone(delivery.recipient)
        self.assertIn("2 dialog bindings", delivery.reason)

    def test_unknown_letter_without_recipient_refused(self) -> None:
        """An unbound letter with no Recipient is refused and the reason names the letter."""
        self.table.outgoing_prefix("+15550001", "user1@domain1")
        delivery = self.route("@Q: hi")
        self.assertIsNone(delivery.recipient)
        self.assertIn("@q", delivery.reason)

    def test_escape_with_recipient(self) -> None:
        """ "@@ " sends to the Recipient even when a binding exists, without the prefix."""
        self.table.outgoing_prefix("+15550001", "smith@company.dom")
        self.assertEqual(
            where(self.route("@@ call me", recipient="desk@company.dom")),
            ("desk@company.dom", "call me"),
        )

    def test_escape_without_recipient_refused(self) -> None:
        """ "@@ " with no Recipient has nowhere to go and is refused, saying so."""
        self.table.outgoing_prefix("+15550001", "smith@company.dom")
        delivery = self.route("@@ call me")
        self.assertIsNone(delivery.recipient)
        self.assertIn("none is set", delivery.reason)

    def test_empty_sender(self) -> None:
        """An empty sender can hold no binding, so its message goes to the Recipient."""
        delivery = route_incoming(
            dialogs=True,
            recipient="desk@company.dom",
            table=self.table,
            phone="",
            destination_number="4000",
            text="@a promo",
        )
        self.assertEqual(where(delivery), ("desk@company.dom", "promo"))

    def test_at_signs_reach_route_incoming(self) -> None:
        """route_incoming passes at_signs on: "¡@ " escapes to the Recipient, and a sender that is no number still loses its prefix."""
        delivery = route_incoming(dialogs=True, recipient="desk@company.dom", table=self.table,
                                  phone="+15550001", destination_number="1", text="¡@ hi",
                                  at_signs="¡")
        self.assertEqual(where(delivery), ("desk@company.dom", "hi"))
        delivery = route_incoming(dialogs=True, recipient="desk@company.dom", table=self.table,
                                  phone="", destination_number="1", text="¡a: hi",
                                  at_signs="¡")
        self.assertEqual(where(delivery), ("desk@company.dom", "hi"))

    def test_dialogs_without_table(self) -> None:
        """Dialogs on without a table is a programming error, reported as DialogError."""
        self.assertRaises(
            DialogError,
            route_incoming,
            dialogs=True,
            recipient="",
            table=None,
            phone=PHONE,
            destination_number="4000",
            text="hi",
        )
