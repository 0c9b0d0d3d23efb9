"""Tests for inbound SMS: decoding, reassembly, receipts, the Recipient and Dialogs rules, the inbox and its dispatch to hosts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.logger import LogLevel, capturedLogs, formatEvent
from twisted.protocols import amp
from twisted.protocols.amp import UnhandledCommand
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from smppgw.config import Config, parse_config
from smppgw.host.commands import DeliverSignal, HostTryLater, Refused, SignalReport
from smppgw.host.protocol import GatewayAMPFactory
from smppgw.host.registry import HostRegistry
from smppgw.relay.dialogs import DialogTable
from smppgw.relay.dispatch import HOST_ANSWER_TIMEOUT, MAX_IN_FLIGHT
from smppgw.relay.inbound import Inbound
from smppgw.relay.outbound import Outbound
from smppgw.smpp.codec import PDU, decode
from smppgw.smpp.constants import ESME_ROK, ESME_RX_R_APPN, ESME_RX_T_APPN
from smppgw.sms.receipts import submit_key
from smppgw.sms.textcodec import encode_text
from smppgw.store.interfaces import StoreError
from smppgw.store.sqlite import Store

from . import test_queue
from .test_address import TON_CASES

PHONE = "79161234567"


def make_config(*, name: str = "sim", dialogs: bool = False, recipient: str = "",
                module: str = "", server: str = "") -> Config:
    return parse_config(
        f"[module]\n{module}\n"
        f'[[server]]\nname = "{name}"\naddress = "127.0.0.1"\nsystem_id = "esme"\n'
        f'password = "pw"\ndialogs = {str(dialogs).lower()}\nrecipient = "{recipient}"\n'
        f"{server}\n"
    )


def deliver_sm_frame(source: tuple[int, int, bytes], destination: tuple[int, int, bytes],
                     text: bytes = b"hi") -> bytes:
    """A deliver_sm as an SMSC writes it, from its (TON, NPI, address) pairs and GSM text."""
    body = (b"\0" + bytes(source[:2]) + source[2] + b"\0" + bytes(destination[:2])
            + destination[2] + b"\0" + bytes([0, 0, 0]) + b"\0\0" + bytes([0, 0, 0, 0, len(text)])
            + text)
    return (16 + len(body)).to_bytes(4, "big") + bytes.fromhex("00000005 00000000 00000001") + body


@dataclass
class Call:
    command: Any
    arguments: dict[str, Any]
    deferred: Deferred[Any]


class FakeHost:
    """A logged-in host: records each callRemote; with ``auto`` it answers ``{}`` at once."""

    def __init__(self, auto: bool = False) -> None:
        self.auto = auto
        self.calls: list[Call] = []

    def callRemote(self, command: Any, **arguments: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append(Call(command, arguments, d))
        if self.auto:
            d.callback({})
        return d

    def signals(self) -> list[dict[str, Any]]:
        return [call.arguments for call in self.calls if call.command is DeliverSignal]

    def reports(self) -> list[dict[str, Any]]:
        return [call.arguments for call in self.calls if call.command is SignalReport]


def udh8(reference: int, total: int, sequence: int) -> bytes:
    return bytes([0x05, 0x00, 0x03, reference, total, sequence])


def udh16(reference: int, total: int, sequence: int) -> bytes:
    return bytes([0x06, 0x08, 0x04, reference >> 8, reference & 0xFF, total, sequence])


class InboundTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.registry = HostRegistry()
        capture = capturedLogs()
        self.events = capture.__enter__()
        self.addCleanup(capture.__exit__, None, None, None)

    def make(self, path: str = ":memory:", *, start: bool = True, table: bool = True,
             **settings: Any) -> Inbound:
        """A fresh Store and Inbound on ``path``, as after a (re)start of the gateway."""
        limits = {key: settings.pop(key) for key in ("max_inbox", "max_attempts", "maintains")
                  if key in settings}
        self.config = make_config(**settings)
        self.server = self.config.servers[0]
        self.store = Store(path, self.clock)
        self.table = (DialogTable(self.clock, self.config.module.dialog_timeout, self.store)
                      if table else None)
        self.inbound = Inbound(self.config, self.store, self.registry, self.clock, self.table,
                               **limits)
        self.handler = self.inbound.handler(self.server)
        if start:
            self.inbound.start()
        self.addCleanup(self.shut_down, self.inbound, self.store)
        return self.inbound

    def shut_down(self, inbound: Inbound, store: Store) -> None:
        inbound.stop()
        store.close()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def restart(self) -> Inbound:
        """Stop the gateway and start a new one on the same store file."""
        self.inbound.stop()
        self.store.close()
        return self.make(self.store.path, dialogs=self.server.dialogs,
                         recipient=self.server.recipient, name=self.server.name)

    def host(self, auto: bool = True) -> FakeHost:
        host = FakeHost(auto)
        self.registry.add(host)  # type: ignore[arg-type]
        self.clock.advance(0)
        return host

    def answer(self, params: dict[str, Any], command: str = "deliver_sm") -> int:
        """The status the SMSC gets back for one deliver_sm, checking it waits for the commit."""
        result = self.handler(PDU(command, 1, 0, params))
        if isinstance(result, Deferred):
            self.assertNoResult(result)
            self.clock.advance(0)
            status = self.successResultOf(result)
        else:
            status = result
        self.clock.advance(0)
        return status

    def deliver(self, text: str | bytes = "hi", source: str = PHONE, destination: str = "15550100",
                *, data_coding: int = 0, esm_class: int = 0, udh: bytes = b"",
                **tlvs: Any) -> int:
        body = text if isinstance(text, bytes) else encode_text(text, data_coding)
        if udh:
            esm_class |= 0x40
        params = {"source_addr": source.encode("latin-1"), "source_addr_ton": 1,
                  "source_addr_npi": 1, "destination_addr": destination.encode("latin-1"),
                  "dest_addr_ton": 1, "dest_addr_npi": 1, "esm_class": esm_class,
                  "data_coding": data_coding, "short_message": udh + body}
        params.update(tlvs)
        return self.answer(params)

    def problems(self) -> list[str]:
        return [formatEvent(e) for e in self.events if e.get("log_level") == LogLevel.warn]


class RecipientRuleTests(InboundTestCase):
    """The reference's Recipient setting with Dialogs off."""

    def test_dialogs_off_to_recipient(self) -> None:
        """With Dialogs off and a Recipient, every SMS goes to it, its text untouched."""
        self.make(recipient="sms@example.com")
        host = self.host()
        self.assertEqual(self.deliver("@a hello"), ESME_ROK)
        self.assertEqual(host.signals(), [{
            "method": "MESSAGE", "sender": f"+{PHONE}@sim._smpp", "recipient": "sms@example.com",
            "body": "@a hello", "server": "sim"}])

    def test_dialogs_off_no_recipient_to_telnum(self) -> None:
        """With Dialogs off and no Recipient, an SMS goes to +destination@telnum."""
        self.make()
        host = self.host()
        self.assertEqual(self.deliver("hello", destination="74992713154"), ESME_ROK)
        [signal] = host.signals()
        self.assertEqual(signal["recipient"], "+74992713154@telnum")
        self.assertEqual(signal["body"], "hello")

    def test_destination_not_a_number_refused(self) -> None:
        """With Dialogs off, no Recipient and a destination that is no number, the SMS is refused."""
        self.make()
        host = self.host()
        self.assertEqual(self.deliver("hello", destination="SHORTCODE"), ESME_RX_R_APPN)
        self.assertEqual(host.calls, [])
        [line] = self.problems()
        self.assertIn("not accepted", line)

    def test_empty_named_server_sender(self) -> None:
        """On the empty-named server the sender is +E164@smpp."""
        self.make(name="")
        host = self.host()
        self.deliver("hi", source="+15551234")
        self.assertEqual(host.signals()[0]["sender"], "+15551234@smpp")

    def test_alphanumeric_sender(self) -> None:
        """An alphanumeric sender keeps its name, in the server's domain."""
        self.make(recipient="sms@example.com")
        host = self.host()
        self.deliver("Your code is 1234", source="MyBank")
        self.assertEqual(host.signals()[0]["sender"], "MyBank@sim._smpp")

    def test_sender_names(self) -> None:
        """Sender names keep their text, blanks, ';' and '@' made '_', and an empty one is 'unknown'."""
        self.make(recipient="sms@example.com")
        host = self.host()
        self.deliver("hi", source="My Bank@x;y")
        self.deliver("hi", source="")
        self.assertEqual([signal["sender"] for signal in host.signals()],
                         ["My_Bank_x_y@sim._smpp", "unknown@sim._smpp"])


