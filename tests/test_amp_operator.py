"""The operator's AMP commands: queue, reject, lookup, dialogs, reload and backup, over an in-memory connection."""

from __future__ import annotations

import os
import sqlite3
from typing import Any

from twisted.internet.task import Clock
from twisted.protocols import amp
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from smppgw.config import ConfigError
from smppgw.errors import BadRequest, NotFound, NotRelayed, Unauthorized, Unavailable
from smppgw.host.commands import (
    Backup,
    ListDialogs,
    ListQueue,
    Login,
    LookupMessage,
    RejectMessage,
    Reload,
    RetireDialog,
    SendSignal,
)
from smppgw.host.operating import LIST_BUDGET, fit
from smppgw.host.protocol import GatewayAMPFactory
from smppgw.host.registry import HostRegistry
from smppgw.relay.dialogs import Binding
from smppgw.store.sqlite import Store
from smppgw.store.sqlite import backup as backup_module
from smppgw.store.sqlite.schema import SCHEMA_VERSION

from . import test_queue


class OperatorAmpTestCase(SynchronousTestCase):
    def connect(self, secret: str = "", path: str = ":memory:", **factory: Any) -> None:
        helper = test_queue.QueueTests("test_status")
        self.outbound, self.links, self.clock, self.store = helper.make(path, bound=False)
        self.addCleanup(self.outbound.stop)
        self.addCleanup(self.store.close)
        built = GatewayAMPFactory(self.outbound, HostRegistry(), self.clock, secret, **factory)
        self.client, self.server, self.pump = iosim.connectedServerAndClient(
            lambda: built.buildProtocol(None), amp.AMP, clock=self.clock)

    def call(self, command: Any, **kw: Any) -> Any:
        """The command's result, or its Failure."""
        outcome: list[Any] = []
        self.client.callRemote(command, **kw).addBoth(outcome.append)
        self.pump.flush()
        self.clock.advance(0)
        self.pump.flush()
        return outcome[0] if outcome else None

    def failure(self, outcome: Any, error: type[Exception]) -> str:
        """The reason of an expected error answer."""
        self.assertIsInstance(outcome, Failure)
        self.assertIsInstance(outcome.value, error)
        reason = outcome.value.args[0]
        return reason.decode() if isinstance(reason, bytes) else str(reason)

    def send(self, request_id: str, body: str = "hello", sender: str = "a@example.com"
             ) -> list[Any]:
        """SendSignal; its outcome, when it comes, in the list returned.  (AMP drops the
        connection if an error answer finds no errback, so one is attached at once.)"""
        outcome: list[Any] = []
        self.client.callRemote(SendSignal, request_id=request_id, method="MESSAGE",
                               sender=sender, recipient="+15551234@smpp",
                               body=body).addBoth(outcome.append)
        self.pump.flush()
        self.clock.advance(0)
        self.pump.flush()
        return outcome


class QueueCommandTests(OperatorAmpTestCase):
    def test_list_queue(self) -> None:
        """ListQueue gives each sending server's total and its waiting messages, oldest first."""
        self.connect()
        self.send("r1")
        self.clock.advance(20)
        self.send("r2", body="x" * 200)
        answer = self.call(ListQueue)
        self.assertEqual(answer["servers"], [{"server": "", "total": 2}, {"server": "bulk", "total": 0}])
        self.assertEqual([(w["request_id"], w["age"], w["parts"], w["sent"], w["in_flight"])
                          for w in answer["waiting"]], [("r1", 20.0, 1, 0, 0), ("r2", 0.0, 2, 0, 0)])
        self.assertNotEqual(answer["waiting"][0]["host"], "restored")

    def test_one_server_and_limit(self) -> None:
        """ListQueue for one server with a limit; an unknown server is NOT_FOUND; limit 0 BAD_REQUEST."""
        self.connect()
        for i in range(3):
            self.send(f"r{i}")
        answer = self.call(ListQueue, server="", limit=1)
        self.assertEqual((answer["servers"], [w["request_id"] for w in answer["waiting"]]),
                         ([{"server": "", "total": 3}], ["r0"]))
        self.assertEqual(self.failure(self.call(ListQueue, server="x"), NotFound),
                         "there is no server 'x'")
        self.failure(self.call(ListQueue, limit=0), BadRequest)

    def test_reject(self) -> None:
        """RejectMessage ends a queued message: its host's SendSignal fails NOT_RELAYED."""
        self.connect()
        waiting = self.send("stuck")
        answer = self.call(RejectMessage, request_id="stuck")
        self.assertEqual((answer["server"], answer["parts"], answer["sent"]), ("", 1, 0))
        self.assertEqual(self.failure(waiting[0], NotRelayed), "rejected by the operator")
        self.assertEqual(self.failure(self.call(RejectMessage, request_id="stuck"), BadRequest),
                         "request 'stuck' is no longer queued: NOT_RELAYED: rejected by the"
                         " operator")

    def test_login_first(self) -> None:
        """With a secret, the operator's commands are UNAUTHORIZED until Login."""
        self.connect(secret="s")
        for command in (ListQueue, ListDialogs, Reload):
            self.failure(self.call(command), Unauthorized)
        self.call(Login, secret="s")
        self.assertEqual(self.call(ListDialogs), {"total": 0, "bindings": []})


