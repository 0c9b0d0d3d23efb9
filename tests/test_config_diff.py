"""
Tests for L{smppgw.config.diff}: what a reload must do to go from one configuration to
the next, and for the schema it derives that from.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from smppgw.config import (
    AmpConfig,
    Config,
    ConfigChange,
    ModuleConfig,
    ServerConfig,
    StoreConfig,
    diff,
    parse_config,
)
from smppgw.config.diff import ADDED, REBIND, REMOVED, UPDATE
from smppgw.config.schema import AMP, MODULE, SERVER, STORE


def toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def server(name: str = "a", **keys: Any) -> dict[str, Any]:
    """A [[server]] table: a bound transceiver unless C{keys} say otherwise."""
    return {"name": name, "address": "smsc.example.net:2775", "system_id": "esme",
            "password": "pw", **keys}


def config(*servers: dict[str, Any], **sections: dict[str, Any]) -> Config:
    """A configuration of C{servers} and the [module], [amp] and [store] keys given."""
    lines = []
    for section in ("module", "amp", "store", "node"):
        lines.append(f"[{section}]")
        lines += [f"{k} = {toml(v)}" for k, v in sections.get(section, {}).items()]
    for table in servers:
        lines.append("[[server]]")
        lines += [f"{k} = {toml(v)}" for k, v in table.items()]
    return parse_config("\n".join(lines) + "\n")


class DiffTests(SynchronousTestCase):
    """diff(old, new)."""

    def setUp(self) -> None:
        self.pem = self.mktemp()
        with open(self.pem, "w") as f:
            f.write("a PEM file")

    def one(self, old: Config, new: Config) -> tuple[str, tuple[str, ...]]:
        """The kind and keys of the only server change from C{old} to C{new}."""
        change = diff(old, new)
        self.assertEqual(len(change.servers), 1, change)
        self.assertEqual((change.module, change.amp, change.store, change.reordered),
                         ((), (), False, False))
        return change.servers[0].kind, change.servers[0].keys

    def test_unchanged(self) -> None:
        """The same file read twice is no change at all."""
        old = config(server("a"), server("b", mode="off"), module={"log_level": "all"})
        new = config(server("a"), server("b", mode="off"), module={"log_level": "all"})
        change = diff(old, new)
        self.assertFalse(change)
        self.assertEqual(change, ConfigChange())

    def test_added_and_removed(self) -> None:
        """A server only in the new file is added, one only in the old file removed."""
        old, new = config(server("a")), config(server("b"))
        change = diff(old, new)
        self.assertEqual((change.added, change.removed), (("b",), ("a",)))
        added, removed = change.servers
        self.assertEqual((added.kind, added.old, added.new), (ADDED, None, new.server("b")))
        self.assertEqual((removed.kind, removed.old, removed.new),
                         (REMOVED, old.server("a"), None))

    def test_renamed(self) -> None:
        """A server renamed is the old name removed and the new one added, nothing kept."""
        change = diff(config(server("a")), config(server("b")))
        self.assertEqual((change.added, change.removed, change.rebind, change.update),
                         (("b",), ("a",), (), ()))
        self.assertFalse(change.reordered)

    def test_connection_keys_rebind(self) -> None:
        """A change of mode, address, credentials or TLS re-binds the server, naming the key."""
        tls = server(address="tls:smsc.example.net:3550")
        cases: list[tuple[dict[str, Any], dict[str, Any], str]] = [
            (server(), server(mode="send-only"), "mode"),
            (server(), server(address="smsc.example.net:2776"), "address"),
            (server(), server(address="10.0.0.1"), "address"),
            (server(), server(address="tls:smsc.example.net:2775"), "address"),
            (server(), server(system_id="other"), "system_id"),
            (server(), server(system_id="esme@VMA"), "system_id"),
            (server(), server(password="secret"), "password"),
            (tls, {**tls, "verify": False}, "verify"),
            (tls, {**tls, "ca_file": self.pem}, "ca_file"),
            (tls, {**tls, "client_cert": self.pem}, "client_cert"),
        ]
        for old, new, key in cases:
            self.assertEqual(self.one(config(old), config(new)), (REBIND, (key,)), (old, new))

    def test_other_keys_update(self) -> None:
        """A change of any other server key updates the bound server, naming the key."""
        changes: dict[str, Any] = {"window": 50, "throughput": 5.5, "sender": "+15550100", "dialogs": True,
                   "recipient": "desk@example.com", "encoding": "ucs2",
                   "default_alphabet": "ascii", "keep_alive": "1m",
                   "registered_delivery": True, "long_messages": "payload", "max_parts": 3,
                   "response_timeout": 2, "throttle_pause": "5s", "min_rate": 2,
                   "rate_step": 1, "rate_period": "2s", "source_ton": 1, "source_npi": 1,
                   "receipt_id_format": "hex", "country_code": "31",
                   "national_prefix": "", "receipt_timeout": "0", "max_binds": 2}
        for key, value in changes.items():
            self.assertEqual(self.one(config(server()), config(server(**{key: value}))),
                             (UPDATE, (key,)), key)

    def test_keys_in_schema_order(self) -> None:
        """Several keys of one server are all listed, in the schema's order; one connection key is enough to re-bind."""
        kind, keys = self.one(config(server()),
                              config(server(window=3, password="x", sender="+1")))
        self.assertEqual((kind, keys), (REBIND, ("password", "sender", "window")))

    def test_turned_off_and_on(self) -> None:
        """Turning a server off or on is a rebind whose old and new configs say which."""
        on, off = config(server()), config(server(mode="off"))
        stop, = diff(on, off).servers
        self.assertEqual((stop.kind, stop.old and stop.old.enabled, stop.new and stop.new.enabled),
                         (REBIND, True, False))
        start, = diff(off, on).servers
        self.assertEqual((start.kind, start.keys), (REBIND, ("mode",)))

    def test_off_server_updates(self) -> None:
        """A server that is off before and after has nothing to re-bind: its changes are an update."""
        old = config({"name": "spare", "mode": "off"})
        new = config({"name": "spare", "mode": "off", "address": "smsc.example.net"})
        self.assertEqual(self.one(old, new), (UPDATE, ("address",)))

    def test_order(self) -> None:
        """Servers kept in another order are reported as reordered, each of them unchanged."""
        old = config(server("a"), server("b"), server("c"))
        change = diff(old, config(server("c"), server("a"), server("b")))
        self.assertEqual((change.servers, change.reordered), ((), True))
        self.assertTrue(change)
        # A server added in front or one removed leaves the others' order alone.
        change = diff(old, config(server("z"), server("a"), server("c")))
        self.assertEqual((change.added, change.removed, change.reordered), (("z",), ("b",), False))

    def test_module_keys(self) -> None:
        """Changed [module] keys are listed by name, touching no server."""
        old = config(server(), module={"log_level": "all"})
        new = config(server(), module={"log_level": "none", "dialog_timeout": "1h",
                                       "reject_if_not_relayed_in": 5})
        change = diff(old, new)
        self.assertEqual(change.module,
                         ("log_level", "reject_if_not_relayed_in", "dialog_timeout"))
        self.assertEqual(change.servers, ())

    def test_source_address_rebinds_every_server(self) -> None:
        """A new [module] source_address re-binds every server that connects, and no server that is off."""
        servers = (server("a"), server("b", mode="receive-only"), server("c", mode="off"))
        change = diff(config(*servers), config(*servers, module={"source_address": "127.0.0.1"}))
        self.assertEqual(change.module, ("source_address",))
        self.assertEqual([(s.name, s.kind, s.keys) for s in change.servers],
                         [("a", REBIND, ("module.source_address",)),
                          ("b", REBIND, ("module.source_address",))])

    def test_module_system_type(self) -> None:
        """A new [module] system_type re-binds the servers that take it, not those naming their own."""
        servers = (server("a"), server("b", system_id="esme@OWN"))
        change = diff(config(*servers), config(*servers, module={"system_type": "NEW"}))
        self.assertEqual(change.module, ("system_type",))
        self.assertEqual([(s.name, s.kind, s.keys) for s in change.servers],
                         [("a", REBIND, ("system_id",))])

    def test_amp(self) -> None:
        """A changed [amp] listen needs a new listener; the secret or the limit do not."""
        old = config()
        change = diff(old, config(amp={"listen": "unix:other.sock:mode=600"}))
        self.assertEqual((change.amp, change.relisten), (("listen",), True))
        change = diff(old, config(amp={"secret": "s3cr3t", "max_connections": 5}))
        self.assertEqual((change.amp, change.relisten), (("secret", "max_connections"), False))
        self.assertNotIn("s3cr3t", repr(change))

    def test_store(self) -> None:
        """A changed [store] path is flagged, and moves the default AMP socket with it."""
        change = diff(config(), config(store={"path": "elsewhere/gw.sqlite"}))
        self.assertEqual((change.store, change.amp, change.relisten), (True, ("listen",), True))

    def test_store_url_and_node(self) -> None:
        """A changed [store] url, or [node] name, is flagged, for a restart to apply."""
        url = {"url": "postgresql://gw@db/gw"}
        self.assertTrue(diff(config(store=url),
                             config(store={"url": "postgresql://gw@db2/gw"})).store)
        change = diff(config(store=url, node={"name": "a"}),
                      config(store=url, node={"name": "b"}))
        self.assertEqual((change.store, change.node, bool(change)), (False, True, True))
        self.assertFalse(diff(config(node={"name": "a"}), config(node={"name": "a"})))

    def test_several_at_once(self) -> None:
        """Changes of every kind at once are each reported, servers in the new file's order then the removed."""
        old = config(server("kept"), server("bound"), server("tuned"), server("gone"),
                     module={"log_level": "all"}, amp={"max_connections": 10})
        new = config(server("new"), server("tuned", window=20), server("bound", password="np"),
                     server("kept"), module={"log_level": "major"}, amp={"max_connections": 11})
        change = diff(old, new)
        self.assertEqual([(s.name, s.kind, s.keys) for s in change.servers],
                         [("new", ADDED, ()), ("tuned", UPDATE, ("window",)),
                          ("bound", REBIND, ("password",)), ("gone", REMOVED, ())])
        self.assertEqual((change.added, change.rebind, change.update, change.removed),
                         (("new",), ("bound",), ("tuned",), ("gone",)))
        self.assertEqual((change.reordered, change.module, change.amp, change.store),
                         (True, ("log_level",), ("max_connections",), False))