class NumberTypeTests(InboundTestCase):
    """The TON and NPI of a deliver_sm's addresses decide the numbers the host is given."""

    def next_case(self, host: FakeHost) -> None:
        """Shut this case's gateway down, so that the next one starts afresh on the same clock."""
        self.registry.remove(host)  # type: ignore[arg-type]
        self.shut_down(self.inbound, self.store)

    def test_each_ton_of_the_sender(self) -> None:
        """Each TON's sender reaches the host as number@sim._smpp, in the form a reply needs."""
        for what, ton, npi, addr, country_code, form, _ in TON_CASES:
            self.make(recipient="sms@example.com", server=f'country_code = "{country_code}"')
            host = self.host()
            frame = deliver_sm_frame((ton, npi, addr.encode()), (1, 1, b"15550100"))
            self.assertEqual(self.answer(decode(frame).params), ESME_ROK, what)
            self.assertEqual([signal["sender"] for signal in host.signals()], [f"{form}@sim._smpp"],
                             what)
            self.next_case(host)

    def test_each_ton_of_the_recipient(self) -> None:
        """With Dialogs off and no Recipient, each TON's destination number reaches the host as number@telnum, and a name is refused."""
        for what, ton, npi, addr, country_code, form, reply in TON_CASES:
            self.make(server=f'country_code = "{country_code}"')
            host = self.host()
            frame = deliver_sm_frame((1, 1, b"15551234"), (ton, npi, addr.encode()))
            status = self.answer(decode(frame).params)
            if reply is None:
                self.assertEqual((status, host.signals()), (ESME_RX_R_APPN, []), what)
            else:
                self.assertEqual(status, ESME_ROK, what)
                self.assertEqual([signal["recipient"] for signal in host.signals()],
                                 [f"{form}@telnum"], what)
            self.next_case(host)

    def test_national_reply_meets_its_binding(self) -> None:
        """A national sender made international with country_code meets the dialog binding of its E.164 number."""
        self.make(dialogs=True, server='country_code = "31"')
        host = self.host()
        self.table.outgoing_prefix("+31612345678", "smith@company.dom")  # type: ignore[union-attr]
        frame = deliver_sm_frame((2, 1, b"0612345678"), (1, 1, b"15550100"), b"ok")
        self.assertEqual(self.answer(decode(frame).params), ESME_ROK)
        [signal] = host.signals()
        self.assertEqual((signal["sender"], signal["recipient"]),
                         ("+31612345678@sim._smpp", "smith@company.dom"))


class DialogRuleTests(InboundTestCase):
    """The reference's Dialogs rules, with and without a Recipient."""

    def bind(self, *senders: str) -> None:
        for sender in senders:
            self.table.outgoing_prefix("+" + PHONE, sender)  # type: ignore[union-attr]

    def test_one_binding_no_prefix(self) -> None:
        """With exactly one binding, a reply without a prefix goes to its address."""
        self.make(dialogs=True)
        host = self.host()
        self.bind("smith@company.dom")
        self.assertEqual(self.deliver("Great. Signed?"), ESME_ROK)
        [signal] = host.signals()
        self.assertEqual((signal["recipient"], signal["body"]), ("smith@company.dom", "Great. Signed?"))

    def test_no_binding_no_recipient_refused(self) -> None:
        """Dialogs on, no binding and no Recipient: not accepted, a permanent error and a log line."""
        self.make(dialogs=True)
        host = self.host()
        self.assertEqual(self.deliver("hello"), ESME_RX_R_APPN)
        self.assertEqual(host.calls, [])
        self.assertEqual(self.store.counts()["inbox"], 0)
        [line] = self.problems()
        self.assertIn("not accepted", line)
        self.assertIn("no dialog binding", line)

    def test_no_binding_to_recipient(self) -> None:
        """Dialogs on and no binding, with a Recipient: to the Recipient."""
        self.make(dialogs=True, recipient="sms@example.com")
        host = self.host()
        self.assertEqual(self.deliver("hello"), ESME_ROK)
        self.assertEqual(host.signals()[0]["recipient"], "sms@example.com")

    def test_escape_prefix_to_recipient(self) -> None:
        """A binding exists but the text starts with '@@ ': to the Recipient, prefix removed."""
        self.make(dialogs=True, recipient="sms@example.com")
        host = self.host()
        self.bind("smith@company.dom")
        self.deliver("@@ for the office")
        [signal] = host.signals()
        self.assertEqual((signal["recipient"], signal["body"]), ("sms@example.com", "for the office"))

    def test_escape_prefix_without_recipient_refused(self) -> None:
        """'@@ ' with no Recipient set: not accepted."""
        self.make(dialogs=True)
        self.bind("smith@company.dom")
        self.assertEqual(self.deliver("@@ anyone?"), ESME_RX_R_APPN)

    def test_two_bindings_no_prefix_refused(self) -> None:
        """Two bindings and no prefix: not accepted without a Recipient."""
        self.make(dialogs=True)
        self.bind("susan@company.dom", "smith@company.dom")
        self.assertEqual(self.deliver("Yes"), ESME_RX_R_APPN)
        self.assertIn("2 dialog bindings", self.problems()[0])

    def test_two_bindings_no_prefix_to_recipient(self) -> None:
        """Two bindings and no prefix, with a Recipient: to the Recipient."""
        self.make(dialogs=True, recipient="sms@example.com")
        host = self.host()
        self.bind("susan@company.dom", "smith@company.dom")
        self.deliver("Yes")
        self.assertEqual(host.signals()[0]["recipient"], "sms@example.com")

    def test_letter_prefixes(self) -> None:
        """'@b ' and '@b:' pick binding b; the prefix is stripped from the body."""
        self.make(dialogs=True)
        host = self.host()
        self.bind("susan@company.dom", "smith@company.dom")
        self.deliver("@b good! I'll be there in 30m")
        self.deliver("@a: Thnx a lot, I will!")
        self.assertEqual([(s["recipient"], s["body"]) for s in host.signals()], [
            ("smith@company.dom", "good! I'll be there in 30m"),
            ("susan@company.dom", "Thnx a lot, I will!")])

    def test_capital_letter_prefix(self) -> None:
        """Phones capitalise the first letter: '@A ' works as '@a '."""
        self.make(dialogs=True)
        host = self.host()
        self.bind("susan@company.dom", "smith@company.dom")
        self.deliver("@A Sure")
        self.assertEqual(host.signals()[0]["recipient"], "susan@company.dom")

    def test_unknown_letter_refused(self) -> None:
        """A prefix naming an unbound letter is not accepted when no Recipient is set."""
        self.make(dialogs=True)
        self.bind("susan@company.dom")
        self.assertEqual(self.deliver("@c hello"), ESME_RX_R_APPN)
        self.assertIn("no dialog binding @c", self.problems()[0])

    def test_binding_found_with_recipient(self) -> None:
        """With a Recipient set, a found binding still wins over it."""
        self.make(dialogs=True, recipient="sms@example.com")
        host = self.host()
        self.bind("smith@company.dom")
        self.deliver("ok")
        self.assertEqual(host.signals()[0]["recipient"], "smith@company.dom")

    def test_dialogs_without_table_read_as_off(self) -> None:
        """A dialogs server without a table (dialog_timeout 0) sends no prefixes: replies follow the Dialogs-off rule."""
        self.make(dialogs=True, table=False)
        host = self.host()
        self.assertEqual(self.deliver("hello", destination="15550100"), ESME_ROK)
        self.assertEqual(host.signals()[0]["recipient"], "+15550100@telnum")

    def test_bindings_survive_restart(self) -> None:
        """A binding made before a restart still routes a reply after it."""
        self.make(self.mktemp(), dialogs=True)
        self.bind("smith@company.dom")
        self.clock.advance(0)
        self.restart()
        host = self.host()
        self.deliver("Congrats, CU!")
        self.assertEqual(host.signals()[0]["recipient"], "smith@company.dom")


