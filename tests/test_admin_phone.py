"""The web admin's Phone page: in demo mode only, what the phones got, and a phone's reply sent from it."""

from __future__ import annotations

import os

from twisted.internet.protocol import connectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from smppgw.admin.testing import FakeGateway, Response, TestBrowser, synchronous
from smppgw.admin.web import AdminSite
from smppgw.config import load_config
from smppgw.smpp.codec import PDU, Framer, decode, encode
from smppgw.smpp.constants import ESME_RX_R_APPN
from smppgw.testing.demo import DemoPhones
from smppgw.testing.simulator import SMSCSimulator

from .test_admin_auth import PASSWORD, admin_file

PHONE_LINK = '<a href="/phone">Phone</a>'


class PhonePageTestCase(SynchronousTestCase):
    """A logged-in browser on a fake gateway whose phones are a simulator's, one session bound."""

    demo = True

    def setUp(self) -> None:
        folder = self.mktemp()
        os.makedirs(folder)
        config = load_config(admin_file(folder))
        self.clock = Clock()
        self.simulator = SMSCSimulator(None, self.clock)
        phones = DemoPhones(config, self.simulator) if self.demo else None
        self.gateway = FakeGateway(config, phones=phones)
        self.site = AdminSite(self.gateway, self.clock, synchronous)
        self.browser = TestBrowser(self.site)
        self.browser.log_in(PASSWORD)
        self.smsc = self.simulator.buildProtocol(None)
        self.wire = StringTransport()
        self.smsc.makeConnection(self.wire)
        self.smsc.dataReceived(encode(PDU("bind_transceiver", 1, 0, {
            "system_id": b"gw", "password": b"pw", "system_type": b"",
            "interface_version": 0x34})))
        self.wire.clear()

    def submit(self, source: bytes, text: bytes, phone: bytes = b"15551234",
               registered_delivery: int = 0) -> None:
        """The gateway's submit_sm of ``text`` (GSM, unpacked) from ``source`` to ``phone``."""
        self.smsc.dataReceived(encode(PDU("submit_sm", 7, 0, {
            "source_addr_ton": 5, "source_addr_npi": 0, "source_addr": source,
            "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": phone,
            "registered_delivery": registered_delivery, "short_message": text})))
        self.wire.clear()

    def sent(self) -> list[PDU]:
        """The PDUs the simulator wrote to the gateway since last asked."""
        pdus = [decode(frame) for frame in Framer().feed(self.wire.value())]
        self.wire.clear()
        return pdus

    def send(self, phone: str, text: str) -> Response:
        """Fill in the Phone page's form and press Send."""
        page = self.browser.get("/phone")
        return self.browser.submit(page, "/phone", {"phone": phone, "text": text})


class NotInDemoTests(PhonePageTestCase):
    demo = False

    def test_no_page_and_no_link(self) -> None:
        """Without a demo, /phone is 404 even logged in, and no page links to it."""
        self.assertEqual(self.browser.get("/phone").code, 404)
        status = self.browser.get("/status")
        self.assertEqual(status.code, 200)
        self.assertNotIn(PHONE_LINK, status.body)
        self.assertNotIn("demo-nav", status.body)


