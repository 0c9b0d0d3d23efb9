"""
The commands that need no running gateway: check-config, set-admin-password, version.
"""

from __future__ import annotations

import argparse
from typing import Any

from smppgw import __version__
from smppgw.config import ConfigError

from .reach import CommandFailed, Output, load, say


def check_config(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> int:
    """Load and check a configuration file without starting anything."""
    config = load(args.file or args.config)
    count = len(config.servers)
    say(out, f"ok: {count} server{'s' if count != 1 else ''}")
    return 0


def set_admin_password(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> int:
    """Ask for the web admin's password twice and write its argon2 hash into the config file."""
    from smppgw import cli  # its ask_password, which a test replaces
    from smppgw.admin.auth import hash_password
    from smppgw.admin.configfile import set_admin_password as write_hash

    path = args.config
    load(path)
    first = cli.ask_password("New admin password: ")
    if not first:
        raise CommandFailed("no password given; nothing changed")
    if cli.ask_password("The same again: ") != first:
        raise CommandFailed("the two passwords differ; nothing changed")
    try:
        write_hash(path, hash_password(first))
    except ConfigError as error:
        raise CommandFailed(str(error)) from None
    except OSError as error:
        raise CommandFailed(f"{path}: cannot write the configuration file:"
                            f" {error.strerror or error}; nothing changed") from None
    say(out, f"the admin password is set in {path} (the previous file is {path}.bak);"
              " reload the gateway (SIGHUP) or restart it to use it")
    return 0


def version(reactor: Any, args: argparse.Namespace, out: Output, err: Output) -> int:
    say(out, f"smppgw {__version__}")
    return 0