class DecodingTests(InboundTestCase):
    """Text by data_coding, from short_message or message_payload."""

    def setUp(self) -> None:
        super().setUp()
        self.make(recipient="sms@example.com")
        self.hosted = self.host()

    def bodies(self) -> list[str]:
        return [signal["body"] for signal in self.hosted.signals()]

    def test_codings(self) -> None:
        """GSM (with its extension table), ASCII, Latin-1 and UCS2 texts arrive as written."""
        self.deliver("Price: 5€ [a] {b} ~c^ \\d|", data_coding=0x00)
        self.deliver("plain ascii", data_coding=0x01)
        self.deliver("caf\u00e9 \u00fcber", data_coding=0x03)
        self.deliver("Привет 👋🏽", data_coding=0x08)
        self.assertEqual(self.bodies(), ["Price: 5€ [a] {b} ~c^ \\d|", "plain ascii",
                                         "caf\u00e9 \u00fcber", "Привет 👋🏽"])

    def test_message_payload(self) -> None:
        """A deliver_sm with empty short_message carries its text in message_payload."""
        self.deliver(b"", message_payload="long text in the payload".encode("ascii"))
        self.assertEqual(self.bodies(), ["long text in the payload"])

    def test_data_sm(self) -> None:
        """A data_sm is handled like a deliver_sm."""
        status = self.answer({"source_addr": PHONE.encode(), "destination_addr": b"1555",
                              "esm_class": 0, "data_coding": 0x08,
                              "message_payload": "ok 👍".encode("utf-16-be")}, "data_sm")
        self.assertEqual(status, ESME_ROK)
        self.assertEqual(self.bodies(), ["ok 👍"])

    def test_non_concat_udh_stripped(self) -> None:
        """A UDH without a concat element (a port number, say) is removed from the text."""
        self.deliver("hello", udh=bytes([0x06, 0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0]))
        self.assertEqual(self.bodies(), ["hello"])

    def test_binary_refused(self) -> None:
        """8-bit binary data is refused with a permanent error and a clear log line."""
        self.assertEqual(self.deliver(b"\x00\xff\x10", data_coding=0x04), ESME_RX_R_APPN)
        self.assertEqual(self.hosted.calls, [])
        [line] = self.problems()
        self.assertIn("not accepted", line)
        self.assertIn("binary", line)

    def test_binary_part_refused_unstored(self) -> None:
        """A binary part is refused at once: nothing is kept waiting for the other parts."""
        status = self.deliver(b"\x00\xff", data_coding=0x04, udh=udh8(1, 2, 1))
        self.assertEqual(status, ESME_RX_R_APPN)
        self.assertEqual(self.store.counts()["fragments"], 0)

    def test_broken_udh_refused(self) -> None:
        """A UDH that runs past the message is refused with a permanent error."""
        self.assertEqual(self.deliver(b"\x09\x00\x03", esm_class=0x40), ESME_RX_R_APPN)
        self.assertIn("UDH", self.problems()[0])


class DefaultAlphabetTests(InboundTestCase):
    """data_coding 0 read as the server's default_alphabet, and dialog prefixes whatever their "@"."""

    AT_B = "62 3a 20 66 69 6e 65"  # "b: fine" after the "@"

    def make_alphabet(self, alphabet: str, **settings: Any) -> FakeHost:
        """A gateway whose server has this default_alphabet (the previous one stopped), and a host."""
        if hasattr(self, "inbound"):
            self.inbound.stop()
            for host in list(self.registry.hosts):
                self.registry.remove(host)
        self.make(server=f'default_alphabet = "{alphabet}"', **settings)
        return self.host()

    def bind_two(self) -> None:
        for sender in ("susan@company.dom", "smith@company.dom"):
            self.table.outgoing_prefix("+" + PHONE, sender)  # type: ignore[union-attr]

    def test_prefix_with_either_at(self) -> None:
        """With two bindings, "@b: fine" as 40 62 3a ... or 00 62 3a ... reaches binding b as "fine" on every setting."""
        for alphabet in ("gsm", "ascii", "latin-1"):
            host = self.make_alphabet(alphabet, dialogs=True, name=alphabet)
            self.bind_two()
            for at in ("40", "00"):
                status = self.deliver(bytes.fromhex(f"{at} {self.AT_B}"))
                self.assertEqual(status, ESME_ROK, (alphabet, at))
            self.assertEqual([(s["recipient"], s["body"]) for s in host.signals()],
                             [("smith@company.dom", "fine")] * 2, alphabet)

    def test_escape_with_ascii_at(self) -> None:
        """"@@ for desk" as 40 40 20 ... on a GSM link goes to the Recipient as "for desk"."""
        host = self.make_alphabet("gsm", dialogs=True, recipient="desk@company.dom")
        self.bind_two()
        self.assertEqual(self.deliver(b"\x40\x40 for desk"), ESME_ROK)
        self.assertEqual([(s["recipient"], s["body"]) for s in host.signals()],
                         [("desk@company.dom", "for desk")])

    def test_rest_read_as_the_setting_says(self) -> None:
        """After the prefix nothing is guessed: 0x40 is "¡" on a GSM link and "@" on an ascii one."""
        bodies = {}
        for alphabet in ("gsm", "ascii"):
            host = self.make_alphabet(alphabet, dialogs=True, name=alphabet)
            self.bind_two()
            self.deliver(bytes.fromhex("40 61 20 6d 65 40 68 6f 6d 65"))  # "@a me@home"
            [signal] = host.signals()
            bodies[alphabet] = (signal["recipient"], signal["body"])
        self.assertEqual(bodies, {"gsm": ("susan@company.dom", "me¡home"),
                                  "ascii": ("susan@company.dom", "me@home")})

    def test_text_by_setting_with_dialogs_off(self) -> None:
        """With Dialogs off the bytes are read as the setting says, a prefix and all."""
        texts = {}
        for alphabet in ("gsm", "ascii", "latin-1"):
            host = self.make_alphabet(alphabet, recipient="desk@company.dom", name=alphabet)
            self.deliver(bytes.fromhex(f"40 {self.AT_B} 24 5f"))
            texts[alphabet] = host.signals()[0]["body"]
        self.assertEqual(texts, {"gsm": "¡b: fine¤§", "ascii": "@b: fine$_",
                                 "latin-1": "@b: fine$_"})

    def test_latin1_and_ascii_8_bit(self) -> None:
        """0xE9 is "é" on a latin-1 link; on an ascii link it is refused with ESME_RX_R_APPN."""
        host = self.make_alphabet("latin-1", recipient="desk@company.dom")
        self.assertEqual(self.deliver(b"caf\xe9"), ESME_ROK)
        self.assertEqual(host.signals()[0]["body"], "café")
        self.make_alphabet("ascii", recipient="desk@company.dom", name="other")
        self.assertEqual(self.deliver(b"caf\xe9"), ESME_RX_R_APPN)
        self.assertIn("0xE9", self.problems()[-1])

    def test_prefix_of_a_long_message(self) -> None:
        """A two-part ascii message led by 40 62 3a reaches binding b, reassembled in ascii."""
        host = self.make_alphabet("ascii", dialogs=True)
        self.bind_two()
        self.deliver(b"$ for you", udh=udh8(9, 2, 2))
        self.deliver(b"\x40b: 5", udh=udh8(9, 2, 1))
        self.assertEqual([(s["recipient"], s["body"]) for s in host.signals()],
                         [("smith@company.dom", "5$ for you")])

    def hints(self) -> list[str]:
        return [line for line in self.problems() if "default_alphabet" in line]

    def test_ascii_looking_text_on_a_gsm_link_logged_once(self) -> None:
        """The first ASCII-looking data_coding-0 SMS on a GSM link logs one problems line naming the fitting value; later ones do not."""
        self.make_alphabet("gsm", recipient="desk@company.dom")
        self.deliver(b"plain")
        self.deliver(b"\x00b: fine")
        self.assertEqual(self.hints(), [])
        self.deliver(b"\x40b: fine")
        self.deliver(b"costs $5")
        [line] = self.hints()
        self.assertIn("SMPP [sim]", line)
        self.assertIn('default_alphabet = "gsm" may be wrong', line)
        self.assertIn('default_alphabet = "ascii" would fit', line)

    def test_latin1_looking_text_refused_but_hinted(self) -> None:
        """A Latin-1 SMS on a GSM link is refused (0xE9 is no septet), and the hint names latin-1."""
        self.make_alphabet("gsm", recipient="desk@company.dom")
        self.assertEqual(self.deliver(b"caf\xe9 @ 5"), ESME_RX_R_APPN)
        [line] = self.hints()
        self.assertIn('default_alphabet = "latin-1" would fit', line)

    def test_no_hint_off_gsm_or_off_data_coding_0(self) -> None:
        """An ascii link, or data_coding 1 on a GSM link, logs no hint."""
        self.make_alphabet("ascii", recipient="desk@company.dom")
        self.deliver(b"\x40b: fine")
        self.make_alphabet("gsm", recipient="desk@company.dom", name="other")
        self.deliver(b"\x40b: fine", data_coding=0x01)
        self.assertEqual(self.hints(), [])


