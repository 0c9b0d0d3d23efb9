"""
The ``smppgw`` command: send through, watch, operate and check a gateway from a shell.

    smppgw send +15551234 "Hello" --sender alice@example.com
    smppgw status
    smppgw queue
    smppgw lookup +15551234
    smppgw dialogs
    smppgw reload
    smppgw backup /var/backups/smppgw/store.sqlite
    smppgw host
    smppgw demo-reply +15551234 "@a: hi"
    smppgw check-config etc/smppgw.toml
    smppgw set-admin-password -c etc/smppgw.toml
    smppgw version

Every command that talks to the gateway reads its AMP endpoint and secret from
the configuration file (``-c``, by default etc/smppgw.toml): the same
``[amp] listen`` that the gateway listens on, so a relative unix socket path
means what it means to the gateway.  A gateway that does not answer is one line
on stderr and exit status 1; so is every error the gateway answers.

Each command is a function of (reactor, arguments, stdout, stderr) that gives a
Deferred exit status, so that tests run it against a real gateway in their own
reactor; `main` runs one on the global reactor, and says what an interruption
(Ctrl-C) leaves unknown.  The commands live by what they do: `messages` (send,
status, host, demo-reply), `operations` (queue, reject, lookup, dialogs,
retire-dialog, reload, backup), `local` (what needs no gateway); `reach` finds the
gateway, `commandline` parses and runs.
"""

from __future__ import annotations

import getpass

from .commandline import main, parse_args, parser, run
from .reach import DEFAULT_CONFIG, FAILED, INTERRUPTED, CommandFailed, Output, connect, load

__all__ = ["DEFAULT_CONFIG", "FAILED", "INTERRUPTED", "CommandFailed", "Output", "ask_password",
           "connect", "load", "main", "parse_args", "parser", "run"]

#: How a password is asked for: without echo (a test replaces it).
ask_password = getpass.getpass
