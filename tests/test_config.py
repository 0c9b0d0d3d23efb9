"""
Tests for L{smppgw.config}: the TOML file becomes frozen, validated objects, and every bad
value is refused with a message naming the key and the value.
"""

from __future__ import annotations

import dataclasses
import os

from twisted.trial.unittest import SynchronousTestCase

from smppgw.config import (
    BIND_TYPES,
    DEFAULT_SYSTEM_TYPE,
    MODES,
    Config,
    ConfigError,
    ServerConfig,
    load_config,
    parse_config,
    parse_duration,
)

SHIPPED_CONFIG = os.path.join(os.path.dirname(__file__), os.pardir, "etc", "smppgw.toml")

MINIMAL_SERVER = """
[[server]]
name = "main"
address = "smsc.example.net"
system_id = "user1"
password = "pw"
"""


def server_config(extra: str = "", system_id: str = "user1", password: str = "pw") -> str:
    """A config with one server, plus C{extra} lines in its table."""
    return (
        f'[[server]]\nname = "main"\naddress = "smsc.example.net"\n'
        f'system_id = "{system_id}"\npassword = "{password}"\n{extra}\n'
    )


def parse_server(extra: str = "", **kwargs: str) -> ServerConfig:
    """Parse a one-server config and return its server."""
    return parse_config(server_config(extra, **kwargs)).servers[0]


class ConfigErrorAssertions(SynchronousTestCase):
    """Adds an assertion for refused configs."""

    def assertRefused(self, text: str, *fragments: str) -> str:
        """
        Parsing C{text} raises L{ConfigError} whose message holds every fragment; the
        message is returned.
        """
        error = self.assertRaises(ConfigError, parse_config, text)
        message = str(error)
        for fragment in fragments:
            self.assertIn(fragment, message)
        return message


class DefaultsTests(ConfigErrorAssertions):
    """What an empty or minimal file gives."""

    def test_empty_file(self) -> None:
        """An empty file is valid: default sections, no servers, the AMP socket by the store."""
        config = parse_config("")
        self.assertEqual(config.servers, ())
        self.assertEqual(config.module.log_level, "problems")
        self.assertEqual(config.module.reject_if_not_relayed_in, 600.0)
        self.assertEqual(config.module.dialog_timeout, 7200.0)
        self.assertEqual(config.module.reassembly_timeout, 1800.0)
        self.assertEqual(config.module.system_type, DEFAULT_SYSTEM_TYPE)
        self.assertEqual(config.store.path, "var/smppgw.sqlite")
        self.assertEqual(config.amp.listen, "unix:var/amp.sock:mode=600")
        self.assertEqual(config.amp.secret, "")

    def test_default_listen_follows_store(self) -> None:
        """Without [amp] listen, the socket lives in the store's folder, '.' for a bare file."""
        self.assertEqual(
            parse_config('[store]\npath = "/srv/gw/state.db"').amp.listen,
            "unix:/srv/gw/amp.sock:mode=600",
        )
        self.assertEqual(
            parse_config('[store]\npath = "gw.db"').amp.listen, "unix:./amp.sock:mode=600"
        )

    def test_server_defaults(self) -> None:
        """A server with only the required keys gets the documented defaults."""
        server = parse_config(MINIMAL_SERVER).servers[0]
        self.assertEqual(
            (server.mode, server.port, server.tls, server.sender, server.dialogs),
            ("send-and-receive", 2775, False, "", False),
        )
        self.assertEqual(
            (server.encoding, server.keep_alive, server.window, server.throughput),
            ("gsm", 30.0, 10, 0.0),
        )
        self.assertEqual(
            (server.registered_delivery, server.response_timeout, server.max_parts),
            (False, 10.0, 10),
        )
        self.assertEqual(
            (server.long_messages, server.ca_file, server.client_cert, server.verify),
            ("udh", "", "", True),
        )
        self.assertEqual(
            (server.source_ton, server.source_npi, server.receipt_id_format),
            (None, None, "auto"),
        )
        self.assertEqual(server.system_type, DEFAULT_SYSTEM_TYPE)

    def test_frozen(self) -> None:
        """Config objects cannot be changed after parsing."""
        config = parse_config(MINIMAL_SERVER)
        self.assertRaises(dataclasses.FrozenInstanceError, setattr, config.servers[0], "port", 1)

    def test_bind_types(self) -> None:
        """Every mode except off maps to an SMPP bind type."""
        self.assertEqual(set(BIND_TYPES), set(MODES) - {"off"})