class ReassemblyTests(InboundTestCase):
    """Concatenated SMS: UDH 8/16-bit, SAR, any order, expiry, restarts."""

    def test_parts_out_of_order(self) -> None:
        """Parts arriving 3, 1, 2 are each acknowledged and make one message, in sequence order."""
        self.make(recipient="sms@example.com")
        host = self.host()
        for sequence, chunk in [(3, "three"), (1, "one "), (2, "two ")]:
            self.assertEqual(self.deliver(chunk, udh=udh8(7, 3, sequence)), ESME_ROK)
            if sequence != 2:
                self.assertEqual(host.calls, [])
        self.assertEqual([s["body"] for s in host.signals()], ["one two three"])
        self.assertEqual(self.store.counts()["fragments"], 0)

    def test_16bit_reference_not_first_element(self) -> None:
        """A 16-bit concat element after another UDH element is found and used."""
        self.make(recipient="sms@example.com")
        host = self.host()
        port = bytes([0x05, 0x04, 0x0B, 0x84, 0x23, 0xF0])
        for sequence, chunk in [(2, "world"), (1, "hello ")]:
            header = udh16(0x1234, 2, sequence)
            udh = bytes([header[0] + len(port)]) + port + header[1:]
            self.deliver(chunk, udh=udh)
        self.assertEqual([s["body"] for s in host.signals()], ["hello world"])

    def test_sar(self) -> None:
        """Parts numbered by SAR TLVs are reassembled."""
        self.make(recipient="sms@example.com")
        host = self.host()
        for sequence, chunk in [(2, "B"), (1, "A")]:
            self.deliver(chunk, sar_msg_ref_num=0xBEEF, sar_total_segments=2,
                         sar_segment_seqnum=sequence)
        self.assertEqual([s["body"] for s in host.signals()], ["AB"])

    def test_references_and_senders_kept_apart(self) -> None:
        """Interleaved series with different references, widths or senders never mix."""
        self.make(recipient="sms@example.com")
        host = self.host()
        self.deliver("a1", udh=udh8(5, 2, 1))
        self.deliver("b1", udh=udh16(5, 2, 1))
        self.deliver("c1", source="15550002", udh=udh8(5, 2, 1))
        self.deliver("d1", udh=udh8(6, 2, 1))
        self.deliver("-b2", udh=udh16(5, 2, 2))
        self.deliver("-c2", source="15550002", udh=udh8(5, 2, 2))
        self.deliver("-a2", udh=udh8(5, 2, 2))
        self.assertEqual([s["body"] for s in host.signals()], ["b1-b2", "c1-c2", "a1-a2"])
        self.assertEqual(self.store.counts()["fragments"], 1)

    def test_ucs2_emoji_split_between_parts(self) -> None:
        """A surrogate pair cut between two UCS2 parts is joined before decoding."""
        self.make(recipient="sms@example.com")
        host = self.host()
        data = "ok 😀!".encode("utf-16-be")
        cut = data.index("😀".encode("utf-16-be")) + 2
        self.deliver(data[:cut], data_coding=0x08, udh=udh8(9, 2, 1))
        self.deliver(data[cut:], data_coding=0x08, udh=udh8(9, 2, 2))
        self.assertEqual([s["body"] for s in host.signals()], ["ok 😀!"])

    def test_gsm_escape_split_between_parts(self) -> None:
        """A GSM extension character whose escape ends one part and code starts the next reads as itself."""
        self.make(recipient="sms@example.com")
        host = self.host()
        data = encode_text("cost 5€ now", 0)
        cut = data.index(b"\x1b") + 1
        self.deliver(data[:cut], udh=udh8(3, 2, 1))
        self.deliver(data[cut:], udh=udh8(3, 2, 2))
        self.assertEqual([s["body"] for s in host.signals()], ["cost 5€ now"])

    def test_rules_apply_to_whole_message(self) -> None:
        """The dialog prefix is read from the reassembled text, not from a part."""
        self.make(dialogs=True)
        host = self.host()
        assert self.table is not None
        self.table.outgoing_prefix("+" + PHONE, "susan@company.dom")
        self.table.outgoing_prefix("+" + PHONE, "smith@company.dom")
        self.deliver("long reply", udh=udh8(1, 2, 2))
        self.deliver("@b ", udh=udh8(1, 2, 1))
        [signal] = host.signals()
        self.assertEqual((signal["recipient"], signal["body"]), ("smith@company.dom", "long reply"))

    def test_whole_message_refused_by_rules(self) -> None:
        """When the rules refuse a reassembled message, its last part gets the permanent error."""
        self.make(dialogs=True)
        self.assertEqual(self.deliver("one ", udh=udh8(1, 2, 1)), ESME_ROK)
        self.assertEqual(self.deliver("two", udh=udh8(1, 2, 2)), ESME_RX_R_APPN)
        self.assertEqual(self.store.counts()["fragments"], 0)

    def test_restart_between_parts(self) -> None:
        """Parts stored before a restart join the parts received after it."""
        self.make(self.mktemp(), recipient="sms@example.com")
        self.assertEqual(self.deliver("before ", udh=udh8(42, 2, 1)), ESME_ROK)
        self.restart()
        host = self.host()
        self.assertEqual(self.deliver("after", udh=udh8(42, 2, 2)), ESME_ROK)
        self.assertEqual([s["body"] for s in host.signals()], ["before after"])

    def test_incomplete_set_expires(self) -> None:
        """A set still incomplete after reassembly_timeout is dropped with a log line; a late part starts anew."""
        self.make(recipient="sms@example.com", module='reassembly_timeout = "20m"')
        host = self.host()
        self.deliver("one ", udh=udh8(8, 2, 1))
        self.clock.advance(19 * 60)
        self.assertEqual(self.store.counts()["fragments"], 1)
        self.clock.advance(5 * 60)
        self.assertEqual(self.store.counts()["fragments"], 0)
        [line] = self.problems()
        self.assertIn(f"incomplete SMS from {PHONE}", line)
        self.assertIn("1 of 2 parts", line)
        self.deliver("two", udh=udh8(8, 2, 2))
        self.assertEqual(host.calls, [])
        self.assertEqual(self.store.counts()["fragments"], 1)

    def test_expired_by_the_maintainer(self) -> None:
        """On a node that does not maintain the store, an incomplete set outlives the
        reassembly timeout; once the node maintains, the next look drops it."""
        maintaining = [False]
        self.make(recipient="sms@example.com", module='reassembly_timeout = "20m"',
                  maintains=lambda: maintaining[0])
        self.deliver("one ", udh=udh8(8, 2, 1))
        self.clock.advance(3600)
        self.assertEqual((self.store.counts()["fragments"], self.problems()), (1, []))
        maintaining[0] = True
        self.clock.advance(60)
        self.assertEqual(self.store.counts()["fragments"], 0)
        self.assertIn("dropped: 1 of 2 parts", self.problems()[0])

    def test_expiry_after_restart(self) -> None:
        """Parts left from before a restart expire too, checked as soon as the gateway starts."""
        self.make(self.mktemp(), recipient="sms@example.com")
        self.deliver("one ", udh=udh8(8, 2, 1))
        self.clock.advance(3600)
        self.restart()
        self.assertEqual(self.store.counts()["fragments"], 0)
        self.assertIn("dropped: 1 of 2 parts", self.problems()[0])