class LookupCommandTests(OperatorAmpTestCase):
    def test_lookup(self) -> None:
        """LookupMessage by request_id or phone: the message and each part's state."""
        self.connect()
        sent = self.send("r1", body="y" * 200)
        self.links[""].set_state("bound")
        self.clock.advance(0)
        self.links[""].answer(0, "M1")
        self.links[""].answer(0, "M2")
        self.clock.advance(0)
        self.pump.flush()
        self.assertEqual(sent[0]["message_ids"], ["M1", "M2"])
        for query in ("r1", "+15551234"):
            answer = self.call(LookupMessage, query=query)
            self.assertEqual(answer["total"], 1)
            [message] = answer["messages"]
            self.assertEqual((message["request_id"], message["destination"], message["state"]),
                             ("r1", "15551234", "relayed"))
            self.assertEqual([(p["number"], p["message_id"], p["submit"], p["receipt"])
                              for p in answer["parts"]],
                             [(1, "M1", "accepted", "not asked for"),
                              (2, "M2", "accepted", "not asked for")])
        self.failure(self.call(LookupMessage, query="nothing"), NotFound)


class DialogCommandTests(OperatorAmpTestCase):
    def test_list_and_retire(self) -> None:
        """ListDialogs shows the binding a message made; RetireDialog forgets it."""
        self.connect()
        self.send("r1", sender="alice@example.com")
        [binding] = self.call(ListDialogs)["bindings"]
        self.assertEqual((binding["phone"], binding["letter"], binding["address"]),
                         ("+15551234", "a", "alice@example.com"))
        self.assertEqual(self.call(RetireDialog, phone="+15551234", letter="a"),
                         {"phone": "+15551234", "letter": "a", "address": "alice@example.com"})
        self.assertEqual(self.call(ListDialogs), {"total": 0, "bindings": []})
        self.assertEqual(self.failure(self.call(RetireDialog, phone="+15551234", letter="a"),
                                      NotFound), "+15551234 has no dialog binding @a")

    def test_long_list_is_cut(self) -> None:
        """More bindings than one AMP value holds: as many as fit, and the total."""
        self.connect()
        assert self.outbound.dialogs is not None
        for i in range(3000):
            self.store.save_binding(Binding(f"+1555{i:06d}", "user@example.com", "a", 0.0))
        self.outbound.dialogs = type(self.outbound.dialogs)(self.clock, 10**12, self.store)
        answer = self.call(ListDialogs)
        self.assertEqual(answer["total"], 3000)
        self.assertLess(len(answer["bindings"]), 3000)
        self.assertGreater(len(answer["bindings"]), 500)

    def test_fit(self) -> None:
        """fit keeps the rows whose AmpList value stays within the budget."""
        rows = [{"k": "v" * 100}] * 1000
        kept = fit(rows)
        value = amp.AmpList([(b"k", amp.Unicode())]).toStringProto(kept, None)  # type: ignore[arg-type]
        self.assertLessEqual(len(value), LIST_BUDGET)
        self.assertGreater(len(value), LIST_BUDGET - 200)


class ReloadCommandTests(OperatorAmpTestCase):
    def test_cannot_reload(self) -> None:
        """A gateway given no reload says so."""
        self.connect()
        self.assertEqual(self.failure(self.call(Reload), Unavailable),
                         "this gateway cannot reload")

    def test_reload(self) -> None:
        """Reload answers the gateway's lines of what changed."""
        calls: list[None] = []
        self.connect(reload=lambda: calls.append(None) or ["server 'x' added"])
        self.assertEqual(self.call(Reload), {"changes": ["server 'x' added"]})
        self.assertEqual(len(calls), 1)

    def test_invalid_file(self) -> None:
        """A configuration file that cannot be used is UNAVAILABLE with its error."""
        def reload() -> list[str]:
            raise ConfigError("etc/smppgw.toml: server[0].window: 0 is below 1")

        self.connect(reload=reload)
        self.assertEqual(self.failure(self.call(Reload), Unavailable),
                         "not reloaded: etc/smppgw.toml: server[0].window: 0 is below 1")


