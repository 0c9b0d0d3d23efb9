"""The web admin's Settings, Servers and Status pages, on a fake gateway and a real file."""

from __future__ import annotations

import os

from smppgw.admin.forms import PLACEHOLDER
from smppgw.admin.testing import Response
from smppgw.config import load_config
from tests.test_admin_auth import PASSWORD, AdminTestCase


class FormTestCase(AdminTestCase):
    def setUp(self) -> None:
        super().setUp()
        with open(self.path) as f:
            text = f.read()
        text = text.replace("[module]\n", "# the operator's note\n[module]\n")
        text = text.replace('log_level = "none"', 'log_level = "none"  # quiet\n'
                                                  'dialog_timeout = "2h"')
        with open(self.path, "w") as f:
            f.write(text)
        self.gateway.config = load_config(self.path)
        self.browser.log_in(PASSWORD)

    def text(self) -> str:
        with open(self.path) as f:
            return f.read()

    def settings(self, **changes: str | bool) -> Response:
        page = self.browser.get("/settings")
        return self.browser.submit(page, "/settings", {f"module.{k}": v for k, v in changes.items()})

    def servers(self, changes: dict[str, str | bool]) -> Response:
        return self.browser.submit(self.browser.get("/servers"), "/servers", changes)


class SettingsTests(FormTestCase):
    def test_shows_the_file(self) -> None:
        """Each [module] key shows as the file spells it, or its default when left out."""
        page = self.browser.get("/settings")
        for label in ("Log Level", "Reject if not Relayed in", "Dialog Timeout",
                      "Source IP Address", "Default Gateway", "System Type"):
            self.assertIn(label, page.text)
        self.assertEqual(page.value("module.dialog_timeout"), "2h")
        self.assertEqual(page.value("module.reject_if_not_relayed_in"), "10m")
        self.assertIn('<option value="none" selected>', page.text)

    def test_update_applies_and_saves(self) -> None:
        """Update applies the new settings live, then writes only the changed lines, comments
        kept, the previous file kept as FILE.bak."""
        before = self.text()
        response = self.settings(log_level="major", dialog_timeout="3h")
        self.assertEqual(response.code, 200, response.body)
        self.assertEqual([c.module.log_level for c in self.gateway.applied], ["major"])
        self.assertEqual(self.gateway.config.module.dialog_timeout, 3 * 3600.0)
        self.assertIn("module.log_level changed", response.text)
        self.assertIn(f"saved to {self.path}", response.text)
        expected = before.replace('log_level = "none"  # quiet', 'log_level = "major"  # quiet')
        self.assertEqual(self.text(), expected.replace('dialog_timeout = "2h"',
                                                       'dialog_timeout = "3h"'))
        with open(self.path + ".bak") as f:
            self.assertEqual(f.read(), before)

    def test_numbers_of_seconds(self) -> None:
        """A duration given as bare seconds is written as a TOML number."""
        self.assertEqual(self.settings(dialog_timeout="90").code, 200)
        self.assertIn("dialog_timeout = 90\n", self.text())

    def test_errors_beside_their_fields(self) -> None:
        """Every bad field gets its own message beside it, and nothing is applied or saved."""
        before = self.text()
        response = self.settings(dialog_timeout="soon", source_address="not-an-ip",
                                 log_level="major")
        self.assertEqual(response.code, 400)
        self.assertIn("'soon' is not a duration", response.error("module.dialog_timeout"))
        self.assertTrue(response.error("module.source_address"))
        self.assertEqual(response.error("module.log_level"), "")
        self.assertEqual(response.value("module.dialog_timeout"), "soon")
        self.assertEqual((self.gateway.applied, self.text()), ([], before))

    def test_rule_across_sections(self) -> None:
        """A default gateway that names no server is refused beside that field."""
        response = self.settings(default_gateway="nowhere")
        self.assertEqual(response.code, 400)
        self.assertIn("'nowhere' is not the name of a configured server",
                      response.error("module.default_gateway"))
        self.assertEqual(self.gateway.applied, [])

    def test_file_changed_on_disk(self) -> None:
        """An edit of the file since it was read is refused with a message, not overwritten."""
        page = self.browser.get("/settings")
        with open(self.path, "a") as f:
            f.write("# edited by hand\n")
        response = self.browser.submit(page, "/settings", {"module.log_level": "all"})
        self.assertEqual(response.code, 409)
        self.assertIn("was changed on disk since the admin read it", response.text)
        self.assertEqual(self.gateway.applied, [])
        self.assertTrue(self.text().endswith("# edited by hand\n"))
        self.assertFalse(os.path.exists(self.path + ".bak"))

    def test_out_of_date_page(self) -> None:
        """A form from before another Update is refused (409): its fields may undo that one."""
        old = self.browser.get("/settings")
        self.assertEqual(self.settings(log_level="major").code, 200)
        response = self.browser.submit(old, "/settings", {"module.dialog_timeout": "1h"})
        self.assertEqual(response.code, 409)
        self.assertIn("changed since this page was shown", response.text)
        self.assertEqual(len(self.gateway.applied), 1)

    def test_no_file(self) -> None:
        """A gateway not started from a file applies the Update and says it was not saved."""
        self.gateway.config_path = None
        self.site.editor._document = None
        response = self.settings(log_level="all")
        self.assertEqual(response.code, 200)
        self.assertIn("not saved: the gateway was not started from a file", response.text)
        self.assertEqual(self.gateway.config.module.log_level, "all")

    def test_reload_rereads_the_file(self) -> None:
        """When the gateway's configuration changes (a reload), the page shows the file anew."""
        text = self.text().replace('dialog_timeout = "2h"', 'dialog_timeout = "5h"')
        with open(self.path, "w") as f:
            f.write(text)
        self.gateway.config = load_config(self.path)
        self.assertEqual(self.browser.get("/settings").value("module.dialog_timeout"), "5h")


