"""The operator's commands of ``smppgw`` against a real gateway on loopback: queue, reject, lookup, dialogs, reload, backup."""

from __future__ import annotations

import contextlib
import io
import os
import re
import shutil
import sqlite3
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase, TestCase

from smppgw import cli
from smppgw.config import ConfigError
from smppgw.relay.operator import age

from .test_cli import GatewayTestCase, Lines, write_config

TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"


class QueueCommandTests(GatewayTestCase):
    @inlineCallbacks
    def test_queue_and_reject(self) -> None:
        """queue shows a stuck message with its age; reject ends it and its sender hears NOT_RELAYED."""
        yield self.start(sender="+15550100", response_timeout="200ms")
        self.simulator.faults.black_hole = True
        sending = self.run_cli("send", "+15551234", "hi", "--request-id", "stuck")
        yield self.simulator.when_received(1)
        status, out, err = yield self.run_cli("queue")
        self.assertEqual((status, err), (0, []))
        self.assertEqual(out[0], 'server "": 1 waiting')
        self.assertEqual(out[1].split(), ["request_id", "age", "parts", "sent", "in", "flight",
                                          "from"])
        self.assertRegex(out[2], r"^  stuck +\d+s +1 +0 +[01] +\S+")
        status, out, err = yield self.run_cli("reject", "stuck")
        self.assertEqual((status, err), (0, []))
        self.assertRegex(out[0], r'^rejected stuck \(server "", queued \d+s, 0 of 1 part sent\):'
                                 r" its host gets NOT_RELAYED$")
        status, out, err = yield sending
        self.assertEqual((status, err), (1, ["not sent: NOT_RELAYED: rejected by the operator"]))
        status, out, _ = yield self.run_cli("queue", "")
        self.assertEqual(out, ['server "": 0 waiting'])

    @inlineCallbacks
    def test_errors_are_one_line(self) -> None:
        """An unknown server or request_id is one line with the gateway's code, exit status 1."""
        yield self.start(sender="+15550100")
        status, out, err = yield self.run_cli("queue", "nowhere")
        self.assertEqual((status, out, err),
                         (1, [], ["smppgw: NOT_FOUND: there is no server 'nowhere'"]))
        status, out, err = yield self.run_cli("reject", "nothing")
        self.assertEqual((status, err), (1, ["smppgw: NOT_FOUND: there is no request 'nothing'"]))


class LookupCommandTests(GatewayTestCase):
    @inlineCallbacks
    def test_lookup_by_request_id_and_phone(self) -> None:
        """lookup prints the message, then each part with its message id and receipt."""
        yield self.start(sender="+15550100")
        yield self.run_cli("send", "+15551234", "hello", "--request-id", "r1")
        for query in ("r1", "+15551234"):
            status, out, err = yield self.run_cli("lookup", query)
            self.assertEqual((status, err), (0, []))
            self.assertEqual(len(out), 2, out)
            self.assertRegex(out[0], f'^r1: to 15551234 from 15550100 through server "",'
                                     f" accepted {TIME}: relayed$")
            self.assertEqual(out[1], "  part 1: accepted as message id 00000001; receipt not"
                                     " asked for")
        status, out, err = yield self.run_cli("lookup", "+15559999")
        self.assertEqual((status, err), (1, ["smppgw: NOT_FOUND: there is no request"
                                             " '+15559999', nor any message to 15559999 in the"
                                             " store"]))


class DialogCommandTests(GatewayTestCase):
    @inlineCallbacks
    def test_dialogs_and_retire(self) -> None:
        """dialogs lists the binding a message made; retire-dialog forgets it."""
        yield self.start(dialogs=True)
        yield self.run_cli("send", "+15551234", "hello", "--sender", "alice@example.com")
        status, out, err = yield self.run_cli("dialogs")
        self.assertEqual((status, err), (0, []))
        self.assertEqual(out[0].split(), ["phone", "letter", "IM", "address", "last", "used",
                                          "idle"])
        self.assertRegex(out[1], f"^\\+15551234 +a +alice@example.com +{TIME} +\\d+s$")
        status, out, err = yield self.run_cli("retire-dialog", "+15551234", "a")
        self.assertEqual((status, out), (0, ["retired @a of +15551234 (to alice@example.com)"]))
        status, out, err = yield self.run_cli("dialogs")
        self.assertEqual(out, ["no dialog bindings"])