class ShippedFileTests(ConfigErrorAssertions):
    """The annotated example in etc/."""

    def test_shipped_file_parses(self) -> None:
        """etc/smppgw.toml loads, with the demo's two servers."""
        config = load_config(SHIPPED_CONFIG)
        self.assertEqual([s.name for s in config.servers], ["", "bulk"])
        default, bulk = config.servers
        self.assertEqual((default.address, default.bind_type), ("127.0.0.1:2775", "transceiver"))
        self.assertEqual(
            (default.system_id, default.password, default.sender), ("smppgw", "secret", "*")
        )
        self.assertTrue(default.dialogs and default.registered_delivery)
        self.assertEqual(
            (bulk.bind_type, bulk.system_id, bulk.system_type), ("transmitter", "bulk", "SMPP")
        )
        self.assertEqual((bulk.sender, bulk.window, bulk.throughput), ("+15550100", 50, 100.0))
        # Its state is in var/ beside etc/, wherever the gateway starts.
        root = os.path.dirname(os.path.dirname(os.path.abspath(SHIPPED_CONFIG)))
        self.assertEqual(config.amp.listen, f"unix:{root}/var/amp.sock:mode=600")
        self.assertEqual(config.store.path, f"{root}/var/smppgw.sqlite")

    def test_shipped_tls_example_parses(self) -> None:
        """The commented-out TLS server in etc/smppgw.toml is valid once uncommented."""
        with open(SHIPPED_CONFIG, encoding="utf-8") as shipped:
            text = shipped.read()
        example = text[text.index("# [[server]]") :]
        ca_file = self.mktemp()
        with open(ca_file, "w") as f:
            f.write("a PEM file")
        lines = [line.removeprefix("# ") for line in example.splitlines()]
        uncommented = "\n".join(lines).replace("provider1-ca.pem", ca_file)
        tls = parse_config(text + "\n" + uncommented).servers[2]
        self.assertEqual(
            (tls.name, tls.tls, tls.host, tls.port),
            ("provider1", True, "smpp.provider.example", 3550),
        )
        self.assertEqual(tls.address, "tls:smpp.provider.example:3550")


class LoadTests(ConfigErrorAssertions):
    """Reading the file."""

    def test_missing_file(self) -> None:
        """A missing file is a ConfigError naming the path."""
        path = self.mktemp()
        error = self.assertRaises(ConfigError, load_config, path)
        self.assertIn(path, str(error))
        self.assertIn("cannot read", str(error))

    def test_not_toml(self) -> None:
        """A file that is not TOML is a ConfigError with the parser's line and column."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('[module]\nlog_level = "all"\nthis is not toml\n')
        message = str(self.assertRaises(ConfigError, load_config, path))
        self.assertIn(path, message)
        self.assertIn("not valid TOML", message)
        self.assertIn("line 3", message)

    def test_errors_name_the_file(self) -> None:
        """A bad value in a loaded file is reported with the file's path first."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write('[module]\nlog_level = "loud"\n')
        message = str(self.assertRaises(ConfigError, load_config, path))
        self.assertTrue(message.startswith(f"{path}: module.log_level: 'loud'"), message)

    def test_bytes(self) -> None:
        """parse_config accepts UTF-8 bytes and refuses other bytes."""
        self.assertEqual(parse_config(b'[store]\npath = "x/s.db"').store.path, "x/s.db")
        self.assertRefused(b'[store]\npath = "\xff"', "not UTF-8")  # type: ignore[arg-type]


class RelativePathTests(ConfigErrorAssertions):
    """Relative paths in a loaded file resolve against its folder, whatever the working directory."""

    def setUp(self) -> None:
        self.folder = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.folder, "tls"))
        for name in ("ca.pem", "client.pem"):
            with open(os.path.join(self.folder, "tls", name), "w") as f:
                f.write("a PEM file")
        elsewhere = os.path.abspath(self.mktemp())
        os.makedirs(elsewhere)
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(elsewhere)

    def load(self, text: str) -> Config:
        path = os.path.join(self.folder, "smppgw.toml")
        with open(path, "w") as f:
            f.write(text)
        # Named relative to the working directory, as an operator may.
        return load_config(os.path.relpath(path))

    def test_store_socket_and_tls_files(self) -> None:
        """The store, a unix: socket and the TLS files given relative resolve inside the config's folder."""
        config = self.load('[amp]\nlisten = "unix:run/amp.sock:mode=600"\n'
                           '[store]\npath = "state/gw.sqlite"\n'
                           + server_config('ca_file = "tls/ca.pem"\nclient_cert = "./tls/client.pem"'))
        self.assertEqual(config.store.path, f"{self.folder}/state/gw.sqlite")
        self.assertEqual(config.amp.listen, f"unix:{self.folder}/run/amp.sock:mode=600")
        server = config.servers[0]
        self.assertEqual((server.ca_file, server.client_cert),
                         (f"{self.folder}/tls/ca.pem", f"{self.folder}/tls/client.pem"))

    def test_defaults(self) -> None:
        """With no [store] nor [amp], the store and its socket are in var/ beside the config file."""
        config = self.load("")
        self.assertEqual(config.store.path, f"{self.folder}/var/smppgw.sqlite")
        self.assertEqual(config.amp.listen, f"unix:{self.folder}/var/amp.sock:mode=600")
        in_memory = self.load('[store]\npath = ":memory:"\n')
        self.assertEqual(in_memory.amp.listen, f"unix:{self.folder}/amp.sock:mode=600")

    def test_absolute_and_non_file_values_unchanged(self) -> None:
        """Absolute paths, :memory: and TCP endpoints are kept as written."""
        config = self.load('[amp]\nlisten = "tcp:7777:interface=127.0.0.1"\n'
                           '[store]\npath = ":memory:"\n')
        self.assertEqual((config.store.path, config.amp.listen),
                         (":memory:", "tcp:7777:interface=127.0.0.1"))
        config = self.load('[amp]\nlisten = "unix:/run/gw/amp.sock:mode=600"\n'
                           '[store]\npath = "/srv/gw/gw.sqlite"\n')
        self.assertEqual((config.store.path, config.amp.listen),
                         ("/srv/gw/gw.sqlite", "unix:/run/gw/amp.sock:mode=600"))

    def test_ssl_files_and_escapes(self) -> None:
        """The key files of an ssl: endpoint resolve too, and a folder with ':' stays one field."""
        config = self.load('[amp]\nlisten = "ssl:7777:privateKey=k.pem:interface=127.0.0.1"\n')
        self.assertEqual(config.amp.listen,
                         f"ssl:7777:privateKey={self.folder}/k.pem:interface=127.0.0.1")
        odd = os.path.join(self.folder, "a:b")
        os.makedirs(odd)
        with open(os.path.join(odd, "smppgw.toml"), "w") as f:
            f.write('[amp]\nlisten = "unix:amp.sock:mode=600"\n')
        listen = load_config(os.path.join(odd, "smppgw.toml")).amp.listen
        self.assertEqual(listen, f"unix:{self.folder}/a\\:b/amp.sock:mode=600")

    def test_missing_tls_file_named_as_resolved(self) -> None:
        """A relative ca_file missing from the config's folder is refused with the path looked at."""
        with open("ca.pem", "w") as f:  # in the working directory: not where it is looked for
            f.write("a PEM file")
        error = self.assertRaises(ConfigError, self.load, server_config('ca_file = "ca.pem"'))
        self.assertIn(f"server[0].ca_file: '{self.folder}/ca.pem' does not exist", str(error))

    def test_parsed_text_keeps_paths(self) -> None:
        """Text parsed without a file keeps its relative paths as written."""
        self.assertEqual(parse_config('[store]\npath = "x/s.db"').store.path, "x/s.db")


