"""The [admin] table, the configuration file written back atomically, and set-admin-password."""

from __future__ import annotations

import io
import os
import stat

from argon2 import PasswordHasher
from twisted.trial.unittest import SynchronousTestCase

from smppgw import cli
from smppgw.admin.configfile import (
    FileChanged,
    fingerprint,
    read_document,
    set_admin_password,
    write_atomically,
)
from smppgw.config import ConfigError, load_config, parse_config
from smppgw.testing.process import gateway_config

SHIPPED = os.path.join(os.path.dirname(__file__), os.pardir, "etc", "smppgw.toml")


class AdminTableTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """Without [admin], the admin listens on 127.0.0.1:8780 with no password nor token."""
        admin = parse_config("").admin
        self.assertEqual((admin.listen, admin.password_hash, admin.metrics_token),
                         ("tcp:8780:interface=127.0.0.1", "", ""))

    def test_off(self) -> None:
        """listen = "" turns the admin off."""
        self.assertEqual(parse_config('[admin]\nlisten = ""').admin.listen, "")

    def test_loopback_and_tls(self) -> None:
        """TCP on a loopback interface and TLS on any are accepted, key files resolved."""
        for listen in ("tcp:0:interface=127.0.0.1", "tcp:8780:interface=\\:\\:1",
                       "tcp:8780:interface=localhost"):
            parsed = parse_config(f"[admin]\nlisten = '{listen}'").admin.listen
            self.assertEqual(parsed, listen)
        config = parse_config('[admin]\nlisten = "ssl:8443:privateKey=k.pem"', base="/etc/gw")
        self.assertEqual(config.admin.listen, "ssl:8443:privateKey=/etc/gw/k.pem")

    def test_network_without_tls(self) -> None:
        """Plain TCP reachable from the network is a config error naming admin.listen."""
        for listen in ("tcp:8780", "tcp:8780:interface=0.0.0.0", "tcp:8780:interface=192.0.2.1"):
            error = self.assertRaises(ConfigError, parse_config, f'[admin]\nlisten = "{listen}"')
            self.assertIn(f"admin.listen: {listen!r} accepts connections from the network"
                          " without TLS", str(error))
            self.assertIn("use ssl:", str(error))

    def test_bad_listen(self) -> None:
        """A description Twisted cannot use is refused naming the key."""
        error = self.assertRaises(ConfigError, parse_config, '[admin]\nlisten = "tcp:web"')
        self.assertIn("admin.listen", str(error))

    def test_password_hash(self) -> None:
        """password_hash must be an argon2 hash; the error never shows the value."""
        good = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("x")
        self.assertEqual(parse_config(f'[admin]\npassword_hash = "{good}"').admin.password_hash,
                         good)
        error = self.assertRaises(ConfigError, parse_config,
                                  '[admin]\npassword_hash = "hunter2"')
        self.assertIn("admin.password_hash: not an argon2 hash", str(error))
        self.assertNotIn("hunter2", str(error))

    def test_secrets_not_in_repr(self) -> None:
        """The hash and the metrics token stay out of repr()."""
        admin = parse_config('[admin]\nmetrics_token = "tok-123"').admin
        self.assertEqual(admin.metrics_token, "tok-123")
        self.assertNotIn("tok-123", repr(admin))

    def test_unknown_key(self) -> None:
        """A misspelt [admin] key is refused with a suggestion."""
        error = self.assertRaises(ConfigError, parse_config, '[admin]\nlistn = ""')
        self.assertIn("admin.listn: unknown key; did you mean 'listen'?", str(error))

    def test_shipped_example(self) -> None:
        """etc/smppgw.toml has the admin on its default loopback port, no password set."""
        self.assertEqual(load_config(SHIPPED).admin.listen, "tcp:8780:interface=127.0.0.1")


class WriteTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.folder = self.mktemp()
        os.makedirs(self.folder)
        self.path = os.path.join(self.folder, "smppgw.toml")
        with open(self.path, "w") as f:
            f.write("# mine\n[module]\nlog_level = \"none\"  # quiet\n")
        os.chmod(self.path, 0o640)

    def test_replaced_with_backup(self) -> None:
        """The new text replaces the file, whose mode it keeps; the old one is FILE.bak."""
        seen = fingerprint(self.path)
        write_atomically(self.path, "[module]\n", seen)
        with open(self.path) as f:
            self.assertEqual(f.read(), "[module]\n")
        with open(self.path + ".bak") as f:
            self.assertIn("# mine", f.read())
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o640)
        self.assertEqual([n for n in os.listdir(self.folder) if n.startswith(".")], [])

    def test_changed_on_disk_refused(self) -> None:
        """A file edited since it was read is not overwritten."""
        seen = fingerprint(self.path)
        with open(self.path, "a") as f:
            f.write("# theirs\n")
        self.assertRaises(FileChanged, write_atomically, self.path, "[module]\n", seen)
        with open(self.path) as f:
            self.assertIn("# theirs", f.read())
        self.assertFalse(os.path.exists(self.path + ".bak"))

    def test_touch_is_no_change(self) -> None:
        """A new modification time with the same bytes is not an edit."""
        seen = fingerprint(self.path)
        os.utime(self.path, ns=(1, 1))
        write_atomically(self.path, "[module]\n", seen)

    def test_password_hash_written(self) -> None:
        """set_admin_password adds [admin] password_hash, comments and order kept."""
        set_admin_password(self.path, "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA")
        document, _ = read_document(self.path)
        text = document.as_string()
        self.assertTrue(text.startswith('# mine\n[module]\nlog_level = "none"  # quiet\n'), text)
        self.assertEqual(document["admin"]["password_hash"],
                         "$argon2id$v=19$m=8,t=1,p=1$c2FsdHNhbHQ$aGFzaA")

    def test_invalid_file_left_alone(self) -> None:
        """A file that is not a valid configuration is reported and not written."""
        with open(self.path, "w") as f:
            f.write("[module]\nlog_level = \"loud\"\n")
        error = self.assertRaises(ConfigError, set_admin_password, self.path, "$argon2id$x")
        self.assertIn("module.log_level", str(error))
        self.assertFalse(os.path.exists(self.path + ".bak"))


class SetAdminPasswordTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.folder = self.mktemp()
        os.makedirs(self.folder)
        self.path = os.path.join(self.folder, "smppgw.toml")
        with open(self.path, "w") as f:
            f.write(gateway_config(self.folder, 2775))
        self.prompts: list[str] = []

    def run_with(self, *answers: str) -> tuple[int, str, str]:
        given = iter(answers)

        def ask(prompt: str) -> str:
            self.prompts.append(prompt)
            return next(given)

        self.patch(cli, "ask_password", ask)
        out, err = io.StringIO(), io.StringIO()
        d = cli.run(None, cli.parse_args(["set-admin-password", "-c", self.path]), out, err)
        return self.successResultOf(d), out.getvalue(), err.getvalue()

    def test_sets_a_verifiable_hash(self) -> None:
        """The password asked twice is stored as an argon2 hash that verifies it."""
        status, out, _ = self.run_with("s3cret pass", "s3cret pass")
        self.assertEqual(status, 0)
        self.assertEqual(self.prompts, ["New admin password: ", "The same again: "])
        self.assertIn(f"the admin password is set in {self.path}", out)
        stored = load_config(self.path).admin.password_hash
        self.assertTrue(PasswordHasher().verify(stored, "s3cret pass"))
        with open(self.path) as f:
            self.assertNotIn("s3cret", f.read())

    def test_asked_without_echo(self) -> None:
        """The prompt is getpass's, which does not echo."""
        import getpass
        self.assertIs(cli.ask_password, getpass.getpass)

    def test_mismatch_changes_nothing(self) -> None:
        """Two different answers exit 1 and leave the file as it was."""
        with open(self.path) as f:
            before = f.read()
        status, _, err = self.run_with("one", "two")
        self.assertEqual((status, err), (1, "the two passwords differ; nothing changed\n"))
        with open(self.path) as f:
            self.assertEqual(f.read(), before)

    def test_empty_refused(self) -> None:
        """An empty password is refused."""
        status, _, err = self.run_with("")
        self.assertEqual((status, err), (1, "no password given; nothing changed\n"))
