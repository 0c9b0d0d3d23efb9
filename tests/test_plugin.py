"""Tests for the twistd plugin: it is found, and a bad configuration stops twistd before anything starts."""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from smppgw.tap import Options

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def twistd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TWISTD, *args], capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class PluginTests(SynchronousTestCase):
    def test_twistd_lists_smppgw(self) -> None:
        """After the README's install, `twistd --help` lists the smppgw plugin."""
        result = twistd("--help")
        self.assertIn("smppgw", result.stdout)

    def test_bad_config_exits_nonzero(self) -> None:
        """A config with a bad value makes twistd exit non-zero with a message naming the key."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write('[[server]]\nname = "a"\nmode = "sometimes"\naddress = "127.0.0.1"\n'
                    'system_id = "x"\npassword = "y"\n')
        result = twistd("--nodaemon", "--pidfile=", "smppgw", "--config", path)
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("server[0].mode", result.stdout + result.stderr)
        self.assertNotIn("Traceback", result.stdout + result.stderr)

    def test_missing_config(self) -> None:
        """A missing config file is a usage error naming the path."""
        with self.assertRaises(Exception) as caught:
            Options().parseOptions(["--config", "/nonexistent/smppgw.toml"])
        self.assertIn("/nonexistent/smppgw.toml", str(caught.exception))

    def test_shipped_config_parses(self) -> None:
        """The default --config (etc/smppgw.toml) parses from the project folder."""
        here = os.getcwd()
        os.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        try:
            options = Options()
            options.parseOptions(["--demo"])
        finally:
            os.chdir(here)
        self.assertTrue(options["demo"])
        self.assertEqual([s.name for s in options.config.servers], ["", "bulk"])
