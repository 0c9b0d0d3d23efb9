"""The settings the nodes on one database share: published, taken, written into each file."""

from __future__ import annotations

import os
from dataclasses import replace
from typing import Any

from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from smppgw.config import Config, load_config, parse_config
from smppgw.shared import CHECK_EVERY, SettingsSync, shared_text, with_shared, write_shared
from smppgw.smpp.log import SmppLog
from smppgw.store.interfaces import StoreError
from smppgw.store.postgres.settings import SharedSettings

FILE = """\
# the node's own file
[module]
log_level = "major"  # kept beside its comment
source_address = "127.0.0.1"

[amp]
listen = "unix:/tmp/smppgw-test-amp.sock"

[store]
url = "postgresql://gw@db/smppgw"

[node]
name = "gw-1"

[admin]
listen = ""

[[server]]
name = "eu"
address = "127.0.0.1:2775"
system_id = "gw"
password = "secret"
window = 10
"""


class FakeSettings:
    """The store's settings row, in memory; `fail_next` makes the next publish fail."""

    def __init__(self) -> None:
        self.row: SharedSettings | None = None
        self.fail_next = False
        self.fail_reads = False
        self.now = 1_000.0

    def settings_revision(self) -> int:
        return 0 if self.row is None else self.row.revision

    def shared_settings(self) -> SharedSettings | None:
        return self.row

    def newer_settings(self, revision: int) -> Any:
        if self.fail_reads:
            return fail(StoreError("the database does not answer"))
        return succeed(self.row if self.row is not None and self.row.revision > revision
                       else None)

    def publish_settings(self, text: str, node: str) -> Any:
        if self.fail_next:
            self.fail_next = False
            return fail(StoreError("the database is gone"))
        revision = self.settings_revision() + 1
        self.row = SharedSettings(revision, text, node, self.now)
        return succeed(revision)


class FakeGateway:
    """A gateway that takes every configuration it is given."""

    def __init__(self, config: Config, config_path: str | None) -> None:
        self.config = config
        self.config_path = config_path
        self.applied: list[tuple[Config, bool]] = []

    def apply_config(self, new: Config, *, from_cluster: bool = False) -> list[str]:
        self.applied.append((new, from_cluster))
        self.config = new
        return ["a change"]


class SharedTextTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """The shared text of a configuration gives back its [module] and servers, with the
        node's own source_address left out and the other node's own tables untouched."""
        mine = parse_config(FILE)
        text = shared_text(mine)
        self.assertNotIn("source_address", text)
        self.assertNotIn("[node]", text)
        other = replace(mine, node=replace(mine.node, name="gw-2"),
                        module=replace(mine.module, source_address="127.0.0.2"))
        merged = with_shared(other, text, "revision 1")
        self.assertEqual(merged.servers, mine.servers)
        self.assertEqual(merged.module, replace(mine.module, source_address="127.0.0.2"))
        self.assertEqual((merged.node.name, merged.store, merged.amp),
                         ("gw-2", mine.store, mine.amp))

    def test_written_into_the_file(self) -> None:
        """A revision taken from the cluster is written into the node's file: the shared
        tables change, the node's own tables and the comments beside unchanged keys stay."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(FILE)
        mine = load_config(path)
        changed = replace(mine, servers=(replace(mine.servers[0], window=25),),
                          module=replace(mine.module, dialog_timeout=60.0))
        write_shared(path, changed)
        with open(path) as f:
            text = f.read()
        self.assertIn('log_level = "major"  # kept beside its comment', text)
        self.assertIn("# the node's own file", text)
        self.assertIn('source_address = "127.0.0.1"', text)
        again = load_config(path)
        self.assertEqual(again, changed)
        self.assertTrue(os.path.exists(path + ".bak"))


class SettingsSyncTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = self.mktemp()
        with open(self.path, "w") as f:
            f.write(FILE)
        os.utime(self.path, (500.0, 500.0))  # before FakeSettings.now
        self.config = load_config(self.path)
        self.store = FakeSettings()
        self.gateway = FakeGateway(self.config, self.path)
        self.clock = Clock()
        self.sync = SettingsSync(self.gateway, self.store, self.clock, "gw-1",
                                 SmppLog("*", "problems"))

    def start(self) -> list[str]:
        with capturedLogs() as events:
            self.sync.start()
        self.addCleanup(self.sync.stop)
        return [formatEvent(event) for event in events]

    def other_node(self, config: Config, node: str = "gw-2") -> None:
        self.store.publish_settings(shared_text(config), node)

    def test_first_node_publishes(self) -> None:
        """On an empty database the first node's settings become revision 1."""
        lines = self.start()
        self.assertEqual(self.store.row.revision, 1)
        self.assertEqual(self.store.row.text, shared_text(self.config))
        self.assertIn("SMPP [*] published the shared settings as revision 1: the first settings"
                      " of the cluster", lines)
        self.assertEqual(self.gateway.applied, [])

    def test_same_settings_adopted(self) -> None:
        """A node whose file says what the cluster says takes the revision and changes nothing."""
        self.other_node(self.config)
        self.other_node(self.config)
        self.start()
        self.assertEqual((self.sync.revision, self.store.row.revision), (2, 2))
        self.assertEqual(self.gateway.applied, [])

    def test_newer_cluster_settings_taken_at_start(self) -> None:
        """Settings published after the file was last changed are applied at start and
        written into the file."""
        theirs = replace(self.config, servers=(replace(self.config.servers[0], window=42),))
        self.other_node(theirs)
        lines = self.start()
        [(applied, from_cluster)] = self.gateway.applied
        self.assertTrue(from_cluster)
        self.assertEqual(applied.servers[0].window, 42)
        self.assertEqual(load_config(self.path).servers[0].window, 42)
        self.assertIn("SMPP [*] settings revision 1 (by node gw-2) applied: a change", lines)

    def test_newer_file_published_at_start(self) -> None:
        """A file changed after the cluster's last revision wins: it is published."""
        theirs = replace(self.config, servers=(replace(self.config.servers[0], window=42),))
        self.other_node(theirs)
        os.utime(self.path, (2_000.0, 2_000.0))
        self.start()
        self.assertEqual(self.gateway.applied, [])
        self.assertEqual((self.store.row.revision, self.store.row.node), (2, "gw-1"))
        self.assertEqual(self.store.row.text, shared_text(self.config))

    def test_another_nodes_revision_taken(self) -> None:
        """A revision another node publishes is applied at the next look, not before."""
        self.start()
        theirs = replace(self.config, servers=(replace(self.config.servers[0], window=7),))
        self.other_node(theirs)
        self.clock.advance(CHECK_EVERY - 0.1)
        self.assertEqual(self.gateway.applied, [])
        self.clock.advance(0.1)
        self.assertEqual([(c.servers[0].window, f) for c, f in self.gateway.applied], [(7, True)])
        self.assertEqual(self.sync.revision, 2)
        self.clock.advance(CHECK_EVERY)
        self.assertEqual(len(self.gateway.applied), 1)

    def test_unusable_revision_refused(self) -> None:
        """A revision this node cannot read is refused with a line naming the key, once;
        the node keeps its settings and takes the next good revision."""
        self.start()
        self.store.publish_settings('[module]\nlog_level = "loud"\n', "gw-2")
        with capturedLogs() as events:
            self.clock.advance(CHECK_EVERY)
            self.clock.advance(CHECK_EVERY)
        lines = [formatEvent(event) for event in events]
        self.assertEqual(len(lines), 1)
        self.assertIn("settings revision 2 (by node gw-2) not applied, this node keeps its"
                      " own:", lines[0])
        self.assertIn("log_level", lines[0])
        self.assertEqual(self.gateway.applied, [])
        self.other_node(replace(self.config, module=replace(self.config.module,
                                                            log_level="none")))
        self.clock.advance(CHECK_EVERY)
        self.assertEqual([c.module.log_level for c, _ in self.gateway.applied], ["none"])

    def test_local_change_published_only_when_shared(self) -> None:
        """A change applied on this node is published when it touches the shared part; a
        change of the node's own tables or source address is not."""
        self.start()
        own = replace(self.config, node=replace(self.config.node, lease=30.0),
                      module=replace(self.config.module, source_address="127.0.0.9"))
        self.sync.changed(own)
        self.assertEqual(self.store.row.revision, 1)
        shared_change = replace(own, module=replace(own.module, dialog_timeout=99.0))
        self.sync.changed(shared_change)
        self.assertEqual((self.store.row.revision, self.sync.revision), (2, 2))
        self.clock.advance(CHECK_EVERY)
        self.assertEqual(self.gateway.applied, [])  # its own revision is not taken again

    def test_read_failure_said_and_looking_goes_on(self) -> None:
        """A look that cannot read the database is said in a line; the next look, once it
        can, takes the newer revision (the loop does not stop)."""
        self.start()
        theirs = replace(self.config, servers=(replace(self.config.servers[0], window=9),))
        self.other_node(theirs)
        self.store.fail_reads = True
        with capturedLogs() as events:
            self.clock.advance(CHECK_EVERY)
        self.assertEqual([formatEvent(e) for e in events], [
            "SMPP [*] cannot read the shared settings: the database does not answer"])
        self.store.fail_reads = False
        self.clock.advance(CHECK_EVERY)
        self.assertEqual([c.servers[0].window for c, _ in self.gateway.applied], [9])

    def test_publish_failure_said(self) -> None:
        """A publish that fails is said in a line; the node runs on."""
        self.start()
        self.store.fail_next = True
        with capturedLogs() as events:
            self.sync.changed(replace(self.config, module=replace(self.config.module,
                                                                  dialog_timeout=99.0)))
        self.assertEqual([formatEvent(e) for e in events], [
            "SMPP [*] cannot publish the shared settings (changed on this node): the database"
            " is gone"])
        self.assertEqual(self.store.row.revision, 1)