class ReceiptTests(InboundTestCase):
    """Delivery receipts become SignalReport for the request that sent the message."""

    def sent(self, message_id: str, request_id: str = "req-1", parts: int = 1, index: int = 0) -> None:
        if self.store.outbound(request_id) is None:
            self.store.add_outbound(request_id, "sim", {}, parts, 0.0)
        self.store.set_message_id(request_id, index, message_id, submit_key(message_id))
        self.clock.advance(0)

    def receipt(self, message_id: str, stat: str = "DELIVRD", tlvs: bool = True, **extra: Any) -> int:
        text = f"id:{message_id} sub:001 dlvrd:001 submit date:2401011200 done date:2401011201 stat:{stat} err:000 text:hi"
        params: dict[str, Any] = {"source_addr": PHONE.encode(), "destination_addr": b"1555",
                                  "esm_class": 0x04, "data_coding": 0,
                                  "short_message": text.encode("ascii")}
        if tlvs:
            params["receipted_message_id"] = message_id.encode("ascii")
            params["message_state"] = 2 if stat == "DELIVRD" else 5
        params.update(extra)
        return self.answer(params)

    def test_host_without_signal_report(self) -> None:
        """A host that answers a SignalReport UNHANDLED keeps getting messages; reports wait,
        at no cost in attempts, for a host that takes them."""
        self.make(recipient="sms@example.com", max_attempts=1)
        host = self.host(auto=False)
        self.sent("0000001a")
        self.assertEqual(self.receipt("0000001a"), ESME_ROK)
        [call] = host.calls
        call.deferred.errback(UnhandledCommand(b"UNHANDLED", "Unhandled Command"))
        self.clock.advance(0)
        self.assertIn("does not handle SignalReport", " ".join(self.problems()))
        self.deliver("hello")
        self.assertEqual([c.command for c in host.calls], [SignalReport, DeliverSignal])
        host.calls[1].deferred.callback({})
        self.clock.advance(0)
        self.sent("0000001b", request_id="req-2")
        self.receipt("0000001b")
        self.assertEqual(len(host.calls), 2)  # the second report waits too
        self.assertEqual([row.attempts for row in self.store.inbox()], [0, 0])
        reports_host = self.host()
        self.assertEqual([r["message_id"] for r in reports_host.reports()], ["0000001a", "0000001b"])
        self.assertEqual(self.store.inbox(), [])
        self.deliver("again")  # messages go round-robin to both
        self.assertEqual(len(host.signals()) + len(reports_host.signals()), 2)

    def test_receipt_matched(self) -> None:
        """A receipt for a sent message id gives a SignalReport naming the request and the id."""
        self.make()
        host = self.host()
        self.sent("0000001a")
        self.assertEqual(self.receipt("0000001a"), ESME_ROK)
        self.assertEqual(host.reports(), [{"request_id": "req-1", "message_id": "0000001a",
                                           "state": "DELIVERED", "error": "000", "server": "sim",
                                           "part": 1, "parts": 1}])
        self.assertEqual(host.signals(), [])

    def test_receipt_decimal_for_hex_id(self) -> None:
        """A receipt writing in decimal the id the SMSC gave in hex still matches, reporting the id as sent."""
        self.make()
        host = self.host()
        self.sent("0000001A")
        self.receipt("26", stat="UNDELIV", tlvs=False)
        self.assertEqual(host.reports(), [{"request_id": "req-1", "message_id": "0000001A",
                                           "state": "UNDELIVERABLE", "error": "000", "server": "sim",
                                           "part": 1, "parts": 1}])

    def test_receipt_hex_for_decimal_id(self) -> None:
        """A receipt writing in hex the id the SMSC gave in decimal matches too."""
        self.make()
        host = self.host()
        self.sent("26")
        self.receipt("1a", tlvs=False)
        self.assertEqual(host.reports()[0]["message_id"], "26")

    def test_receipt_names_part(self) -> None:
        """A receipt for the second part of a two-part request reports that part's id, as part 2 of 2."""
        self.make()
        host = self.host()
        self.sent("100", parts=2, index=0)
        self.sent("101", parts=2, index=1)
        self.receipt("101")
        self.assertEqual([(r["message_id"], r["part"], r["parts"]) for r in host.reports()],
                         [("101", 2, 2)])

    def test_report_stored_without_part(self) -> None:
        """A report stored before reports named their part goes to the host without part and parts."""
        self.make()
        old = {"request_id": "req-1", "message_id": "7", "state": "DELIVERED", "error": "000",
               "server": "sim"}
        self.store.add_inbox("report", old, 0.0)
        self.clock.advance(0)  # durable: then a host gets it
        host = self.host()
        self.assertEqual(host.reports(), [old])

    def test_receipt_by_tlvs_only(self) -> None:
        """receipted_message_id and message_state mark a receipt even without the esm_class bit."""
        self.make()
        host = self.host()
        self.sent("77")
        self.receipt("77", esm_class=0)
        self.assertEqual(host.reports()[0]["state"], "DELIVERED")

    def test_unmatched_receipt_acknowledged(self) -> None:
        """A receipt matching no sent message is logged and acknowledged: a retry could not help."""
        self.make()
        host = self.host()
        self.assertEqual(self.receipt("ffff"), ESME_ROK)
        self.assertEqual(host.calls, [])
        self.assertIn("unknown message id ffff", self.problems()[0])

    def test_receipt_of_other_server_unmatched(self) -> None:
        """A message id is matched only among the messages of the server the receipt came from."""
        self.make()
        self.store.add_outbound("other", "elsewhere", {}, 1, 0.0)
        self.store.set_message_id("other", 0, "55", submit_key("55"))
        self.assertEqual(self.receipt("55"), ESME_ROK)
        self.assertEqual(self.store.counts()["inbox"], 0)