class ReloadCommandTests(GatewayTestCase):
    def amp_factory(self) -> Any:
        return self.gateway.getServiceNamed("amp").factory

    @inlineCallbacks
    def test_reload(self) -> None:
        """reload prints the gateway's lines of what changed, or that nothing did."""
        yield self.start()
        answers = iter([["module.log_level: none -> all"], []])
        self.amp_factory().reload = lambda: next(answers)
        status, out, err = yield self.run_cli("reload")
        self.assertEqual((status, out, err), (0, ["module.log_level: none -> all"], []))
        status, out, err = yield self.run_cli("reload")
        self.assertEqual(out, ["reloaded: nothing changed"])

    @inlineCallbacks
    def test_invalid_file_and_no_reload(self) -> None:
        """An invalid file is one line naming its error; a gateway that cannot reload says so."""
        yield self.start()

        def invalid() -> list[str]:
            raise ConfigError("smppgw.toml: server[0].window: 0 is below 1")

        self.amp_factory().reload = invalid
        status, out, err = yield self.run_cli("reload")
        self.assertEqual((status, err), (1, ["smppgw: UNAVAILABLE: not reloaded: smppgw.toml:"
                                             " server[0].window: 0 is below 1"]))
        self.amp_factory().reload = None
        status, out, err = yield self.run_cli("reload")
        self.assertEqual(err, ["smppgw: UNAVAILABLE: this gateway cannot reload"])


class BackupCommandTests(GatewayTestCase):
    @inlineCallbacks
    def test_backup_while_running(self) -> None:
        """backup copies the running gateway's store; an existing file needs --force."""
        yield self.start(sender="+15550100")
        for i in range(3):
            yield self.run_cli("send", "+15551234", f"message {i}")
        target = os.path.join(self.state, "backup.sqlite")
        status, out, err = yield self.run_cli("backup", target)
        self.assertEqual((status, err), (0, []))
        self.assertRegex(out[0], f"^the store is backed up to {re.escape(target)} \\(\\d+ bytes,"
                                 " schema version 4\\)$")
        with contextlib.closing(sqlite3.connect(target)) as db:
            self.assertEqual(db.execute("SELECT COUNT(*) FROM outbound").fetchone(), (3,))
        status, out, err = yield self.run_cli("backup", target)
        self.assertEqual((status, err), (1, [f"smppgw: BAD_REQUEST: {target} exists; --force"
                                             " replaces it"]))
        yield self.run_cli("send", "+15551234", "one more")
        status, out, err = yield self.run_cli("backup", target, "--force")
        self.assertEqual(status, 0)
        with contextlib.closing(sqlite3.connect(target)) as db:
            self.assertEqual(db.execute("SELECT COUNT(*) FROM outbound").fetchone(), (4,))

    @inlineCallbacks
    def test_relative_path_is_the_callers(self) -> None:
        """A relative FILE names a file in the caller's folder."""
        yield self.start()
        here = os.getcwd()
        os.chdir(self.state)
        self.addCleanup(os.chdir, here)
        status, out, err = yield self.run_cli("backup", "copy.sqlite")
        self.assertEqual((status, err), (0, []))
        self.assertTrue(os.path.exists(os.path.join(self.state, "copy.sqlite")))


class NotRunningTests(TestCase):
    @inlineCallbacks
    def test_each_command(self) -> None:
        """With no gateway, each operator's command is the one not-running line, exit status 1."""
        state = tempfile.mkdtemp(prefix="smppgw-")
        self.addCleanup(shutil.rmtree, state, True)
        config = write_config(state, 9)
        for argv in (["queue"], ["reject", "r"], ["lookup", "r"], ["dialogs"],
                     ["retire-dialog", "+1555", "a"], ["reload"], ["backup", "x"]):
            out, err = Lines(), Lines()
            status = yield cli.run(reactor, cli.parse_args(["-c", config, *argv]), out, err)
            self.assertEqual((status, out.lines()), (1, []))
            self.assertEqual(err.lines(), [f"smppgw is not running: cannot connect to"
                                           f" unix:{state}/amp.sock (No such file or directory)"])


class LocalTests(SynchronousTestCase):
    def test_help_of_each_command(self) -> None:
        """Every operator's command has its own --help, which exits 0."""
        for command in ("queue", "reject", "lookup", "dialogs", "retire-dialog", "reload",
                        "backup"):
            shown = io.StringIO()
            with contextlib.redirect_stdout(shown), self.assertRaises(SystemExit) as exited:
                cli.parse_args([command, "--help"])
            self.assertEqual(exited.exception.code, 0)
            self.assertIn(f"usage: smppgw {command}", shown.getvalue())

    def test_ages(self) -> None:
        """Ages read as seconds, minutes, hours or days with the next unit."""
        self.assertEqual([age(s) for s in (0, 59.9, 125, 3600 * 3 + 420, 86400 * 2 + 3600 * 4)],
                         ["0s", "59s", "2m05s", "3h07m", "2d04h"])
