"""Tests for the twistd plugin: it is found, and a bad configuration stops twistd before anything starts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

from twisted.trial.unittest import SynchronousTestCase

from smppgw.tap import Options

TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def twistd(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TWISTD, *args], capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start_failing(state: str, listen: str) -> str:
    """Run twistd smppgw with the AMP endpoint `listen` and its store in `state`; its output."""
    path = os.path.join(state, "smppgw.toml")
    with open(path, "w") as f:
        f.write(f'[amp]\nlisten = "{listen}"\n[store]\npath = "{state}/smppgw.sqlite"\n'
                '[[server]]\nname = ""\naddress = "127.0.0.1:9"\nsystem_id = "x"\npassword = "y"\n')
    result = twistd("--nodaemon", "--pidfile=", "--logfile=-", "smppgw", "--config", path)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    return output


class PluginTests(SynchronousTestCase):
    def test_twistd_lists_smppgw(self) -> None:
        """After the README's install, `twistd --help` lists the smppgw plugin."""
        result = twistd("--help")
        self.assertIn("smppgw", result.stdout)

    def test_bad_config_exits_nonzero(self) -> None:
        """A config with a bad value makes twistd exit non-zero printing only one line, naming the key and value."""
        path = os.path.abspath(self.mktemp())
        with open(path, "w") as f:
            f.write('[[server]]\nname = "a"\nmode = "sometimes"\naddress = "127.0.0.1"\n'
                    'system_id = "x"\npassword = "y"\n')
        result = twistd("--nodaemon", "--pidfile=", "smppgw", "--config", path)
        self.assertEqual((result.returncode, result.stdout), (1, ""))
        self.assertEqual(result.stderr,
                         f"{path}: server[0].mode: 'sometimes' is not allowed; use \"off\","
                         ' "send-only", "receive-only" or "send-and-receive"\n')

    def test_amp_port_in_use_exits_with_one_line(self) -> None:
        """An AMP endpoint that cannot listen stops twistd non-zero with one line saying why."""
        import socket

        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        state = os.path.abspath(self.mktemp())
        os.makedirs(state)
        output = start_failing(state, f"tcp:{port}:interface=127.0.0.1")
        self.assertIn(f"smppgw cannot start: Couldn't listen on 127.0.0.1:{port}", output)
        self.assertIn("Address already in use", output)

    def test_daemon_start_failure_exits(self) -> None:
        """Run as a daemon (no --nodaemon), a gateway whose admin port is taken does not leave
        twistd waiting for good: it exits 1 saying why, and no process is left running."""
        import socket

        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        # A short folder: a unix socket's path is at most 108 bytes.
        state = tempfile.mkdtemp(prefix="smppgw-")
        self.addCleanup(shutil.rmtree, state, True)
        path = os.path.join(state, "smppgw.toml")
        with open(path, "w") as f:
            f.write(f'[amp]\nlisten = "unix:{state}/amp.sock:mode=600"\n'
                    f'[admin]\nlisten = "tcp:{port}:interface=127.0.0.1"\n'
                    f'[store]\npath = "{state}/smppgw.sqlite"\n'
                    '[[server]]\nname = ""\naddress = "127.0.0.1:9"\nsystem_id = "x"\n'
                    'password = "y"\n')
        pidfile = os.path.join(state, "twistd.pid")
        result = twistd(f"--pidfile={pidfile}", f"--logfile={state}/smppgw.log", "smppgw",
                        "--config", path)
        # twistd shows the first hundred characters of the daemon's error.
        self.assertEqual(result.returncode, 1, result.stdout + result.stderr)
        self.assertIn("StartupFailed: smppgw cannot start: Couldn't listen on 127.0.0.1:",
                      result.stdout + result.stderr)
        self.assertFalse(os.path.exists(pidfile))

    def test_amp_socket_folder_impossible(self) -> None:
        """A unix socket under a regular file: one line naming the socket path."""
        state = os.path.abspath(self.mktemp())
        os.makedirs(state)
        blocker = os.path.join(state, "file")
        open(blocker, "w").close()
        output = start_failing(state, f"unix:{blocker}/amp.sock:mode=600")
        self.assertIn(f"smppgw cannot start: no folder for the AMP socket '{blocker}/amp.sock'", output)

    def test_store_not_a_database(self) -> None:
        """A store path that is not an SQLite file: one line, no traceback."""
        state = os.path.abspath(self.mktemp())
        os.makedirs(state)
        with open(os.path.join(state, "smppgw.sqlite"), "w") as f:
            f.write("not a database " * 100)
        output = start_failing(state, f"unix:{state}/amp.sock:mode=600")
        self.assertIn("smppgw cannot start: cannot open the store", output)

    def test_missing_config(self) -> None:
        """A missing config file stops the option parsing with one line naming the path."""
        caught = self.assertRaises(SystemExit, Options().parseOptions,
                                   ["--config", "/nonexistent/smppgw.toml"])
        self.assertEqual(str(caught), "/nonexistent/smppgw.toml: cannot read the configuration"
                                      " file: No such file or directory")

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