class DispatchTests(InboundTestCase):
    """Handing the inbox to hosts: waiting, round-robin, refusals, retries, limits."""

    def test_host_absent_then_connects(self) -> None:
        """With no host, messages wait in the store; the first host to log in gets them, oldest first."""
        self.make(recipient="sms@example.com")
        self.deliver("first")
        self.deliver("second")
        self.assertEqual(self.store.counts()["inbox"], 2)
        host = self.host()
        self.assertEqual([s["body"] for s in host.signals()], ["first", "second"])
        self.assertEqual(self.store.counts()["inbox"], 0)

    def test_stored_rows_delivered_after_restart(self) -> None:
        """Rows stored before a restart go to a host after it."""
        self.make(self.mktemp(), recipient="sms@example.com")
        self.deliver("kept")
        self.restart()
        host = self.host()
        self.assertEqual([s["body"] for s in host.signals()], ["kept"])

    def test_removed_only_when_answered(self) -> None:
        """A row stays in the store until the host answers it."""
        self.make(recipient="sms@example.com")
        host = self.host(auto=False)
        self.deliver("hi")
        self.assertEqual(len(host.calls), 1)
        self.assertEqual(self.store.counts()["inbox"], 1)
        host.calls[0].deferred.callback({})
        self.clock.advance(0)
        self.assertEqual(self.store.counts()["inbox"], 0)

    def test_round_robin_each_row_once(self) -> None:
        """Two hosts share the rows round-robin, and no row goes to both."""
        self.make(recipient="sms@example.com")
        first, second = self.host(auto=False), self.host(auto=False)
        for n in range(4):
            self.deliver(f"m{n}")
        self.assertEqual([s["body"] for s in first.signals()], ["m0", "m2"])
        self.assertEqual([s["body"] for s in second.signals()], ["m1", "m3"])

    def test_in_flight_limit(self) -> None:
        """At most MAX_IN_FLIGHT rows wait for host answers; an answer lets the next one go."""
        self.make(recipient="sms@example.com")
        for n in range(MAX_IN_FLIGHT + 5):
            self.deliver(f"m{n}")
        host = self.host(auto=False)
        self.assertEqual(len(host.calls), MAX_IN_FLIGHT)
        host.calls[0].deferred.callback({})
        self.clock.advance(0)
        self.assertEqual(len(host.calls), MAX_IN_FLIGHT + 1)
        self.assertEqual(host.calls[-1].arguments["body"], f"m{MAX_IN_FLIGHT}")

    def test_due_retry_waits_for_room(self) -> None:
        """A retry that falls due while MAX_IN_FLIGHT rows are out waits for an answer, without a busy timer."""
        self.make(recipient="sms@example.com")
        for n in range(MAX_IN_FLIGHT + 1):
            self.deliver(f"m{n}")
        host = self.host(auto=False)
        host.calls[0].deferred.errback(HostTryLater("busy"))
        self.clock.advance(0)
        self.assertEqual(len(host.calls), MAX_IN_FLIGHT + 1)
        scheduled: list[float] = []
        schedule = self.clock.callLater

        def counted(delay: float, f: Any, *args: Any, **kw: Any) -> Any:
            scheduled.append(delay)
            if len(scheduled) > 100:
                raise RuntimeError("a busy timer")  # stops the loop rather than hang the test
            return schedule(delay, f, *args, **kw)

        self.patch(self.clock, "callLater", counted)
        self.clock.advance(5)
        self.assertLess(len(scheduled), 5)
        self.assertEqual(len(host.calls), MAX_IN_FLIGHT + 1)
        host.calls[1].deferred.callback({})
        self.clock.advance(0)
        self.assertEqual(host.calls[-1].arguments["body"], "m0")

    def test_refused_dropped(self) -> None:
        """A REFUSED answer drops the row for good, with a log line."""
        self.make(recipient="sms@example.com")
        host = self.host(auto=False)
        self.deliver("unwanted")
        host.calls[0].deferred.errback(Refused("no such user"))
        self.clock.advance(3600)
        self.assertEqual(len(host.calls), 1)
        self.assertEqual(self.store.counts()["inbox"], 0)
        self.assertIn("refused by the host: dropped", self.problems()[0])

    def test_try_later_backoff_then_gives_up(self) -> None:
        """TRY_LATER is retried after 1, 2, 4... seconds; after max_attempts the row is logged and dropped."""
        self.make(recipient="sms@example.com", max_attempts=4)
        host = self.host(auto=False)
        self.deliver("busy")
        sent_at = [self.clock.seconds()]
        for delay in (1, 2, 4):
            host.calls[-1].deferred.errback(HostTryLater("busy"))
            self.clock.advance(0)  # the attempt is recorded: the backoff starts
            self.clock.advance(delay - 0.5)
            self.assertEqual(len(host.calls), len(sent_at))
            self.clock.advance(0.5)
            self.assertEqual(len(host.calls), len(sent_at) + 1)
            sent_at.append(self.clock.seconds())
        host.calls[-1].deferred.errback(HostTryLater("busy"))
        self.clock.advance(600)
        self.assertEqual(len(host.calls), 4)
        self.assertEqual(self.store.counts()["inbox"], 0)
        self.assertIn("after 4 attempts", self.problems()[-1])

    def test_retry_goes_to_another_host(self) -> None:
        """A host that disconnects mid-call costs no attempt; the row goes at once to the host still there."""
        self.make(recipient="sms@example.com")
        first, second = self.host(auto=False), self.host()
        self.deliver("hello")
        self.registry.remove(first)  # type: ignore[arg-type]
        first.calls[0].deferred.errback(ConnectionLost())
        self.clock.advance(0)
        self.assertEqual([s["body"] for s in second.signals()], ["hello"])
        self.assertEqual(self.store.counts()["inbox"], 0)
        self.assertEqual(self.problems(), [])

    def test_no_host_after_disconnect_waits(self) -> None:
        """A row whose host disconnected, with no host left, waits for the next host, its attempts uncounted."""
        self.make(recipient="sms@example.com", max_attempts=1)
        first = self.host(auto=False)
        self.deliver("hello")
        self.registry.remove(first)  # type: ignore[arg-type]
        first.calls[0].deferred.errback(ConnectionLost())
        self.clock.advance(10)
        self.assertEqual(self.store.inbox()[0].attempts, 0)
        second = self.host()
        self.assertEqual([s["body"] for s in second.signals()], ["hello"])

    def test_no_host_during_backoff_waits(self) -> None:
        """A row in backoff with no host left waits for the next host to log in."""
        self.make(recipient="sms@example.com")
        first = self.host(auto=False)
        self.deliver("hello")
        first.calls[0].deferred.errback(HostTryLater("busy"))
        self.clock.advance(0)  # the attempt is recorded: the backoff starts
        self.registry.remove(first)  # type: ignore[arg-type]
        self.clock.advance(10)
        self.assertEqual(self.store.inbox()[0].attempts, 1)
        second = self.host()
        self.assertEqual([s["body"] for s in second.signals()], ["hello"])

    def test_silent_host_times_out(self) -> None:
        """A host that never answers counts as TRY_LATER after HOST_ANSWER_TIMEOUT, and the row is sent again."""
        self.make(recipient="sms@example.com")
        host = self.host(auto=False)
        self.deliver("hello")
        self.clock.advance(HOST_ANSWER_TIMEOUT - 1)
        self.assertEqual(self.store.inbox()[0].attempts, 0)
        self.clock.advance(1)
        self.assertEqual(self.store.inbox()[0].attempts, 1)
        self.assertIn(f"no answer within {HOST_ANSWER_TIMEOUT:g}s", self.problems()[-1])
        self.clock.advance(1)
        self.assertEqual([s["body"] for s in host.signals()], ["hello", "hello"])
        host.calls[0].deferred.callback({})  # a late answer to the first call changes nothing
        self.assertEqual(self.store.counts()["inbox"], 1)
        host.calls[1].deferred.callback({})
        self.assertEqual(self.store.counts()["inbox"], 0)

    def test_timeout_survives_restart(self) -> None:
        """A call still unanswered across a stop and start of the dispatcher times out all the same."""
        self.make(recipient="sms@example.com")
        host = self.host(auto=False)
        self.deliver("hello")
        self.inbound.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.inbound.start()
        self.clock.advance(HOST_ANSWER_TIMEOUT)
        self.assertEqual(self.store.inbox()[0].attempts, 1)
        self.clock.advance(1)
        self.assertEqual(len(host.calls), 2)

    def test_silent_host_gives_up_after_max_attempts(self) -> None:
        """A host that never answers makes the row give up after max_attempts timeouts, like TRY_LATER."""
        self.make(recipient="sms@example.com", max_attempts=3)
        host = self.host(auto=False)
        self.deliver("hello")
        for _ in range(10):
            self.clock.advance(HOST_ANSWER_TIMEOUT)
        self.assertEqual(len(host.calls), 3)
        self.assertEqual(self.store.counts()["inbox"], 0)
        self.assertIn("after 3 attempts", self.problems()[-1])

    def test_hung_host_does_not_stop_the_others(self) -> None:
        """A host that never answers holds only its share of the rows in flight; the others get the rest."""
        self.make(recipient="sms@example.com")
        hung, good = self.host(auto=False), self.host()
        count = 2 * MAX_IN_FLIGHT
        for n in range(count):
            self.deliver(f"m{n}")
        self.assertLessEqual(len(hung.calls), MAX_IN_FLIGHT // 2)
        self.assertEqual(len(good.calls), count - len(hung.calls))
        # Each row the hung host holds times out and is retried round-robin, so
        # fewer are left with it each round.
        self.clock.pump([HOST_ANSWER_TIMEOUT] * 30)
        self.assertEqual(self.store.counts()["inbox"], 0)
        self.assertEqual(sorted(s["body"] for s in good.signals()),
                         sorted(f"m{n}" for n in range(count)))

    def test_unhandled_is_not_a_delivery_host(self) -> None:
        """A connection answering UNHANDLED (a CLI, a monitor) leaves the round-robin and costs no attempt."""
        self.make(recipient="sms@example.com", max_attempts=1)
        monitor = self.host(auto=False)
        self.deliver("hello")
        monitor.calls[0].deferred.errback(UnhandledCommand(b"UNHANDLED", "Unhandled Command"))
        self.assertEqual(self.registry.hosts, [])
        self.assertEqual(self.store.inbox()[0].attempts, 0)
        host = self.host()
        self.assertEqual([s["body"] for s in host.signals()], ["hello"])
        self.deliver("again")
        self.assertEqual(len(monitor.calls), 1)
        self.assertEqual([s["body"] for s in host.signals()], ["hello", "again"])

    def test_restart_does_not_resend_in_flight(self) -> None:
        """A row still awaiting a host's answer is not sent again when the dispatcher restarts."""
        self.make(recipient="sms@example.com")
        host = self.host(auto=False)
        self.deliver("once")
        self.inbound.stop()
        self.inbound.start()
        self.clock.advance(0)
        self.assertEqual(len(host.calls), 1)
        host.calls[0].deferred.callback({})
        self.clock.advance(0)
        self.assertEqual(self.store.counts()["inbox"], 0)

    def test_reports_dispatched(self) -> None:
        """Report rows go out as SignalReport, message rows as DeliverSignal, in arrival order."""
        self.make(recipient="sms@example.com")
        self.store.add_outbound("r", "sim", {}, 1, 0.0)
        self.store.set_message_id("r", 0, "9", submit_key("9"))
        self.deliver("text")
        self.answer({"source_addr": b"1", "destination_addr": b"2", "esm_class": 4,
                     "short_message": b"id:9 stat:DELIVRD err:000"})
        host = self.host()
        self.assertEqual([call.command for call in host.calls], [DeliverSignal, SignalReport])

    def test_stop_keeps_rows(self) -> None:
        """After stop, nothing more is sent; the rows wait in the store for the next start."""
        self.make(recipient="sms@example.com")
        self.inbound.stop()
        self.deliver("later")
        host = self.host()
        self.assertEqual(host.calls, [])
        self.inbound.start()
        self.clock.advance(0)
        self.assertEqual([s["body"] for s in host.signals()], ["later"])


class AcknowledgementTests(InboundTestCase):
    """What the SMSC hears: ESME_ROK only once stored; temporary errors when the gateway cannot keep it."""

    def test_ok_waits_for_commit(self) -> None:
        """deliver_sm_resp is held until the message is committed to the store."""
        self.make(recipient="sms@example.com")
        result = self.handler(PDU("deliver_sm", 1, 0, {"source_addr": b"1", "destination_addr": b"2",
                                                       "short_message": b"hi"}))
        assert isinstance(result, Deferred)
        self.assertNoResult(result)
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(result), ESME_ROK)

    def test_back_pressure(self) -> None:
        """A full inbox answers ESME_RX_T_APPN (the SMSC retries) and logs once; room again, ESME_ROK again."""
        self.make(recipient="sms@example.com", max_inbox=2)
        self.assertEqual(self.deliver("a"), ESME_ROK)
        self.assertEqual(self.deliver("b"), ESME_ROK)
        self.assertEqual(self.deliver("c"), ESME_RX_T_APPN)
        self.assertEqual(self.deliver("d"), ESME_RX_T_APPN)
        self.assertEqual(len(self.problems()), 1)
        self.assertIn("limit 2", self.problems()[0])
        self.host()
        self.assertEqual(self.deliver("c"), ESME_ROK)

    def test_back_pressure_counts_stored_rows(self) -> None:
        """Rows left in the store from before a restart count toward the limit."""
        self.make(self.mktemp(), recipient="sms@example.com")
        self.deliver("a")
        self.inbound.stop()
        self.store.close()
        self.make(self.store.path, recipient="sms@example.com", max_inbox=1)
        self.assertEqual(self.deliver("b"), ESME_RX_T_APPN)

    def test_write_failure_is_temporary(self) -> None:
        """A store that cannot write gets ESME_RX_T_APPN and a log line."""
        self.make(recipient="sms@example.com")

        def broken(*args: Any, **kw: Any) -> Any:
            raise StoreError("disk full")

        self.patch(self.store, "add_inbox", broken)
        self.assertEqual(self.deliver("hi"), ESME_RX_T_APPN)
        self.assertIn("disk full", self.problems()[0])

    def test_commit_failure_is_temporary(self) -> None:
        """A commit that fails gets ESME_RX_T_APPN, and no host sees the rolled-back message."""
        self.make(recipient="sms@example.com")
        host = self.host()
        result = self.handler(PDU("deliver_sm", 1, 0, {"source_addr": b"1", "destination_addr": b"2",
                                                       "short_message": b"hi"}))
        assert isinstance(result, Deferred)
        self.store._db.close()  # the commit of the open transaction now fails
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(result), ESME_RX_T_APPN)
        self.assertEqual(host.calls, [])
        self.assertTrue(any("will send it again" in line for line in self.problems()))

    def test_part_write_failure_is_temporary(self) -> None:
        """A part the store cannot keep gets ESME_RX_T_APPN."""
        self.make(recipient="sms@example.com")

        def broken(*args: Any, **kw: Any) -> Any:
            raise StoreError("disk full")

        self.patch(self.store, "add_fragment", broken)
        self.assertEqual(self.deliver("x", udh=udh8(1, 2, 1)), ESME_RX_T_APPN)

    def test_last_part_write_failure_keeps_parts(self) -> None:
        """When the whole message cannot be stored, its parts stay, and the resent last part completes it."""
        self.make(recipient="sms@example.com")
        host = self.host()
        self.assertEqual(self.deliver("one ", udh=udh8(4, 2, 1)), ESME_ROK)

        def broken(*args: Any, **kw: Any) -> Any:
            return fail(StoreError("disk full"))

        patched = self.patch(self.store, "add_inbox", broken)
        self.assertEqual(self.deliver("two", udh=udh8(4, 2, 2)), ESME_RX_T_APPN)
        patched.restore()
        self.clock.advance(1)  # the batch with whatever was written commits
        self.assertEqual(self.store.counts()["fragments"], 2)
        self.assertEqual(self.deliver("two", udh=udh8(4, 2, 2)), ESME_ROK)
        self.assertEqual([s["body"] for s in host.signals()], ["one two"])
        self.assertEqual(self.store.counts()["fragments"], 0)

    def test_refused_whole_message_drops_parts(self) -> None:
        """A reassembled message the rules refuse leaves no parts behind once committed."""
        self.make()
        self.assertEqual(self.deliver("one ", udh=udh8(4, 2, 1), destination="SHORT"), ESME_ROK)
        self.assertEqual(self.deliver("two", udh=udh8(4, 2, 2), destination="SHORT"),
                         ESME_RX_R_APPN)
        self.clock.advance(1)
        self.assertEqual(self.store.counts()["fragments"], 0)
        self.assertEqual(self.store.counts()["inbox"], 0)

    def test_receipt_write_failure_is_temporary(self) -> None:
        """A matched receipt the store cannot keep gets ESME_RX_T_APPN."""
        self.make()
        self.store.add_outbound("r", "sim", {}, 1, 0.0)
        self.store.set_message_id("r", 0, "9", submit_key("9"))
        self.patch(self.store, "lookup_message", lambda *a: (_ for _ in ()).throw(StoreError("gone")))
        status = self.answer({"source_addr": b"1", "destination_addr": b"2", "esm_class": 4,
                              "short_message": b"id:9 stat:DELIVRD err:000"})
        self.assertEqual(status, ESME_RX_T_APPN)

    def test_unexpected_error_is_temporary(self) -> None:
        """Any unexpected failure answers ESME_RX_T_APPN rather than losing the message."""
        self.make(recipient="sms@example.com")
        self.patch(self.store, "add_inbox", lambda *a, **kw: 1 / 0)
        self.assertEqual(self.deliver("hi"), ESME_RX_T_APPN)
        self.assertIn("ZeroDivisionError", self.problems()[0])

    def test_accepted_logged_at_major(self) -> None:
        """Each accepted SMS is logged with its sender and recipient."""
        self.make(recipient="sms@example.com")
        self.deliver("hi")
        infos = [formatEvent(e) for e in self.events if e.get("log_level") == LogLevel.info]
        self.assertTrue(any(f"+{PHONE}@sim._smpp for sms@example.com accepted" in line
                            for line in infos), infos)