class ServersTests(FormTestCase):
    def test_table(self) -> None:
        """The record table has every server key as a column, one row per server and an
        empty last row; the stored password shows as the placeholder only."""
        page = self.browser.get("/servers")
        for label in ("Name", "Mode", "SMSC Address", "System ID[@SystemType]", "Password",
                      "Sender", "Dialogs", "Recipient", "Encoding", "Keep Alive", "Window",
                      "Throughput", "Receipts", "Long Messages", "CA File",
                      "Client Certificate", "data_coding 0 alphabet"):
            self.assertIn(f">{label}</th>", page.text)
        self.assertEqual(page.value("s0.address"), "127.0.0.1:2775")
        self.assertEqual(page.value("s0.password"), PLACEHOLDER)
        self.assertNotIn('"pw"', page.body)
        self.assertEqual((page.value("s1.address"), page.value("s1.window")), ("", "10"))
        self.assertIn('<option value="off">off</option>', page.text)

    def test_placeholder_keeps_the_password(self) -> None:
        """An Update that leaves the placeholder keeps the stored password; a new one is set."""
        self.assertEqual(self.servers({"s0.window": "20"}).code, 200)
        self.assertEqual(self.gateway.config.servers[0].password, "pw")
        self.assertEqual(self.gateway.config.servers[0].window, 20)
        self.assertEqual(self.servers({"s0.password": "new"}).code, 200)
        self.assertEqual(self.gateway.config.servers[0].password, "new")

    def test_new_row_creates(self) -> None:
        """Filling the empty last row and pressing Update creates that server, at the end."""
        response = self.servers({"s1.name": "bulk", "s1.address": "tls:smsc.example:3550",
                                 "s1.system_id": "acme@VMA", "s1.password": "pw2",
                                 "s1.window": "50", "s1.mode": "send-only",
                                 "s1.registered_delivery": True})
        self.assertEqual(response.code, 200, response.body)
        bulk = self.gateway.config.server("bulk")
        self.assertEqual((bulk.tls, bulk.host, bulk.port, bulk.system_id, bulk.system_type,
                          bulk.window, bulk.mode, bulk.registered_delivery),
                         (True, "smsc.example", 3550, "acme", "VMA", 50, "send-only", True))
        self.assertIn("server 'bulk' added", response.text)
        tail = self.text().split("[[server]]")[-1]
        self.assertEqual(tail.split(), ['name', '=', '"bulk"', 'mode', '=', '"send-only"',
                                        'address', '=', '"tls:smsc.example:3550"', 'system_id',
                                        '=', '"acme@VMA"', 'password', '=', '"pw2"', 'window',
                                        '=', '50', 'registered_delivery', '=', 'true'])

    def test_new_row_needs_an_address(self) -> None:
        """A last row given a name but no address is an error beside its address."""
        response = self.servers({"s1.name": "bulk"})
        self.assertEqual(response.code, 400)
        self.assertIn("a new server needs an SMSC address", response.error("s1.address"))
        self.assertEqual(self.gateway.applied, [])

    def test_empty_address_removes(self) -> None:
        """Emptying a server's address (not its name) and pressing Update removes it."""
        self.servers({"s1.name": "b", "s1.address": "127.0.0.1:2776", "s1.system_id": "b"})
        response = self.servers({"s0.address": ""})
        self.assertEqual(response.code, 200, response.body)
        self.assertEqual([s.name for s in self.gateway.config.servers], ["b"])
        self.assertIn("server '' removed", response.text)
        self.assertNotIn("2775", self.text())

    def test_empty_name_is_a_name(self) -> None:
        """Emptying a name renames the server (to the empty name); it is not removed."""
        self.servers({"s1.name": "b", "s1.address": "127.0.0.1:2776", "s1.system_id": "b"})
        response = self.servers({"s0.name": "a", "s1.name": ""})
        self.assertEqual(response.code, 200, response.body)
        self.assertEqual([s.name for s in self.gateway.config.servers], ["a", ""])

    def test_off_mode(self) -> None:
        """Mode off keeps the record and its address but stops the server."""
        self.assertEqual(self.servers({"s0.mode": "off"}).code, 200)
        server = self.gateway.config.servers[0]
        self.assertEqual((server.enabled, server.address), (False, "127.0.0.1:2775"))

    def test_field_errors(self) -> None:
        """Bad fields of several rows each get their message; nothing is applied or saved."""
        before = self.text()
        response = self.servers({"s0.window": "0", "s0.keep_alive": "often",
                                 "s1.address": "127.0.0.1:99999", "s1.system_id": "x",
                                 "s1.throughput": "fast"})
        self.assertEqual(response.code, 400)
        self.assertIn("0 is out of range; use an integer from 1 to 1000", response.error("s0.window"))
        self.assertIn("'often' is not a duration", response.error("s0.keep_alive"))
        self.assertTrue(response.error("s1.address"))
        self.assertIn("expected a number", response.error("s1.throughput"))
        self.assertEqual(response.value("s1.address"), "127.0.0.1:99999")
        self.assertEqual((self.gateway.applied, self.text()), ([], before))

    def test_duplicate_name(self) -> None:
        """A second server with a name already used is refused beside its name."""
        response = self.servers({"s1.address": "127.0.0.1:2776", "s1.system_id": "x"})
        self.assertEqual(response.code, 400)
        self.assertIn("is already the name of server[0]", response.error("s1.name"))

    def test_error_after_a_removed_row(self) -> None:
        """Once a row is removed, an error of a later row still shows beside that row."""
        self.servers({"s1.name": "b", "s1.address": "127.0.0.1:2776", "s1.system_id": "b"})
        response = self.servers({"s0.address": "", "s1.window": "0"})
        self.assertEqual(response.code, 400)
        self.assertTrue(response.error("s1.window"))

    def test_password_refused_not_shown(self) -> None:
        """A password too long is refused without being shown back."""
        response = self.servers({"s0.password": "much-too-long"})
        self.assertEqual(response.code, 400)
        self.assertTrue(response.error("s0.password"))
        self.assertNotIn("much-too-long", response.body)
        self.assertEqual(response.value("s0.password"), PLACEHOLDER)

    def test_typed_password_not_shown_back(self) -> None:
        """A new password typed in a refused form is not shown back; its field says so."""
        response = self.servers({"s0.password": "newpw", "s0.window": "0"})
        self.assertEqual(response.code, 400)
        self.assertNotIn("newpw", response.body)
        self.assertEqual(response.value("s0.password"), PLACEHOLDER)
        self.assertIn("type it again", response.error("s0.password"))

    def test_optional_integer_cleared(self) -> None:
        """An optional number (source_ton) emptied is left out of the file."""
        self.assertEqual(self.servers({"s0.source_ton": "5"}).code, 200)
        self.assertEqual(self.gateway.config.servers[0].source_ton, 5)
        self.assertEqual(self.servers({"s0.source_ton": ""}).code, 200)
        self.assertIsNone(self.gateway.config.servers[0].source_ton)
        self.assertNotIn("source_ton", self.text())

    def test_unchanged_update_writes_nothing_new(self) -> None:
        """An Update with nothing changed leaves the file's text as it was."""
        before = self.text()
        response = self.servers({})
        self.assertEqual(response.code, 200)
        self.assertEqual(self.text(), before)