class StructureTests(ConfigErrorAssertions):
    """Sections, keys and TOML types."""

    def test_unknown_section(self) -> None:
        """An unknown section is refused by name."""
        self.assertRefused("[modul]\n", "[modul]", "unknown section", "did you mean 'module'")

    def test_key_outside_table(self) -> None:
        """A key written above every table is refused, naming the table it belongs in."""
        self.assertRefused('log_level = "all"\n', "[log_level]", "belongs in [module]")

    def test_unknown_server_key(self) -> None:
        """A misspelt key in a server is refused with its 0-based index and a suggestion."""
        self.assertRefused(
            MINIMAL_SERVER + 'pasword = "x"\n', "server[0].pasword: unknown key", "'password'"
        )

    def test_unknown_module_key(self) -> None:
        """An unknown key in [module] is refused by name."""
        self.assertRefused("[module]\ncolour = 1\n", "module.colour: unknown key")

    def test_server_must_be_array(self) -> None:
        """[server] written as a single table is refused, pointing at [[server]]."""
        self.assertRefused('[server]\nname = "x"\n', "server:", "[[server]]")

    def test_integer_as_string(self) -> None:
        """A quoted number where an integer belongs is refused with its value."""
        self.assertRefused(server_config('window = "10"'), "server[0].window", "'10'", "integer")

    def test_boolean_as_string(self) -> None:
        """Booleans are TOML booleans; "yes" is refused."""
        self.assertRefused(
            server_config('dialogs = "yes"'), "server[0].dialogs", "'yes'", "boolean"
        )

    def test_boolean_is_not_integer(self) -> None:
        """true is not accepted where an integer belongs."""
        self.assertRefused(server_config("window = true"), "server[0].window", "True")

    def test_servers_keep_order(self) -> None:
        """Servers come out in file order, indexes in messages counting from 0."""
        text = MINIMAL_SERVER + MINIMAL_SERVER.replace('"main"', '"second"')
        self.assertEqual([s.name for s in parse_config(text).servers], ["main", "second"])
        self.assertRefused(text + '[[server]]\nmode = "on"\n', "server[2].mode", "'on'")