class SchemaTests(SynchronousTestCase):
    """The key tables diff() and the parser derive from."""

    def test_every_field_has_one_key(self) -> None:
        """Every field of every config object is set by exactly one key of its section."""
        for section, cls in ((MODULE, ModuleConfig), (AMP, AmpConfig), (STORE, StoreConfig),
                             (SERVER, ServerConfig)):
            self.assertIs(section.cls, cls)
            set_by = Counter(name for key in section.keys for name in key.targets)
            self.assertEqual(set_by, Counter(f.name for f in dataclasses.fields(cls)), section.name)
            self.assertEqual(len(set(section.names)), len(section.keys), section.name)

    def test_connection_keys(self) -> None:
        """The keys whose change needs a new connection are the documented ones."""
        self.assertEqual(
            [key.name for key in SERVER.keys if key.connection],
            ["mode", "address", "system_id", "password", "ca_file", "client_cert", "verify"])
        self.assertEqual([key.name for key in MODULE.keys if key.connection], ["source_address"])
        self.assertEqual([key.name for key in AMP.keys if key.connection], ["listen"])

    def test_secrets(self) -> None:
        """The keys never echoed are those whose fields repr() hides."""
        self.assertEqual((SERVER.secrets, AMP.secrets, MODULE.secrets),
                         ({"password"}, {"secret"}, frozenset()))
