"""The web admin's Queue, Message lookup and Dialogs pages, on a real outbound queue over fake links."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import quote

from twisted.internet.defer import Deferred

from smppgw.admin.testing import Response
from smppgw.config import parse_config
from smppgw.errors import NotRelayed
from smppgw.relay.dialogs import DialogTable
from smppgw.relay.outbound import Outbound
from smppgw.store.sqlite import Store
from tests.test_admin_auth import PASSWORD, AdminTestCase

from .test_queue import CONFIG, FakeLink


class OperatorPagesTestCase(AdminTestCase):
    """The admin's site, its gateway's outbound queue a real one on a store in memory."""

    def setUp(self) -> None:
        super().setUp()
        config = parse_config(CONFIG.format(extra='sender = "*"'))
        self.clock.advance(1000)
        self.store = Store(":memory:", self.clock)
        self.addCleanup(self.store.close)
        self.links = {s.name: FakeLink(s) for s in config.servers if s.enabled}
        self.dialogs = DialogTable(self.clock, 3600, self.store)
        outbound = Outbound(config, self.links, self.store, self.clock,  # type: ignore[arg-type]
                            self.dialogs)
        self.addCleanup(outbound.stop)
        self.gateway.outbound = outbound  # type: ignore[assignment]
        self.browser.log_in(PASSWORD)

    def send(self, request_id: str, body: str = "hello", sender: str = "alice@example.com"
             ) -> list[Any]:
        outcome: list[Any] = []
        d: Deferred[Any] = self.gateway.outbound.send_signal(
            request_id, "MESSAGE", sender, "+15551234@smpp", body)
        d.addBoth(outcome.append)
        self.clock.advance(0)
        return outcome

    def rows(self, page: Response, table: str) -> list[list[str]]:
        """The text of each cell of each row of the table ``table`` (its header row left out)."""
        match = re.search(f'<table id="{table}">(.*?)</table>', page.body, re.S)
        assert match is not None, page.body
        return [[re.sub(r"<[^>]*>", "", cell) for cell in re.findall(r"<td[^>]*>(.*?)</td>", row)]
                for row in re.findall(r"<tr[^>]*>(.*?)</tr>", match[1]) if "<td" in row]


class LoginTests(OperatorPagesTestCase):
    def test_pages_need_login(self) -> None:
        """Without a login each page sends the browser to the login page."""
        self.browser.post("/logout", {"csrf": self.browser.get("/status").value("csrf")})
        for path in ("/queue", "/lookup?q=r1", "/dialogs"):
            response = self.browser.get(path)
            self.assertEqual((response.code, response.header("location")), (303, "/login"), path)

    def test_navigation(self) -> None:
        """Every page links to the three."""
        page = self.browser.get("/status")
        for link in ('href="/queue"', 'href="/lookup"', 'href="/dialogs"'):
            self.assertIn(link, page.body)


class QueuePageTests(OperatorPagesTestCase):
    def test_oldest_first_with_age(self) -> None:
        """Each sending server's waiting messages, oldest first, with age and parts."""
        self.send("r1")
        self.clock.advance(125)
        self.send("r2", "x" * 200)
        page = self.browser.get("/queue")
        self.assertEqual(page.code, 200)
        self.assertIn('Server "": 2 waiting', page.text)
        self.assertIn("Server bulk: 0 waiting", page.text)
        self.assertEqual([row[:1] + row[2:5] for row in self.rows(page, "queue-0")],
                         [["r1", "2m05s", "1", "0"], ["r2", "0s", "2", "0"]])
        self.assertEqual(page.body.count('id="reject-'), 2)

    def test_reject(self) -> None:
        """The Reject button ends the message: its host hears NOT_RELAYED; the row is gone."""
        waiting = self.send("stuck")
        self.send("next")
        page = self.browser.get("/queue")
        response = self.browser.post("/queue", {"csrf": page.value("csrf"),
                                                "request_id": "stuck"})
        self.assertEqual(response.code, 200)
        self.assertIn('rejected stuck (server "", queued 0s): its host gets NOT_RELAYED',
                      response.text)
        self.assertEqual([row[0] for row in self.rows(response, "queue-0")], ["next"])
        self.clock.advance(0)
        self.assertIsInstance(waiting[0].value, NotRelayed)
        self.assertEqual(waiting[0].value.reason, "rejected by the operator")

    def test_reject_needs_the_token(self) -> None:
        """A Reject without the page's CSRF token is refused and rejects nothing."""
        waiting = self.send("stuck")
        for form in ({"request_id": "stuck"}, {"request_id": "stuck", "csrf": "forged"}):
            self.assertEqual(self.browser.post("/queue", form).code, 403)
        self.clock.advance(0)
        self.assertEqual(waiting, [])
        self.assertIn("stuck", self.browser.get("/queue").text)

    def test_reject_unknown(self) -> None:
        """Rejecting what is not queued shows why, with 404 or 400."""
        csrf = self.browser.get("/queue").value("csrf")
        response = self.browser.post("/queue", {"csrf": csrf, "request_id": "gone"})
        self.assertEqual(response.code, 404)
        self.assertIn("there is no request 'gone'", response.text)

    def test_escaped(self) -> None:
        """A request_id is shown as text, never as markup."""
        self.send("<b>bold</b>")
        page = self.browser.get("/queue")
        self.assertNotIn("<b>bold</b>", page.body)
        self.assertIn("&lt;b&gt;bold&lt;/b&gt;", page.body)