class ServerTests(ConfigErrorAssertions):
    """One [[server]] table's keys."""

    def test_name_duplicate(self) -> None:
        """Two servers with one name are refused, naming both indexes."""
        self.assertRefused(MINIMAL_SERVER * 2, "server[1].name", "'main'", "server[0]")

    def test_name_may_be_empty(self) -> None:
        """An empty name is allowed, and found by Config.server."""
        config = parse_config(MINIMAL_SERVER.replace('"main"', '""'))
        self.assertEqual(config.server("").name, "")

    def test_name_characters(self) -> None:
        """A name with characters other than letters, digits, '-', '_' and '.' is refused."""
        self.assertRefused(MINIMAL_SERVER.replace('"main"', '"a b"'), "server[0].name", "'a b'")

    def test_name_length(self) -> None:
        """A name longer than 64 characters is refused."""
        self.assertEqual(parse_server().name, "main")
        long_name = "n" * 65
        self.assertRefused(
            MINIMAL_SERVER.replace("main", long_name), "server[0].name", long_name, "64"
        )

    def test_unknown_server_lookup(self) -> None:
        """Config.server raises KeyError for a name not configured."""
        self.assertRaises(KeyError, parse_config(MINIMAL_SERVER).server, "other")

    def test_mode(self) -> None:
        """Each mode gives its bind type and send/receive abilities."""
        server = parse_server('mode = "receive-only"')
        self.assertEqual(
            (server.bind_type, server.can_send, server.can_receive), ("receiver", False, True)
        )
        server = parse_server('mode = "send-only"')
        self.assertEqual(
            (server.bind_type, server.can_send, server.can_receive), ("transmitter", True, False)
        )
        self.assertTrue(server.enabled)

    def test_mode_off(self) -> None:
        """An off server needs no address, is disabled and has no bind type."""
        server = parse_config('[[server]]\nname = "spare"\nmode = "off"\n').servers[0]
        self.assertFalse(server.enabled or server.can_send or server.can_receive)
        self.assertRaises(ValueError, lambda: server.bind_type)

    def test_mode_unknown(self) -> None:
        """An unknown mode is refused, listing the allowed ones."""
        self.assertRefused(
            server_config('mode = "both"'), "server[0].mode", "'both'", '"send-and-receive"'
        )

    def test_address_required(self) -> None:
        """A server that is not off must have an address."""
        self.assertRefused('[[server]]\nsystem_id = "u"\n', "server[0].address", "missing")

    def test_address_forms(self) -> None:
        """Host, port, tls: and bracketed IPv6 are all understood."""
        cases = {
            "smsc.example.net": (False, "smsc.example.net", 2775, "smsc.example.net:2775"),
            "10.0.0.1:901": (False, "10.0.0.1", 901, "10.0.0.1:901"),
            "tls:smsc.example.net:3550": (
                True,
                "smsc.example.net",
                3550,
                "tls:smsc.example.net:3550",
            ),
            "[::1]": (False, "::1", 2775, "[::1]:2775"),
            "tls:[2001:db8::5]:2776": (True, "2001:db8::5", 2776, "tls:[2001:db8::5]:2776"),
        }
        for address, expected in cases.items():
            server = parse_config(MINIMAL_SERVER.replace("smsc.example.net", address)).servers[0]
            self.assertEqual((server.tls, server.host, server.port, server.address), expected)

    def test_address_bad(self) -> None:
        """Bad hosts and ports are refused, naming the address."""
        for address in [
            "smsc:0",
            "smsc:65536",
            "smsc:",
            "smsc:x1",
            ":2775",
            "::1",
            "[::1",
            "[nothex]:1",
            "300.1.1.1",
            "bad_host!",
            "-bad.example",
            "tls:",
        ]:
            self.assertRefused(
                MINIMAL_SERVER.replace("smsc.example.net", address),
                "server[0].address",
                repr(address),
            )

    def test_system_id_with_type(self) -> None:
        """The system type follows the first '@' of system_id."""
        server = parse_server(system_id="user@SMPP@x")
        self.assertEqual((server.system_id, server.system_type), ("user", "SMPP@x"))

    def test_system_id_uses_module_type(self) -> None:
        """Without a suffix the system type comes from [module] system_type."""
        config = parse_config('[module]\nsystem_type = "VMA"\n' + MINIMAL_SERVER)
        self.assertEqual(config.servers[0].system_type, "VMA")

    def test_system_id_too_long(self) -> None:
        """An id longer than 15 characters is refused."""
        self.assertEqual(parse_server(system_id="u" * 15).system_id, "u" * 15)
        self.assertRefused(server_config(system_id="u" * 16), "server[0].system_id", "u" * 16, "15")

    def test_system_type_too_long(self) -> None:
        """A system type longer than 12 characters is refused."""
        self.assertRefused(
            server_config(system_id="u@" + "T" * 13), "server[0].system_id", "T" * 13, "12"
        )

    def test_system_id_empty(self) -> None:
        """An empty id is refused."""
        self.assertRefused(server_config(system_id="@SMPP"), "server[0].system_id", "'@SMPP'")

    def test_password_too_long(self) -> None:
        """A password over 8 characters is refused with its length, never its value."""
        message = self.assertRefused(
            server_config(password="hunter2hunter"), "server[0].password", "13"
        )
        self.assertNotIn("hunter2", message)

    def test_password_wrong_type(self) -> None:
        """A password of the wrong type is refused without echoing it."""
        message = self.assertRefused(
            server_config().replace('password = "pw"', "password = 98765432"), "server[0].password"
        )
        self.assertNotIn("98765432", message)

    def test_password_not_in_repr(self) -> None:
        """Neither repr nor str of a server or the whole config shows the password."""
        config = parse_config(server_config(password="s3cr3tpw"))
        for shown in (repr(config.servers[0]), str(config.servers[0]), repr(config), str(config)):
            self.assertNotIn("s3cr3tpw", shown)
        self.assertEqual(config.servers[0].password, "s3cr3tpw")

    def test_sender_length(self) -> None:
        """A sender over 20 characters (after a leading '+') is refused, unless it has '*'."""
        self.assertEqual(parse_server(f'sender = "+{"1" * 20}"').sender, "+" + "1" * 20)
        self.assertEqual(parse_server(f'sender = "*{"x" * 30}"').sender, "*" + "x" * 30)
        self.assertRefused(
            server_config(f'sender = "{"1" * 21}"'), "server[0].sender", "1" * 21, "20"
        )

    def test_recipient(self) -> None:
        """A recipient must be empty or an address with '@'."""
        self.assertEqual(
            parse_server('recipient = "desk@example.com"').recipient, "desk@example.com"
        )
        self.assertRefused(
            server_config('recipient = "desk"'), "server[0].recipient", "'desk'", "@"
        )

    def test_encoding(self) -> None:
        """Only gsm, latin-1, ascii and ucs2 are encodings."""
        self.assertEqual(parse_server('encoding = "ucs2"').encoding, "ucs2")
        self.assertRefused(
            server_config('encoding = "utf-8"'), "server[0].encoding", "'utf-8'", '"latin-1"'
        )

    def test_default_alphabet(self) -> None:
        """data_coding 0 means gsm (the default), ascii or latin-1; anything else is refused naming the key."""
        self.assertEqual(parse_server("").default_alphabet, "gsm")
        self.assertEqual(parse_server('default_alphabet = "latin-1"').default_alphabet, "latin-1")
        self.assertRefused(
            server_config('default_alphabet = "ucs2"'), "server[0].default_alphabet", "'ucs2'",
            '"gsm", "ascii" or "latin-1"'
        )
        self.assertRefused(
            server_config("default_alphabet = 0"), "server[0].default_alphabet", "0", "a string"
        )

    def test_long_messages(self) -> None:
        """Only udh, sar and payload split long messages."""
        self.assertEqual(parse_server('long_messages = "sar"').long_messages, "sar")
        self.assertRefused(
            server_config('long_messages = "cut"'), "server[0].long_messages", "'cut'", '"payload"'
        )

    def test_window_range(self) -> None:
        """window must be from 1 to 1000."""
        self.assertEqual(parse_server("window = 1000").window, 1000)
        self.assertRefused(server_config("window = 0"), "server[0].window", "0", "1 to 1000")
        self.assertRefused(server_config("window = 1001"), "server[0].window", "1001")

    def test_max_parts_range(self) -> None:
        """max_parts must be from 1 to 255."""
        self.assertEqual(parse_server("max_parts = 255").max_parts, 255)
        self.assertRefused(
            server_config("max_parts = 256"), "server[0].max_parts", "256", "1 to 255"
        )

    def test_throughput(self) -> None:
        """throughput is a number of at least 0."""
        self.assertEqual(parse_server("throughput = 2.5").throughput, 2.5)
        self.assertRefused(server_config("throughput = -1"), "server[0].throughput", "-1")

    def test_throttle_keys(self) -> None:
        """throttle_pause and rate_period are durations above 0; min_rate and rate_step numbers above 0."""
        server = parse_server("")
        self.assertEqual(
            (server.throttle_pause, server.min_rate, server.rate_step, server.rate_period),
            (1.0, 1.0, 0.5, 1.0),
        )
        server = parse_server(
            'throttle_pause = "250ms"\nmin_rate = 2\nrate_step = 0.1\nrate_period = "5s"'
        )
        self.assertEqual(
            (server.throttle_pause, server.min_rate, server.rate_step, server.rate_period),
            (0.25, 2.0, 0.1, 5.0),
        )
        self.assertRefused(server_config('throttle_pause = "0s"'), "server[0].throttle_pause")
        self.assertRefused(server_config("rate_period = 0"), "server[0].rate_period")
        self.assertRefused(server_config("min_rate = 0"), "server[0].min_rate", "0", "> 0")
        self.assertRefused(server_config("rate_step = -1"), "server[0].rate_step", "-1")
        self.assertRefused(server_config('min_rate = "5"'), "server[0].min_rate", "a number above 0")

    def test_keep_alive(self) -> None:
        """keep_alive is a duration longer than 0."""
        self.assertEqual(parse_server('keep_alive = "1m"').keep_alive, 60.0)
        self.assertRefused(server_config('keep_alive = "0s"'), "server[0].keep_alive", "'0s'")

    def test_response_timeout(self) -> None:
        """response_timeout is a duration longer than 0."""
        self.assertEqual(parse_server("response_timeout = 2.5").response_timeout, 2.5)
        self.assertRefused(
            server_config('response_timeout = "soon"'), "server[0].response_timeout", "'soon'"
        )

    def test_source_ton_npi(self) -> None:
        """source_ton is 0-6 and source_npi 0-18."""
        server = parse_server("source_ton = 5\nsource_npi = 0")
        self.assertEqual((server.source_ton, server.source_npi), (5, 0))
        self.assertRefused(server_config("source_ton = 7"), "server[0].source_ton", "7", "0 to 6")
        self.assertRefused(
            server_config("source_npi = 19"), "server[0].source_npi", "19", "0 to 18"
        )

    def test_country_code_and_national_prefix(self) -> None:
        """country_code is "" or a 1-3 digit calling code; national_prefix "" or up to 4 digits, "0" by default."""
        server = parse_server()
        self.assertEqual((server.country_code, server.national_prefix), ("", "0"))
        server = parse_server('country_code = "31"\nnational_prefix = ""')
        self.assertEqual((server.country_code, server.national_prefix), ("31", ""))
        self.assertEqual(parse_server('national_prefix = "06"').national_prefix, "06")
        for value in ('"+31"', '"031"', '"1234"', '"3 1"'):
            self.assertRefused(server_config(f"country_code = {value}"), "server[0].country_code",
                               value.strip('"'), "1 to 3 digits")
        self.assertRefused(server_config("country_code = 31"), "server[0].country_code",
                           "expected a string")
        self.assertRefused(server_config('national_prefix = "00000"'), "server[0].national_prefix",
                           "'00000'", "up to 4 digits")

    def test_receipt_id_format(self) -> None:
        """receipt_id_format is auto, hex, decimal or string."""
        self.assertEqual(parse_server('receipt_id_format = "hex"').receipt_id_format, "hex")
        self.assertRefused(
            server_config('receipt_id_format = "octal"'), "server[0].receipt_id_format", "'octal'"
        )

    def test_receipt_timeout(self) -> None:
        """receipt_timeout is 48 hours unless set; a duration, or "0" (or 0) for never."""
        self.assertEqual(parse_server("").receipt_timeout, 48 * 3600.0)
        self.assertEqual(parse_server('receipt_timeout = "30m"').receipt_timeout, 1800.0)
        self.assertEqual(parse_server('receipt_timeout = "0"').receipt_timeout, 0.0)
        self.assertEqual(parse_server("receipt_timeout = 0").receipt_timeout, 0.0)
        self.assertRefused(
            server_config('receipt_timeout = "2"'), "server[0].receipt_timeout", "'2'", '"0" for never'
        )
        self.assertRefused(server_config("receipt_timeout = -1"), "server[0].receipt_timeout", "-1")

    def test_max_binds(self) -> None:
        """max_binds is 1 unless set, an integer from 1 to 64; anything else is refused naming
        the key and the range."""
        self.assertEqual(parse_server().max_binds, 1)
        self.assertEqual(parse_server("max_binds = 64").max_binds, 64)
        for value in ("0", "65", "-1"):
            self.assertRefused(server_config(f"max_binds = {value}"),
                               f"server[0].max_binds: {value} is out of range",
                               "use an integer from 1 to 64")
        for value, kind in (('"2"', "string"), ("2.0", "float"), ("true", "boolean")):
            self.assertRefused(server_config(f"max_binds = {value}"), "server[0].max_binds",
                               "expected an integer from 1 to 64", kind)

    def test_tls_files_exist(self) -> None:
        """ca_file and client_cert must name existing files."""
        existing = self.mktemp()
        with open(existing, "w") as f:
            f.write("pem")
        server = parse_server(f'ca_file = "{existing}"\nclient_cert = "{existing}"\nverify = false')
        self.assertEqual(
            (server.ca_file, server.client_cert, server.verify), (existing, existing, False)
        )
        missing = self.mktemp()
        self.assertRefused(server_config(f'ca_file = "{missing}"'), "server[0].ca_file", missing)
        self.assertRefused(
            server_config(f'client_cert = "{missing}"'), "server[0].client_cert", missing
        )


