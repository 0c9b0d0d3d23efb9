"""
The web admin in headless Chromium (Debian's C{chromium}) driven by Playwright: log in,
refusals, and the Updates an operator makes, against a gateway running in this process
with the SMSC simulator, all on 127.0.0.1.

Playwright's synchronous API runs on one thread of its own (L{BrowserThread}), while
the reactor serves the admin; each step hands the browser back to the test, which waits
on the gateway and the simulator (a bind, say) between steps.  A failing step leaves a
screenshot in C{screenshots/} under the test's temporary folder.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SkipTest, TestCase

from smppgw.admin.testing import FakeGateway, synchronous
from smppgw.admin.web import AdminSite
from smppgw.config import load_config
from smppgw.host.commands import SendSignal
from smppgw.service import build_gateway
from smppgw.testing.process import gateway_config
from smppgw.testing.simulator import SMSCSimulator
from tests.test_admin_auth import HASH, PASSWORD
from tests.test_cli import free_port, turn
from tests.test_inbound_e2e import TestHost

CHROMIUM = "/usr/bin/chromium"

try:
    from playwright.sync_api import Page, sync_playwright
except ImportError:  # pragma: no cover - the test extra installs it
    sync_playwright = None


class BrowserThread:
    """A headless Chromium on one thread of its own; C{step(f)} runs C{f(page)} there."""

    def __init__(self, screenshots: str) -> None:
        self.pool = ThreadPool(minthreads=1, maxthreads=1, name="browser")
        self.pool.start()
        self.screenshots = screenshots
        self.page: Any = None
        self._playwright: Any = None
        self._browser: Any = None

    def _open(self) -> None:
        self._playwright = sync_playwright().start()
        self._browser = self._playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        self.page = self._browser.new_page()
        self.page.set_default_timeout(10_000)

    def _close(self) -> None:
        if self._browser is not None:
            self._browser.close()
        if self._playwright is not None:
            self._playwright.stop()

    def _run(self, name: str, f: Callable[[Page], Any]) -> Any:
        if self.page is None:
            self._open()
        try:
            return f(self.page)
        except BaseException:
            os.makedirs(self.screenshots, exist_ok=True)
            self.page.screenshot(path=os.path.join(self.screenshots, f"{name}.png"), full_page=True)
            raise

    def step(self, name: str, f: Callable[[Page], Any]) -> Deferred[Any]:
        return deferToThreadPool(reactor, self.pool, self._run, name, f)

    @inlineCallbacks
    def stop(self) -> Any:
        yield deferToThreadPool(reactor, self.pool, self._close)
        self.pool.stop()


def listening_port(service: Any) -> Deferred[Any]:
    """The port a started StreamServerEndpointService listens on, its own Deferred kept intact
    (the service stops the port through it)."""
    d: Deferred[Any] = Deferred()

    def seen(port: Any) -> Any:
        d.callback(port)
        return port

    service._waitingForPort.addCallback(seen)
    return d


def log_in(url: str, password: str = PASSWORD) -> Callable[[Page], Any]:
    def go(page: Page) -> Any:
        page.goto(url + "/login")
        page.fill("input[name=password]", password)
        page.click("button[name=login]")
        return page
    return go


class BrowserTestCase(TestCase):
    timeout = 60

    def setUp(self) -> Any:
        if sync_playwright is None:
            raise SkipTest("playwright is not installed (pip install -e '.[test]')")
        if not os.path.exists(CHROMIUM):
            raise SkipTest(f"{CHROMIUM} is missing (apt-get install chromium)")
        self.browser = BrowserThread(os.path.abspath("screenshots"))
        self.addCleanup(self.browser.stop)

    def step(self, f: Callable[[Page], Any]) -> Deferred[Any]:
        return self.browser.step(self.id().rsplit(".", 1)[-1], f)


class GatewayBrowserTests(BrowserTestCase):
    """The admin of a gateway running here, bound to the simulator."""

    @inlineCallbacks
    def setUp(self) -> Any:
        super().setUp()
        self.state = tempfile.mkdtemp(prefix="smppgw-")
        self.addCleanup(shutil.rmtree, self.state, True)
        self.simulator = SMSCSimulator({"gw": "pw", "gw2": "pw2"}, reactor)
        listening = yield reactor.listenTCP(0, self.simulator, interface="127.0.0.1")
        self.addCleanup(listening.stopListening)
        self.smsc_port = listening.getHost().port
        self.path = os.path.join(self.state, "smppgw.toml")
        with open(self.path, "w") as f:
            f.write(gateway_config(self.state, self.smsc_port).replace(
                'listen = ""', f'listen = "tcp:0:interface=127.0.0.1"\npassword_hash = "{HASH}"'))
        self.gateway = build_gateway(load_config(self.path), reactor)
        self.gateway.privilegedStartService()
        self.gateway.startService()
        self.addCleanup(self.gateway.stopService)
        port = yield listening_port(self.gateway.getServiceNamed("admin"))
        self.url = f"http://127.0.0.1:{port.getHost().port}"
        yield self.gateway.links[""].when_bound()

    @inlineCallbacks
    def test_log_in(self) -> Any:
        """The right password opens the Status page, which shows the bound server."""
        def check(page: Page) -> tuple[str, str]:
            log_in(self.url)(page)
            return page.url, page.inner_text("#status-0 .state")
        url, state = yield self.step(check)
        self.assertEqual((url, state), (self.url + "/status", "bound"))

    @inlineCallbacks
    def test_wrong_password(self) -> Any:
        """A wrong password is refused and the Status page stays closed."""
        def check(page: Page) -> tuple[str, str]:
            log_in(self.url, "wrong")(page)
            problem = page.inner_text("#problem")
            page.goto(self.url + "/status")
            return problem, page.url
        problem, url = yield self.step(check)
        self.assertEqual((problem, url), ("Wrong password.", self.url + "/login"))

    @inlineCallbacks
    def test_post_without_csrf(self) -> Any:
        """A POST from the logged-in browser without the form's token gets 403."""
        def check(page: Page) -> tuple[int, int]:
            log_in(self.url)(page)
            forged = page.request.post(self.url + "/status",
                                       form={"action": "disconnect", "server": ""})
            wrong = page.request.post(self.url + "/status",
                                      form={"action": "disconnect", "server": "", "csrf": "x"})
            return forged.status, wrong.status
        self.assertEqual((yield self.step(check)), (403, 403))

    def servers_update(self, changes: dict[str, str]) -> Callable[[Page], Any]:
        def go(page: Page) -> Any:
            page.goto(self.url + "/servers")
            for name, value in changes.items():
                if page.locator(f"select[name='{name}']").count():
                    page.select_option(f"select[name='{name}']", value)
                else:
                    page.fill(f"input[name='{name}']", value)
            page.click("button[name=update]")
            return page.inner_text("body")
        return go

    def status_of(self, index: int) -> Callable[[Page], dict[str, str]]:
        def go(page: Page) -> dict[str, str]:
            page.goto(self.url + "/status")
            row = page.locator(f"#status-{index}")
            return {c: row.locator(f".{c}").inner_text() for c in ("name", "mode", "state")}
        return go

    @inlineCallbacks
    def test_server_lifecycle(self) -> Any:
        """A server added in the empty row binds to the simulator; a new window applies
        without a re-bind; Disable stops it; emptying its address removes it."""
        yield self.step(log_in(self.url))
        bound = self.simulator.when_bound("gw2")
        body = yield self.step(self.servers_update({
            "s1.name": "second", "s1.address": f"127.0.0.1:{self.smsc_port}",
            "s1.system_id": "gw2", "s1.password": "pw2"}))
        self.assertIn("second", body)
        yield bound
        yield self.gateway.links["second"].when_bound()
        self.assertEqual((yield self.step(self.status_of(1))),
                         {"name": "second", "mode": "send-and-receive", "state": "bound"})
        binds = self.simulator.received_count("bind_transceiver")
        yield self.step(self.servers_update({"s1.window": "3"}))
        self.assertEqual(self.gateway.config.server("second").window, 3)
        self.assertEqual(self.simulator.received_count("bind_transceiver"), binds)

        def disable(page: Page) -> str:
            page.goto(self.url + "/status")
            page.click("#disable-1")
            return page.inner_text("#status-1 .mode")
        self.assertEqual((yield self.step(disable)), "off")
        self.assertNotIn("second", self.gateway.links)
        yield self.step(self.servers_update({"s1.address": ""}))
        self.assertEqual([s.name for s in self.gateway.config.servers], [""])
        with open(self.path) as f:
            self.assertNotIn("second", f.read())