class _SilentClient(amp.AMP):
    """A client that reads boxes and never answers them."""

    def ampBoxReceived(self, box: amp.AmpBox) -> None:
        pass


class MonitoringConnectionTests(InboundTestCase):
    """Connections without DeliverSignal responders (``smppgw.host.client status``) over in-memory AMP."""

    def connect(self, client: type[amp.AMP] = amp.AMP) -> tuple[amp.AMP, iosim.IOPump]:
        # No outbound queue: these clients send no SendSignal.
        factory = GatewayAMPFactory(None, self.registry, self.clock)  # type: ignore[arg-type]
        protocol, _server, pump = iosim.connectedServerAndClient(
            lambda: factory.buildProtocol(None), client, clock=self.clock)
        pump.flush()
        return protocol, pump

    def test_status_clients_do_not_use_up_attempts(self) -> None:
        """Clients that answer UNHANDLED or hang up never drop a message meant for a host."""
        self.make(recipient="sms@example.com", max_attempts=2)
        self.deliver("hello")
        for _ in range(3):
            self.connect()  # stays connected, answers UNHANDLED
        for _ in range(3):
            silent, pump = self.connect(_SilentClient)
            silent.transport.loseConnection()
            pump.flush()
        self.assertEqual(self.registry.hosts, [])
        self.assertEqual(self.store.inbox()[0].attempts, 0)
        host = self.host()
        self.assertEqual([s["body"] for s in host.signals()], ["hello"])
        self.assertEqual(self.problems(), [])

    def test_silent_connection_times_out(self) -> None:
        """A connected host that never answers costs the row an attempt per timeout, and a later host gets it."""
        self.make(recipient="sms@example.com")
        self.deliver("hello")
        silent, pump = self.connect(_SilentClient)
        self.clock.advance(HOST_ANSWER_TIMEOUT)
        self.assertEqual(self.store.inbox()[0].attempts, 1)
        silent.transport.loseConnection()  # fails the call that already timed out: no effect
        pump.flush()
        self.assertEqual(self.store.inbox()[0].attempts, 1)
        host = self.host()
        self.clock.advance(1)
        self.assertEqual([s["body"] for s in host.signals()], ["hello"])
        self.assertEqual(self.store.counts()["inbox"], 0)