class ModuleTests(ConfigErrorAssertions):
    """The [module] table."""

    def test_log_level(self) -> None:
        """log_level must be one of LOG_LEVELS."""
        self.assertEqual(
            parse_config('[module]\nlog_level = "low-level"').module.log_level, "low-level"
        )
        self.assertRefused('[module]\nlog_level = "debug"', "module.log_level", "'debug'", '"all"')

    def test_durations(self) -> None:
        """The module's timeouts take durations."""
        module = parse_config(
            '[module]\nreject_if_not_relayed_in = "3s"\ndialog_timeout = "1d"\nreassembly_timeout = 90'
        ).module
        self.assertEqual(
            (module.reject_if_not_relayed_in, module.dialog_timeout, module.reassembly_timeout),
            (3.0, 86400.0, 90.0),
        )
        self.assertRefused(
            '[module]\ndialog_timeout = "2 hours"', "module.dialog_timeout", "'2 hours'"
        )

    def test_default_gateway(self) -> None:
        """default_gateway must name a configured server."""
        config = parse_config('[module]\ndefault_gateway = "main"\n' + MINIMAL_SERVER)
        self.assertEqual(config.module.default_gateway, "main")
        self.assertRefused(
            '[module]\ndefault_gateway = "other"\n' + MINIMAL_SERVER,
            "module.default_gateway",
            "'other'",
            "'main'",
        )

    def test_source_address(self) -> None:
        """source_address is empty or an IPv4 or IPv6 address."""
        self.assertEqual(
            parse_config('[module]\nsource_address = "::1"').module.source_address, "::1"
        )
        self.assertRefused('[module]\nsource_address = "eth0"', "module.source_address", "'eth0'")

    def test_system_type_length(self) -> None:
        """[module] system_type is at most 12 characters."""
        self.assertRefused(
            '[module]\nsystem_type = "ABCDEFGHIJKLM"', "module.system_type", "'ABCDEFGHIJKLM'", "12"
        )