class DemoBrowserTests(BrowserTestCase):
    """The Phone page of a gateway running a demo here (its own simulator), with a host on AMP."""

    @inlineCallbacks
    def setUp(self) -> Any:
        super().setUp()
        self.state = tempfile.mkdtemp(prefix="smppgw-")
        self.addCleanup(shutil.rmtree, self.state, True)
        path = os.path.join(self.state, "smppgw.toml")
        with open(path, "w") as f:
            f.write(gateway_config(self.state, free_port(), dialogs=True, sender="*").replace(
                'listen = ""', f'listen = "tcp:0:interface=127.0.0.1"\npassword_hash = "{HASH}"'))
        self.gateway = build_gateway(load_config(path), reactor, demo=True)
        self.gateway.privilegedStartService()
        self.gateway.startService()
        self.addCleanup(self.stop_gateway)
        port = yield listening_port(self.gateway.getServiceNamed("admin"))
        self.url = f"http://127.0.0.1:{port.getHost().port}"
        yield self.gateway.links[""].when_bound()
        self.host = yield connectProtocol(
            UNIXClientEndpoint(reactor, os.path.join(self.state, "amp.sock")), TestHost())

    @inlineCallbacks
    def stop_gateway(self) -> Any:
        self.host.transport.loseConnection()
        yield self.host.lost
        yield self.gateway.stopService()
        for connection in list(self.gateway.simulator.connections):
            connection.close()
        yield turn()

    @inlineCallbacks
    def test_reply_reaches_the_host(self) -> Any:
        """The host's messages show on the Phone page with their dialog prefixes; the reply
        typed there, "@a: ...", reaches the host as a DeliverSignal to the first sender."""
        for sender, body in (("alice@example.com", "Hello"), ("bob@example.com", "Hi there")):
            yield self.host.callRemote(SendSignal, request_id=sender, method="MESSAGE",
                                       sender=sender, recipient="+15551234@smpp", body=body)

        def reply(page: Page) -> dict[str, str]:
            log_in(self.url)(page)
            page.click("#demo-nav >> text=Phone")
            shown = {"number": page.inner_text("#phone-0 .number"),
                     "sender": page.inner_text("#phone-0 .sender"),
                     "messages": page.inner_text("#phone-0 .messages")}
            page.fill("input[name=text]", "@a: see you at 6")
            page.click("button[name=send]")
            return {**shown, "message": page.inner_text("#message"),
                    "nav": page.inner_text("#demo-nav")}

        shown = yield self.step(reply)
        signal = yield self.host.signals.get().addTimeout(10, reactor)
        self.assertEqual((shown["number"], shown["sender"], shown["nav"]),
                         ("+15551234", "bob@example.com", "Demo mode: Phone"))
        self.assertIn("@b=bob@example.com Hi there", shown["messages"])
        self.assertIn("@a=alice@example.com Hello", shown["messages"])
        self.assertEqual(shown["message"], '+15551234 sent "@a: see you at 6" to'
                                           ' bob@example.com through server "": the gateway'
                                           " took it.")
        self.assertEqual(signal, {"method": "MESSAGE", "sender": "+15551234@smpp",
                                  "recipient": "alice@example.com", "body": "see you at 6",
                                  "server": ""})