class PhonePageTests(PhonePageTestCase):
    def test_linked_from_every_page(self) -> None:
        """In demo mode every page's navigation links to the Phone page."""
        for path in ("/status", "/settings", "/servers", "/lookup", "/phone"):
            self.assertIn(PHONE_LINK, self.browser.get(path).body, path)

    def test_login_and_token_required(self) -> None:
        """A stranger is sent to log in; a POST without the form's token is 403 and sends nothing."""
        self.assertEqual(TestBrowser(self.site).get("/phone").header("location"), "/login")
        forged = self.browser.post("/phone", {"phone": "+15551234", "text": "hi"})
        self.assertEqual(forged.code, 403)
        self.assertEqual(self.sent(), [])

    def test_lists_what_phones_got(self) -> None:
        """Each phone with its last sender, its messages decoded with the dialog prefix, its receipts."""
        self.submit(b"alice@example.com", b"\x00a=alice\x00example.com Hello",
                    registered_delivery=1)
        self.submit(b"bob@example.com", b"\x00b=bob\x00example.com Hi")
        self.submit(b"carol@example.com", b"Yo", phone=b"15559999")
        page = self.browser.get("/phone")
        self.assertEqual(page.code, 200)
        self.assertIn('<tr id="phone-0"><td class="number">+15559999</td>', page.body)
        self.assertIn('<tr id="phone-1"><td class="number">+15551234</td>'
                      '<td class="sender">bob@example.com</td>', page.body)
        self.assertIn('<code class="text">@b=bob@example.com Hi</code>', page.body)
        self.assertIn('<code class="text">@a=alice@example.com Hello</code>', page.body)
        self.assertIn("receipt: <span class=\"receipt\">asked, not sent yet</span>", page.body)
        self.assertEqual(page.value("phone"), "+15559999")
        self.assertIn('<option value="+15551234">', page.body)
        receipt = self.simulator.deliver_receipt("00000001")
        [deliver] = self.sent()
        self.smsc.dataReceived(encode(PDU("deliver_sm_resp", deliver.sequence_number, 0)))
        self.successResultOf(receipt)
        page = self.browser.get("/phone")
        self.assertIn('<td class="received">2</td><td class="receipts">1</td>', page.body)
        self.assertIn("DELIVRD sent; the gateway answered ESME_ROK", page.body)

    def test_reply_link_fills_in_the_number(self) -> None:
        """A phone's Reply link opens the form with its number."""
        self.assertEqual(self.browser.get("/phone?to=%2B15551234").value("phone"), "+15551234")

    def test_send(self) -> None:
        """Send has the simulator deliver the text from the phone to its last sender; once
        the gateway answers, the page says what was sent."""
        self.submit(b"alice@example.com", b"\x00a=alice\x00example.com Hello")
        waiting = self.send("+15551234", "@a: hi")
        self.assertEqual(waiting.code, 0)
        [deliver] = self.sent()
        self.assertEqual([deliver.command, deliver.get("source_addr"),
                          deliver.get("destination_addr"), deliver.get("short_message")],
                         ["deliver_sm", b"15551234", b"alice@example.com", b"\x00a: hi"])
        self.smsc.dataReceived(encode(PDU("deliver_sm_resp", deliver.sequence_number, 0)))
        page = self.browser.finish()
        self.assertEqual(page.code, 200)
        self.assertEqual(page.text.split('id="message">')[1].split("</div>")[0],
                         '+15551234 sent "@a: hi" to alice@example.com through server "":'
                         " the gateway took it.")
        self.assertEqual((page.value("phone"), page.value("text")), ("+15551234", ""))
        self.assertIn(PHONE_LINK, page.body)

    def test_bad_input(self) -> None:
        """No text, a number that is none, or a text over the server's max_parts: the
        error shows beside its field, what was typed stays, and nothing is sent."""
        empty = self.send("+15551234", " ")
        self.assertEqual((empty.code, empty.error("text")),
                         (400, "the text is empty: a phone sends at least one character"))
        self.assertEqual(empty.value("phone"), "+15551234")
        name = self.send("alice", "hi")
        self.assertEqual(name.code, 400)
        self.assertIn("'alice' is not a phone number", name.error("phone"))
        self.assertEqual((name.value("text"), name.error("text")), ("hi", ""))
        both = self.send("", "")
        self.assertEqual(both.error("phone"), "no phone number: pick one or type one, such as"
                                              " +15551234")
        self.assertTrue(both.error("text"))
        long = self.send("+15551234", "x" * 1600)
        self.assertEqual(long.error("text"), "the text needs 11 SMS parts, more than the 10"
                                             " that server '' takes (its max_parts)")
        self.assertEqual(self.sent(), [])

    def test_gateway_refuses(self) -> None:
        """A deliver_sm the gateway refuses: the page says so with the status, and keeps the text."""
        self.send("+15551234", "hi")
        [deliver] = self.sent()
        self.smsc.dataReceived(encode(PDU("deliver_sm_resp", deliver.sequence_number,
                                          ESME_RX_R_APPN)))
        page = self.browser.finish()
        self.assertEqual((page.code, page.value("text")), (409, "hi"))
        self.assertIn(PHONE_LINK, page.body)
        self.assertIn("not sent: the gateway answered the deliver_sm with ESME_RX_R_APPN",
                      page.text)

    def test_not_bound(self) -> None:
        """With no session of the server bound, the page says so and nothing is sent."""
        self.smsc.connectionLost(connectionDone)
        page = self.send("+15551234", "hi")
        self.assertEqual(page.code, 409)
        self.assertIn("not sent: server '' (system_id 'gw') has no receiver bound to the"
                      " simulator now", page.text)