class AmpTests(ConfigErrorAssertions):
    """The [amp] table."""

    def test_tcp_loopback(self) -> None:
        """TCP on a loopback interface needs no secret."""
        for listen in ["tcp:7777:interface=127.0.0.1", "tcp:port=7777:interface=\\\\:\\\\:1"]:
            self.assertEqual(parse_config(f'[amp]\nlisten = "{listen}"').amp.secret, "")

    def test_tcp_public_needs_secret(self) -> None:
        """TCP on every interface or a public one is refused without a secret."""
        for listen in ["tcp:7777", "tcp:7777:interface=0.0.0.0", "tcp:7777:interface=192.0.2.1"]:
            self.assertRefused(
                f'[amp]\nlisten = "{listen}"', "amp.listen", repr(listen), "needs [amp] secret"
            )
        amp = parse_config('[amp]\nlisten = "tcp:7777"\nsecret = "letmein"').amp
        self.assertEqual(amp.listen, "tcp:7777")

    def test_ssl_public_needs_secret(self) -> None:
        """An ssl: listener is held to the same rule as tcp:."""
        self.assertRefused(
            '[amp]\nlisten = "ssl:7777:privateKey=k.pem"', "amp.listen", "needs [amp] secret"
        )

    def test_listen_type(self) -> None:
        """Endpoint types other than tcp, ssl and unix are refused."""
        self.assertRefused(
            '[amp]\nlisten = "systemd:domain=INET:index=0"', "amp.listen", "'systemd'", "unix:"
        )

    def test_listen_bad_tcp(self) -> None:
        """A TCP endpoint with a bad port or an unknown option is refused."""
        self.assertRefused('[amp]\nlisten = "tcp:http:interface=127.0.0.1"', "amp.listen", "'http'")
        self.assertRefused(
            '[amp]\nlisten = "tcp:7777:inteface=127.0.0.1"', "amp.listen", "inteface="
        )

    def test_unix_mode(self) -> None:
        """A unix socket mode other than 600 or 700 is refused; no mode is kept as written."""
        self.assertEqual(
            parse_config('[amp]\nlisten = "unix:/run/gw.sock"').amp.listen, "unix:/run/gw.sock"
        )
        self.assertEqual(
            parse_config('[amp]\nlisten = "unix:s:mode=700"').amp.listen, "unix:s:mode=700"
        )
        self.assertRefused('[amp]\nlisten = "unix:s:mode=660"', "amp.listen", "mode=660", "600")

    def test_secret_not_shown(self) -> None:
        """The AMP secret appears neither in repr nor in an error about it."""
        config = parse_config('[amp]\nsecret = "opensesame"')
        self.assertNotIn("opensesame", repr(config))
        self.assertNotIn("opensesame", str(config.amp))
        message = self.assertRefused("[amp]\nsecret = 12345678", "amp.secret")
        self.assertNotIn("12345678", message)