class BackupCommandTests(OperatorAmpTestCase):
    def setUp(self) -> None:
        self.folder = os.path.abspath(self.mktemp())
        os.makedirs(self.folder)
        self.target = os.path.join(self.folder, "copy.sqlite")

    def test_backup_while_writing(self) -> None:
        """The copy holds what was committed, though a transaction is open, and opens as a store."""
        ran: list[Any] = []

        def in_thread(f: Any, *args: Any) -> Any:
            ran.append(f)
            from twisted.internet.defer import maybeDeferred
            return maybeDeferred(f, *args)

        self.connect(path=os.path.join(self.folder, "store.sqlite"), run_in_thread=in_thread)
        self.send("r1")
        self.store.add_outbound("open", "", b"x", 1, 0.0)  # written, not committed yet
        answers: list[Any] = []
        self.client.callRemote(Backup, path=self.target).addBoth(answers.append)
        self.pump.flush(advanceClock=False)  # the store's commit stays due
        [answer] = answers
        self.assertEqual(len(ran), 1)
        self.assertEqual((answer["path"], answer["schema_version"]), (self.target, SCHEMA_VERSION))
        self.assertEqual(answer["size"], os.path.getsize(self.target))
        self.assertEqual(os.stat(self.target).st_mode & 0o777, 0o600)
        self.assertEqual(sorted(os.listdir(self.folder)),  # one file; no temporary left
                         ["copy.sqlite", "store.sqlite", "store.sqlite-shm", "store.sqlite-wal",
                          "store.sqlite.lock"])
        copy = Store(self.target, Clock())
        self.addCleanup(copy.close)
        self.assertEqual([row.request_id for row in copy.unfinished()], ["r1"])

    def test_existing_target(self) -> None:
        """A target that exists is refused and kept, unless force replaces it."""
        self.connect(path=os.path.join(self.folder, "store.sqlite"))
        with open(self.target, "w") as f:
            f.write("precious")
        self.assertEqual(self.failure(self.call(Backup, path=self.target), BadRequest),
                         f"{self.target} exists; --force replaces it")
        with open(self.target) as f:
            self.assertEqual(f.read(), "precious")
        self.call(Backup, path=self.target, force=True)
        with sqlite3.connect(self.target) as db:
            self.assertEqual(db.execute("PRAGMA user_version").fetchone(), (SCHEMA_VERSION,))
        self.assertEqual(sorted(os.listdir(self.folder))[0], "copy.sqlite")

    def test_bad_targets(self) -> None:
        """A relative path, a missing folder and the store itself are refused; so is a store in memory."""
        store = os.path.join(self.folder, "store.sqlite")
        self.connect(path=store)
        for path, reason in [
            ("copy.sqlite", "the backup's path must be absolute: 'copy.sqlite'"),
            ("/nonexistent/copy.sqlite", "no folder '/nonexistent' for the backup"),
            (store, f"{store} is the store itself"),
            (self.folder, f"{self.folder} is a folder: name the backup's file"),
        ]:
            self.assertEqual(self.failure(self.call(Backup, path=path, force=True), BadRequest),
                             reason)

    def test_folder_not_writable(self) -> None:
        """A folder the gateway cannot write in is UNAVAILABLE, naming it."""
        self.connect(path=os.path.join(self.folder, "store.sqlite"))

        def refused(**kw: Any) -> Any:
            raise PermissionError(13, "Permission denied", os.path.join(kw["dir"], ".c.tmp"))

        self.patch(backup_module.tempfile, "mkstemp", refused)
        self.assertEqual(self.failure(self.call(Backup, path=self.target), Unavailable),
                         f"cannot write in {self.folder}: Permission denied")

    def test_memory_store(self) -> None:
        """A store in memory has no file to back up."""
        self.connect()
        self.assertIn("the store is in memory",
                      self.failure(self.call(Backup, path=self.target), Unavailable))
        self.assertFalse(os.path.exists(self.target))