class MissingReceiptTests(SynchronousTestCase):
    """With registered_delivery, a part whose receipt has not come within receipt_timeout is
    reported UNKNOWN "no receipt": the outbound queue, the inbound half and a host on one store file."""

    TIMEOUT = 600.0

    def setUp(self) -> None:
        self.clock = Clock()
        self.path = self.mktemp()
        self.registry = HostRegistry()
        self.maintaining = True
        self.addCleanup(lambda: self.assertEqual(self.clock.getDelayedCalls(), []))
        self.addCleanup(self.stop)

    def start(self, timeout: str = '"10m"', registered: bool = True, max_inbox: int = 100) -> None:
        """The gateway's two halves on the store file, as after a (re)start."""
        self.settings = (timeout, registered, max_inbox)
        config = parse_config(test_queue.CONFIG.format(
            extra=f'sender = "*"\nregistered_delivery = {str(registered).lower()}\n'
                  f"receipt_timeout = {timeout}"))
        self.store = Store(self.path, self.clock)
        self.links = {s.name: test_queue.FakeLink(s) for s in config.servers if s.enabled}
        self.outbound = Outbound(config, self.links, self.store, self.clock)  # type: ignore[arg-type]
        self.outbound.restore()
        self.inbound = Inbound(config, self.store, self.registry, self.clock, None,
                               max_inbox=max_inbox, maintains=lambda: self.maintaining)
        self.handler = self.inbound.handler(config.servers[0])
        self.inbound.start()
        for link in self.links.values():
            link.set_state("bound")
        self.clock.advance(0)

    def stop(self) -> None:
        if hasattr(self, "store"):
            self.inbound.stop()
            self.outbound.stop()
            self.store.close()

    def restart(self) -> None:
        self.stop()
        self.start(*self.settings)

    def host(self) -> FakeHost:
        host = FakeHost(auto=True)
        self.registry.add(host)  # type: ignore[arg-type]
        self.clock.advance(0)
        return host

    def send(self, *message_ids: str, body: str = "hello", request_id: str = "r1") -> None:
        """A SendSignal whose parts the SMSC accepts, now, as ``message_ids``."""
        d = self.outbound.send_signal(request_id, "MESSAGE", "alice@example.com",
                                      "+15551234@smpp", body)
        self.clock.advance(0)
        for message_id in message_ids:
            self.links[""].answer(0, message_id=message_id)
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(d)["message_ids"], list(message_ids))

    def receipt(self, message_id: str, stat: str = "DELIVRD", esm_class: int = 0x04) -> None:
        text = f"id:{message_id} sub:001 dlvrd:001 stat:{stat} err:000 text:hello"
        result = self.handler(PDU("deliver_sm", 1, 0, {
            "source_addr": b"15551234", "destination_addr": b"1555", "esm_class": esm_class,
            "short_message": text.encode("ascii")}))
        self.clock.advance(0)
        self.assertEqual(self.successResultOf(result), ESME_ROK)  # type: ignore[arg-type]

    def states(self, host: FakeHost) -> list[tuple[Any, ...]]:
        return [(r["message_id"], r["part"], r["parts"], r["state"], r["error"])
                for r in host.reports()]

    def test_reported_at_the_deadline(self) -> None:
        """The UNKNOWN report comes receipt_timeout after the SMSC accepted the part, not a moment before."""
        self.start()
        host = self.host()
        self.clock.advance(100)
        self.send("M1")
        self.clock.advance(self.TIMEOUT - 0.5)
        self.assertEqual(host.reports(), [])
        self.clock.advance(0.5)
        self.assertEqual(host.reports(), [{"request_id": "r1", "message_id": "M1", "state": "UNKNOWN",
                                           "error": "no receipt", "server": "", "part": 1,
                                           "parts": 1}])
        self.clock.advance(10 * self.TIMEOUT)
        self.assertEqual(len(host.reports()), 1)

    def test_reported_by_the_maintainer(self) -> None:
        """A node that does not maintain the store reports no missing receipt; once it
        maintains, its next look reports it."""
        self.maintaining = False
        self.start()
        host = self.host()
        self.send("M1")
        self.clock.advance(10 * self.TIMEOUT)
        self.assertEqual(host.reports(), [])
        self.maintaining = True
        self.clock.advance(60)
        self.assertEqual(self.states(host), [("M1", 1, 1, "UNKNOWN", "no receipt")])

    def test_receipt_before_the_deadline(self) -> None:
        """A receipt before the deadline is the part's only report."""
        self.start()
        host = self.host()
        self.send("M1")
        self.clock.advance(self.TIMEOUT - 1)
        self.receipt("M1")
        self.clock.advance(10 * self.TIMEOUT)
        self.assertEqual(self.states(host), [("M1", 1, 1, "DELIVERED", "000")])

    def test_deadline_survives_restart(self) -> None:
        """After a restart (the store file opened again) the deadline holds, and a host that
        connects only later gets the report from the inbox."""
        self.start()
        self.send("M1")
        self.clock.advance(self.TIMEOUT / 2)
        self.restart()
        self.clock.advance(self.TIMEOUT / 2 - 0.5)
        self.assertEqual(self.store.counts()["inbox"], 0)
        self.clock.advance(1)
        self.assertEqual(self.store.counts()["inbox"], 1)
        self.restart()
        self.assertEqual(self.states(self.host()), [("M1", 1, 1, "UNKNOWN", "no receipt")])

    def test_late_receipt_still_reported(self) -> None:
        """A receipt that comes after the UNKNOWN report is reported as usual."""
        self.start()
        host = self.host()
        self.send("M1")
        self.clock.advance(self.TIMEOUT)
        self.receipt("M1", stat="UNDELIV")
        self.assertEqual(self.states(host), [("M1", 1, 1, "UNKNOWN", "no receipt"),
                                             ("M1", 1, 1, "UNDELIVERABLE", "000")])

    def test_receipt_that_came_meanwhile_not_reported_unknown(self) -> None:
        """A part whose receipt was stored after the deadlines were read (through another
        node, say) gets no UNKNOWN report after its receipt's."""
        self.start()
        host = self.host()
        self.send("M1")
        read = self.store.due_receipts(self.TIMEOUT + 1)
        self.receipt("M1")
        self.store.due_receipts = lambda now, limit=500: read  # type: ignore[method-assign]
        self.store.next_receipt_due = lambda: None  # type: ignore[method-assign]
        self.clock.advance(self.TIMEOUT)
        self.assertEqual(self.states(host), [("M1", 1, 1, "DELIVERED", "000")])
        self.assertEqual((self.store.counts()["inbox"], self.inbound.inbox_size), (0, 0))

    def test_each_part_its_own_deadline(self) -> None:
        """Of a two-part message, the part without a receipt is reported UNKNOWN as part 1 of 2."""
        self.start()
        host = self.host()
        self.send("P1", "P2", body="x" * 200)
        self.receipt("P2")
        self.clock.advance(self.TIMEOUT)
        self.assertEqual(self.states(host), [("P2", 2, 2, "DELIVERED", "000"),
                                             ("P1", 1, 2, "UNKNOWN", "no receipt")])

    def test_intermediate_receipt_keeps_waiting(self) -> None:
        """ENROUTE, ACCEPTED and intermediate notifications are reported and the part still waits."""
        self.start()
        host = self.host()
        self.send("M1")
        self.receipt("M1", stat="ENROUTE")
        self.receipt("M1", stat="ACCEPTD")
        self.receipt("M1", stat="DELIVRD", esm_class=0x20)
        self.clock.advance(self.TIMEOUT)
        self.assertEqual([state for _, _, _, state, _ in self.states(host)],
                         ["ENROUTE", "ACCEPTED", "DELIVERED", "UNKNOWN"])

    def test_zero_never_reports(self) -> None:
        """receipt_timeout "0" waits for ever: no deadline is stored and nothing is reported."""
        self.start(timeout='"0"')
        host = self.host()
        self.send("M1")
        self.assertIsNone(self.store.next_receipt_due())
        self.clock.advance(30 * 86400)
        self.assertEqual(host.reports(), [])

    def test_no_deadline_without_registered_delivery(self) -> None:
        """Without registered_delivery no receipt is asked for, so none is awaited."""
        self.start(registered=False)
        self.send("M1")
        self.assertIsNone(self.store.next_receipt_due())

    def test_deadline_for_a_server_that_now_waits_for_ever(self) -> None:
        """A deadline stored before receipt_timeout was set to "0" ends without a report."""
        self.start()
        host = self.host()
        self.send("M1")
        self.stop()
        self.start(timeout='"0"')
        self.clock.advance(self.TIMEOUT)
        self.assertEqual(host.reports(), [])
        self.assertIsNone(self.store.next_receipt_due())

    def test_full_inbox_waits(self) -> None:
        """While the inbox is full a due report waits for room (the deadline kept), then comes."""
        self.start(max_inbox=1)
        self.send("P1", "P2", body="x" * 200)
        self.clock.advance(self.TIMEOUT)
        self.assertEqual(self.store.counts()["inbox"], 1)
        host = self.host()
        self.clock.advance(60)
        self.assertEqual(self.states(host), [("P1", 1, 2, "UNKNOWN", "no receipt"),
                                             ("P2", 2, 2, "UNKNOWN", "no receipt")])

    def test_many_due_at_once(self) -> None:
        """More parts due at once than one turn reports are all reported, over a few turns."""
        self.start(max_inbox=10_000)
        count = 1200
        for n in range(count):
            self.store.add_outbound(f"r{n}", "", b"", 1, 0.0)
            self.store.set_message_id(f"r{n}", 0, f"M{n}", f"m{n}", receipt_due=10.0)
        self.clock.advance(60)
        self.assertEqual(self.store.counts()["inbox"], count)
        self.assertIsNone(self.store.next_receipt_due())

    def test_nothing_due_writes_nothing(self) -> None:
        """With no part waiting, the deadline watch only looks and never commits."""
        self.start()
        commits = self.store.commits
        self.clock.advance(86400)
        self.assertEqual(self.store.commits, commits)