class DurationTests(SynchronousTestCase):
    """parse_duration."""

    def test_units(self) -> None:
        """Each unit converts to seconds."""
        cases = {
            "30s": 30.0,
            "10m": 600.0,
            "2h": 7200.0,
            "1d": 86400.0,
            "250ms": 0.25,
            "1.5m": 90.0,
        }
        for text, seconds in cases.items():
            self.assertEqual(parse_duration(text, "k"), seconds)

    def test_numbers(self) -> None:
        """Integers and floats are seconds."""
        self.assertEqual(parse_duration(45, "k"), 45.0)
        self.assertEqual(parse_duration(0.5, "k"), 0.5)
        self.assertEqual(parse_duration(0, "k"), 0.0)

    def test_refused(self) -> None:
        """Negative numbers, bare number strings, unknown units and booleans are refused."""
        for value in [-1, "-5s", "30", "5w", "", True, float("nan"), [1]]:
            error = self.assertRaises(ConfigError, parse_duration, value, "module.dialog_timeout")
            self.assertIn("module.dialog_timeout", str(error))
            self.assertIn(repr(value), str(error))


class ConfigObjectTests(SynchronousTestCase):
    """The objects themselves."""

    def test_equal_configs(self) -> None:
        """Parsing the same text twice gives equal, hashable configs."""
        first, second = parse_config(MINIMAL_SERVER), parse_config(MINIMAL_SERVER)
        self.assertEqual(first, second)
        self.assertEqual(hash(first), hash(second))
        self.assertIsInstance(first, Config)