class FakeGatewayBrowserTests(BrowserTestCase):
    """The Settings page in the browser, on a gateway whose Update only records."""

    @inlineCallbacks
    def setUp(self) -> Any:
        super().setUp()
        folder = tempfile.mkdtemp(prefix="smppgw-")
        self.addCleanup(shutil.rmtree, folder, True)
        self.path = os.path.join(folder, "smppgw.toml")
        with open(self.path, "w") as f:
            f.write(gateway_config(folder, 2775).replace(
                'listen = ""', f'listen = ""\npassword_hash = "{HASH}"'))
        self.gateway = FakeGateway(load_config(self.path), self.path)
        site = AdminSite(self.gateway, reactor, synchronous)
        port = yield reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.url = f"http://127.0.0.1:{port.getHost().port}"

    @inlineCallbacks
    def test_settings_change(self) -> Any:
        """A Settings change is applied and saved; a bad value shows beside its field."""
        def change(page: Page) -> tuple[str, str]:
            log_in(self.url)(page)
            page.click("text=Settings")
            page.select_option("select[name='module.log_level']", "major")
            page.fill("input[name='module.dialog_timeout']", "soon")
            page.click("button[name=update]")
            error = page.inner_text("[id='error-module.dialog_timeout']")
            page.fill("input[name='module.dialog_timeout']", "3h")
            page.click("button[name=update]")
            return error, page.inner_text("#message")
        error, message = yield self.step(change)
        self.assertIn("'soon' is not a duration", error)
        self.assertIn("saved to", message)
        self.assertEqual((self.gateway.config.module.log_level,
                          self.gateway.config.module.dialog_timeout), ("major", 3 * 3600.0))
        with open(self.path) as f:
            self.assertIn('dialog_timeout = "3h"', f.read())
