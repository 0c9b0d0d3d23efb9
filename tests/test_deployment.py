"""The shipped systemd unit: it parses, runs the twistd plugin in the foreground, and twistd accepts its command line."""

from __future__ import annotations

import configparser
import os
import shlex
import shutil
import subprocess
import sys

from twisted.scripts.twistd import ServerOptions
from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
UNIT = os.path.join(ROOT, "etc", "smppgw.service")


def unit() -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    with open(UNIT) as f:
        parser.read_file(f)
    return parser


class UnitTests(SynchronousTestCase):
    def test_sections(self) -> None:
        """The unit has its three sections and runs as the smppgw user with its state directory."""
        service = unit()
        self.assertEqual(service.sections(), ["Unit", "Service", "Install"])
        self.assertEqual({key: service["Service"][key] for key in
                          ("Type", "User", "StateDirectory", "ExecReload")},
                         {"Type": "simple", "User": "smppgw", "StateDirectory": "smppgw",
                          "ExecReload": "/bin/kill -HUP $MAINPID"})
        self.assertEqual(service["Install"]["WantedBy"], "multi-user.target")

    def test_exec_start_runs_the_plugin(self) -> None:
        """ExecStart is twistd in the foreground, no pidfile, the smppgw plugin and a config file."""
        argv = shlex.split(unit()["Service"]["ExecStart"])
        self.assertTrue(argv[0].endswith("/twistd"), argv)
        self.assertEqual(argv[1:], ["--nodaemon", "--pidfile=", "smppgw", "-c",
                                    "/etc/smppgw/smppgw.toml"])

    def test_twistd_accepts_it(self) -> None:
        """twistd parses that command line into the smppgw plugin's options (the shipped example as the file)."""
        argv = shlex.split(unit()["Service"]["ExecStart"])[1:]
        argv[-1] = os.path.join(ROOT, "etc", "smppgw.toml")
        options = ServerOptions()
        options.parseOptions(argv)
        self.assertEqual((options.subCommand, options["nodaemon"], options["pidfile"]),
                         ("smppgw", True, ""))
        self.assertEqual(options.subOptions["config"], argv[-1])

    def test_hardened(self) -> None:
        """The unit keeps the gateway to its own files, without privileges."""
        service = unit()["Service"]
        self.assertEqual({key: service[key] for key in
                          ("ProtectSystem", "ReadWritePaths", "NoNewPrivileges", "PrivateTmp",
                           "CapabilityBoundingSet", "UMask")},
                         {"ProtectSystem": "strict", "ReadWritePaths": "/etc/smppgw",
                          "NoNewPrivileges": "yes", "PrivateTmp": "yes",
                          "CapabilityBoundingSet": "", "UMask": "0077"})

    def test_systemd_verifies_it(self) -> None:
        """systemd-analyze verify finds nothing wrong (where systemd is installed), twistd from this venv."""
        analyze = shutil.which("systemd-analyze")
        if analyze is None:
            raise self.skipTest("systemd-analyze is not installed")
        with open(UNIT) as f:
            text = f.read()
        twistd = os.path.join(os.path.dirname(sys.executable), "twistd")
        folder = os.path.abspath(self.mktemp())
        os.makedirs(folder)
        path = os.path.join(folder, "smppgw.service")
        with open(path, "w") as f:
            f.write(text.replace("/opt/smppgw/venv/bin/twistd", twistd))
        result = subprocess.run([analyze, "verify", path], capture_output=True, text=True,
                                timeout=60)
        self.assertEqual((result.returncode, result.stderr), (0, ""))