class StoreTests(ConfigErrorAssertions):
    """The [store] table: the SQLite file, or a PostgreSQL URL and its password."""

    URL = "postgresql://gw@db.example:5433/smppgw"

    def folder(self) -> str:
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        return folder

    def write(self, folder: str, name: str, text: str) -> str:
        path = os.path.join(folder, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_sqlite_by_default(self) -> None:
        """Without url the store is the SQLite file, and has no URL nor password."""
        store = parse_config("").store
        self.assertEqual((store.postgres, store.url, store.password, store.path, store.state_dir),
                         (False, "", "", "var/smppgw.sqlite", "var"))

    def test_url_selects_postgres(self) -> None:
        """A url selects the PostgreSQL store: no SQLite file, the state folder var/ beside the
        config file, where the default AMP socket goes."""
        folder = self.folder()
        path = self.write(folder, "smppgw.toml", f'[store]\nurl = "{self.URL}"\n')
        config = load_config(path)
        self.assertEqual((config.store.postgres, config.store.url, config.store.path,
                          config.store.state_dir, config.amp.listen),
                         (True, self.URL, "", f"{folder}/var",
                          f"unix:{folder}/var/amp.sock:mode=600"))

    def test_path_and_url_refused(self) -> None:
        """path and url together are refused, naming both keys."""
        self.assertRefused(f'[store]\nurl = "{self.URL}"\npath = "gw.sqlite"',
                           "store.path, store.url: give one of them")

    def test_bad_url_refused_without_showing_it(self) -> None:
        """A URL that is not PostgreSQL's, libpq cannot read, or names no database is refused,
        and the message never shows the password."""
        for url in ["mysql://gw:s3cret@db/x", "postgresql://gw:s3cret@db/x?nosuch=1",
                    "postgresql://gw:s3cret@db"]:
            message = self.assertRefused(f'[store]\nurl = "{url}"', "store.url")
            self.assertNotIn("s3cret", message)
        self.assertRefused('[store]\nurl = "postgresql://gw:s3cret@db"',
                           "postgresql://gw@db/ names no database")

    def test_password_file(self) -> None:
        """password_file, relative to the config file's folder, gives the password (its line,
        without the newline); the password is kept out of repr()."""
        folder = self.folder()
        self.write(folder, "pg.pass", "s3cret\n")
        path = self.write(folder, "smppgw.toml",
                          f'[store]\nurl = "{self.URL}"\npassword_file = "pg.pass"\n')
        store = load_config(path).store
        self.assertEqual((store.password_file, store.password), (f"{folder}/pg.pass", "s3cret"))
        self.assertNotIn("s3cret", repr(store))
        self.assertNotIn("gw@db", repr(load_config(path)))

    def test_password_file_missing(self) -> None:
        """A password file that cannot be read is refused, naming the key and the file."""
        folder = self.folder()
        path = self.write(folder, "smppgw.toml",
                          f'[store]\nurl = "{self.URL}"\npassword_file = "none.pass"\n')
        error = self.assertRaises(ConfigError, load_config, path)
        self.assertIn(f"store.password_file: cannot read '{folder}/none.pass'", str(error))

    def test_password_file_refused(self) -> None:
        """A password file without a url, beside a URL holding a password, or empty is refused."""
        folder = self.folder()
        self.write(folder, "pg.pass", "\n")
        self.assertRefused(f'[store]\npassword_file = "{folder}/pg.pass"',
                           "store.password_file: only the PostgreSQL store has a password")
        self.assertRefused(
            f'[store]\nurl = "postgresql://gw:x@db/gw"\npassword_file = "{folder}/pg.pass"',
            "store.password_file: store.url holds a password already")
        message = self.assertRefused(
            f'[store]\nurl = "{self.URL}"\npassword_file = "{folder}/pg.pass"',
            "store.password_file:", "must hold the password on its one line")
        self.assertNotIn("s3cret", message)


class NodeTests(ConfigErrorAssertions):
    """The [node] table: this node's name and its lease."""

    def test_defaults(self) -> None:
        """The node is named after the host, with a lease of 10 seconds."""
        import socket

        node = parse_config("").node
        self.assertEqual((node.name, node.lease), (socket.gethostname(), 10.0))

    def test_given(self) -> None:
        node = parse_config('[node]\nname = "gw-1"\nlease = "30s"').node
        self.assertEqual((node.name, node.lease), ("gw-1", 30.0))

    def test_bad_name(self) -> None:
        """An empty, unprintable or over-long name is refused."""
        self.assertRefused('[node]\nname = ""', "node.name: '' is empty")
        self.assertRefused('[node]\nname = "gw\\u0007"', "node.name:", "printable")
        self.assertRefused('[node]\nname = " gw"', "node.name:", "no space at either end")
        self.assertRefused(f'[node]\nname = "{"n" * 65}"', "node.name:", "at most 64")

    def test_bad_host_name_with_postgres(self) -> None:
        """With the PostgreSQL store, a host name that cannot name the node must be replaced."""
        import socket

        self.patch(socket, "gethostname", lambda: "h" * 70)
        self.assertEqual(parse_config("").node.name, "h" * 70)
        self.assertRefused('[store]\nurl = "postgresql://gw@db/gw"',
                           "node.name: the host name", "set it")

    def test_short_lease(self) -> None:
        self.assertRefused('[node]\nlease = "2s"', "node.lease: '2s' is too short", '"3s"')
        self.assertRefused('[node]\nlease = "soon"', "node.lease:", "not a duration")
