"""The web admin's login: no password set, sessions, cookies, CSRF tokens, the throttle."""

from __future__ import annotations

import os
from typing import Any

from argon2 import PasswordHasher
from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from smppgw.admin.auth import LoginThrottle, Sessions, hash_password
from smppgw.admin.testing import FakeGateway, TestBrowser, synchronous
from smppgw.admin.web import MAX_BODY, AdminSite
from smppgw.config import load_config
from smppgw.testing.process import gateway_config

PASSWORD = "right horse battery"
#: A cheap hash: the tests check the protocol, not argon2's cost.
HASH = hash_password(PASSWORD, PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def admin_file(folder: str, password_hash: str = HASH, extra: str = "") -> str:
    """A configuration file in C{folder} with [admin] password_hash set; its path."""
    path = os.path.join(folder, "smppgw.toml")
    text = gateway_config(folder, 2775).replace('listen = ""', f'listen = ""\npassword_hash = "{password_hash}"')
    with open(path, "w") as f:
        f.write(text + extra)
    return path


class AdminTestCase(SynchronousTestCase):
    """A site on a fake gateway loaded from a real file, and a browser."""

    password_hash = HASH
    runner: Any = staticmethod(synchronous)

    def setUp(self) -> None:
        self.folder = self.mktemp()
        os.makedirs(self.folder)
        self.path = admin_file(self.folder, self.password_hash)
        self.gateway = FakeGateway(load_config(self.path), self.path)
        self.clock = Clock()
        self.site = AdminSite(self.gateway, self.clock, self.runner)
        self.site.timeOut = None
        self.browser = TestBrowser(self.site)


class NoPasswordTests(AdminTestCase):
    password_hash = ""

    def test_every_page_says_how_to_set_one(self) -> None:
        """With no password_hash, every page answers 403 with the command that sets one."""
        for path in ("/", "/login", "/status", "/settings", "/servers", "/nothing"):
            response = self.browser.get(path)
            if path == "/nothing":
                self.assertEqual(response.code, 404)
                continue
            self.assertEqual(response.code, 403, path)
            self.assertIn(f"smppgw set-admin-password -c {self.path}", response.body)
        self.assertEqual(self.browser.post("/login", {"password": ""}).code, 403)


class LoginTests(AdminTestCase):
    def test_pages_need_login(self) -> None:
        """Without a session every page sends the browser to /login."""
        for path in ("/", "/status", "/settings", "/servers"):
            response = self.browser.get(path)
            self.assertEqual((response.code, response.header("location")), (303, "/login"), path)

    def test_right_password(self) -> None:
        """The right password logs in: a new session token, then the pages open."""
        before = self.browser.get("/login")
        anonymous = self.browser.cookies["smppgw_admin"]
        response = self.browser.post("/login", {"csrf": before.value("csrf"), "password": PASSWORD})
        self.assertEqual((response.code, response.header("location")), (303, "/status"))
        self.assertNotEqual(self.browser.cookies["smppgw_admin"], anonymous)
        self.assertEqual(self.browser.get("/status").code, 200)

    def test_cookie_attributes(self) -> None:
        """The session cookie is HttpOnly and SameSite=Strict, and Secure only over TLS."""
        self.browser.log_in(PASSWORD)
        cookie = self.browser.set_cookies[-1]
        self.assertIn("HttpOnly", cookie)
        self.assertIn("SameSite=strict", cookie)
        self.assertNotIn("Secure", cookie)
        tls = TestBrowser(self.site, tls=True)
        tls.log_in(PASSWORD)
        self.assertIn("Secure", tls.set_cookies[-1])

    def test_wrong_password(self) -> None:
        """A wrong password is refused with 401 and the pages stay closed."""
        response = self.browser.log_in("wrong")
        self.assertEqual(response.code, 401)
        self.assertIn("Wrong password.", response.body)
        self.assertEqual(self.browser.get("/status").code, 303)

    def test_session_of_another_token(self) -> None:
        """A cookie the gateway never gave opens nothing."""
        self.browser.cookies["smppgw_admin"] = "made-up"
        self.assertEqual(self.browser.get("/status").code, 303)

    def test_idle_expiry(self) -> None:
        """A session idle for 30 minutes has ended; a request before that keeps it alive."""
        self.browser.log_in(PASSWORD)
        self.clock.advance(1799)
        self.assertEqual(self.browser.get("/status").code, 200)
        self.clock.advance(1799)
        self.assertEqual(self.browser.get("/status").code, 200)
        self.clock.advance(1800)
        self.assertEqual(self.browser.get("/status").code, 303)

    def test_logout(self) -> None:
        """Log out ends the session: its cookie opens nothing any more."""
        self.browser.log_in(PASSWORD)
        token = self.browser.cookies["smppgw_admin"]
        page = self.browser.get("/status")
        self.assertEqual(self.browser.post("/logout", {"csrf": page.value("csrf")}).code, 303)
        self.browser.cookies["smppgw_admin"] = token
        self.assertEqual(self.browser.get("/status").code, 303)

    def test_check_off_the_calling_thread(self) -> None:
        """The password is checked by the runner given (a thread in the gateway): the
        answer waits for it."""
        runs: list[Deferred[Any]] = []

        def later(f: Any, *args: Any) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            runs.append(d)
            d.addCallback(lambda _: f(*args))
            return d

        self.site.password._run = later
        page = self.browser.get("/login")
        transport_before = len(runs)
        response = self.browser.post("/login", {"csrf": page.value("csrf"), "password": PASSWORD})
        self.assertEqual((response.code, len(runs)), (0, transport_before + 1))


class CSRFTests(AdminTestCase):
    def test_login_without_token(self) -> None:
        """A login POST without the form's token is refused with 403, the password unchecked."""
        self.browser.get("/login")
        response = self.browser.post("/login", {"password": PASSWORD})
        self.assertEqual(response.code, 403)
        self.assertEqual(self.browser.get("/status").code, 303)

    def test_posts_without_token(self) -> None:
        """Once logged in, every POST without the token, or with a wrong one, is refused."""
        self.browser.log_in(PASSWORD)
        for path in ("/settings", "/servers", "/status", "/logout"):
            for form in ({}, {"csrf": "forged"}):
                response = self.browser.post(path, {**form, "action": "disconnect", "server": ""})
                self.assertEqual(response.code, 403, (path, form))
        self.assertEqual((self.gateway.applied, self.gateway.actions), ([], []))
        self.assertEqual(self.browser.get("/status").code, 200)

    def test_token_of_another_session(self) -> None:
        """The token of one session does not pass for another's."""
        self.browser.log_in(PASSWORD)
        other = TestBrowser(self.site, "127.0.0.2")
        other.log_in(PASSWORD)
        token = other.get("/status").value("csrf")
        response = self.browser.post("/status", {"csrf": token, "action": "disconnect",
                                                 "server": ""})
        self.assertEqual(response.code, 403)

    def test_anonymous_session_cannot_act(self) -> None:
        """The login form's token does not let a session that has not logged in act."""
        page = self.browser.get("/login")
        response = self.browser.post("/status", {"csrf": page.value("csrf"),
                                                 "action": "disconnect", "server": ""})
        self.assertEqual(response.code, 403)
        self.assertEqual(self.gateway.actions, [])


class ThrottleTests(AdminTestCase):
    def test_failures_per_address(self) -> None:
        """After 5 failed logins in 5 minutes an address is refused (429), even with the
        right password, until the first failure is 5 minutes old; others are not."""
        for _ in range(5):
            self.assertEqual(self.browser.log_in("wrong").code, 401)
        refused = self.browser.log_in(PASSWORD)
        self.assertEqual(refused.code, 429)
        self.assertIn("try again in 301 s", refused.body)
        self.assertEqual(TestBrowser(self.site, "192.0.2.9").log_in(PASSWORD).code, 303)
        self.clock.advance(300)
        self.assertEqual(self.browser.log_in(PASSWORD).code, 303)

    def test_success_clears(self) -> None:
        """A successful login forgets the address's earlier failures."""
        throttle = LoginThrottle(Clock(), failures=2)
        throttle.failed("a")
        throttle.succeeded("a")
        throttle.failed("a")
        self.assertEqual(throttle.wait("a"), 0.0)


class SessionsTests(SynchronousTestCase):
    def test_limit(self) -> None:
        """At most `limit` sessions live; the longest idle goes first."""
        sessions = Sessions(Clock(), limit=2)
        first, second = sessions.new(), sessions.new()
        sessions.get(first.token)
        sessions.new()
        self.assertEqual(len(sessions), 2)
        self.assertIsNone(sessions.get(second.token))
        self.assertIsNotNone(sessions.get(first.token))


class BodyLimitTests(AdminTestCase):
    """A request body over MAX_BODY is refused unread: 413, the connection closed."""

    def connect(self) -> tuple[Any, StringTransport]:
        peer = IPv4Address("TCP", "127.0.0.1", 40001)
        transport = StringTransport(peerAddress=peer,
                                    hostAddress=IPv4Address("TCP", "127.0.0.1", 8780))
        protocol = self.site.buildProtocol(peer)
        protocol.makeConnection(transport)
        return protocol, transport

    def test_declared_length_over_the_limit(self) -> None:
        """A Content-Length of 10 MB is answered 413 at once, before any of the body comes;
        what follows is not read, and the site goes on answering other clients."""
        protocol, transport = self.connect()
        protocol.dataReceived(b"POST /login HTTP/1.1\r\nHost: localhost\r\n"
                              b"Content-Type: application/x-www-form-urlencoded\r\n"
                              b"Content-Length: 10485760\r\n\r\n")
        head = transport.value().split(b"\r\n", 1)[0]
        self.assertEqual(head, b"HTTP/1.1 413 Content Too Large")
        self.assertIn(f"over {MAX_BODY} bytes is refused".encode(), transport.value())
        self.assertTrue(transport.disconnecting)
        answered = transport.value()
        protocol.dataReceived(b"password=x" * 1000)
        self.assertEqual(transport.value(), answered)
        self.assertEqual(dict(self.site.throttle._failed), {})
        self.assertEqual(self.browser.get("/login").code, 200)

    def test_chunked_body_over_the_limit(self) -> None:
        """A chunked body is refused once it passes the limit."""
        protocol, transport = self.connect()
        protocol.dataReceived(b"POST /login HTTP/1.1\r\nHost: localhost\r\n"
                              b"Transfer-Encoding: chunked\r\n\r\n")
        chunk = b"a" * 65536
        for _ in range(MAX_BODY // len(chunk)):
            protocol.dataReceived(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(b"1\r\na\r\n")
        self.assertTrue(transport.value().startswith(b"HTTP/1.1 413 Content Too Large"))
        self.assertTrue(transport.disconnecting)

    def test_body_at_the_limit_read(self) -> None:
        """A body of exactly MAX_BODY bytes is read and answered as usual."""
        response = self.browser.post("/login", {"password": "x" * (MAX_BODY - len("password="))})
        self.assertNotEqual(response.code, 413)
        self.assertIn(response.code, (200, 303, 401, 403))