class StatusTests(FormTestCase):
    def post(self, **form: str) -> Response:
        page = self.browser.get("/status")
        return self.browser.post("/status", {"csrf": page.value("csrf"), **form})

    def test_rows(self) -> None:
        """Each server's state, address, queue and counters show, with its three buttons."""
        page = self.browser.get("/status")
        self.assertIn('<td class="state">bound</td>', page.text)
        self.assertIn('<td class="address">127.0.0.1:2775</td>', page.text)
        self.assertIn('<td class="name">""</td>', page.text)
        for action in ("disconnect-0", "rebind-0", "disable-0"):
            self.assertIn(f'id="{action}"', page.text)

    def test_disconnect_and_rebind(self) -> None:
        """Disconnect and Re-bind ask the gateway for exactly that."""
        self.assertEqual(self.post(action="disconnect", server="").code, 200)
        self.assertEqual(self.post(action="rebind", server="").code, 200)
        self.assertEqual(self.gateway.actions, [("disconnect", ""), ("rebind", "")])

    def test_disable(self) -> None:
        """Disable sets the server's mode off, applied live and saved."""
        response = self.post(action="disable", server="")
        self.assertEqual(response.code, 200, response.body)
        self.assertEqual(self.gateway.config.servers[0].mode, "off")
        self.assertIn('mode = "off"', self.text())

    def test_log_level(self) -> None:
        """The log level set on the Status page is applied live and saved."""
        response = self.post(action="log_level", log_level="low-level")
        self.assertEqual(response.code, 200)
        self.assertEqual(self.gateway.config.module.log_level, "low-level")
        self.assertIn('log_level = "low-level"  # quiet', self.text())
        refused = self.post(action="log_level", log_level="loud")
        self.assertEqual(refused.code, 400)
        self.assertIn("'loud' is not allowed", refused.text)

    def test_unknown_server(self) -> None:
        """An action on a server that does not exist is refused and does nothing."""
        self.assertEqual(self.post(action="rebind", server="ghost").code, 400)
        self.assertEqual(self.gateway.actions, [])