class LookupPageTests(OperatorPagesTestCase):
    def relayed(self, request_id: str) -> None:
        self.send(request_id, "y" * 200)
        self.links[""].set_state("bound")
        self.clock.advance(0)
        self.links[""].answer(0, "M1")
        self.links[""].answer(0, "M2")
        self.clock.advance(0)

    def test_form(self) -> None:
        """Without a query the page is the form, a GET (a lookup changes nothing)."""
        page = self.browser.get("/lookup")
        self.assertEqual(page.code, 200)
        self.assertIn('<form method="get" action="/lookup">', page.body)

    def test_by_request_id_and_phone(self) -> None:
        """A request_id or the phone number finds the message and each part's state."""
        self.relayed("r1")
        for query in ("r1", quote("+15551234")):
            page = self.browser.get(f"/lookup?q={query}")
            self.assertEqual(page.code, 200, query)
            self.assertIn("relayed", page.text)
            self.assertEqual(self.rows(page, "parts-r1"),
                             [["1", "M1", "accepted", "not asked for", ""],
                              ["2", "M2", "accepted", "not asked for", ""]])

    def test_not_found(self) -> None:
        """A query that finds nothing says so, with 404, the form keeping the query."""
        page = self.browser.get("/lookup?q=nothing")
        self.assertEqual(page.code, 404)
        self.assertIn("there is no request 'nothing'", page.text)
        self.assertEqual(page.value("q"), "nothing")


class DialogsPageTests(OperatorPagesTestCase):
    def test_bindings_and_retire(self) -> None:
        """The bindings show with their IM address; Retire forgets one, in the store too."""
        self.send("r1", sender="alice@example.com")
        self.send("r2", sender="bob@example.com")
        self.clock.advance(60)
        page = self.browser.get("/dialogs")
        self.assertEqual([row[:3] + row[4:5] for row in self.rows(page, "bindings")],
                         [["+15551234", "@a", "alice@example.com", "1m00s"],
                          ["+15551234", "@b", "bob@example.com", "1m00s"]])
        response = self.browser.post("/dialogs", {"csrf": page.value("csrf"),
                                                  "phone": "+15551234", "letter": "a"})
        self.assertEqual(response.code, 200)
        self.assertIn("retired @a of +15551234 (to alice@example.com)", response.text)
        self.assertEqual([row[1] for row in self.rows(response, "bindings")], ["@b"])
        self.assertEqual([b.letter for b in self.store.load_bindings()], ["b"])

    def test_retire_needs_the_token(self) -> None:
        """A Retire without the CSRF token is refused and the binding stays."""
        self.send("r1")
        response = self.browser.post("/dialogs", {"phone": "+15551234", "letter": "a"})
        self.assertEqual(response.code, 403)
        self.assertEqual(len(self.store.load_bindings()), 1)

    def test_none(self) -> None:
        """No binding: the page says so."""
        self.assertIn("No dialog bindings.", self.browser.get("/dialogs").text)
